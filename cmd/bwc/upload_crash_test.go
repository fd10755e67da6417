package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
)

// TestUploadCrashMatrix: an upload's last byte arrives while MinIO is
// unreachable, or while the index refuses the upload's row (after the
// object is written); the client is told it was received and is being
// stored (202); bwc serve is killed with SIGKILL; the fault is repaired and
// the server started again: the upload is stored exactly once (one row, one
// object version, the bytes right), the upload folder is empty and /readyz
// is ready.
func TestUploadCrashMatrix(t *testing.T) {
	clip, err := os.ReadFile(filepath.Join("..", "..", "ingest", "upload", "testdata", "seed.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(clip)
	for _, c := range []struct {
		name          string
		fault, repair func(t *testing.T, w *crashWorld)
	}{
		{
			name:   "minio down while the upload completes",
			fault:  func(t *testing.T, w *crashWorld) { w.s3.setDown(true) },
			repair: func(t *testing.T, w *crashWorld) { w.s3.setDown(false) },
		},
		{
			name:   "index refuses the upload's row after its object is written",
			fault:  func(t *testing.T, w *crashWorld) { w.superExec(t, `REVOKE INSERT ON uploads FROM bwc_app`) },
			repair: func(t *testing.T, w *crashWorld) { w.superExec(t, `GRANT INSERT ON uploads TO bwc_app`) },
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newCrashWorld(t)
			w.srv.start()
			defer w.srv.logOnFailure()
			tusID := uploadIntoFault(t, w, clip, c.fault)
			w.srv.kill9()
			if left, _ := os.ReadDir(w.cfg.UploadDir); len(left) == 0 {
				t.Fatal("the received upload is not on disk after the kill")
			}
			c.repair(t, w)
			w.srv.start()
			checkStoredOnce(t, w, tusID, sum[:])
		})
	}
}

// uploadIntoFault uploads clip as an officer, the fault applied before its
// last byte: the server answers 202 (received, being stored). It returns
// the tus ID.
func uploadIntoFault(t *testing.T, w *crashWorld, clip []byte, fault func(t *testing.T, w *crashWorld)) string {
	t.Helper()
	if _, err := w.db.CreateUser(context.Background(), index.User{Login: "off-crash", Role: index.RoleOfficer, OfficerID: &w.officer.ID},
		"long-enough-password"); err != nil {
		t.Fatal(err)
	}
	s := loginAs(t, "http://"+w.srv.http, "off-crash", "long-enough-password")
	md := "filename " + base64.StdEncoding.EncodeToString([]byte("crash.mp4")) + ",incident " +
		base64.StdEncoding.EncodeToString([]byte(w.inc.Number))
	res, _ := s.send("POST", "/api/uploads/", nil, map[string]string{"Tus-Resumable": "1.0.0",
		"Upload-Length": strconv.Itoa(len(clip)), "Upload-Metadata": md})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d", res.StatusCode)
	}
	loc := res.Header.Get("Location")
	fault(t, w)
	res, _ = s.send("PATCH", loc, bytes.NewReader(clip), map[string]string{"Tus-Resumable": "1.0.0",
		"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
	if res.StatusCode != http.StatusAccepted || res.Header.Get("X-BWC-Upload-Status") != "storing" {
		t.Fatalf("last PATCH: %d %v", res.StatusCode, res.Header)
	}
	return loc[strings.LastIndex(loc, "/")+1:]
}

// checkStoredOnce waits until the upload is stored and the upload folder
// empty, then checks: one row, one object version, the bytes right, and
// /readyz ready.
func checkStoredOnce(t *testing.T, w *crashWorld, tusID string, sum []byte) {
	t.Helper()
	ctx := context.Background()
	var ups []index.Upload
	mediatest.Eventually(t, "the upload stored after the restart", func() bool {
		ups, _ = w.db.Uploads(ctx, "")
		left, _ := os.ReadDir(w.cfg.UploadDir)
		return len(ups) > 0 && len(left) == 0
	})
	if len(ups) != 1 || ups[0].TusID != tusID || !bytes.Equal(ups[0].SHA256, sum) {
		t.Fatalf("uploads = %+v", ups)
	}
	cl := w.client(t)
	var versions []minio.ObjectInfo
	for o := range cl.ListObjects(ctx, w.cfg.S3Bucket, minio.ListObjectsOptions{Prefix: "uploads/", Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		versions = append(versions, o)
	}
	if len(versions) != 1 || versions[0].Key != ups[0].Key {
		t.Fatalf("object versions under uploads/: %+v", versions)
	}
	o, err := cl.GetObject(ctx, w.cfg.S3Bucket, ups[0].Key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	io.Copy(h, o)
	o.Close()
	if got := h.Sum(nil); !bytes.Equal(got, sum) {
		t.Fatalf("object's SHA-256 %x", got)
	}
	var code int
	var body string
	defer func() {
		if t.Failed() {
			t.Logf("last /readyz: %d %s", code, body)
		}
	}()
	mediatest.Eventually(t, "/readyz ready after the restart", func() bool {
		code, body = w.srv.ready()
		return code == http.StatusOK
	})
}
