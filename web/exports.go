package web

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
)

// exportStore is what exports need of the index.
type exportStore interface {
	RequestExport(ctx context.Context, e index.Export, approvalRequired bool) (index.Export, error)
	Export(ctx context.Context, id uuid.UUID) (index.Export, error)
	Exports(ctx context.Context, incident *uuid.UUID) ([]index.Export, error)
	DecideExport(ctx context.Context, id uuid.UUID, by string, approve bool, reason string) (index.Export, error)
	GrantIncident(ctx context.Context, incident uuid.UUID, login, by string) error
	MayReview(ctx context.Context, incident uuid.UUID, login, unit string) (bool, error)
}

var _ exportStore = (*index.DB)(nil)

// exportBuilder builds approved exports in the background.
type exportBuilder interface {
	Enqueue(id uuid.UUID)
	PublicKey() ed25519.PublicKey
}

var _ exportBuilder = (*export.Exporter)(nil)

func (s *Server) exportRoutes(mux *http.ServeMux) {
	s.handle(mux, "POST /api/exports", staff, s.requestExport)
	s.handle(mux, "GET /api/exports", staff, s.listExports)
	s.handle(mux, "GET /api/exports/{id}", staff, s.getExport)
	s.handle(mux, "POST /api/exports/{id}/approve", supervisors, s.decideExport(true))
	s.handle(mux, "POST /api/exports/{id}/reject", supervisors, s.decideExport(false))
	s.handle(mux, "GET /api/exports/{id}/download", staff, s.downloadExport)
	s.handle(mux, "POST /api/incidents/{id}/grants", supervisors, s.grantIncident)
	s.handle(mux, "GET /api/public-key", anyone, s.publicKey)
}

func (s *Server) needExports(w http.ResponseWriter) bool {
	if s.exports == nil || s.builder == nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "exports are not available"})
		return false
	}
	return true
}

// requestExport: a reviewer (or supervisor) asks for the evidence package
// of an incident, with a reason. A reviewer must be granted the incident
// or belong to the unit of an officer assigned to it.
func (s *Server) requestExport(w http.ResponseWriter, r *http.Request) {
	if !s.needExports(w) {
		return
	}
	var in struct {
		IncidentID string     `json:"incident_id"`
		From       *time.Time `json:"from"`
		To         *time.Time `json:"to"`
		Reason     string     `json:"reason"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	ctx := r.Context()
	inc, err := s.incidentRef(ctx, in.IncidentID, "")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, _ := PrincipalFrom(ctx)
	if p.Role == index.RoleReviewer {
		ok, err := s.exports.MayReview(ctx, inc.ID, p.Login, p.Unit)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if !ok {
			_ = s.audit(r, index.AuditEvent{Action: "export.refused", ObjectType: "incident", ObjectID: inc.ID.String(), IncidentID: &inc.ID,
				Details: map[string]any{"why": "incident not granted"}})
			writeJSON(w, http.StatusForbidden, apiError{Error: fmt.Sprintf("incident %s is not granted to you", inc.Number)})
			return
		}
	}
	e, err := s.exports.RequestExport(ctx, index.Export{IncidentID: inc.ID, From: in.From, To: in.To, RequestedBy: p.Login, Reason: in.Reason},
		s.cfg.ExportApproval)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	_ = s.audit(r, index.AuditEvent{Action: "export.request", ObjectType: "export", ObjectID: e.ID.String(), IncidentID: &inc.ID,
		Details: map[string]any{"reason": in.Reason, "approval_required": s.cfg.ExportApproval}})
	if e.Status == index.ExportApproved {
		s.builder.Enqueue(e.ID)
	}
	writeJSON(w, http.StatusCreated, e)
}

func (s *Server) listExports(w http.ResponseWriter, r *http.Request) {
	if !s.needExports(w) {
		return
	}
	var inc *uuid.UUID
	if v := r.URL.Query().Get("incident"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			s.fail(w, r, &index.FieldError{Field: "incident", Reason: "must be a UUID"})
			return
		}
		inc = &id
	}
	list, err := s.exports.Exports(r.Context(), inc)
	s.reply(w, r, http.StatusOK, list, err)
}

func (s *Server) getExport(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok || !s.needExports(w) {
		return
	}
	e, err := s.exports.Export(r.Context(), id)
	s.reply(w, r, http.StatusOK, e, err)
}

// decideExport: a supervisor other than the requester approves (the
// package is then built) or rejects (with a reason).
func (s *Server) decideExport(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.pathID(w, r, "id")
		if !ok || !s.needExports(w) {
			return
		}
		var in struct {
			Reason string `json:"reason"`
		}
		if !s.decode(w, r, &in) {
			return
		}
		p, _ := PrincipalFrom(r.Context())
		e, err := s.exports.DecideExport(r.Context(), id, p.Login, approve, in.Reason)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		action := "export.reject"
		if approve {
			action = "export.approve"
			s.builder.Enqueue(e.ID)
		}
		_ = s.audit(r, index.AuditEvent{Action: action, ObjectType: "export", ObjectID: e.ID.String(), IncidentID: &e.IncidentID,
			Details: map[string]any{"reason": in.Reason}})
		writeJSON(w, http.StatusOK, e)
	}
}

// downloadExport streams a ready package (audited).
func (s *Server) downloadExport(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok || !s.needExports(w) {
		return
	}
	e, err := s.exports.Export(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, _ := PrincipalFrom(r.Context())
	if p.Role == index.RoleReviewer && e.RequestedBy != p.Login {
		writeJSON(w, http.StatusForbidden, apiError{Error: "only the requester or a supervisor may download this export"})
		return
	}
	if e.Status != index.ExportReady || e.Key == nil {
		writeJSON(w, http.StatusConflict, apiError{Error: "export is " + e.Status + ", not ready"})
		return
	}
	if err := s.audit(r, index.AuditEvent{Action: "export.download", ObjectType: "export", ObjectID: id.String(), IncidentID: &e.IncidentID}); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "audit trail unavailable: download refused"})
		return
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="evidence-%s.zip"`, id))
	s.serveObject(w, r, *e.Key, "evidence.zip", "application/zip")
}

// grantIncident lets a reviewer work on an incident outside their unit.
func (s *Server) grantIncident(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok || !s.needExports(w) {
		return
	}
	var in struct {
		Login string `json:"login"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	if in.Login == "" {
		s.fail(w, r, &index.FieldError{Field: "login", Reason: "required"})
		return
	}
	p, _ := PrincipalFrom(r.Context())
	if err := s.exports.GrantIncident(r.Context(), id, in.Login, p.Login); err != nil {
		s.fail(w, r, err)
		return
	}
	_ = s.audit(r, index.AuditEvent{Action: "incident.grant", ObjectType: "incident", ObjectID: id.String(), IncidentID: &id,
		Details: map[string]any{"login": in.Login}})
	writeJSON(w, http.StatusCreated, map[string]string{"incident_id": id.String(), "login": in.Login})
}

// publicKey: the key evidence packages are verified with (bwc verify
// -package FILE -public-key KEY).
func (s *Server) publicKey(w http.ResponseWriter, r *http.Request) {
	if s.builder == nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "exports are not available"})
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(export.PublicKeyPEM(s.builder.PublicKey()))
}
