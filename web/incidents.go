package web

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
)

// IncidentStore is what incidents and their assignments need of the
// database.
type IncidentStore interface {
	CreateIncident(ctx context.Context, in index.Incident) (index.Incident, error)
	Incident(ctx context.Context, id uuid.UUID) (index.Incident, error)
	Incidents(ctx context.Context) ([]index.Incident, error)
	Assign(ctx context.Context, incidentID, officerID uuid.UUID, at time.Time) (index.Assignment, error)
	ClearAssignment(ctx context.Context, incidentID, assignmentID uuid.UUID, at time.Time) (index.Assignment, error)
	Assignments(ctx context.Context, incidentID uuid.UUID) ([]index.Assignment, error)
}

// AutoLinker links recordings to incidents by the association rule.
type AutoLinker interface {
	AutoLink(ctx context.Context, recordingID uuid.UUID, buffer time.Duration) ([]index.IncidentLink, error)
	AutoLinkOfficer(ctx context.Context, officerID uuid.UUID, buffer time.Duration) ([]index.IncidentLink, error)
}

// Dashboards is what the supervision dashboard needs of the index.
type Dashboards interface {
	Dashboard(ctx context.Context, from, to time.Time, units []string) (index.Dashboard, error)
}

// TimelineStore is what an incident's timeline needs beyond the incident.
type TimelineStore interface {
	Gaps(ctx context.Context, id uuid.UUID) ([]index.Gap, error)
	RecordingLinksInScope(ctx context.Context, id uuid.UUID, history bool, s index.Scope) ([]index.IncidentLink, error)
}

// officerFinder loads one officer.
type officerFinder interface {
	Officer(ctx context.Context, id uuid.UUID) (index.Officer, error)
}

// incidents: incidents, their assignments (which link the assigned
// officer's recordings by the rule), the dashboard and the timeline.
type incidents struct {
	db         IncidentStore
	linker     AutoLinker
	dashboards Dashboards
	timeline   TimelineStore
	scoped     ScopedStore
	refresh    liveRefresher
	linkBuffer time.Duration
	az         *authz
	kit        *kit
}

func (h *incidents) routes(r *router) {
	r.handle("POST /api/incidents", supervisors, h.createIncident)
	// officers read the incidents they are or were assigned to (authz.go)
	r.handle("GET /api/incidents", anyone, h.listIncidents)
	r.handle("GET /api/incidents/{id}", anyone, h.getIncident)
	r.handle("POST /api/incidents/{id}/assignments", supervisors, h.assign)
	r.handle("GET /api/incidents/{id}/assignments", anyone, h.listAssignments)
	r.handle("POST /api/incidents/{id}/assignments/{aid}/clear", supervisors, h.clearAssignment)
	r.handle("GET /api/incidents/{id}/timeline", anyone, h.incidentTimeline)
	r.handle("GET /api/dashboard", supervisors, h.dashboard)
}

func (h *incidents) createIncident(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Number   string     `json:"number"`
		Type     string     `json:"type"`
		Address  string     `json:"address"`
		Lat      *float64   `json:"lat"`
		Lon      *float64   `json:"lon"`
		OpenedAt time.Time  `json:"opened_at"`
		ClosedAt *time.Time `json:"closed_at"`
		Status   string     `json:"status"`
	}
	if !decode(w, r, &in) {
		return
	}
	inc, err := h.db.CreateIncident(r.Context(), index.Incident{
		Number: in.Number, Type: in.Type, Address: in.Address, Lat: in.Lat, Lon: in.Lon,
		OpenedAt: in.OpenedAt, ClosedAt: in.ClosedAt, Status: in.Status,
	})
	h.kit.reply(w, r, http.StatusCreated, inc, err)
}

// listIncidents: the incidents in the principal's scope, newest first.
func (h *incidents) listIncidents(w http.ResponseWriter, r *http.Request) {
	list, err := h.scoped.IncidentsInScope(r.Context(), h.az.scope(r, ResIncident))
	if list == nil {
		list = []index.Incident{}
	}
	h.kit.reply(w, r, http.StatusOK, list, err)
}

// incidentInScope reads the path's incident ID and checks the rule.
func (h *incidents) incidentInScope(w http.ResponseWriter, r *http.Request) (uuid.UUID, bool) {
	id, ok := pathID(w, r, "id")
	return id, ok && h.az.incident(w, r, ResIncident, id)
}

func (h *incidents) getIncident(w http.ResponseWriter, r *http.Request) {
	id, ok := h.incidentInScope(w, r)
	if !ok {
		return
	}
	inc, err := h.db.Incident(r.Context(), id)
	h.kit.reply(w, r, http.StatusOK, inc, err)
}

func (h *incidents) assign(w http.ResponseWriter, r *http.Request) {
	id, ok := h.incidentInScope(w, r)
	if !ok {
		return
	}
	var in struct {
		OfficerID string    `json:"officer_id"`
		At        time.Time `json:"at"`
	}
	if !decode(w, r, &in) {
		return
	}
	officer, err := uuid.Parse(in.OfficerID)
	if err != nil {
		h.kit.fail(w, r, &index.FieldError{Field: "officer_id", Reason: "must be an officer's UUID"})
		return
	}
	if _, err := h.db.Incident(r.Context(), id); err != nil {
		h.kit.fail(w, r, err)
		return
	}
	if !h.az.officer(w, r, officer) {
		return
	}
	a, err := h.db.Assign(r.Context(), id, officer, in.At)
	if err == nil {
		// recordings running (or made within the rule's window) join the incident now
		links, lerr := h.linker.AutoLinkOfficer(r.Context(), officer, h.linkBuffer)
		if lerr != nil {
			h.kit.log.Error("recordings not linked to new assignment", "officer", officer, "incident", id, "err", lerr)
		}
		for _, l := range links {
			h.refresh.refresh(l.RecordingID)
		}
	}
	h.kit.reply(w, r, http.StatusCreated, a, err)
}

func (h *incidents) listAssignments(w http.ResponseWriter, r *http.Request) {
	id, ok := h.incidentInScope(w, r)
	if !ok {
		return
	}
	if _, err := h.db.Incident(r.Context(), id); err != nil {
		h.kit.fail(w, r, err)
		return
	}
	as, err := h.db.Assignments(r.Context(), id)
	if as == nil {
		as = []index.Assignment{}
	}
	h.kit.reply(w, r, http.StatusOK, as, err)
}

func (h *incidents) clearAssignment(w http.ResponseWriter, r *http.Request) {
	id, ok := h.incidentInScope(w, r)
	if !ok {
		return
	}
	aid, ok := pathID(w, r, "aid")
	if !ok {
		return
	}
	var in struct {
		At time.Time `json:"at"`
	}
	if !decode(w, r, &in) {
		return
	}
	a, err := h.db.ClearAssignment(r.Context(), id, aid, in.At)
	h.kit.reply(w, r, http.StatusOK, a, err)
}

// dashboard answers GET /api/dashboard?from=&to=&unit= (RFC 3339; the last
// 7 days by default): the video-association rate and the incidents without
// or with partial footage first.
func (h *incidents) dashboard(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, to, err := timeRange(r)
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	if to.IsZero() {
		to = time.Now().UTC()
	}
	if from.IsZero() {
		from = to.Add(-7 * 24 * time.Hour)
	}
	// the units overseen (all for admins), or the one asked for if overseen
	units := h.az.units(r)
	if unit := q.Get("unit"); unit != "" {
		if !h.az.mayUnit(w, r, unit) {
			return
		}
		units = []string{unit}
	}
	d, err := h.dashboards.Dashboard(r.Context(), from, to, units)
	h.kit.reply(w, r, http.StatusOK, d, err)
}

// timelineRecording is one recording on an incident's timeline.
type timelineRecording struct {
	index.Recording
	Gaps  []index.Gap          `json:"gaps"`
	Links []index.IncidentLink `json:"links"`
}

type timeline struct {
	Incident    index.Incident      `json:"incident"`
	Assignments []index.Assignment  `json:"assignments"`
	Recordings  []timelineRecording `json:"recordings"`
	From        *time.Time          `json:"from"`
	To          *time.Time          `json:"to"`
}

// timeline: an incident with every linked recording (officer, device,
// span, gaps, how it was linked) on one wall-clock axis, earliest first.
func (h *incidents) incidentTimeline(w http.ResponseWriter, r *http.Request) {
	id, ok := h.incidentInScope(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	inc, err := h.db.Incident(ctx, id)
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	tl := timeline{Incident: inc, Recordings: []timelineRecording{}}
	if tl.Assignments, err = h.db.Assignments(ctx, id); err != nil {
		h.kit.fail(w, r, err)
		return
	}
	recs, err := h.scoped.IncidentRecordingsInScope(ctx, id, h.az.scope(r, ResRecording)) // only what the principal may see
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	for _, rec := range recs {
		tr := timelineRecording{Recording: rec}
		if tr.Gaps, err = h.timeline.Gaps(ctx, rec.ID); err == nil {
			tr.Links, err = h.timeline.RecordingLinksInScope(ctx, rec.ID, true, h.az.scope(r, ResIncident)) // no incident the principal may not see
		}
		if err != nil {
			h.kit.fail(w, r, err)
			return
		}
		tl.Recordings = append(tl.Recordings, tr)
		start, end := rec.StartedAt, time.Now().UTC()
		if rec.EndedAt != nil {
			end = *rec.EndedAt
		}
		if tl.From == nil || start.Before(*tl.From) {
			tl.From = &start
		}
		if tl.To == nil || end.After(*tl.To) {
			tl.To = &end
		}
	}
	if err := h.kit.auditRead(r, index.AuditEvent{Action: "incident.view", ObjectType: "incident", ObjectID: id.String(), IncidentID: &id}); err != nil {
		refused(w, "incident timeline")
		return
	}
	writeJSON(w, http.StatusOK, tl)
}
