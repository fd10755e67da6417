package archive

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// archived records `passes` sample passes into a fresh database and bucket
// and waits until they are stored and indexed.
func archived(t *testing.T, passes int) (*Archive, *index.DB, *blob.Store, uuid.UUID, []index.Segment) {
	t.Helper()
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
	storagetest.Feed(st, s.Loop(passes, start))
	st.Close()
	storagetest.WaitSpoolEmpty(t, a.cfg.SpoolDir, info.RecordingID)
	segs, err := db.Segments(context.Background(), info.RecordingID)
	if err != nil || len(segs) < 3 {
		t.Fatalf("%d segments: %v", len(segs), err)
	}
	return a, db, store, info.RecordingID, segs
}

// TestLegalHoldCoversLaterSegments: a hold placed mid-recording applies to
// segments uploaded afterwards.
func TestLegalHoldCoversLaterSegments(t *testing.T) {
	ctx := context.Background()
	s := mediatest.Load(t)
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	cfg := testConfig(t)
	a := runArchive(t, cfg, db, store)
	start := time.Now().UTC()
	info := storagetest.NewRecording(t, db, s, start)
	st := media.NewStream(info)
	a.Attach(st)
	frames := s.Loop(4, start)
	half := len(frames) / 2
	storagetest.Feed(st, frames[:half])
	mediatest.Eventually(t, "a segment indexed", func() bool {
		segs, _ := db.Segments(ctx, info.RecordingID)
		return len(segs) > 0
	})
	holds := evidence.NewHolder(db, store, testLogger(t))
	if _, err := holds.Hold(ctx, info.RecordingID, "sgt.wu", "CASE-9", "evidence"); err != nil {
		t.Fatal(err)
	}
	storagetest.Feed(st, frames[half:])
	st.Close()
	storagetest.WaitSpoolEmpty(t, cfg.SpoolDir, info.RecordingID)
	segs, _ := db.Segments(ctx, info.RecordingID)
	inits, _ := db.InitSegments(ctx, info.RecordingID)
	keys := append(storagetest.Keys(segs), inits[0].Key)
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	for _, k := range keys {
		hs, err := store.Client().GetObjectLegalHold(ctx, store.Bucket(), k, minio.GetObjectLegalHoldOptions{})
		if err != nil || *hs != minio.LegalHoldEnabled {
			t.Errorf("%s: legal hold %v %v", k, hs, err)
		}
	}
}

// TestAppRoleCannotEditIndex: the application's own database role can add
// segments but not change or remove them.
func TestAppRoleCannotEditIndex(t *testing.T) {
	ctx := context.Background()
	_, db, _, rec, segs := archived(t, 3)
	for _, q := range []string{
		`UPDATE segments SET size = size + 1 WHERE recording_id = $1`,
		`DELETE FROM segments WHERE recording_id = $1`,
		`DELETE FROM init_segments WHERE recording_id = $1`,
	} {
		if _, err := db.Pool().Exec(ctx, q, rec); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s: err = %v, want permission denied", q, err)
		}
	}
	got, err := db.Segments(ctx, rec)
	if err != nil || len(got) != len(segs) {
		t.Fatalf("segments after refused edits: %d %v, want %d", len(got), err, len(segs))
	}
}
