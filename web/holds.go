package web

import (
	"context"
	"net/http"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
)

// EvidenceHolds is what web needs of the archive for legal holds.
type EvidenceHolds interface {
	Hold(ctx context.Context, rec uuid.UUID, by, caseRef, reason string) (index.LegalHold, error)
	Release(ctx context.Context, rec uuid.UUID, by, reason string) (index.LegalHold, error)
	Holds(ctx context.Context, rec uuid.UUID) ([]index.LegalHold, error)
}

// holds: legal holds on recordings (S3 object lock), placed by staff,
// released by administrators.
type holds struct {
	holds EvidenceHolds
	az    *authz
	kit   *kit
}

func (h *holds) routes(r *router) {
	r.handle("POST /api/recordings/{id}/hold", staff, h.placeHold)
	r.handle("DELETE /api/recordings/{id}/hold", adminOnly, h.releaseHold)
	r.handle("GET /api/recordings/{id}/holds", staff, h.listHolds)
}

// placeHold marks a recording as evidence for a case: an S3 legal hold on
// every object, until an administrator releases it.
func (h *holds) placeHold(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var in struct {
		CaseRef string `json:"case_ref"`
		Reason  string `json:"reason"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.CaseRef == "" && in.Reason == "" {
		h.kit.fail(w, r, &index.FieldError{Field: "case_ref", Reason: "a case reference or a reason is required"})
		return
	}
	ctx := r.Context()
	if !h.az.recording(w, r, ResRecording, id) {
		return
	}
	p, _ := PrincipalFrom(ctx)
	hold, err := h.holds.Hold(ctx, id, p.Login, in.CaseRef, in.Reason)
	if err == nil {
		_ = h.kit.audit(r, index.AuditEvent{Action: "evidence.hold", ObjectType: "recording", ObjectID: id.String(), RecordingID: &id,
			Details: map[string]any{"case_ref": in.CaseRef, "reason": in.Reason}})
	}
	h.kit.reply(w, r, http.StatusCreated, hold, err)
}

// releaseHold ends a legal hold; the reason is required and kept.
func (h *holds) releaseHold(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	reason, ok := requiredReason(w, r, "to release a legal hold")
	if !ok {
		return
	}
	if !h.az.recording(w, r, ResRecording, id) {
		return
	}
	p, _ := PrincipalFrom(r.Context())
	hold, err := h.holds.Release(r.Context(), id, p.Login, reason)
	if err == nil {
		_ = h.kit.audit(r, index.AuditEvent{Action: "evidence.release", ObjectType: "recording", ObjectID: id.String(), RecordingID: &id,
			Details: map[string]any{"reason": reason}})
	}
	h.kit.reply(w, r, http.StatusOK, hold, err)
}

func (h *holds) listHolds(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !h.az.recording(w, r, ResRecording, id) {
		return
	}
	hold, err := h.holds.Holds(r.Context(), id)
	if hold == nil {
		hold = []index.LegalHold{}
	}
	h.kit.reply(w, r, http.StatusOK, hold, err)
}
