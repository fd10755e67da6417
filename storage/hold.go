package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
)

// Hold marks a recording as evidence: the hold is recorded (who, case,
// why), then an S3 legal hold is put on every object of the recording
// already indexed; objects uploaded later get it at upload while the hold
// lasts. Calling it again while held is index.ErrConflict.
func (a *Archive) Hold(ctx context.Context, rec uuid.UUID, by, caseRef, reason string) (index.LegalHold, error) {
	h, err := a.db.PlaceHold(ctx, rec, by, caseRef, reason)
	if err != nil {
		return h, err
	}
	a.log.Info("archive: legal hold placed", "recording", rec, "by", by, "case", caseRef, "reason", reason)
	return h, a.applyHold(ctx, rec, true)
}

// Release ends a recording's legal hold; who and why are required and
// recorded. Objects go back to their retention period alone.
func (a *Archive) Release(ctx context.Context, rec uuid.UUID, by, reason string) (index.LegalHold, error) {
	h, err := a.db.ReleaseHold(ctx, rec, by, reason)
	if err != nil {
		return h, err
	}
	a.log.Info("archive: legal hold released", "recording", rec, "by", by, "reason", reason)
	return h, a.applyHold(ctx, rec, false)
}

func (a *Archive) applyHold(ctx context.Context, rec uuid.UUID, on bool) error {
	inits, err := a.db.InitSegments(ctx, rec)
	if err != nil {
		return err
	}
	segs, err := a.db.Segments(ctx, rec)
	if err != nil {
		return err
	}
	var errs []error
	for _, i := range inits {
		errs = append(errs, a.setLegalHold(ctx, i.Key, on))
	}
	for _, s := range segs {
		errs = append(errs, a.setLegalHold(ctx, s.Key, on))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("archive legal hold of %s (recorded in the index; retry to finish on the objects): %w", rec, err)
	}
	return nil
}

// Segments lists a recording's archived segments in order.
func (a *Archive) Segments(ctx context.Context, rec uuid.UUID) ([]index.Segment, error) {
	return a.db.Segments(ctx, rec)
}

// Holds is a recording's legal-hold history.
func (a *Archive) Holds(ctx context.Context, rec uuid.UUID) ([]index.LegalHold, error) {
	return a.db.Holds(ctx, rec)
}
