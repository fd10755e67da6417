package web

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
)

// ExportStore is what exports need of the index.
type ExportStore interface {
	RequestExport(ctx context.Context, e index.Export, approvalRequired bool) (index.Export, error)
	Export(ctx context.Context, id uuid.UUID) (index.Export, error)
	Exports(ctx context.Context, incident *uuid.UUID) ([]index.Export, error)
	DecideExport(ctx context.Context, id uuid.UUID, byID uuid.UUID, by string, approve bool, reason string) (index.Export, error)
	GrantIncident(ctx context.Context, incident uuid.UUID, login, by string) error
	MayReview(ctx context.Context, incident uuid.UUID, login, unit string) (bool, error)
}

// ExportBuilder builds approved exports in the background.
type ExportBuilder interface {
	Enqueue(id uuid.UUID)
	PublicKey() ed25519.PublicKey
}

// exports: evidence packages of an incident, requested by staff, approved
// by a supervisor other than the requester (when approval is on), built in
// the background, downloaded (audited); and grants of incidents to
// reviewers.
type exports struct {
	db        ExportStore
	builder   ExportBuilder
	incidents incidentFinder
	files     objectFiles
	approval  bool // exports need a supervisor's approval
	kit       *kit
}

func (h *exports) routes(r *router) {
	r.handle("POST /api/exports", staff, h.requestExport)
	r.handle("GET /api/exports", staff, h.listExports)
	r.handle("GET /api/exports/{id}", staff, h.getExport)
	r.handle("POST /api/exports/{id}/approve", supervisors, h.decideExport(true))
	r.handle("POST /api/exports/{id}/reject", supervisors, h.decideExport(false))
	r.handle("GET /api/exports/{id}/download", staff, h.downloadExport)
	r.handle("POST /api/incidents/{id}/grants", supervisors, h.grantIncident)
	r.handle("GET /api/public-key", anyone, h.publicKey)
}

// requestExport: a reviewer (or supervisor) asks for the evidence package
// of an incident, with a reason. A reviewer must be granted the incident
// or belong to the unit of an officer assigned to it.
func (h *exports) requestExport(w http.ResponseWriter, r *http.Request) {
	var in struct {
		IncidentID string     `json:"incident_id"`
		From       *time.Time `json:"from"`
		To         *time.Time `json:"to"`
		Reason     string     `json:"reason"`
	}
	if !decode(w, r, &in) {
		return
	}
	ctx := r.Context()
	inc, err := h.incidents.incidentRef(ctx, in.IncidentID, "")
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	p, _ := PrincipalFrom(ctx)
	if p.Role == index.RoleReviewer {
		ok, err := h.db.MayReview(ctx, inc.ID, p.Login, p.Unit)
		if err != nil {
			h.kit.fail(w, r, err)
			return
		}
		if !ok {
			_ = h.kit.audit(r, index.AuditEvent{Action: "export.refused", ObjectType: "incident", ObjectID: inc.ID.String(), IncidentID: &inc.ID,
				Details: map[string]any{"why": "incident not granted"}})
			writeJSON(w, http.StatusForbidden, apiError{Error: fmt.Sprintf("incident %s is not granted to you", inc.Number)})
			return
		}
	}
	e, err := h.db.RequestExport(ctx, index.Export{IncidentID: inc.ID, From: in.From, To: in.To, RequestedBy: p.Login, Reason: in.Reason,
		RequestedByID: personOf(p)}, h.approval)
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	_ = h.kit.audit(r, index.AuditEvent{Action: "export.request", ObjectType: "export", ObjectID: e.ID.String(), IncidentID: &inc.ID,
		Details: map[string]any{"reason": in.Reason, "approval_required": h.approval}})
	if e.Status == index.ExportApproved {
		h.builder.Enqueue(e.ID)
	}
	writeJSON(w, http.StatusCreated, e)
}

func (h *exports) listExports(w http.ResponseWriter, r *http.Request) {
	var inc *uuid.UUID
	if v := r.URL.Query().Get("incident"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			h.kit.fail(w, r, &index.FieldError{Field: "incident", Reason: "must be a UUID"})
			return
		}
		inc = &id
	}
	list, err := h.db.Exports(r.Context(), inc)
	h.kit.reply(w, r, http.StatusOK, list, err)
}

func (h *exports) getExport(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	e, err := h.db.Export(r.Context(), id)
	h.kit.reply(w, r, http.StatusOK, e, err)
}

// decideExport: a supervisor other than the requester approves (the
// package is then built) or rejects (with a reason). Four eyes means two
// people: the requester's user ID may not decide, whichever login or
// session it uses, and an API token never decides. Refusals are 403 and
// audited (export.decide.refused, with the reason).
func (h *exports) decideExport(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, "id")
		if !ok {
			return
		}
		var in struct {
			Reason string `json:"reason"`
		}
		if !decode(w, r, &in) {
			return
		}
		p, _ := PrincipalFrom(r.Context())
		refuse := func(why string) {
			ev := index.AuditEvent{Action: "export.decide.refused", ObjectType: "export", ObjectID: id.String(),
				Details: map[string]any{"approve": approve, "why": why}}
			if e, err := h.db.Export(r.Context(), id); err == nil {
				ev.IncidentID = &e.IncidentID // in the incident's trail too
			}
			_ = h.kit.audit(r, ev)
			writeJSON(w, http.StatusForbidden, apiError{Error: why})
		}
		if p.UserID == uuid.Nil {
			refuse("an API token may not approve or reject an export: a person must")
			return
		}
		e, err := h.db.DecideExport(r.Context(), id, p.UserID, p.Login, approve, in.Reason)
		if errors.Is(err, index.ErrFourEyes) {
			refuse("the requester may not approve or reject their own export (four eyes)")
			return
		}
		if err != nil {
			h.kit.fail(w, r, err)
			return
		}
		action := "export.reject"
		if approve {
			action = "export.approve"
			h.builder.Enqueue(e.ID)
		}
		_ = h.kit.audit(r, index.AuditEvent{Action: action, ObjectType: "export", ObjectID: e.ID.String(), IncidentID: &e.IncidentID,
			Details: map[string]any{"reason": in.Reason}})
		writeJSON(w, http.StatusOK, e)
	}
}

// downloadExport streams a ready package (audited).
func (h *exports) downloadExport(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	e, err := h.db.Export(r.Context(), id)
	if err != nil {
		h.kit.fail(w, r, err)
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
	if err := h.kit.audit(r, index.AuditEvent{Action: "export.download", ObjectType: "export", ObjectID: id.String(), IncidentID: &e.IncidentID}); err != nil {
		refused(w, "download")
		return
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="evidence-%s.zip"`, id))
	h.files.serve(w, r, *e.Key, e.VersionID, "evidence.zip", "application/zip")
}

// grantIncident lets a reviewer work on an incident outside their unit.
func (h *exports) grantIncident(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var in struct {
		Login string `json:"login"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.Login == "" {
		h.kit.fail(w, r, &index.FieldError{Field: "login", Reason: "required"})
		return
	}
	p, _ := PrincipalFrom(r.Context())
	if err := h.db.GrantIncident(r.Context(), id, in.Login, p.Login); err != nil {
		h.kit.fail(w, r, err)
		return
	}
	_ = h.kit.audit(r, index.AuditEvent{Action: "incident.grant", ObjectType: "incident", ObjectID: id.String(), IncidentID: &id,
		Details: map[string]any{"login": in.Login}})
	writeJSON(w, http.StatusCreated, map[string]string{"incident_id": id.String(), "login": in.Login})
}

// publicKey: the key evidence packages are verified with (bwc verify
// -package FILE -public-key KEY).
func (h *exports) publicKey(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(export.PublicKeyPEM(h.builder.PublicKey()))
}
