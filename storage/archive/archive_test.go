package archive

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/internal/spool"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// testConfig: short segments so tests make several quickly; the rest as
// `bwc serve` sets it.
func testConfig(t testing.TB) Config {
	return configWith(filepath.Join(t.TempDir(), "spool"))
}

// configWith is testConfig with the given spool.
func configWith(spool string) Config {
	return Config{
		SpoolDir:         spool,
		SegmentDuration:  2 * time.Second,
		FragmentDuration: 500 * time.Millisecond,
		Retention:        183 * 24 * time.Hour,
		SpoolAlarmBytes:  10 << 30,
		UploadWorkers:    4,
		RingFrames:       4096,
		BackoffMin:       100 * time.Millisecond,
		BackoffMax:       time.Second,
		ScanInterval:     200 * time.Millisecond,
		StuckAfter:       5 * time.Minute,
		ReconcileEvery:   10 * time.Minute,
		RetryWrite:       time.Second,
		LinkBuffer:       5 * time.Minute,
		Node:             "test-node",
		NodeDeadAfter:    30 * time.Second,
	}
}

// TestNewRejectsEveryInvalidField: New names every invalid field at once
// and substitutes no default.
func TestNewRejectsEveryInvalidField(t *testing.T) {
	cfg := Config{SegmentDuration: -time.Second, BackoffMin: time.Second, BackoffMax: time.Millisecond, RetryWrite: -1, LinkBuffer: -1}
	_, err := New(cfg, nil, nil, sealKey, nil, nil)
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("New(invalid) = %v, want ErrConfig", err)
	}
	for _, f := range []string{"SpoolDir", "SegmentDuration", "FragmentDuration", "Retention", "BackoffMax", "ScanInterval",
		"StuckAfter", "ReconcileEvery", "SpoolAlarmBytes", "UploadWorkers", "RingFrames", "RetryWrite", "LinkBuffer"} {
		if !strings.Contains(err.Error(), f+" ") {
			t.Errorf("error does not name %s: %v", f, err)
		}
	}
	ok := testConfig(t)
	ok.RetryWrite, ok.LinkBuffer = 0, 0 // 0 means 0
	if _, err := New(ok, nil, nil, sealKey, nil, nil); err != nil {
		t.Errorf("New(valid, zero RetryWrite and LinkBuffer) = %v", err)
	}
	if _, err := New(ok, nil, nil, nil, nil, nil); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "seal key") {
		t.Errorf("New without a seal key = %v, want ErrConfig naming the seal key", err)
	}
}

// runArchive is a new archive on the test's database and bucket, running
// until the test ends.
func runArchive(t *testing.T, cfg Config, db *index.DB, store *blob.Store) *Archive {
	t.Helper()
	a, err := New(cfg, db, store, sealKey, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, a)
	return a
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("BWC_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// checkComplete asserts that a recording of `passes` sample passes is
// wholly archived: sequence numbers without holes, media up to the end,
// a clean verify, and a decodable concatenation of the full duration.
func checkComplete(t *testing.T, db *index.DB, store *blob.Store, rec uuid.UUID, s *mediatest.Sample, passes int) []index.Segment {
	t.Helper()
	ctx := context.Background()
	segs, err := db.Segments(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) == 0 {
		t.Fatal("no segments indexed")
	}
	for i, sg := range segs {
		if sg.Seq != int64(i) {
			t.Fatalf("segment %d has seq %d: a hole", i, sg.Seq)
		}
		// audio may end a little after the keyframe that starts the next segment
		if i > 0 && sg.StartDTS > segs[i-1].EndDTS+time.Millisecond {
			t.Errorf("segment %d starts at %v, segment %d ended at %v: media lost between them", i, sg.StartDTS, i-1, segs[i-1].EndDTS)
		}
	}
	want := time.Duration(passes) * s.Duration
	if end := segs[len(segs)-1].EndDTS; end < want-50*time.Millisecond {
		t.Errorf("archive ends at %v of %v: media lost at the end", end, want)
	}
	rep, err := evidence.VerifyAnchored(ctx, db, store, sealPub, []uuid.UUID{rec})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Segments != len(segs) || rep.Inits != 1 {
		var b strings.Builder
		rep.Write(&b)
		t.Fatalf("verify: %s", b.String())
	}
	if d := mediatest.DecodeDuration(t, storagetest.Download(t, db, store, rec)); d < want-100*time.Millisecond || d > want+200*time.Millisecond {
		t.Errorf("decoded duration %v, want %v", d, want)
	}
	return segs
}

func TestArchiveRecordingLandsInMinIOAndIndexAndDecodes(t *testing.T) {
	s := mediatest.Load(t)
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	a, err := New(cfg, db, store, sealKey, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, a)
	start := time.Now().UTC().Truncate(time.Second)
	const passes = 5 // 10 s of media
	info := storagetest.NewRecording(t, db, s, start)
	st := media.NewStream(info)
	a.Attach(st)
	storagetest.Feed(st, s.Loop(passes, start))
	st.Close()
	storagetest.WaitSpoolEmpty(t, a.cfg.SpoolDir, info.RecordingID)

	segs := checkComplete(t, db, store, info.RecordingID, s, passes)
	if len(segs) != 5 { // 2 s target, keyframe every second
		t.Errorf("%d segments, want 5", len(segs))
	}
	ctx := context.Background()
	prefix := start.Format("2006/01/02") + "/" + info.RecordingID.String() + "/"
	if segs[0].Key != prefix+"000000.m4s" || segs[4].Key != prefix+"000004.m4s" {
		t.Errorf("keys %q..%q, want %s000000.m4s..", segs[0].Key, segs[4].Key, prefix)
	}
	// every object is under GOVERNANCE retention for ~183 days, and
	// carries its SHA-256 as S3 checksum
	for _, k := range append(storagetest.Keys(segs), prefix+"init-0.mp4") {
		mode, until, err := store.Client().GetObjectRetention(ctx, store.Bucket(), k, "")
		if err != nil {
			t.Fatal(err)
		}
		if *mode != minio.Governance || until.Before(time.Now().Add(182*24*time.Hour)) {
			t.Errorf("%s: retention %v until %v", k, *mode, until)
		}
	}
	// the index holds each object's version ID
	inits, err := db.InitSegments(ctx, info.RecordingID)
	if err != nil || len(inits) != 1 {
		t.Fatalf("init segments: %d, %v", len(inits), err)
	}
	indexed := map[string]string{inits[0].Key: inits[0].VersionID}
	for _, sg := range segs {
		indexed[sg.Key] = sg.VersionID
	}
	for k, v := range indexed {
		oi, err := store.Client().StatObject(ctx, store.Bucket(), k, minio.StatObjectOptions{})
		if err != nil || v == "" || oi.VersionID != v {
			t.Errorf("%s: indexed version %q, object's %q (%v)", k, v, oi.VersionID, err)
		}
	}
	oi, err := store.Client().StatObject(ctx, store.Bucket(), segs[0].Key, minio.StatObjectOptions{Checksum: true})
	if err != nil || oi.ChecksumSHA256 == "" {
		t.Errorf("segment 0 has no S3 SHA-256 checksum: %v", err)
	}
	if err := a.Check(ctx); err != nil {
		t.Errorf("check: %v", err)
	}
	// index queries the replay needs
	mid, err := db.SegmentsInRange(ctx, info.RecordingID, segs[1].StartedAt.Add(time.Second), segs[2].StartedAt.Add(time.Second))
	if err != nil || len(mid) != 2 || mid[0].Seq != 1 {
		t.Errorf("segments in range: %d, %v", len(mid), err)
	}
}

func TestArchiveGapIsRecordedAndSequenceHasNoHole(t *testing.T) {
	s := mediatest.Load(t)
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	a, err := New(testConfig(t), db, store, sealKey, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, a)
	start := time.Now().UTC()
	info := storagetest.NewRecording(t, db, s, start)
	st := media.NewStream(info)
	a.Attach(st)
	frames := s.Loop(3, start)
	marked := false
	for i, f := range frames {
		if !marked && f.DTS >= 3*time.Second && f.Key {
			g := *f
			g.Gap = true
			frames[i], marked = &g, true
		}
	}
	storagetest.Feed(st, frames)
	st.Close()
	storagetest.WaitSpoolEmpty(t, a.cfg.SpoolDir, info.RecordingID)
	segs := checkComplete(t, db, store, info.RecordingID, s, 3)
	var gaps []int64
	for _, sg := range segs {
		if sg.Gap {
			gaps = append(gaps, sg.Seq)
		}
	}
	if len(gaps) != 1 || segs[gaps[0]].StartDTS < 3*time.Second || segs[gaps[0]].StartDTS > 3100*time.Millisecond {
		t.Errorf("gap segments %v, want one starting at 3 s", gaps)
	}
}

// TestSpoolSizeFollowsWithoutWalking: the spool's size (SpoolBytes, the
// alarm's figure) is kept as media is spooled and uploaded, not by walking
// the spool at each scan: while a recording is still open, after its
// sealed segments and init are uploaded and removed, it is exactly the
// media left on disk (the open segment's durable fragments; the metadata
// files are left out) and stays so over the scans; once the recording's
// folder is gone, it is 0.
func TestSpoolSizeFollowsWithoutWalking(t *testing.T) {
	s := mediatest.Load(t)
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	cfg := testConfig(t)
	a := runArchive(t, cfg, db, store)
	start := time.Now().UTC().Truncate(time.Second)
	info := storagetest.NewRecording(t, db, s, start)
	st := media.NewStream(info)
	a.Attach(st)
	storagetest.Feed(st, s.Loop(5, start)) // 10 s: segments 0-3 sealed, 4 open
	dir := filepath.Join(cfg.SpoolDir, info.RecordingID.String())
	ctx := context.Background()
	var onDisk int64
	mediatest.Eventually(t, "sealed segments uploaded, the spool's size the open segment's media", func() bool {
		segs, err := db.Segments(ctx, info.RecordingID)
		if err != nil || len(segs) < 4 {
			return false
		}
		onDisk = 0
		media := 0
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if n := e.Name(); strings.HasSuffix(n, ".m4s") || strings.HasSuffix(n, ".mp4") {
				media++
				if fi, err := e.Info(); err == nil {
					onDisk += fi.Size()
				}
			}
		}
		// only the open segment left: an uploaded one is indexed a moment
		// before its files are removed
		return media == 1 && onDisk > 0 && a.SpoolBytes() == onDisk
	})
	// and it stays so over the next scans (a walk would add the metadata)
	time.Sleep(3 * cfg.ScanInterval)
	if n := a.SpoolBytes(); n != onDisk {
		t.Fatalf("spool size %d after three scans, the media on disk %d", n, onDisk)
	}
	st.Close()
	storagetest.WaitSpoolEmpty(t, cfg.SpoolDir, info.RecordingID)
	mediatest.Eventually(t, "the spool's size 0 once the recording is archived", func() bool { return a.SpoolBytes() == 0 })
}

// TestUploaderLooksAtKickedDirectories: the uploader reads the recording
// directories it is told about (a seal, an end), not the whole spool on
// every event or scan, so a directory nothing told it about waits for the
// whole-spool scan of every ReconcileEvery; then it is archived. (Before,
// every event and every ScanInterval read every directory.)
func TestUploaderLooksAtKickedDirectories(t *testing.T) {
	s := mediatest.Load(t)
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	cfg := testConfig(t)
	cfg.ReconcileEvery = 4 * time.Second
	a := runArchive(t, cfg, db, store)
	<-a.Ready()
	noRescanBefore := time.Now().Add(cfg.ReconcileEvery) // the uploader's first rescan after its start's
	// a recording spooled behind the uploader's back: its writer tells nobody
	start := time.Now().UTC().Truncate(time.Second)
	info := storagetest.NewRecording(t, db, s, start)
	w, err := spool.Open(cfg.SpoolDir, spool.RecMeta{Recording: info.RecordingID, StartedAt: start, DeviceSerial: info.DeviceSerial}, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	rc := a.newRecorder(info, w, testLogger(t))
	for _, f := range s.Loop(2, start) {
		rc.write(f)
	}
	rc.finish()
	time.Sleep(5 * cfg.ScanInterval)
	segs, err := db.Segments(context.Background(), info.RecordingID)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 0 && time.Now().Before(noRescanBefore) {
		t.Fatalf("%d segments archived within five scans and before the rescan, though no event named the folder", len(segs))
	}
	storagetest.WaitSpoolEmpty(t, cfg.SpoolDir, info.RecordingID)
	if time.Now().Before(noRescanBefore) {
		t.Errorf("archived before the whole-spool rescan")
	}
	checkComplete(t, db, store, info.RecordingID, s, 2)
}
