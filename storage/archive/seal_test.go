package archive

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/seal"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// record archives passes of the sample as one recording through a and
// waits until its spool directory is gone.
func record(t *testing.T, a *Archive, cfg Config, db *index.DB, passes int) uuid.UUID {
	t.Helper()
	s := mediatest.Load(t)
	start := time.Now().UTC()
	info := storagetest.NewRecording(t, db, s, start)
	st := media.NewStream(info)
	a.Attach(st)
	storagetest.Feed(st, s.Loop(passes, start))
	st.Close()
	storagetest.WaitSpoolEmpty(t, cfg.SpoolDir, info.RecordingID)
	return info.RecordingID
}

// sealEvents are the recording.sealed audit events of a recording.
func sealEvents(t *testing.T, db *index.DB, rec uuid.UUID) []index.AuditEvent {
	t.Helper()
	evs, err := db.AuditEvents(context.Background(), index.AuditFilter{RecordingID: &rec, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []index.AuditEvent
	for _, e := range evs {
		if e.Action == index.ActionSealed {
			out = append(out, e)
		}
	}
	return out
}

// checkSealed: the recording's seal is in the bucket, signed, WORM-locked,
// saying what the index holds, and audited once with its key and version.
func checkSealed(t *testing.T, db *index.DB, store *blob.Store, rec uuid.UUID) seal.Seal {
	t.Helper()
	ctx := context.Background()
	s, err := seal.ReadSeal(ctx, store, sealPub, rec)
	if err != nil {
		t.Fatalf("seal of %s: %v", rec, err)
	}
	segs, err := db.Segments(ctx, rec)
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments: %d %v", len(segs), err)
	}
	inits, err := db.InitSegments(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	last := segs[len(segs)-1]
	if s.Segments != int64(len(segs)) || s.FinalSeq != last.Seq || !bytes.Equal(s.FinalChain, last.Chain) ||
		len(s.Inits) != len(inits) || !bytes.Equal(s.Inits[0].SHA256, inits[0].SHA256) || !s.End.Equal(last.EndedAt) {
		t.Fatalf("seal %+v does not say what the index holds (%d segments, last %d)", s, len(segs), last.Seq)
	}
	evs := sealEvents(t, db, rec)
	if len(evs) != 1 {
		t.Fatalf("%d recording.sealed events, want 1", len(evs))
	}
	version, _ := evs[0].Details["version_id"].(string)
	if evs[0].Details["key"] != seal.Key(rec) || version == "" {
		t.Fatalf("audit event details %v", evs[0].Details)
	}
	row, err := db.Seal(ctx, rec)
	if err != nil || row.Key != seal.Key(rec) || row.VersionID != version {
		t.Fatalf("seal row %+v, %v; want key %s version %s", row, err, seal.Key(rec), version)
	}
	if got, _, err := store.SHA256(ctx, row.Key, row.VersionID); err != nil || !bytes.Equal(got, row.SHA256) {
		t.Fatalf("the seal's SHA-256 %x (%v), indexed %x", got, err, row.SHA256)
	}
	mode, until, err := store.Client().GetObjectRetention(ctx, store.Bucket(), seal.Key(rec), version)
	if err != nil || mode == nil || until == nil || until.Before(time.Now().Add(24*time.Hour)) {
		t.Fatalf("seal's retention: %v %v %v", mode, until, err)
	}
	return s
}

// When the archive has stored every segment of an ended recording it
// seals it; the seal reads back and matches the index.
func TestEndedRecordingIsSealed(t *testing.T) {
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	cfg := testConfig(t)
	a := runArchive(t, cfg, db, store)
	rec := record(t, a, cfg, db, 3)
	checkSealed(t, db, store, rec)
}

// A seal that cannot be written (another object under its key) keeps the
// recording's spool and is retried with the uploader's backoff, while
// other recordings are archived and sealed; once the key is free the seal
// is written, once.
func TestSealFailureIsRetriedAndBlocksNothingElse(t *testing.T) {
	ctx := context.Background()
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	cfg := testConfig(t)
	a := runArchive(t, cfg, db, store)
	s := mediatest.Load(t)
	start := time.Now().UTC()
	blocked := storagetest.NewRecording(t, db, s, start)
	admin := storagetest.Admin(t, store).Client()
	junk := "not a seal"
	info, err := admin.PutObject(ctx, store.Bucket(), seal.Key(blocked.RecordingID), strings.NewReader(junk), int64(len(junk)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := media.NewStream(blocked)
	a.Attach(st)
	storagetest.Feed(st, s.Loop(2, start))
	st.Close()
	other := record(t, a, cfg, db, 2) // archived and sealed meanwhile
	checkSealed(t, db, store, other)
	mediatest.Eventually(t, "the blocked seal retried", func() bool {
		return testutil.ToFloat64(a.m.errors.WithLabelValues("upload")) >= 2
	})
	if len(sealEvents(t, db, blocked.RecordingID)) != 0 {
		t.Fatal("a seal that was not written is audited")
	}
	if err := admin.RemoveObject(ctx, store.Bucket(), seal.Key(blocked.RecordingID), minio.RemoveObjectOptions{VersionID: info.VersionID, GovernanceBypass: true}); err != nil {
		t.Fatal(err)
	}
	storagetest.WaitSpoolEmpty(t, cfg.SpoolDir, blocked.RecordingID)
	checkSealed(t, db, store, blocked.RecordingID)
}

// Reconciliation at start seals an ended recording that is fully archived
// but has no seal (archived before seals, or its seal lost), once.
func TestReconcileSealsArchivedRecordings(t *testing.T) {
	ctx := context.Background()
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	cfg := testConfig(t)
	a := runArchive(t, cfg, db, store)
	rec := record(t, a, cfg, db, 2)
	first := checkSealed(t, db, store, rec)
	// as if archived before seals: no seal object, row or audit event
	su := storagetest.Superuser(t, db)
	for _, sql := range []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`,
		`DELETE FROM audit_events WHERE action = 'recording.sealed'`, `DELETE FROM seals`,
		`UPDATE recordings SET status = 'ended', ended_at = now(), sealed = false WHERE id = $1`} {
		args := []any{}
		if strings.Contains(sql, "$1") {
			args = append(args, rec)
		}
		if _, err := su.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	admin := storagetest.Admin(t, store).Client()
	for v := range admin.ListObjects(ctx, store.Bucket(), minio.ListObjectsOptions{Prefix: seal.SealPrefix, WithVersions: true}) {
		if err := admin.RemoveObject(ctx, store.Bucket(), v.Key, minio.RemoveObjectOptions{VersionID: v.VersionID, GovernanceBypass: true}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := a.Reconcile(ctx)
	if err != nil || len(out.Sealed) != 1 || out.Sealed[0] != rec {
		t.Fatalf("reconcile sealed %v: %v", out.Sealed, err)
	}
	again := checkSealed(t, db, store, rec)
	if again.FinalSeq != first.FinalSeq || !bytes.Equal(again.FinalChain, first.FinalChain) {
		t.Errorf("the seal written by reconciliation differs: %+v, first %+v", again, first)
	}
	if out, err := a.Reconcile(ctx); err != nil || len(out.Sealed) != 0 {
		t.Errorf("a second reconciliation sealed %v: %v", out.Sealed, err)
	}
}

// sealHold is the S3 legal hold of a recording's seal at its indexed
// version, read through the S3 API.
func sealHold(t *testing.T, db *index.DB, store *blob.Store, rec uuid.UUID) bool {
	t.Helper()
	ctx := context.Background()
	row, err := db.Seal(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Client().GetObjectLegalHold(ctx, store.Bucket(), row.Key, minio.GetObjectLegalHoldOptions{VersionID: row.VersionID})
	if code := minio.ToErrorResponse(err).Code; err != nil && code != "NoSuchObjectLockConfiguration" {
		t.Fatalf("legal hold of %s@%s: %v (%s)", row.Key, row.VersionID, err, code)
	}
	return err == nil && st != nil && *st == minio.LegalHoldEnabled
}

// A recording sealed while under legal hold gets its seal held like its
// segments; the release lifts the seal's hold with the others. A recording
// not held gets a seal without one.
func TestSealOfAHeldRecordingIsHeld(t *testing.T) {
	ctx := context.Background()
	s := mediatest.Load(t)
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	cfg := testConfig(t)
	a := runArchive(t, cfg, db, store)
	holds := evidence.NewHolder(db, store, testLogger(t))
	info := storagetest.NewRecording(t, db, s, time.Now().UTC())
	if _, err := holds.Hold(ctx, info.RecordingID, "sgt.wu", "CASE-12", "evidence"); err != nil {
		t.Fatal(err)
	}
	st := media.NewStream(info)
	a.Attach(st)
	storagetest.Feed(st, s.Loop(2, time.Now().UTC()))
	st.Close()
	storagetest.WaitSpoolEmpty(t, cfg.SpoolDir, info.RecordingID)
	checkSealed(t, db, store, info.RecordingID)
	if !sealHold(t, db, store, info.RecordingID) {
		t.Fatal("the seal of a recording sealed under legal hold has no S3 legal hold")
	}
	if _, err := holds.Release(ctx, info.RecordingID, "lt.chen", "case closed"); err != nil {
		t.Fatal(err)
	}
	if sealHold(t, db, store, info.RecordingID) {
		t.Fatal("the release left the seal's legal hold on")
	}
	free := record(t, a, cfg, db, 2)
	checkSealed(t, db, store, free)
	if sealHold(t, db, store, free) {
		t.Fatal("the seal of a recording never held has a legal hold")
	}
}
