package evidence_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/seal"
)

// wantAudited: one problem names rec as deleted while the audit trail
// names it with action.
func wantAudited(t *testing.T, ps []evidence.Problem, rec uuid.UUID, action string) {
	t.Helper()
	for _, p := range ps {
		if p.Recording == rec && strings.Contains(p.What, "recording deleted from the index") &&
			strings.Contains(p.What, action) && p.AuditSeq > 0 {
			return
		}
	}
	t.Fatalf("no problem names recording %s as deleted with the audit event %s: %+v", rec, action, ps)
}

// TestDeletedRecordingNamedByTheAuditTrail: in governance mode the MinIO
// administrator can remove a sealed recording's seal, and a database
// superuser its rows; the audit trail's recording.sealed event still names
// it. An upload's rows deleted are named by its upload.complete event.
func TestDeletedRecordingNamedByTheAuditTrail(t *testing.T) {
	ctx := context.Background()
	x := newAnchored(t)
	rec, _ := x.ended(t)
	mustBeSealed(t, x, rec)
	inc, err := x.db.CreateIncident(ctx, index.Incident{Number: "110-" + uuid.NewString()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	up := uploadedRecording(t, x.db, x.store, inc.ID, "phone footage whose rows go")
	r := up.RecordingID
	if _, err := x.db.Audit(ctx, index.AuditEvent{Actor: "officer", Action: "upload.complete", ObjectType: "upload",
		ObjectID: r.String(), RecordingID: &r}); err != nil {
		t.Fatal(err)
	}
	x.clean(t)

	x.removeVersions(t, seal.Key(rec))
	x.deleteRecording(t, rec)
	x.sql(t, `DELETE FROM uploads WHERE recording_id = $1`, r)
	x.deleteRecording(t, r)

	ps := x.verify(t, "audit")
	wantAudited(t, ps, rec, index.ActionSealed)
	wantAudited(t, ps, r, "upload.complete")

	// bwc verify -recording: only that recording's
	rep, err := evidence.VerifyAnchored(ctx, x.db, x.store, sealPub, []uuid.UUID{r})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		if p.Recording == rec {
			t.Errorf("verify of recording %s names another one: %s", r, p)
		}
	}
	wantAudited(t, rep.Problems, r, "upload.complete")
}

// mustBeSealed: the archive wrote rec's seal when its spool emptied.
func mustBeSealed(t *testing.T, x *anchored, rec uuid.UUID) {
	t.Helper()
	if _, err := seal.ReadSeal(context.Background(), x.store, sealPub, rec); err != nil {
		t.Fatalf("recording %s not sealed after its spool emptied: %v", rec, err)
	}
}
