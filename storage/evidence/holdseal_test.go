package evidence_test

import (
	"context"
	"slices"
	"testing"

	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/seal"
)

// TestHoldCoversTheSeal: a legal hold placed on a sealed recording puts an
// S3 legal hold on its seal (the indexed version) as on its segments, and
// the release lifts both.
func TestHoldCoversTheSeal(t *testing.T) {
	ctx := context.Background()
	x := newAnchored(t)
	rec, segs := x.ended(t)
	row, err := x.db.Seal(ctx, rec)
	if err != nil || row.Key != seal.Key(rec) || row.VersionID == "" {
		t.Fatalf("seal row %+v, %v", row, err)
	}
	objs, err := x.db.RecordingObjects(ctx, rec)
	if err != nil || !slices.Contains(objs, index.EvidenceObject{Kind: "seal", Key: row.Key, VersionID: row.VersionID}) {
		t.Fatalf("RecordingObjects = %+v, %v; want the seal at its indexed version", objs, err)
	}
	checkHold(t, x.store, row.Key, row.VersionID, false)
	h := evidence.NewHolder(x.db, x.store, nil)
	if _, err := h.Hold(ctx, rec, "supervisor", "CASE-14", "court"); err != nil {
		t.Fatal(err)
	}
	checkHold(t, x.store, row.Key, row.VersionID, true)
	checkHold(t, x.store, segs[0].Key, segs[0].VersionID, true)
	if _, err := h.Release(ctx, rec, "supervisor", "case closed"); err != nil {
		t.Fatal(err)
	}
	checkHold(t, x.store, row.Key, row.VersionID, false)
	checkHold(t, x.store, segs[0].Key, segs[0].VersionID, false)
}
