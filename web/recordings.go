package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest"
	"github.com/bwcplatform/bwc/storage/index"
)

// liveSource is what web needs of the ingest: the live recordings, a
// signal when they change, and a way to reload one after a binding change.
type liveSource interface {
	Live() []ingest.Live
	Watch() (<-chan struct{}, func())
	Refresh(id uuid.UUID) error
}

var _ liveSource = (*ingest.Server)(nil)

// recordingStore is what web needs of the index about recordings.
type recordingStore interface {
	Recording(ctx context.Context, id uuid.UUID) (index.Recording, error)
	Recordings(ctx context.Context, f index.RecordingFilter) ([]index.Recording, error)
	Gaps(ctx context.Context, id uuid.UUID) ([]index.Gap, error)
	Bindings(ctx context.Context, id uuid.UUID) ([]index.Binding, error)
	RecordingLinks(ctx context.Context, id uuid.UUID, history bool) ([]index.IncidentLink, error)
	LinkIncident(ctx context.Context, recordingID, incidentID uuid.UUID, by, reason string) (index.IncidentLink, error)
	UnlinkIncident(ctx context.Context, recordingID, incidentID uuid.UUID, by, reason string) (index.IncidentLink, error)
	BindOfficer(ctx context.Context, id, officerID uuid.UUID, by, reason string) (index.Recording, error)
	AutoLink(ctx context.Context, recordingID uuid.UUID, buffer time.Duration) ([]index.IncidentLink, error)
	AutoLinkOfficer(ctx context.Context, officerID uuid.UUID, buffer time.Duration) ([]index.IncidentLink, error)
}

var _ recordingStore = (*index.DB)(nil)

func (s *Server) recordingRoutes(mux *http.ServeMux) {
	s.handle(mux, "GET /api/live", supervisors, s.listLive)
	s.handle(mux, "GET /api/live/events", supervisors, s.liveEvents)
	s.handle(mux, "GET /api/recordings", anyone, s.listRecordings)
	s.handle(mux, "GET /api/recordings/{id}", anyone, s.getRecording)
	s.handle(mux, "POST /api/recordings/{id}/links", staff, s.linkRecording)
	s.handle(mux, "DELETE /api/recordings/{id}/links/{incident}", staff, s.unlinkRecording)
	s.handle(mux, "POST /api/recordings/{id}/officer", supervisors, s.bindRecording)
}

// liveItem is a live recording on the wall, with its viewer count.
type liveItem struct {
	ingest.Live
	Viewers int `json:"viewers"`
}

func (s *Server) liveItems() []liveItem {
	if s.ingest == nil {
		return []liveItem{}
	}
	l := s.ingest.Live()
	out := make([]liveItem, len(l))
	for i, x := range l {
		out[i] = liveItem{Live: x}
		if s.viewers != nil {
			out[i].Viewers = s.viewers(x.RecordingID)
		}
	}
	return out
}

func (s *Server) listLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.liveItems())
}

// liveEvents streams the live list as server-sent events: at once, on
// every change, at most twice a second.
func (s *Server) liveEvents(w http.ResponseWriter, r *http.Request) {
	if s.ingest == nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "live events unavailable"})
		return
	}
	rc := http.NewResponseController(w) // reaches Flush through the middleware's writers
	ch, stop := s.ingest.Watch()
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func() bool {
		b, err := json.Marshal(s.liveItems())
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "event: live\ndata: %s\n\n", b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send() {
		return
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-ch:
			if !send() {
				return
			}
			select { // coalesce bursts
			case <-time.After(500 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}
}

// listRecordings answers GET /api/recordings?status=&officer=&device=&unbound=&from=&to=&limit=
// Officers see their own recordings only.
func (s *Server) listRecordings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := index.RecordingFilter{Status: q.Get("status"), Unbound: q.Get("unbound") == "1" || q.Get("unbound") == "true"}
	for _, p := range []struct {
		name string
		dst  **uuid.UUID
	}{{"officer", &f.OfficerID}, {"device", &f.DeviceID}} {
		if v := q.Get(p.name); v != "" {
			id, err := uuid.Parse(v)
			if err != nil {
				s.fail(w, r, &index.FieldError{Field: p.name, Reason: "must be a UUID"})
				return
			}
			*p.dst = &id
		}
	}
	var err error
	if f.From, f.To, err = timeRange(r); err != nil {
		s.fail(w, r, err)
		return
	}
	if v := q.Get("limit"); v != "" {
		if _, err := fmt.Sscan(v, &f.Limit); err != nil || f.Limit < 1 || f.Limit > 1000 {
			s.fail(w, r, &index.FieldError{Field: "limit", Reason: "must be 1-1000"})
			return
		}
	}
	if p, _ := PrincipalFrom(r.Context()); p.Role == index.RoleOfficer {
		if p.OfficerID == nil {
			writeJSON(w, http.StatusOK, []index.Recording{})
			return
		}
		f.OfficerID = p.OfficerID
	}
	recs, err := s.recordings.Recordings(r.Context(), f)
	s.reply(w, r, http.StatusOK, recs, err)
}

// recordingDetail is a recording with its gaps, links (with history) and
// binding history.
type recordingDetail struct {
	index.Recording
	Gaps     []index.Gap          `json:"gaps"`
	Links    []index.IncidentLink `json:"links"`
	Bindings []index.Binding      `json:"bindings"`
}

func (s *Server) getRecording(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return
	}
	ctx := r.Context()
	rec, err := s.recordings.Recording(ctx, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if p, _ := PrincipalFrom(ctx); p.Role == index.RoleOfficer && (p.OfficerID == nil || rec.OfficerID == nil || *p.OfficerID != *rec.OfficerID) {
		s.fail(w, r, fmt.Errorf("recording %s: %w", id, index.ErrNotFound)) // not theirs: as if absent
		return
	}
	d := recordingDetail{Recording: rec}
	if d.Gaps, err = s.recordings.Gaps(ctx, id); err == nil {
		if d.Links, err = s.recordings.RecordingLinks(ctx, id, true); err == nil {
			d.Bindings, err = s.recordings.Bindings(ctx, id)
		}
	}
	s.reply(w, r, http.StatusOK, d, err)
}

// incidentRef resolves an incident given by ID or by its number.
func (s *Server) incidentRef(ctx context.Context, id, number string) (index.Incident, error) {
	if id != "" {
		u, err := uuid.Parse(id)
		if err != nil {
			return index.Incident{}, &index.FieldError{Field: "incident_id", Reason: "must be a UUID"}
		}
		return s.domain.Incident(ctx, u)
	}
	if number == "" {
		return index.Incident{}, &index.FieldError{Field: "incident_id", Reason: "incident_id or incident_number required"}
	}
	all, err := s.domain.Incidents(ctx)
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

// linkRecording: a supervisor links a recording to an incident by hand.
func (s *Server) linkRecording(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return
	}
	var in struct {
		IncidentID     string `json:"incident_id"`
		IncidentNumber string `json:"incident_number"`
		Reason         string `json:"reason"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	ctx := r.Context()
	inc, err := s.incidentRef(ctx, in.IncidentID, in.IncidentNumber)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, _ := PrincipalFrom(ctx)
	l, err := s.recordings.LinkIncident(ctx, id, inc.ID, p.Login, in.Reason)
	if err == nil {
		_ = s.audit(r, index.AuditEvent{Action: "recording.link", ObjectType: "recording", ObjectID: id.String(),
			IncidentID: &inc.ID, RecordingID: &id, Details: map[string]any{"incident": inc.Number, "reason": in.Reason}})
		s.refreshLive(id)
	}
	s.reply(w, r, http.StatusCreated, l, err)
}

// unlinkRecording ends a recording's link to an incident; a reason is
// required (query parameter or JSON body).
func (s *Server) unlinkRecording(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return
	}
	incID, ok := s.pathID(w, r, "incident")
	if !ok {
		return
	}
	reason, ok := s.reasonOf(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	p, _ := PrincipalFrom(ctx)
	l, err := s.recordings.UnlinkIncident(ctx, id, incID, p.Login, reason)
	if err == nil {
		_ = s.audit(r, index.AuditEvent{Action: "recording.unlink", ObjectType: "recording", ObjectID: id.String(),
			IncidentID: &incID, RecordingID: &id, Details: map[string]any{"reason": reason}})
		s.refreshLive(id)
	}
	s.reply(w, r, http.StatusOK, l, err)
}

// bindRecording binds a recording (made by a camera nobody had checked
// out) to an officer, then links it to the officer's incidents.
func (s *Server) bindRecording(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return
	}
	var in struct {
		OfficerID string `json:"officer_id"`
		Reason    string `json:"reason"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	officer, err := uuid.Parse(in.OfficerID)
	if err != nil {
		s.fail(w, r, &index.FieldError{Field: "officer_id", Reason: "must be an officer's UUID"})
		return
	}
	ctx := r.Context()
	if _, err := s.domain.Officer(ctx, officer); err != nil {
		s.fail(w, r, err)
		return
	}
	p, _ := PrincipalFrom(ctx)
	rec, err := s.recordings.BindOfficer(ctx, id, officer, p.Login, in.Reason)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	_ = s.audit(r, index.AuditEvent{Action: "recording.bind", ObjectType: "recording", ObjectID: id.String(),
		RecordingID: &id, Details: map[string]any{"officer": officer.String(), "reason": in.Reason}})
	if _, err := s.recordings.AutoLink(ctx, id, s.cfg.LinkBuffer); err != nil {
		s.fail(w, r, err)
		return
	}
	s.refreshLive(id)
	writeJSON(w, http.StatusOK, rec)
}

// refreshLive tells the ingest to reload a live recording's binding.
func (s *Server) refreshLive(id uuid.UUID) {
	if s.ingest == nil {
		return
	}
	if err := s.ingest.Refresh(id); err != nil && !errors.Is(err, ingest.ErrNotLive) {
		s.log.Warn("live recording not refreshed", "recording", id, "err", err)
	}
}

// reasonOf reads the reason of a DELETE: the reason query parameter, or a
// JSON body {"reason": ...}.
func (s *Server) reasonOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	var in struct {
		Reason string `json:"reason"`
	}
	in.Reason = r.URL.Query().Get("reason")
	if r.ContentLength > 0 && !s.decode(w, r, &in) {
		return "", false
	}
	return in.Reason, true
}
