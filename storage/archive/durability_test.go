package archive

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/internal/segmenter"
	"github.com/bwcplatform/bwc/storage/internal/spool"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// faultSink fails every spool write whose media lies in [from, to) (a disk
// that is full for a while). After the first failure it stops at the next
// call until the test has looked at the alarm (held), so that what the test
// sees does not depend on timing.
type faultSink struct {
	segmenter.Sink
	from, to time.Duration

	mu       sync.Mutex
	failures int
	held     bool
	failed   chan struct{} // closed at the first call after a failure
	release  chan struct{}
}

var errDiskFull = syscall.ENOSPC

func (f *faultSink) check(dts time.Duration) error {
	f.mu.Lock()
	if f.failures > 0 && !f.held {
		f.held = true
		f.mu.Unlock()
		close(f.failed)
		<-f.release
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	if dts >= f.from && dts < f.to {
		f.failures++
		return errDiskFull
	}
	return nil
}

func (f *faultSink) Begin(h segmenter.Header) error {
	if err := f.check(h.StartDTS); err != nil {
		return err
	}
	return f.Sink.Begin(h)
}

func (f *faultSink) Fragment(data []byte, end segmenter.End) error {
	if err := f.check(end.DTS); err != nil {
		return err
	}
	return f.Sink.Fragment(data, end)
}

func (f *faultSink) Seal(end segmenter.End) error {
	if err := f.check(end.DTS); err != nil {
		return err
	}
	return f.Sink.Seal(end)
}

// TestSpoolWriteErrorRetries: the spool refuses writes (ENOSPC) for two
// seconds of a recording. The recording's archive does not end: the alarm
// is raised (Check names the recording, the gauge is 1) while it fails, and
// writing resumes with a new segment marked as following a gap; the
// segments before and after are archived, verified and chained without a
// hole in their numbers.
func TestSpoolWriteErrorRetries(t *testing.T) {
	s := mediatest.Load(t)
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	cfg.RetryWrite = time.Nanosecond // at the next keyframe
	fs := &faultSink{from: 4 * time.Second, to: 6 * time.Second, failed: make(chan struct{}), release: make(chan struct{})}
	cfg.sinkWrap = func(sk segmenter.Sink) segmenter.Sink { fs.Sink = sk; return fs }
	a, err := New(cfg, db, store, sealKey, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, a)
	start := time.Now().UTC().Truncate(time.Second)
	info := storagetest.NewRecording(t, db, s, start)
	st := media.NewStream(info)
	a.Attach(st)
	fed := make(chan struct{})
	go func() { defer close(fed); storagetest.Feed(st, s.Loop(5, start)) }() // 10 s
	select {
	case <-fs.failed:
	case <-time.After(60 * time.Second):
		t.Fatal("the spool write fault was never hit")
	}
	ctx := context.Background()
	err = a.Check(ctx)
	if err == nil || !errors.Is(err, ErrStuck) || !strings.Contains(err.Error(), info.RecordingID.String()) || !strings.Contains(err.Error(), "no space") {
		t.Errorf("check while the spool fails = %v", err)
	}
	if g := testutil.ToFloat64(a.m.writeFailing); g != 1 {
		t.Errorf("bwc_archive_spool_write_failing = %v while failing", g)
	}
	close(fs.release)
	mediatest.Eventually(t, "spool alarm cleared", func() bool { return a.Check(ctx) == nil })
	<-fed // the whole feed before the stream ends the recording
	st.Close()
	storagetest.WaitSpoolEmpty(t, a.cfg.SpoolDir, info.RecordingID)

	segs, err := db.Segments(ctx, info.RecordingID)
	if err != nil {
		t.Fatal(err)
	}
	var before, after, gaps int
	for i, sg := range segs {
		if sg.Seq != int64(i) {
			t.Fatalf("segment %d has seq %d: a hole", i, sg.Seq)
		}
		if sg.Gap {
			gaps++
			if sg.StartDTS < 6*time.Second {
				t.Errorf("gap segment %d starts at %v, inside the failure", sg.Seq, sg.StartDTS)
			}
		}
		if sg.EndDTS <= 4*time.Second {
			before++
		}
		if sg.StartDTS >= 6*time.Second {
			after++
		}
	}
	if before == 0 || after == 0 || gaps != 1 {
		t.Errorf("segments %d before the fault, %d after, %d gaps (want >0, >0, 1)", before, after, gaps)
	}
	if fs.failures == 0 {
		t.Error("no write failed")
	}
	rep, err := evidence.VerifyAnchored(ctx, db, store, sealPub, []uuid.UUID{info.RecordingID})
	if err != nil || !rep.OK() {
		var b bytes.Buffer
		rep.Write(&b)
		t.Errorf("verify: %v\n%s", err, b.String())
	}
	if err := a.Check(ctx); err != nil {
		t.Errorf("check after recovery: %v", err)
	}
	if g := testutil.ToFloat64(a.m.writeFailing); g != 0 {
		t.Errorf("bwc_archive_spool_write_failing = %v after recovery", g)
	}
}

// TestStuckEvidenceAlarm: the index refuses a recording's segments (its
// row does not exist, and the spool's metadata names no device, so
// reconciliation cannot rebuild it). Once they have waited longer than
// StuckAfter with PostgreSQL and MinIO answering, Check names the
// recording and the segment with the reason, the metric counts them;
// when the row is repaired they are archived and the alarm clears.
func TestStuckEvidenceAlarm(t *testing.T) {
	s := mediatest.Load(t)
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	cfg := testConfig(t)
	cfg.StuckAfter = time.Second
	cfg.ScanInterval = 100 * time.Millisecond
	cfg.ReconcileEvery = 200 * time.Millisecond
	a, err := New(cfg, db, store, sealKey, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, a)
	ctx := context.Background()
	start := time.Now().UTC().Truncate(time.Second)
	info := storagetest.NewRecording(t, db, s, start)
	if _, err := db.Pool().Exec(ctx, `DELETE FROM recordings WHERE id = $1`, info.RecordingID); err != nil {
		t.Fatal(err)
	}
	dev := info.DeviceID
	info.DeviceID, info.DeviceSerial = uuid.Nil, "" // an old rec.json: not enough to rebuild the row
	st := media.NewStream(info)
	a.Attach(st)
	storagetest.Feed(st, s.Loop(2, start))
	st.Close()

	mediatest.Eventually(t, "stuck alarm", func() bool {
		err := a.Check(ctx)
		return err != nil && strings.Contains(err.Error(), "recording "+info.RecordingID.String()+" init segment 0") &&
			strings.Contains(err.Error(), "stuck") && strings.Contains(err.Error(), "not found")
	})
	if n := testutil.ToFloat64(a.m.stuckTotal); n < 1 {
		t.Errorf("bwc_archive_stuck_total = %v", n)
	}
	if n := testutil.ToFloat64(a.m.orphans.WithLabelValues("spool")); n != 1 {
		t.Errorf("bwc_archive_orphans{kind=spool} = %v", n)
	}
	// repair: the row exists again
	if _, err := db.Pool().Exec(ctx, `INSERT INTO recordings (id, device_id, started_at) VALUES ($1, $2, $3)`, info.RecordingID, dev, start); err != nil {
		t.Fatal(err)
	}
	storagetest.WaitSpoolEmpty(t, a.cfg.SpoolDir, info.RecordingID)
	mediatest.Eventually(t, "alarm cleared", func() bool { return a.Check(ctx) == nil })
	if n := testutil.ToFloat64(a.m.stuck); n != 0 {
		t.Errorf("bwc_archive_stuck = %v after repair", n)
	}
}

// TestReconcileRebuildsLostRow: a recording whose row was never written
// (its journal is gone) is rebuilt from the spool's rec.json: bound to the
// officer wearing the device at its start, linked to their incident,
// ended at its last segment, audited as recovered; its segments are then
// archived. An object in the bucket that no index row or spool file
// accounts for is reported.
func TestReconcileRebuildsLostRow(t *testing.T) {
	s := mediatest.Load(t)
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	cfg := testConfig(t)
	cfg.ReconcileEvery = 200 * time.Millisecond
	a, err := New(cfg, db, store, sealKey, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, a)
	ctx := context.Background()
	start := time.Now().UTC().Truncate(time.Second)
	info := storagetest.NewRecording(t, db, s, start)
	if _, err := db.Pool().Exec(ctx, `DELETE FROM recordings WHERE id = $1`, info.RecordingID); err != nil {
		t.Fatal(err)
	}
	off, err := db.CreateOfficer(ctx, index.Officer{Badge: "7001", Name: "Wang Wu"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckOut(ctx, info.DeviceID, off.ID, start.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	inc, err := db.CreateIncident(ctx, index.Incident{Number: "110-REC-1", OpenedAt: start.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Assign(ctx, inc.ID, off.ID, start.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	st := media.NewStream(info)
	a.Attach(st)
	storagetest.Feed(st, s.Loop(3, start))
	st.Close()
	storagetest.WaitSpoolEmpty(t, a.cfg.SpoolDir, info.RecordingID)

	rec, err := db.Recording(ctx, info.RecordingID)
	if err != nil {
		t.Fatal(err)
	}
	segs, err := db.Segments(ctx, info.RecordingID)
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments %v %v", segs, err)
	}
	if rec.OfficerID == nil || *rec.OfficerID != off.ID || rec.Status != index.RecordingEnded || rec.DeviceID != info.DeviceID ||
		rec.EndedAt == nil || rec.EndedAt.Before(segs[len(segs)-1].EndedAt) {
		t.Errorf("rebuilt recording = %+v, last segment ends %v", rec, segs[len(segs)-1].EndedAt)
	}
	links, err := db.RecordingLinks(ctx, info.RecordingID, false)
	if err != nil || len(links) != 1 || links[0].IncidentID != inc.ID {
		t.Errorf("links = %+v %v", links, err)
	}
	rid := info.RecordingID
	evs, err := db.AuditEvents(ctx, index.AuditFilter{RecordingID: &rid})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs {
		found = found || e.Action == "recording.recovered"
	}
	if !found {
		t.Errorf("no recording.recovered audit event: %+v", evs)
	}

	// an object nothing indexes
	key := start.Format("2006/01/02") + "/" + uuid.Must(uuid.NewV7()).String() + "/000007.m4s"
	if _, err := store.Client().PutObject(ctx, store.Bucket(), key, bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := a.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ObjectOrphans) != 1 || got.ObjectOrphans[0] != key || len(got.Rebuilt) != 0 {
		t.Errorf("reconcile = %+v, want the orphan %s", got, key)
	}
}

// TestEndedSpoolLeftoversRemoved: files nothing uses any more do not keep
// a recording's spool directory for ever: a segment's data whose metadata
// was removed after its upload (the process died between the two
// removals), one begun before it had an open header, and the fragment log
// of a sealed segment (the process died between the removal of its open
// header and of its log) are removed by recovery; the sealed segment stays.
func TestEndedSpoolLeftoversRemoved(t *testing.T) {
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	cfg := testConfig(t)
	id := uuid.Must(uuid.NewV7())
	t0 := time.Now().UTC().Truncate(time.Second)
	w, err := spool.Open(cfg.SpoolDir, spool.RecMeta{Recording: id, StartedAt: t0}, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Init(0, []byte("init")); err != nil {
		t.Fatal(err)
	}
	if err := w.Begin(segmenter.Header{StartWall: t0}); err != nil {
		t.Fatal(err)
	}
	if err := w.Fragment([]byte("fragment"), segmenter.End{DTS: time.Second, Wall: t0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Seal(segmenter.End{DTS: time.Second, Wall: t0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	dir := w.Dir()
	for n, data := range map[string]string{
		"000000.frags": "F 8 1000000000 0\n", // the sealed segment's log
		"000003.m4s":   "uploaded, metadata already removed",
		"000004.m4s":   "begun, no open header yet",
		"000004.frags": "",
	} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	a, err := New(cfg, db, store, sealKey, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.recover(); err != nil { // what Run does first
		t.Fatal(err)
	}
	for _, n := range []string{"000000.frags", "000003.m4s", "000004.m4s", "000004.frags"} {
		if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after recovery: %v", n, err)
		}
	}
	for _, n := range []string{"000000.json", "000000.m4s", "init-0.json", "init-0.mp4", "ended"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s removed by recovery: %v", n, err)
		}
	}
}
