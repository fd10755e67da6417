package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/seal"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// crashWorld is a fresh database and bucket with a camera checked out to an
// officer assigned to an incident, and `bwc serve` as a child process that
// reaches PostgreSQL and MinIO through proxies the test can cut.
type crashWorld struct {
	db      *index.DB
	cfg     Config
	pg, s3  *proxy
	srv     *server
	dev     index.Device
	officer index.Officer
	inc     index.Incident
}

func newCrashWorld(t *testing.T) *crashWorld {
	t.Helper()
	ctx := context.Background()
	w := &crashWorld{db: storagetest.NewDB(t)}
	store := storagetest.NewStore(t)
	b := storagetest.BlobConfig(t)
	cfg := defaultConfig()
	w.pg = newProxy(t, hostOf(t, w.db.URL()))
	w.s3 = newProxy(t, b.Endpoint)
	cfg.DatabaseURL = viaProxy(t, w.db.URL(), w.pg)
	cfg.S3Endpoint, cfg.S3AccessKey, cfg.S3SecretKey, cfg.S3Bucket = w.s3.addr(), b.AccessKey, b.SecretKey, store.Bucket()
	cfg.SpoolDir = t.TempDir()
	cfg.UploadDir = t.TempDir()
	cfg.SigningKey = filepath.Join(t.TempDir(), "key.pem")
	cfg.SegmentDuration = 2 * time.Second
	cfg.ReconnectGrace = time.Second
	cfg.RetentionMode = "governance" // test buckets: the administrator can clean up
	w.cfg = cfg
	var err error
	serial := "CAM-CRASH-" + strings.ToUpper(uuid.NewString()[:6])
	if w.dev, err = w.db.CreateDevice(ctx, index.Device{Serial: serial, Secret: cameraSecret}); err != nil {
		t.Fatal(err)
	}
	if w.officer, err = w.db.CreateOfficer(ctx, index.Officer{Badge: "9001", Name: "Li Si"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.CheckOut(ctx, w.dev.ID, w.officer.ID, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if w.inc, err = w.db.CreateIncident(ctx, index.Incident{Number: "110-CRASH-" + serial[10:], OpenedAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.Assign(ctx, w.inc.ID, w.officer.ID, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	w.srv = newServer(t, cfg)
	return w
}

func hostOf(t *testing.T, u string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return pu.Host
}

// client reaches the test's bucket directly (not through the proxy).
func (w *crashWorld) client(t *testing.T) *minio.Client {
	t.Helper()
	c := w.cfg
	st, err := blob.Open(blob.Config{Endpoint: w.s3.target, AccessKey: c.S3AccessKey, SecretKey: c.S3SecretKey, Bucket: c.S3Bucket, RetentionMode: blob.Governance})
	if err != nil {
		t.Fatal(err)
	}
	return st.Client()
}

// waitSpooled waits until the spool holds at least n sealed media
// segments of some recording (what the kill must not lose).
func (w *crashWorld) waitSpooled(t *testing.T, n int) {
	t.Helper()
	defer w.srv.logOnFailure()
	mediatest.Eventually(t, fmt.Sprintf("%d sealed segments in the spool", n), func() bool {
		ents, _ := filepath.Glob(filepath.Join(w.cfg.SpoolDir, "*", "[0-9]*.json"))
		sealed := 0
		for _, e := range ents {
			if !strings.HasSuffix(e, ".open.json") {
				sealed++
			}
		}
		return sealed >= n
	})
}

// checkArchived waits until the device's one recording is ended, archived
// and out of the spool, then checks it: from the camera's first second to
// the kill (but the fragment being written) in contiguous segments, bound
// to the officer, linked to the incident, bwc verify clean, every object
// of it indexed, /readyz ready.
func (w *crashWorld) checkArchived(t *testing.T, sent time.Duration) {
	t.Helper()
	ctx := context.Background()
	rec := w.archived(t)
	if rec.OfficerID == nil || *rec.OfficerID != w.officer.ID {
		t.Errorf("recording not bound to the officer: %+v", rec)
	}
	links, err := w.db.RecordingLinks(ctx, rec.ID, false)
	if err != nil || len(links) != 1 || links[0].IncidentID != w.inc.ID {
		t.Errorf("links = %+v %v", links, err)
	}
	segs, err := w.db.Segments(ctx, rec.ID)
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments %d %v", len(segs), err)
	}
	if d := segs[0].StartedAt.Sub(rec.StartedAt); d > 1500*time.Millisecond {
		t.Errorf("first segment starts %v after the recording", d)
	}
	for i := 1; i < len(segs); i++ {
		if segs[i].Seq != int64(i) {
			t.Fatalf("segment %d has seq %d", i, segs[i].Seq)
		}
		if hole := segs[i].StartedAt.Sub(segs[i-1].EndedAt); hole > 500*time.Millisecond {
			t.Errorf("%v missing between segments %d and %d", hole, i-1, i)
		}
	}
	last := segs[len(segs)-1].EndedAt
	// the camera's media, on the recording's timeline (0 = its first frame)
	archived := segs[len(segs)-1].EndDTS
	if lost := sent - archived; lost > 2500*time.Millisecond {
		t.Errorf("camera sent %v before the kill, archive holds %v: %v lost (at most the fragment being written, about 1 s, and what was in flight may be)",
			sent, archived, lost)
	}
	t.Logf("camera sent %v before the kill; archived %v in %d segments; lost %v", sent.Round(time.Millisecond),
		archived.Round(time.Millisecond), len(segs), (sent - archived).Round(time.Millisecond))
	if rec.EndedAt == nil || rec.EndedAt.Before(last) {
		t.Errorf("recording ends %v before its last segment %v", rec.EndedAt, last)
	}
	// bwc verify
	var report bytes.Buffer
	c := w.cfg
	args := []string{"-database-url", w.db.URL(), "-s3-endpoint", w.s3.target, "-s3-access-key", c.S3AccessKey,
		"-s3-secret-key", c.S3SecretKey, "-s3-bucket", c.S3Bucket, "-recording", rec.ID.String(), "-signing-key", c.SigningKey}
	if err := verify(ctx, args, &report); err != nil || !strings.Contains(report.String(), "OK") {
		t.Errorf("bwc verify: %v\n%s", err, report.String())
	}
	// no object without its index row, but the recording's seal (which must
	// be there: the recording ended) and the checkpoints
	indexed := map[string]bool{}
	sealed := false
	for _, s := range segs {
		indexed[s.Key] = true
	}
	inits, err := w.db.InitSegments(ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range inits {
		indexed[s.Key] = true
	}
	for o := range w.client(t).ListObjects(ctx, c.S3Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		switch {
		case o.Key == seal.Key(rec.ID):
			sealed = true
		case strings.HasPrefix(o.Key, seal.CheckpointPrefix):
		case !indexed[o.Key]:
			t.Errorf("object %s has no index row", o.Key)
		}
	}
	if !sealed {
		t.Errorf("recording %s ended and archived, but its seal %s is not in the bucket", rec.ID, seal.Key(rec.ID))
	}
	if code, body := w.srv.ready(); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
	if ents, _ := os.ReadDir(filepath.Join(w.cfg.SpoolDir, "journal")); len(ents) != 0 {
		t.Errorf("journal left: %v", ents)
	}
}

// TestCrashMatrix: bwc serve is killed with SIGKILL at the worst moments,
// then restarted with everything reachable. Every second the camera sent
// before the kill (but the fragment being written) ends up archived,
// indexed, bound to the officer and linked to the incident; bwc verify is
// clean; nothing is left in the spool or the journal; no object lacks its
// row.
func TestCrashMatrix(t *testing.T) {
	for _, c := range []struct {
		name string
		// fault is applied before the camera publishes; repair after the kill
		fault, repair func(t *testing.T, w *crashWorld)
		// spooled: sealed segments to wait for before the kill
		spooled int
		// objects: wait for this many objects in the bucket before the kill
		objects int
	}{
		{
			// the recording starts during the outage: its row exists only in
			// the ingest's journal when the process dies
			name:    "postgres down, recording started during the outage",
			fault:   func(t *testing.T, w *crashWorld) { w.pg.setDown(true) },
			repair:  func(t *testing.T, w *crashWorld) { w.pg.setDown(false) },
			spooled: 3,
		},
		{
			name:    "minio down with segments spooled",
			fault:   func(t *testing.T, w *crashWorld) { w.s3.setDown(true) },
			repair:  func(t *testing.T, w *crashWorld) { w.s3.setDown(false) },
			spooled: 3,
		},
		{
			// between a segment's upload and its index write: the index
			// refuses segment rows (insert privilege revoked from the
			// server's role), so segment 0 is in the bucket without its row
			// (the uploader retrying) and the later ones spooled when it dies
			name: "segment uploaded, its index write not done",
			fault: func(t *testing.T, w *crashWorld) {
				w.superExec(t, `REVOKE INSERT ON segments FROM bwc_app`)
			},
			repair: func(t *testing.T, w *crashWorld) {
				w.superExec(t, `GRANT INSERT ON segments TO bwc_app`)
			},
			objects: 2, // init segment and segment 0
			spooled: 2,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newCrashWorld(t)
			w.srv.start()
			c.fault(t, w)
			cam := startCamera(t, w.srv.rtsp, w.dev.Serial, cameraSecret, 0)
			if c.spooled > 0 {
				w.waitSpooled(t, c.spooled)
			}
			if c.objects > 0 {
				w.waitObjects(t, c.objects)
			}
			sent := cam.sentMedia()
			w.srv.kill9()
			cam.stop()
			c.repair(t, w)
			w.srv.start()
			w.checkArchived(t, sent)
		})
	}
}

func (w *crashWorld) superExec(t *testing.T, q string) {
	t.Helper()
	if _, err := storagetest.Superuser(t, w.db).Exec(context.Background(), q); err != nil {
		t.Fatal(err)
	}
}

// waitObjects waits until the bucket holds at least n objects.
func (w *crashWorld) waitObjects(t *testing.T, n int) {
	t.Helper()
	cl := w.client(t)
	defer w.srv.logOnFailure()
	mediatest.Eventually(t, fmt.Sprintf("%d objects uploaded", n), func() bool {
		got := 0
		for o := range cl.ListObjects(context.Background(), w.cfg.S3Bucket, minio.ListObjectsOptions{Recursive: true}) {
			if o.Err == nil {
				got++
			}
		}
		return got >= n
	})
}

// archived waits until the device's one recording has ended and the spool
// holds nothing of it, and returns it.
func (w *crashWorld) archived(t *testing.T) index.Recording {
	t.Helper()
	ctx := context.Background()
	var recs []index.Recording
	var left []string
	defer func() {
		if t.Failed() {
			var files []string
			for _, d := range left {
				ents, _ := os.ReadDir(d)
				for _, e := range ents {
					files = append(files, filepath.Base(d)+"/"+e.Name())
				}
			}
			t.Logf("recordings %+v, spool %v", recs, files)
			w.srv.logOnFailure()
		}
	}()
	mediatest.Eventually(t, "the recording ended and archived", func() bool {
		var err error
		if recs, err = w.db.Recordings(ctx, index.RecordingFilter{DeviceID: &w.dev.ID}); err != nil {
			t.Fatal(err)
		}
		left, _ = filepath.Glob(filepath.Join(w.cfg.SpoolDir, "*-*-*-*-*"))
		return len(recs) == 1 && recs[0].Status == index.RecordingEnded && len(left) == 0
	})
	return recs[0]
}
