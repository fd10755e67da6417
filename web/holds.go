package web

import (
	"context"
	"net/http"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/index"
)

// evidenceHolds is what web needs of the archive for legal holds.
type evidenceHolds interface {
	Hold(ctx context.Context, rec uuid.UUID, by, caseRef, reason string) (index.LegalHold, error)
	Release(ctx context.Context, rec uuid.UUID, by, reason string) (index.LegalHold, error)
	Holds(ctx context.Context, rec uuid.UUID) ([]index.LegalHold, error)
}

var _ evidenceHolds = (*evidence.Holder)(nil)

func (s *Server) holdRoutes(mux *http.ServeMux) {
	s.handle(mux, "POST /api/recordings/{id}/hold", staff, s.placeHold)
	s.handle(mux, "DELETE /api/recordings/{id}/hold", adminOnly, s.releaseHold)
	s.handle(mux, "GET /api/recordings/{id}/holds", staff, s.listHolds)
}

// placeHold marks a recording as evidence for a case: an S3 legal hold on
// every object, until an administrator releases it.
func (s *Server) placeHold(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok || !s.needHolds(w) {
		return
	}
	var in struct {
		CaseRef string `json:"case_ref"`
		Reason  string `json:"reason"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	if in.CaseRef == "" && in.Reason == "" {
		s.fail(w, r, &index.FieldError{Field: "case_ref", Reason: "a case reference or a reason is required"})
		return
	}
	ctx := r.Context()
	if _, err := s.recordings.Recording(ctx, id); err != nil {
		s.fail(w, r, err)
		return
	}
	p, _ := PrincipalFrom(ctx)
	h, err := s.holds.Hold(ctx, id, p.Login, in.CaseRef, in.Reason)
	if err == nil {
		_ = s.audit(r, index.AuditEvent{Action: "evidence.hold", ObjectType: "recording", ObjectID: id.String(), RecordingID: &id,
			Details: map[string]any{"case_ref": in.CaseRef, "reason": in.Reason}})
	}
	s.reply(w, r, http.StatusCreated, h, err)
}

// releaseHold ends a legal hold; the reason is required and kept.
func (s *Server) releaseHold(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok || !s.needHolds(w) {
		return
	}
	reason, ok := s.reasonOf(w, r)
	if !ok {
		return
	}
	if reason == "" {
		s.fail(w, r, &index.FieldError{Field: "reason", Reason: "required to release a legal hold"})
		return
	}
	p, _ := PrincipalFrom(r.Context())
	h, err := s.holds.Release(r.Context(), id, p.Login, reason)
	if err == nil {
		_ = s.audit(r, index.AuditEvent{Action: "evidence.release", ObjectType: "recording", ObjectID: id.String(), RecordingID: &id,
			Details: map[string]any{"reason": reason}})
	}
	s.reply(w, r, http.StatusOK, h, err)
}

func (s *Server) listHolds(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok || !s.needHolds(w) {
		return
	}
	h, err := s.holds.Holds(r.Context(), id)
	if h == nil {
		h = []index.LegalHold{}
	}
	s.reply(w, r, http.StatusOK, h, err)
}

func (s *Server) needHolds(w http.ResponseWriter) bool {
	if s.holds == nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "the archive is not running"})
		return false
	}
	return true
}
