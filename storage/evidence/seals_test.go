package evidence_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"

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

// A seal signed by another key under a recording's seal key (the real one
// removed by the administrator), and a forged checkpoint newer than the
// real one: each named as not the platform's.
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
	x.removeVersions(t, seal.Key(rec))
	x.put(t, x.admin, seal.Key(rec), forged)
	fc, err := seal.MarshalCheckpoint(seal.Checkpoint{At: time.Now().Add(time.Minute), Node: "forger"}, other)
	if err != nil {
		t.Fatal(err)
	}
	fkey := seal.CheckpointKey(time.Now().Add(time.Minute), "forger")
	x.put(t, x.admin, fkey, fc)
	ps := x.verify(t, "seal")
	if len(ps) != 1 || ps[0].Recording != rec || ps[0].Key != seal.Key(rec) || !strings.Contains(ps[0].What, "not one the platform signed") {
		t.Errorf("seal problems %+v", ps)
	}
	cps := x.verify(t, "checkpoint")
	if cps[0].Key != fkey || !strings.Contains(cps[0].What, "not one the platform signed") {
		t.Errorf("checkpoint problems %+v", cps)
	}
}

// put stores doc under key with a plain PUT (a new version over whatever
// is there) through store's identity.
func (x *anchored) put(t *testing.T, store *blob.Store, key string, doc []byte) {
	t.Helper()
	if _, err := store.Client().PutObject(context.Background(), x.store.Bucket(), key, bytes.NewReader(doc), int64(len(doc)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// removeVersions removes every version of key (the administrator, in
// governance mode).
func (x *anchored) removeVersions(t *testing.T, key string) {
	t.Helper()
	ctx := context.Background()
	for v := range x.admin.Client().ListObjects(ctx, x.store.Bucket(), minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if v.Err != nil {
			t.Fatal(v.Err)
		}
		if err := x.admin.Client().RemoveObject(ctx, x.store.Bucket(), v.Key, minio.RemoveObjectOptions{VersionID: v.VersionID, GovernanceBypass: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// wantWhat: one problem is about key and recording rec and says what.
func wantWhat(t *testing.T, ps []evidence.Problem, rec uuid.UUID, key, what string) {
	t.Helper()
	if !slices.ContainsFunc(ps, func(p evidence.Problem) bool {
		return p.Recording == rec && p.Key == key && strings.Contains(p.What, what)
	}) {
		t.Errorf("no problem about %s (recording %s) saying %q: %+v", key, rec, what, ps)
	}
}

// rewriteSeal truncates an ended recording's index by its newest two
// segments (rows and objects) and PUTs, with the server's own identity, a
// newer seal over its key, validly signed with the platform's key, that
// agrees with the truncated index.
func (x *anchored) rewriteSeal(t *testing.T, rec uuid.UUID, segs []index.Segment) {
	t.Helper()
	s, err := seal.ReadSeal(context.Background(), x.store, sealPub, rec)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(segs))
	x.deleteSegments(t, rec, segs, n-2)
	s.Segments, s.FinalSeq, s.FinalChain, s.End = n-2, n-3, segs[n-3].Chain, segs[n-3].EndedAt
	doc, err := seal.MarshalSeal(s, sealKey)
	if err != nil {
		t.Fatal(err)
	}
	x.put(t, x.store, seal.Key(rec), doc)
}

// A seal replaced by whoever holds the signing key: a newer, validly
// signed version that agrees with the truncated index. Verify names the
// rewritten seal, and the missing segments from the first version.
func TestRewrittenSealNamedAndFirstVersionChecked(t *testing.T) {
	x := newAnchored(t)
	rec, segs := x.ended(t)
	x.clean(t)
	x.rewriteSeal(t, rec, segs)
	n := int64(len(segs))
	ps := x.verify(t, "seal")
	wantWhat(t, ps, rec, seal.Key(rec), "seal rewritten: 2 versions; the first is checked")
	wantMissing(t, ps, rec, n-2, n-1, "the seal says")
	// verifying that recording only goes the same way
	rep, err := evidence.VerifyAnchored(context.Background(), x.db, x.store, sealPub, []uuid.UUID{rec})
	if err != nil {
		t.Fatal(err)
	}
	wantWhat(t, rep.Problems, rec, seal.Key(rec), "seal rewritten: 2 versions")
	wantMissing(t, rep.Problems, rec, n-2, n-1, "the seal says")
}

// A checkpoint replaced likewise (same key, newer version, the live
// recording's last two segments gone): named, and the missing segments
// come from its first version; bwc verify -audit names it too.
func TestRewrittenCheckpointNamedAndFirstVersionChecked(t *testing.T) {
	x := newAnchored(t)
	rec, _ := x.live(t, 3)
	ctx := context.Background()
	key, err := x.cp.Checkpoint(ctx)
	if err != nil || key == "" {
		t.Fatalf("checkpoint %q: %v", key, err)
	}
	x.clean(t)
	c, err := seal.ReadCheckpoint(ctx, x.store, sealPub, key)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(c.Live, func(l seal.Live) bool { return l.Recording == rec })
	if i < 0 || c.Live[i].Seq < 2 {
		t.Fatalf("the checkpoint %+v does not see recording %s at segment 2 or later", c.Live, rec)
	}
	seq := c.Live[i].Seq
	segs := x.segments(t, rec, int(seq)+1)
	x.deleteSegments(t, rec, segs, seq-1)
	c.Live[i].Seq, c.Live[i].Chain = seq-2, segs[seq-2].Chain
	doc, err := seal.MarshalCheckpoint(c, sealKey)
	if err != nil {
		t.Fatal(err)
	}
	x.put(t, x.store, key, doc)
	ps := x.verify(t, "checkpoint")
	wantWhat(t, ps, uuid.Nil, key, "checkpoint rewritten: 2 versions; the first is checked")
	wantMissing(t, ps, rec, seq-1, seq, "the checkpoint of")
	k, aps, err := evidence.AuditAnchored(ctx, x.db, x.store, sealPub)
	if err != nil || k != key {
		t.Fatalf("AuditAnchored: %q %v, want the checkpoint %s", k, err, key)
	}
	wantWhat(t, aps, uuid.Nil, key, "checkpoint rewritten: 2 versions")
}

// A delete marker over a seal (the administrator's keys): named, and the
// seal is still checked; the recording does not pass for unsealed.
func TestDeleteMarkerOverSealNamedAndSealChecked(t *testing.T) {
	x := newAnchored(t)
	rec, segs := x.ended(t)
	x.clean(t)
	if err := x.admin.Client().RemoveObject(context.Background(), x.store.Bucket(), seal.Key(rec), minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	x.sql(t, `UPDATE recordings SET started_at = started_at - interval '2 hours', ended_at = now() - interval '1 hour' WHERE id = $1`, rec)
	n := int64(len(segs))
	x.deleteSegments(t, rec, segs, n-2)
	ps := x.verify(t, "seal")
	wantWhat(t, ps, rec, seal.Key(rec), "delete marker over the seal; its version is checked")
	wantMissing(t, ps, rec, n-2, n-1, "the seal says")
	if slices.ContainsFunc(ps, func(p evidence.Problem) bool { return strings.Contains(p.What, "has no seal") }) {
		t.Errorf("a sealed recording under a delete marker named as unsealed: %+v", ps)
	}
}

// The background verification runs the same checks: a rewritten seal is
// named, with the segments missing against its first version.
func TestScrubberNamesRewrittenSeal(t *testing.T) {
	x := newAnchored(t)
	rec, segs := x.ended(t)
	x.rewriteSeal(t, rec, segs)
	reg := prometheus.NewRegistry()
	s, err := evidence.NewScrubber(scrubConfig(scrubRate), x.db, x.store, sealPub, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, s)
	n := int64(len(segs))
	mediatest.Eventually(t, "the rewritten seal and the missing segments named", func() bool {
		ps := s.Problems()
		return slices.ContainsFunc(ps, func(p evidence.Problem) bool {
			return p.Key == seal.Key(rec) && strings.Contains(p.What, "seal rewritten: 2 versions")
		}) && slices.ContainsFunc(ps, func(p evidence.Problem) bool {
			return p.Recording == rec && p.Missing != nil && p.Missing.From == n-2 && p.Missing.To == n-1
		})
	})
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
