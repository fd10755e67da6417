package evidence_test

import (
	"context"
	"crypto/ed25519"
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
	"github.com/bwcplatform/bwc/storage/seal"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// anchored is a fresh database and bucket with an archive running and a
// checkpointer (written by the test, not on a timer).
type anchored struct {
	db    *index.DB
	store *blob.Store
	admin *blob.Store
	a     *archive.Archive
	cfg   archive.Config
	cp    *seal.Checkpointer
}

func newAnchored(t *testing.T) *anchored {
	t.Helper()
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	cfg := archiveConfig(t)
	a, err := archive.New(cfg, db, store, sealKey, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, a)
	cp, err := seal.NewCheckpointer(seal.CheckpointConfig{Every: time.Hour, Node: "test-node", Retention: 24 * time.Hour}, db, store, sealKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &anchored{db: db, store: store, admin: storagetest.Admin(t, store), a: a, cfg: cfg, cp: cp}
}

// ended archives a recording to its end (sealed) and marks its row ended,
// as the ingest does.
func (x *anchored) ended(t *testing.T) (uuid.UUID, []index.Segment) {
	t.Helper()
	s := mediatest.Load(t)
	start := time.Now().UTC()
	info := storagetest.NewRecording(t, x.db, s, start)
	st := media.NewStream(info)
	x.a.Attach(st)
	storagetest.Feed(st, s.Loop(4, start))
	st.Close()
	storagetest.WaitSpoolEmpty(t, x.cfg.SpoolDir, info.RecordingID)
	x.sql(t, `UPDATE recordings SET status = 'ended', ended_at = now() WHERE id = $1`, info.RecordingID)
	return info.RecordingID, x.segments(t, info.RecordingID, 4)
}

// live archives a recording that goes on (its stream stays open) until at
// least n segments are indexed.
func (x *anchored) live(t *testing.T, n int) (uuid.UUID, []index.Segment) {
	t.Helper()
	s := mediatest.Load(t)
	start := time.Now().UTC()
	info := storagetest.NewRecording(t, x.db, s, start)
	st := media.NewStream(info)
	x.a.Attach(st)
	storagetest.Feed(st, s.Loop(4, start))
	var segs []index.Segment
	mediatest.Eventually(t, "segments of the live recording indexed", func() bool {
		segs = x.segments(t, info.RecordingID, 0)
		return len(segs) >= n
	})
	return info.RecordingID, segs
}

func (x *anchored) segments(t *testing.T, rec uuid.UUID, atLeast int) []index.Segment {
	t.Helper()
	segs, err := x.db.Segments(context.Background(), rec)
	if err != nil || len(segs) < atLeast {
		t.Fatalf("%d segments: %v", len(segs), err)
	}
	return segs
}

// sql runs statements as the database superuser, with triggers and
// foreign keys off (what someone with the database's admin login can do).
func (x *anchored) sql(t *testing.T, stmt string, args ...any) {
	t.Helper()
	su := storagetest.Superuser(t, x.db)
	ctx := context.Background()
	if _, err := su.Exec(ctx, `SET session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	if _, err := su.Exec(ctx, stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// deleteSegments deletes segment rows from seq on, and their objects.
func (x *anchored) deleteSegments(t *testing.T, rec uuid.UUID, segs []index.Segment, from int64) {
	t.Helper()
	x.sql(t, `DELETE FROM segments WHERE recording_id = $1 AND seq >= $2`, rec, from)
	for _, s := range segs[from:] {
		if err := x.admin.Client().RemoveObject(context.Background(), x.store.Bucket(), s.Key,
			minio.RemoveObjectOptions{VersionID: s.VersionID, GovernanceBypass: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// deleteRecording deletes every row of a recording.
func (x *anchored) deleteRecording(t *testing.T, rec uuid.UUID) {
	t.Helper()
	for _, table := range []string{"segments", "init_segments", "recording_bindings", "recording_incidents", "recording_gaps", "legal_holds"} {
		x.sql(t, `DELETE FROM `+table+` WHERE recording_id = $1`, rec)
	}
	x.sql(t, `DELETE FROM recordings WHERE id = $1`, rec)
}

func (x *anchored) checkpoint(t *testing.T) {
	t.Helper()
	if k, err := x.cp.Checkpoint(context.Background()); err != nil || k == "" {
		t.Fatalf("checkpoint %q: %v", k, err)
	}
}

// verify runs the anchored verification of everything and returns the
// problems of the given kind, failing when there is none.
func (x *anchored) verify(t *testing.T, kind string) []evidence.Problem {
	t.Helper()
	rep, err := evidence.VerifyAnchored(context.Background(), x.db, x.store, sealPub, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.Write(&out)
	t.Logf("verify:\n%s", out.String())
	var ps []evidence.Problem
	for _, p := range rep.Problems {
		if p.Kind() == kind {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		t.Fatalf("no %s problem", kind)
	}
	return ps
}

func (x *anchored) clean(t *testing.T) {
	t.Helper()
	rep, err := evidence.VerifyAnchored(context.Background(), x.db, x.store, sealPub, nil)
	if err != nil || !rep.OK() {
		var out strings.Builder
		rep.Write(&out)
		t.Fatalf("before tampering: %v\n%s", err, out.String())
	}
}

// wantMissing: one problem names the recording and exactly the missing
// sequence numbers, in words too.
func wantMissing(t *testing.T, ps []evidence.Problem, rec uuid.UUID, from, to int64, words string) {
	t.Helper()
	for _, p := range ps {
		if p.Recording == rec && p.Missing != nil && p.Missing.From == from && p.Missing.To == to && strings.Contains(p.String(), words) {
			return
		}
	}
	t.Errorf("no problem naming %s, segments %d..%d, %q: %+v", rec, from, to, words, ps)
}

// The newest two segments of an ended recording deleted (rows and
// objects): named from its seal, with their sequence numbers.
func TestSealNamesDeletedNewestSegments(t *testing.T) {
	x := newAnchored(t)
	rec, segs := x.ended(t)
	x.clean(t)
	n := int64(len(segs))
	x.deleteSegments(t, rec, segs, n-2)
	ps := x.verify(t, "seal")
	wantMissing(t, ps, rec, n-2, n-1, "the seal says")
}

// An ended recording's rows deleted: named from its seal.
func TestSealNamesDeletedRecording(t *testing.T) {
	x := newAnchored(t)
	rec, segs := x.ended(t)
	x.clean(t)
	x.deleteRecording(t, rec)
	ps := x.verify(t, "seal")
	wantMissing(t, ps, rec, 0, int64(len(segs))-1, "recording deleted from the index")
}

// The newest two segments of a live recording deleted: named from the
// newest checkpoint; its rows deleted altogether: named too.
func TestCheckpointNamesDeletedLiveSegmentsAndRecording(t *testing.T) {
	x := newAnchored(t)
	rec, segs := x.live(t, 3)
	other, others := x.live(t, 1)
	x.checkpoint(t)
	x.clean(t)
	n := int64(len(segs))
	x.deleteSegments(t, rec, segs, n-2)
	x.deleteRecording(t, other)
	ps := x.verify(t, "checkpoint")
	wantMissing(t, ps, rec, n-2, n-1, "the checkpoint of")
	wantMissing(t, ps, other, 0, others[len(others)-1].Seq, "recording deleted from the index")
}

// The newest audit events deleted, back past the head a checkpoint
// anchored: named, by verify and by its audit check.
func TestCheckpointNamesTruncatedAuditTrail(t *testing.T) {
	x := newAnchored(t)
	x.ended(t) // audits recording.sealed
	ctx := context.Background()
	for range 3 {
		if _, err := x.db.Audit(ctx, index.AuditEvent{Actor: "rev", Role: "reviewer", Action: "recording.view"}); err != nil {
			t.Fatal(err)
		}
	}
	x.checkpoint(t)
	head, _, err := x.db.AuditHead(ctx)
	if err != nil || head < 4 {
		t.Fatalf("audit head %d: %v", head, err)
	}
	x.clean(t)
	x.sql(t, `DELETE FROM audit_events WHERE seq > $1`, head-2)
	ps := x.verify(t, "audit")
	if want := "audit trail truncated or rewritten after event"; len(ps) != 1 || ps[0].AuditSeq != head || !strings.Contains(ps[0].What, want) {
		t.Fatalf("audit problems %+v, want one %q anchoring event %d", ps, want, head)
	}
	key, aps, err := evidence.AuditAnchored(ctx, x.db, x.store, sealPub)
	if err != nil || key == "" || len(aps) != 1 || aps[0].AuditSeq != head {
		t.Fatalf("AuditAnchored: %q %+v %v", key, aps, err)
	}
}

// A seal signed by another key over a recording's seal, and a forged
// checkpoint newer than the real one: each named; the real checkpoint is
// still used.
func TestForgedSealAndCheckpointNamed(t *testing.T) {
	x := newAnchored(t)
	rec, segs := x.ended(t)
	x.clean(t)
	_, other, _ := ed25519.GenerateKey(nil)
	forged, err := seal.MarshalSeal(seal.Seal{Recording: rec, Segments: 1, FinalSeq: 0, FinalChain: segs[0].Chain,
		Start: segs[0].StartedAt, End: segs[0].EndedAt}, other)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(key string, doc []byte) {
		if _, err := x.admin.Client().PutObject(ctx, x.store.Bucket(), key, strings.NewReader(string(doc)), int64(len(doc)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put(seal.Key(rec), forged)
	fc, err := seal.MarshalCheckpoint(seal.Checkpoint{At: time.Now().Add(time.Minute), Node: "forger"}, other)
	if err != nil {
		t.Fatal(err)
	}
	fkey := seal.CheckpointKey(time.Now().Add(time.Minute), "forger")
	put(fkey, fc)
	ps := x.verify(t, "seal")
	if ps[0].Recording != rec || ps[0].Key != seal.Key(rec) || !strings.Contains(ps[0].What, "not one the platform signed") {
		t.Errorf("seal problems %+v", ps)
	}
	cps := x.verify(t, "checkpoint")
	if cps[0].Key != fkey || !strings.Contains(cps[0].What, "not one the platform signed") {
		t.Errorf("checkpoint problems %+v", cps)
	}
}

// An ended recording with no seal (its seal deleted by the administrator)
// is named once it ended more than SealGrace ago.
func TestEndedRecordingWithoutSealNamed(t *testing.T) {
	x := newAnchored(t)
	rec, _ := x.ended(t)
	ctx := context.Background()
	for v := range x.admin.Client().ListObjects(ctx, x.store.Bucket(), minio.ListObjectsOptions{Prefix: seal.SealPrefix, WithVersions: true}) {
		if err := x.admin.Client().RemoveObject(ctx, x.store.Bucket(), v.Key, minio.RemoveObjectOptions{VersionID: v.VersionID, GovernanceBypass: true}); err != nil {
			t.Fatal(err)
		}
	}
	x.clean(t) // ended a moment ago: its seal may still be on its way
	x.sql(t, `UPDATE recordings SET started_at = started_at - interval '2 hours', ended_at = now() - interval '1 hour' WHERE id = $1`, rec)
	ps := x.verify(t, "seal")
	if ps[0].Recording != rec || !strings.Contains(ps[0].What, "has no seal") {
		t.Errorf("problems %+v", ps)
	}
}
