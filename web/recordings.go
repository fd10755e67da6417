package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/storage/index"
)

// RecordingStore is what web needs of the index about recordings.
type RecordingStore interface {
	Recording(ctx context.Context, id uuid.UUID) (index.Recording, error)
	Recordings(ctx context.Context, f index.RecordingFilter) ([]index.Recording, error)
	Gaps(ctx context.Context, id uuid.UUID) ([]index.Gap, error)
	Bindings(ctx context.Context, id uuid.UUID) ([]index.Binding, error)
	RecordingLinksInScope(ctx context.Context, id uuid.UUID, history bool, s index.Scope) ([]index.IncidentLink, error)
	LinkIncident(ctx context.Context, recordingID, incidentID uuid.UUID, by, reason string) (index.IncidentLink, error)
	UnlinkIncident(ctx context.Context, recordingID, incidentID uuid.UUID, by, reason string) (index.IncidentLink, error)
	BindOfficerFrom(ctx context.Context, id uuid.UUID, previous *uuid.UUID, officerID uuid.UUID, by, reason string) (index.Recording, error)
	AutoLink(ctx context.Context, recordingID uuid.UUID, buffer time.Duration) ([]index.IncidentLink, error)
}

// recordings: the list and detail of recordings (by the authorization rule, authz.go),
// their incident links and officer binding.
type recordings struct {
	db         RecordingStore
	officers   officerFinder
	incidents  incidentFinder
	refresh    liveRefresher
	linkBuffer time.Duration
	az         *authz
	kit        *kit
}

func (h *recordings) routes(r *router) {
	r.handle("GET /api/recordings", anyone, h.listRecordings)
	r.handle("GET /api/recordings/{id}", anyone, h.getRecording)
	r.handle("POST /api/recordings/{id}/links", staff, h.linkRecording)
	r.handle("DELETE /api/recordings/{id}/links/{incident}", staff, h.unlinkRecording)
	r.handle("POST /api/recordings/{id}/officer", supervisors, h.bindRecording)
}

// listRecordings answers GET /api/recordings?status=&officer=&device=&unbound=&from=&to=&limit=
// The list is filtered by the principal's scope (authz.go).
func (h *recordings) listRecordings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := index.RecordingFilter{Status: q.Get("status"), Unbound: q.Get("unbound") == "1" || q.Get("unbound") == "true"}
	err := uuidParams(r, uuidParam{"officer", &f.OfficerID}, uuidParam{"device", &f.DeviceID})
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	if f.From, f.To, err = timeRange(r); err != nil {
		h.kit.fail(w, r, err)
		return
	}
	if v := q.Get("limit"); v != "" {
		if _, err := fmt.Sscan(v, &f.Limit); err != nil || f.Limit < 1 || f.Limit > 1000 {
			h.kit.fail(w, r, &index.FieldError{Field: "limit", Reason: "must be 1-1000"})
			return
		}
	}
	scope := h.az.scope(r, ResRecording)
	f.Scope = &scope
	recs, err := h.db.Recordings(r.Context(), f)
	h.kit.reply(w, r, http.StatusOK, recs, err)
}

// recordingDetail is a recording with its gaps, links (with history) to
// the incidents in the caller's incident scope, and binding history.
type recordingDetail struct {
	index.Recording
	Gaps     []index.Gap          `json:"gaps"`
	Links    []index.IncidentLink `json:"links"`
	Bindings []index.Binding      `json:"bindings"`
}

func (h *recordings) getRecording(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	if !h.az.recording(w, r, ResRecording, id) {
		return
	}
	ctx := r.Context()
	rec, err := h.db.Recording(ctx, id)
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	d := recordingDetail{Recording: rec}
	if d.Gaps, err = h.db.Gaps(ctx, id); err == nil {
		if d.Links, err = h.db.RecordingLinksInScope(ctx, id, true, h.az.scope(r, ResIncident)); err == nil {
			d.Bindings, err = h.db.Bindings(ctx, id)
		}
	}
	h.kit.reply(w, r, http.StatusOK, d, err)
}

// linkRecording: a supervisor links a recording to an incident by hand.
func (h *recordings) linkRecording(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var in struct {
		IncidentID     string `json:"incident_id"`
		IncidentNumber string `json:"incident_number"`
		Reason         string `json:"reason"`
	}
	if !decode(w, r, &in) {
		return
	}
	ctx := r.Context()
	inc, err := h.incidents.incidentRef(ctx, in.IncidentID, in.IncidentNumber)
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	if !h.az.recording(w, r, ResRecording, id) || !h.az.incident(w, r, ResIncident, inc.ID) {
		return
	}
	p, _ := PrincipalFrom(ctx)
	l, err := h.db.LinkIncident(ctx, id, inc.ID, p.Login, in.Reason)
	if err == nil {
		_ = h.kit.audit(r, index.AuditEvent{Action: "recording.link", ObjectType: "recording", ObjectID: id.String(),
			IncidentID: &inc.ID, RecordingID: &id, Details: map[string]any{"incident": inc.Number, "reason": in.Reason}})
		h.refresh.refresh(id)
	}
	h.kit.reply(w, r, http.StatusCreated, l, err)
}

// unlinkRecording ends a recording's link to an incident; a reason is
// required (query parameter or JSON body).
func (h *recordings) unlinkRecording(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	incID, ok := pathID(w, r, "incident")
	if !ok {
		return
	}
	reason, ok := reasonOf(w, r)
	if !ok {
		return
	}
	if !h.az.recording(w, r, ResRecording, id) || !h.az.incident(w, r, ResIncident, incID) {
		return
	}
	ctx := r.Context()
	p, _ := PrincipalFrom(ctx)
	l, err := h.db.UnlinkIncident(ctx, id, incID, p.Login, reason)
	if err == nil {
		_ = h.kit.audit(r, index.AuditEvent{Action: "recording.unlink", ObjectType: "recording", ObjectID: id.String(),
			IncidentID: &incID, RecordingID: &id, Details: map[string]any{"reason": reason}})
		h.refresh.refresh(id)
	}
	h.kit.reply(w, r, http.StatusOK, l, err)
}

// bindRecording binds a recording to an officer, then links it to the
// officer's incidents. A reason is required. Binding a recording nobody is
// bound to (a camera recording without a check-out) is a supervisor's
// call; re-binding one already bound to another officer changes who may see
// it, so it needs an admin (mayRebind). The change is a compare-and-set on
// the officer the handler saw: a concurrent change is 409, not overwritten.
// Audited with the previous officer and the reason. Binding to the officer
// it has already changes nothing (200, idempotent for retries).
func (h *recordings) bindRecording(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var in struct {
		OfficerID string `json:"officer_id"`
		Reason    string `json:"reason"`
	}
	if !decode(w, r, &in) {
		return
	}
	officer, err := uuid.Parse(in.OfficerID)
	if err != nil {
		h.kit.fail(w, r, &index.FieldError{Field: "officer_id", Reason: "must be an officer's UUID"})
		return
	}
	if strings.TrimSpace(in.Reason) == "" {
		h.kit.fail(w, r, &index.FieldError{Field: "reason", Reason: "required: say why the recording is bound to this officer"})
		return
	}
	if !h.az.recording(w, r, ResRecording, id) {
		return
	}
	ctx := r.Context()
	if _, err := h.officers.Officer(ctx, officer); err != nil {
		h.kit.fail(w, r, err)
		return
	}
	if !h.az.officer(w, r, officer) {
		return
	}
	cur, err := h.db.Recording(ctx, id)
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	if cur.OfficerID != nil && *cur.OfficerID == officer {
		writeJSON(w, http.StatusOK, cur) // bound to this officer already: nothing to change
		return
	}
	p, _ := PrincipalFrom(ctx)
	if cur.OfficerID != nil && !mayRebind(p) {
		h.kit.refuse(w, r, object{Type: "recording", ID: id},
			"this recording is already bound to another officer: only an admin may re-bind it (with a reason)")
		return
	}
	rec, err := h.db.BindOfficerFrom(ctx, id, cur.OfficerID, officer, p.Login, in.Reason)
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	previous := ""
	if cur.OfficerID != nil {
		previous = cur.OfficerID.String()
	}
	_ = h.kit.audit(r, index.AuditEvent{Action: "recording.bind", ObjectType: "recording", ObjectID: id.String(),
		RecordingID: &id, Details: map[string]any{"officer": officer.String(), "previous_officer": previous, "reason": in.Reason}})
	if _, err := h.db.AutoLink(ctx, id, h.linkBuffer); err != nil {
		h.kit.fail(w, r, err)
		return
	}
	h.refresh.refresh(id)
	writeJSON(w, http.StatusOK, rec)
}

// mayRebind: re-binding a recording already bound to an officer (who then
// loses it, and another gains it) is an admin's decision.
func mayRebind(p Principal) bool { return p.Role == index.RoleAdmin }

// incidentFinder resolves an incident given by ID or by its number.
type incidentFinder struct {
	db interface {
		Incident(ctx context.Context, id uuid.UUID) (index.Incident, error)
		Incidents(ctx context.Context) ([]index.Incident, error)
	}
}

// incidentRef resolves an incident given by ID or by its number.
func (f incidentFinder) incidentRef(ctx context.Context, id, number string) (index.Incident, error) {
	if id != "" {
		u, err := uuid.Parse(id)
		if err != nil {
			return index.Incident{}, &index.FieldError{Field: "incident_id", Reason: "must be a UUID"}
		}
		return f.db.Incident(ctx, u)
	}
	if number == "" {
		return index.Incident{}, &index.FieldError{Field: "incident_id", Reason: "incident_id or incident_number required"}
	}
	all, err := f.db.Incidents(ctx)
	if err != nil {
		return index.Incident{}, err
	}
	for _, in := range all {
		if in.Number == number {
			return in, nil
		}
	}
	return index.Incident{}, &index.FieldError{Field: "incident_number", Reason: fmt.Sprintf("no incident %q", number)}
}

// liveRefresher tells the ingest to reload a live recording's binding
// after a change.
type liveRefresher struct {
	live interface{ Refresh(id uuid.UUID) error }
	log  *slog.Logger
}

// refresh reloads a recording's binding if it is live.
func (l liveRefresher) refresh(id uuid.UUID) {
	if err := l.live.Refresh(id); err != nil && !errors.Is(err, media.ErrNotLive) {
		l.log.Warn("live recording not refreshed", "recording", id, "err", err)
	}
}
