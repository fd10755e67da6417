package evidence

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
)

// checkAuditedRecordings names every recording (of recs; all when recs is
// empty) that the audit trail names and the index no longer holds: the
// rows of an upload, or of a recording whose seal was removed as well
// (possible in governance mode), deleted by someone with the database's
// admin rights. Removing the events too shows in the audit chain or
// against the newest checkpoint. A recording its seal names as
// deleted is not named again.
func checkAuditedRecordings(ctx context.Context, db *index.DB, recs []uuid.UUID, r *Report) error {
	gone, err := db.AuditedRecordingsMissing(ctx)
	if err != nil {
		return err
	}
	want := map[uuid.UUID]bool{}
	for _, id := range recs {
		want[id] = true
	}
	named := map[uuid.UUID]bool{} // by its seal already: one deletion, one problem
	for _, p := range r.Problems {
		if p.About == "seal" && p.Missing != nil {
			named[p.Recording] = true
		}
	}
	for _, g := range gone {
		if (len(recs) > 0 && !want[g.RecordingID]) || named[g.RecordingID] {
			continue
		}
		p := anchorProblem("audit", g.RecordingID, "", fmt.Sprintf(
			"recording deleted from the index: the audit trail names it (event %d, %s)", g.Seq, g.Action))
		p.AuditSeq = g.Seq
		r.Problems = append(r.Problems, p)
	}
	return nil
}
