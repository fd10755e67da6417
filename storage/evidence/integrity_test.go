package evidence_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/archive"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// archiveConfig: short segments so tests make several quickly; the rest as
// `bwc serve` sets it.
func archiveConfig(t testing.TB) archive.Config {
	return archive.Config{
		SpoolDir:         filepath.Join(t.TempDir(), "spool"),
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

// archived records `passes` sample passes into a fresh database and bucket
// and waits until they are stored and indexed.
func archived(t *testing.T, passes int) (*evidence.Holder, *index.DB, *blob.Store, uuid.UUID, []index.Segment) {
	t.Helper()
	s := mediatest.Load(t)
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	cfg := archiveConfig(t)
	a, err := archive.New(cfg, db, store, sealKey, nil, nil)
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
	storagetest.WaitSpoolEmpty(t, cfg.SpoolDir, info.RecordingID)
	segs, err := db.Segments(context.Background(), info.RecordingID)
	if err != nil || len(segs) < 3 {
		t.Fatalf("%d segments: %v", len(segs), err)
	}
	return evidence.NewHolder(db, store, nil), db, store, info.RecordingID, segs
}

// versionOf returns the (only) version ID of an object.
func versionOf(t *testing.T, store *blob.Store, key string) string {
	t.Helper()
	oi, err := store.Client().StatObject(context.Background(), store.Bucket(), key, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return oi.VersionID
}

// flipByte replaces an object by one with a byte flipped, as a superuser
// would: bypass governance retention, delete the version, put another.
func flipByte(t *testing.T, store *blob.Store, key string) {
	t.Helper()
	// deleting a version takes the administrator's governance bypass
	ctx, c := context.Background(), storagetest.Admin(t, store).Client()
	o, err := c.GetObject(ctx, store.Bucket(), key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(o)
	o.Close()
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := c.RemoveObject(ctx, store.Bucket(), key, minio.RemoveObjectOptions{VersionID: versionOf(t, store, key), GovernanceBypass: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, store.Bucket(), key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyReportsTampering: each kind of tampering a superuser could do
// is reported by verify, naming the segment.
func TestVerifyReportsTampering(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, db *index.DB, store *blob.Store, rec uuid.UUID, s index.Segment)
		want   string
	}{
		{"flip one byte of an object", func(t *testing.T, db *index.DB, store *blob.Store, rec uuid.UUID, s index.Segment) {
			flipByte(t, store, s.Key)
		}, "indexed version"},
		{"flip one byte of an object indexed before version IDs", func(t *testing.T, db *index.DB, store *blob.Store, rec uuid.UUID, s index.Segment) {
			if _, err := storagetest.Superuser(t, db).Exec(ctx, `UPDATE segments SET version_id = NULL WHERE recording_id = $1 AND seq = $2`, rec, s.Seq); err != nil {
				t.Fatal(err)
			}
			flipByte(t, store, s.Key)
		}, "SHA-256 mismatch"},
		{"put a version over the key", func(t *testing.T, db *index.DB, store *blob.Store, rec uuid.UUID, s index.Segment) {
			forged := "forged bytes, not the camera's"
			if _, err := store.Client().PutObject(ctx, store.Bucket(), s.Key, strings.NewReader(forged), int64(len(forged)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}, "is not the indexed version"},
		{"delete marker on the key", func(t *testing.T, db *index.DB, store *blob.Store, rec uuid.UUID, s index.Segment) {
			// the server's identity may not (s3:DeleteObject is denied)
			if err := storagetest.Admin(t, store).Client().RemoveObject(ctx, store.Bucket(), s.Key, minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}, "latest version is a delete marker"},
		{"delete one object", func(t *testing.T, db *index.DB, store *blob.Store, rec uuid.UUID, s index.Segment) {
			if err := storagetest.Admin(t, store).Client().RemoveObject(ctx, store.Bucket(), s.Key, minio.RemoveObjectOptions{VersionID: versionOf(t, store, s.Key), GovernanceBypass: true}); err != nil {
				t.Fatal(err)
			}
		}, "object missing"},
		{"edit one index row", func(t *testing.T, db *index.DB, store *blob.Store, rec uuid.UUID, s index.Segment) {
			// the application's role may not; an attacker with the database's login role can
			if _, err := storagetest.Superuser(t, db).Exec(ctx, `UPDATE segments SET ended_at = ended_at + interval '5 seconds' WHERE recording_id = $1 AND seq = $2`, rec, s.Seq); err != nil {
				t.Fatal(err)
			}
		}, "does not hash to its chain"},
		{"delete one index row", func(t *testing.T, db *index.DB, store *blob.Store, rec uuid.UUID, s index.Segment) {
			if _, err := storagetest.Superuser(t, db).Exec(ctx, `DELETE FROM segments WHERE recording_id = $1 AND seq = $2`, rec, s.Seq); err != nil {
				t.Fatal(err)
			}
		}, "sequence hole"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, db, store, rec, segs := archived(t, 3)
			if rep, err := evidence.Verify(ctx, db, store, nil); err != nil || !rep.OK() {
				t.Fatalf("before tampering: %+v %v", rep, err)
			}
			victim := segs[1]
			tc.tamper(t, db, store, rec, victim)
			rep, err := evidence.Verify(ctx, db, store, nil)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			rep.Write(&out)
			t.Logf("verify report:\n%s", out.String())
			if rep.OK() {
				t.Fatal("verify found nothing wrong")
			}
			found := false
			for _, p := range rep.Problems {
				// a deleted row is reported at the next segment (where the hole is seen)
				if (p.Seq == victim.Seq || p.Seq == victim.Seq+1) && strings.Contains(p.What, tc.want) {
					found = true
				}
			}
			if !found || !strings.Contains(out.String(), "FAILED") {
				t.Errorf("no problem %q naming segment %d", tc.want, victim.Seq)
			}
		})
	}
}

func TestRetentionAndLegalHold(t *testing.T) {
	ctx := context.Background()
	a, db, store, rec, segs := archived(t, 3)
	// as the MinIO administrator, who may bypass governance retention: what
	// refuses the deletes below is the retention and the legal hold
	c, bucket := storagetest.Admin(t, store).Client(), store.Bucket()
	key := segs[0].Key
	vid := versionOf(t, store, key)

	// retention: deleting the version without governance bypass is refused
	if err := c.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{VersionID: vid}); err == nil {
		t.Fatal("deleting an object under retention succeeded")
	}

	if _, err := a.Hold(ctx, rec, "", "CASE-1", "x"); !errors.Is(err, index.ErrInvalid) {
		t.Errorf("hold without who: %v, want ErrInvalid", err)
	}
	if _, err := a.Hold(ctx, rec, "sgt.wu", "CASE-2026-17", "use of force complaint"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Hold(ctx, rec, "sgt.wu", "CASE-2026-17", "again"); !errors.Is(err, index.ErrConflict) {
		t.Errorf("second hold: %v, want ErrConflict", err)
	}
	for _, s := range segs {
		st, err := c.GetObjectLegalHold(ctx, bucket, s.Key, minio.GetObjectLegalHoldOptions{})
		if err != nil || *st != minio.LegalHoldEnabled {
			t.Errorf("%s: legal hold %v, %v", s.Key, st, err)
		}
	}
	// under legal hold even a governance bypass cannot delete
	if err := c.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{VersionID: vid, GovernanceBypass: true}); err == nil {
		t.Fatal("deleting an object under legal hold succeeded")
	}

	if _, err := a.Release(ctx, rec, "lt.chen", ""); !errors.Is(err, index.ErrInvalid) {
		t.Errorf("release without reason: %v, want ErrInvalid", err)
	}
	if _, err := a.Release(ctx, rec, "", "case closed"); !errors.Is(err, index.ErrInvalid) {
		t.Errorf("release without who: %v, want ErrInvalid", err)
	}
	if _, err := a.Release(ctx, rec, "lt.chen", "case CASE-2026-17 closed, no appeal"); err != nil {
		t.Fatal(err)
	}
	hist, err := a.Holds(ctx, rec)
	if err != nil || len(hist) != 1 {
		t.Fatalf("hold history %v %v", hist, err)
	}
	h := hist[0]
	if h.HeldBy != "sgt.wu" || h.Case != "CASE-2026-17" || h.ReleasedAt == nil || *h.ReleasedBy != "lt.chen" || *h.ReleaseReason != "case CASE-2026-17 closed, no appeal" {
		t.Errorf("history %+v", h)
	}
	st, err := c.GetObjectLegalHold(ctx, bucket, key, minio.GetObjectLegalHoldOptions{})
	if err != nil || *st != minio.LegalHoldDisabled {
		t.Errorf("after release: %v %v", st, err)
	}
	// retention still protects it
	if err := c.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{VersionID: vid}); err == nil {
		t.Fatal("deleting an object under retention succeeded after the hold was released")
	}
	if _, err := a.Release(ctx, rec, "lt.chen", "again"); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("release without hold: %v, want ErrNotFound", err)
	}
	_ = db
}
