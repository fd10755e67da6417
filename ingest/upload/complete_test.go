package upload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// run starts the service's Run and waits until it is Ready; the returned
// stop ends it and waits (Run returned, Close done).
func run(t *testing.T, s *Service) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	var once atomic.Bool
	stop = func() {
		if once.Swap(true) {
			return
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// versions counts the object versions under a prefix.
func versions(t *testing.T, e *env, prefix string) []minio.ObjectInfo {
	t.Helper()
	var out []minio.ObjectInfo
	for o := range e.store.Client().ListObjects(context.Background(), e.store.Bucket(),
		minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		out = append(out, o)
	}
	return out
}

// leftOnDisk lists what of an upload is in the folder.
func leftOnDisk(e *env, id string) []string {
	m, _ := filepath.Glob(filepath.Join(e.dir, id+"*"))
	return m
}

// finishUpload sends a real clip and returns the final PATCH's answer and
// the upload's ID and hash.
func finishUpload(t *testing.T, e *env) (res *http.Response, id, sum string) {
	t.Helper()
	path := video(t, time.Now().Add(-time.Hour), 0)
	st, _ := os.Stat(path)
	loc, code := create(t, e, st.Size(), meta("filename", "offline.mp4", "incident", e.inc.Number))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, loc)
	}
	res = send(t, loc, path, nil)
	return res, loc[strings.LastIndex(loc, "/")+1:], fileSum(t, path)
}

// assertStoredOnce: one row for the upload, one object version, the bytes
// right, nothing left in the folder, no alarm.
func assertStoredOnce(t *testing.T, e *env, s *Service, id, sum string) {
	t.Helper()
	ctx := context.Background()
	ups, err := e.db.Uploads(ctx, "")
	if err != nil || len(ups) != 1 || ups[0].TusID != id || hex.EncodeToString(ups[0].SHA256) != sum {
		t.Fatalf("uploads = %+v, %v", ups, err)
	}
	vs := versions(t, e, "uploads/")
	if len(vs) != 1 || vs[0].Key != ups[0].Key || vs[0].VersionID != ups[0].VersionID {
		t.Fatalf("object versions under uploads/: %+v, want one for %s, version %q (indexed)", vs, ups[0].Key, ups[0].VersionID)
	}
	o, err := e.store.Open(ctx, ups[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(o)
	o.Close()
	if h := fileSumBytes(b); h != sum {
		t.Fatalf("object's SHA-256 %s, want %s", h, sum)
	}
	if left := leftOnDisk(e, id); len(left) != 0 {
		t.Fatalf("left in the upload folder: %v", left)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check after storing: %v", err)
	}
	res := tusReq(t, "HEAD", e.url+id, nil, nil)
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of a stored upload: %d", res.StatusCode)
	}
}

func fileSumBytes(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// deadStore is the evidence bucket's client pointed at a closed port:
// MinIO unreachable.
func deadStore(t *testing.T, e *env) *blob.Store {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, err := blob.Open(blob.Config{Endpoint: addr, AccessKey: "x", SecretKey: "yyyyyyyy", Bucket: e.store.Bucket(), RetentionMode: blob.Governance})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestUploadCompletedWhileMinIOUnreachable: the last PATCH arrives while
// MinIO does not answer: the client is told the upload was received and is
// being stored (202, X-BWC-Upload-Status: storing, also on HEAD); the file
// stays on disk. The server is restarted (Run on the same folder) with
// MinIO back: it resumes and stores the upload exactly once.
func TestUploadCompletedWhileMinIOUnreachable(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RetryMin, c.RetryMax = 100*time.Millisecond, 500*time.Millisecond })
	down, err := New(e.cfg, e.db, deadStore(t, e), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.set(nil, down)
	stop := run(t, down)
	res, id, sum := finishUpload(t, e)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted || res.Header.Get("X-BWC-Upload-Status") != "storing" {
		t.Fatalf("last PATCH with MinIO down: %d %s", res.StatusCode, b)
	}
	head := tusReq(t, "HEAD", e.url+id, nil, nil)
	head.Body.Close()
	if head.StatusCode != http.StatusOK || head.Header.Get("X-BWC-Upload-Status") != "storing" || head.Header.Get("Upload-Offset") != head.Header.Get("Upload-Length") {
		t.Fatalf("HEAD while storing: %d %v", head.StatusCode, head.Header)
	}
	// a retry or two fail; the file and its marker stay
	mediatest.Eventually(t, "a failed retry", func() bool { return counter(t, down.metrics.retries) >= 2 })
	for _, f := range []string{id, id + ".done", id + ".info"} {
		if _, err := os.Stat(filepath.Join(e.dir, f)); err != nil {
			t.Fatalf("%s gone while MinIO is down: %v", f, err)
		}
	}
	if ups, _ := e.db.Uploads(context.Background(), ""); len(ups) != 0 {
		t.Fatalf("rows written without the object: %+v", ups)
	}
	// DELETE of a received upload is refused: it is evidence now
	del := tusReq(t, "DELETE", e.url+id, nil, nil)
	del.Body.Close()
	if del.StatusCode != http.StatusConflict {
		t.Fatalf("DELETE while storing: %d", del.StatusCode)
	}
	stop()

	// restart with MinIO reachable; its first completion waits until the
	// test has seen that Run found the upload
	up, err := New(e.cfg, e.db, e.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := make(chan struct{})
	var release sync.Once
	up.fault = func(string) error { <-found; return nil }
	e.set(nil, up)
	run(t, up)
	t.Cleanup(func() { release.Do(func() { close(found) }) }) // before run's stop
	if up.Status(id) != "storing" {
		t.Fatalf("restart did not find the received upload")
	}
	release.Do(func() { close(found) })
	mediatest.Eventually(t, "the upload stored after the restart", func() bool { return up.Status(id) == "" })
	assertStoredOnce(t, e, up, id, sum)
}

// TestUploadRowFailsAfterPut: the object is written, then the index write
// fails (an injected fault): the upload stays, the reconciliation sees the
// object without a row and, once the database takes writes again, adopts
// it; the upload is stored exactly once (no second object version, one
// row). An object without a row and without a file is reported.
func TestUploadRowFailsAfterPut(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var failRow atomic.Bool
	failRow.Store(true)
	e.svc.fault = func(step string) error {
		if step == "row" && failRow.Load() {
			return errors.New("injected: the index write failed")
		}
		return nil
	}
	res, id, sum := finishUpload(t, e)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("last PATCH with the index failing: %d", res.StatusCode)
	}
	if vs := versions(t, e, "uploads/"); len(vs) != 1 {
		t.Fatalf("objects after the put: %d", len(vs))
	}
	if left := leftOnDisk(e, id); len(left) < 3 {
		t.Fatalf("the received upload was not kept: %v", left)
	}
	// the reconciliation tries to adopt it: still failing
	if _, err := e.svc.Reconcile(ctx); err == nil {
		t.Fatal("Reconcile adopted with the index failing")
	}
	// an object with no row and no file: reported, not adopted
	orphan := "uploads/2020/01/01/0123456789abcdef0123456789abcdef/lost.mp4"
	if _, err := e.store.Client().PutObject(ctx, e.store.Bucket(), orphan, bytes.NewReader([]byte("lost")), 4,
		minio.PutObjectOptions{Checksum: minio.ChecksumSHA256}); err != nil {
		t.Fatal(err)
	}
	failRow.Store(false)
	r, err := e.svc.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Adopted) != 1 || !strings.Contains(r.Adopted[0], id) || len(r.Orphans) != 1 || r.Orphans[0] != orphan {
		t.Fatalf("reconciliation = %+v", r)
	}
	// remove the orphan from the count (governance mode allows the
	// administrator to, with bypass)
	admin := storagetest.Admin(t, e.store)
	for _, v := range versions(t, e, orphan) {
		admin.Client().RemoveObject(ctx, e.store.Bucket(), orphan, minio.RemoveObjectOptions{VersionID: v.VersionID, GovernanceBypass: true})
	}
	assertStoredOnce(t, e, e.svc, id, sum)
	// a second pass finds nothing to do
	if r, err := e.svc.Reconcile(ctx); err != nil || len(r.Adopted)+len(r.Orphans) != 0 {
		t.Fatalf("second reconciliation = %+v, %v", r, err)
	}
}

// TestUploadStuckAlarm: a received upload that cannot be stored while
// PostgreSQL and MinIO answer (an injected put failure) fails Check by
// its ID and reason after StuckAfter; when the fault clears, the retry
// stores it once and the alarm clears.
func TestUploadStuckAlarm(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.StuckAfter, c.RetryMin, c.RetryMax = time.Second, 100*time.Millisecond, 300*time.Millisecond
	})
	var failPut atomic.Bool
	failPut.Store(true)
	e.svc.fault = func(step string) error {
		if step == "put" && failPut.Load() {
			return errors.New("injected: the object store refuses the write")
		}
		return nil
	}
	run(t, e.svc)
	res, id, sum := finishUpload(t, e)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("last PATCH: %d", res.StatusCode)
	}
	ctx := context.Background()
	var alarm error
	mediatest.Eventually(t, "the stuck alarm", func() bool { alarm = e.svc.Check(ctx); return alarm != nil })
	if !strings.Contains(alarm.Error(), id) || !strings.Contains(alarm.Error(), "refuses the write") {
		t.Fatalf("alarm = %v", alarm)
	}
	failPut.Store(false)
	mediatest.Eventually(t, "the upload stored", func() bool { return e.svc.Status(id) == "" })
	assertStoredOnce(t, e, e.svc, id, sum)
}

// TestUploadRowFailsThenRestart: the object is written, the index write
// fails, the server stops; Run on the same folder (the database taking
// writes again) resumes the upload and stores it exactly once: the
// existing object is recognised by its hash, not written again.
func TestUploadRowFailsThenRestart(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RetryMin, c.RetryMax = 100*time.Millisecond, 300*time.Millisecond })
	e.svc.fault = func(step string) error {
		if step == "row" {
			return errors.New("injected: the index write failed")
		}
		return nil
	}
	res, id, sum := finishUpload(t, e)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("last PATCH with the index failing: %d", res.StatusCode)
	}
	if vs := versions(t, e, "uploads/"); len(vs) != 1 {
		t.Fatalf("objects after the put: %d", len(vs))
	}
	up, err := New(e.cfg, e.db, e.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.set(nil, up)
	run(t, up)
	mediatest.Eventually(t, "the upload stored after the restart", func() bool { return up.Status(id) == "" })
	assertStoredOnce(t, e, up, id, sum)
}
