// Package evidence keeps archived recordings trustworthy as evidence: legal
// holds (Holder: who held a recording for which case, and the S3 legal hold
// on every object of it) and verification (Verify: every indexed object is
// in the bucket, hashes to its index entry and chains to the segment
// before). It reads and marks what the archive stored; it writes no media.
package evidence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
)

// Holder places and releases legal holds. Objects the archive uploads
// while a hold lasts get the S3 legal hold at upload.
type Holder struct {
	db    *index.DB
	blobs *blob.Store
	log   *slog.Logger
}

// NewHolder makes a Holder; a nil log discards.
func NewHolder(db *index.DB, blobs *blob.Store, log *slog.Logger) *Holder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Holder{db: db, blobs: blobs, log: log}
}

// Hold marks a recording as evidence: the hold is recorded (who, case,
// why), then an S3 legal hold is put on every object of the recording
// already indexed (segments, upload original, seal, export packages of
// its incidents); objects stored later (segments, the seal) get it when
// written while the hold lasts. Calling it again while held is index.ErrConflict.
func (h *Holder) Hold(ctx context.Context, rec uuid.UUID, by, caseRef, reason string) (index.LegalHold, error) {
	lh, err := h.db.PlaceHold(ctx, rec, by, caseRef, reason)
	if err != nil {
		return lh, err
	}
	h.log.Info("archive: legal hold placed", "recording", rec, "by", by, "case", caseRef, "reason", reason)
	return lh, h.apply(ctx, rec, true)
}

// Release ends a recording's legal hold; who and why are required and
// recorded. Objects go back to their retention period alone.
func (h *Holder) Release(ctx context.Context, rec uuid.UUID, by, reason string) (index.LegalHold, error) {
	lh, err := h.db.ReleaseHold(ctx, rec, by, reason)
	if err != nil {
		return lh, err
	}
	h.log.Info("archive: legal hold released", "recording", rec, "by", by, "reason", reason)
	return lh, h.apply(ctx, rec, false)
}

// apply puts or lifts the S3 legal hold on every object of the recording
// (index.RecordingObjects), each at its indexed version. A release keeps
// the hold of an export package that another held recording shares.
func (h *Holder) apply(ctx context.Context, rec uuid.UUID, on bool) error {
	objs, err := h.db.RecordingObjects(ctx, rec)
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range objs {
		if !on && o.Shared {
			continue
		}
		errs = append(errs, h.blobs.SetLegalHold(ctx, o.Key, o.VersionID, on))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("archive legal hold of %s (recorded in the index; retry to finish on the objects): %w", rec, err)
	}
	return nil
}

// Holds is a recording's legal-hold history.
func (h *Holder) Holds(ctx context.Context, rec uuid.UUID) ([]index.LegalHold, error) {
	return h.db.Holds(ctx, rec)
}
