package web

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
)

// The one visibility rule for recordings: staff (supervisors, reviewers,
// admins) see every recording, an officer only their own. What a principal
// may not see is answered as if absent (404), never 403, so that its
// existence does not leak. Every route that shows a recording, its media
// or a list of recordings goes through mayView or visibleFilter.

// mayView tells whether p may see rec.
func mayView(p Principal, rec index.Recording) bool {
	if p.Role != index.RoleOfficer {
		return true
	}
	return p.OfficerID != nil && rec.OfficerID != nil && *p.OfficerID == *rec.OfficerID
}

// visibleFilter narrows a recordings filter to what p may see; false when p
// may see none (an officer's account not linked to an officer).
func visibleFilter(p Principal, f index.RecordingFilter) (index.RecordingFilter, bool) {
	if p.Role != index.RoleOfficer {
		return f, true
	}
	if p.OfficerID == nil {
		return f, false
	}
	f.OfficerID = p.OfficerID
	return f, true
}

// recordingFinder loads one recording.
type recordingFinder interface {
	Recording(ctx context.Context, id uuid.UUID) (index.Recording, error)
}

// visibleRecording loads a recording the request's principal may see;
// one they may not is index.ErrNotFound, as if absent.
func visibleRecording(ctx context.Context, db recordingFinder, id uuid.UUID) (index.Recording, error) {
	rec, err := db.Recording(ctx, id)
	if err != nil {
		return rec, err
	}
	if p, _ := PrincipalFrom(ctx); !mayView(p, rec) {
		return index.Recording{}, fmt.Errorf("recording %s: %w", id, index.ErrNotFound)
	}
	return rec, nil
}
