package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
)

// domainStore is what the admin API needs of the database.
type domainStore interface {
	CreateOfficer(ctx context.Context, o index.Officer) (index.Officer, error)
	Officer(ctx context.Context, id uuid.UUID) (index.Officer, error)
	Officers(ctx context.Context) ([]index.Officer, error)
	CreateDevice(ctx context.Context, d index.Device) (index.Device, error)
	Device(ctx context.Context, id uuid.UUID) (index.Device, error)
	DeviceBySerial(ctx context.Context, serial string) (index.Device, error)
	Devices(ctx context.Context) ([]index.Device, error)
	SetDeviceStatus(ctx context.Context, id uuid.UUID, status string) (index.Device, error)
	CheckOut(ctx context.Context, deviceID, officerID uuid.UUID, at time.Time) (index.Checkout, error)
	CheckIn(ctx context.Context, deviceID uuid.UUID, at time.Time) (index.Checkout, error)
	Checkouts(ctx context.Context, openOnly bool) ([]index.Checkout, error)
	CreateIncident(ctx context.Context, in index.Incident) (index.Incident, error)
	Incident(ctx context.Context, id uuid.UUID) (index.Incident, error)
	Incidents(ctx context.Context) ([]index.Incident, error)
	Assign(ctx context.Context, incidentID, officerID uuid.UUID, at time.Time) (index.Assignment, error)
	ClearAssignment(ctx context.Context, incidentID, assignmentID uuid.UUID, at time.Time) (index.Assignment, error)
	Assignments(ctx context.Context, incidentID uuid.UUID) ([]index.Assignment, error)
}

var _ domainStore = (*index.DB)(nil)

// apiRoutes registers the admin JSON API. Each handler is a plain
// http.HandlerFunc so that the authentication middleware can wrap them.
func (s *Server) apiRoutes(mux *http.ServeMux) {
	s.handle(mux, "POST /api/officers", adminOnly, s.createOfficer)
	s.handle(mux, "GET /api/officers", staff, list(s, func(ctx context.Context) ([]index.Officer, error) { return s.domain.Officers(ctx) }))
	s.handle(mux, "GET /api/officers/{id}", staff, s.getOfficer)

	s.handle(mux, "POST /api/devices", adminOnly, s.createDevice)
	s.handle(mux, "GET /api/devices", supervisors, s.listDevices)
	s.handle(mux, "GET /api/devices/{id}", supervisors, s.getDevice)
	s.handle(mux, "POST /api/devices/{id}/status", adminOnly, s.setDeviceStatus)
	s.handle(mux, "POST /api/devices/{id}/checkout", supervisors, s.checkOut)
	s.handle(mux, "POST /api/devices/{id}/checkin", supervisors, s.checkIn)
	s.handle(mux, "GET /api/checkouts", supervisors, s.listCheckouts)

	s.handle(mux, "POST /api/incidents", supervisors, s.createIncident)
	s.handle(mux, "GET /api/incidents", staff, list(s, func(ctx context.Context) ([]index.Incident, error) { return s.domain.Incidents(ctx) }))
	s.handle(mux, "GET /api/incidents/{id}", staff, s.getIncident)
	s.handle(mux, "POST /api/incidents/{id}/assignments", supervisors, s.assign)
	s.handle(mux, "GET /api/incidents/{id}/assignments", staff, s.listAssignments)
	s.handle(mux, "POST /api/incidents/{id}/assignments/{aid}/clear", supervisors, s.clearAssignment)

	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no such API endpoint: " + r.Method + " " + r.URL.Path})
	})
}

func list[T any](s *Server, f func(context.Context) ([]T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		items, err := f(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if items == nil {
			items = []T{}
		}
		writeJSON(w, http.StatusOK, items)
	}
}

func (s *Server) createOfficer(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Badge string `json:"badge"`
		Name  string `json:"name"`
		Unit  string `json:"unit"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	o, err := s.domain.CreateOfficer(r.Context(), index.Officer{Badge: in.Badge, Name: in.Name, Unit: in.Unit})
	s.reply(w, r, http.StatusCreated, o, err)
}

func (s *Server) getOfficer(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return
	}
	o, err := s.domain.Officer(r.Context(), id)
	s.reply(w, r, http.StatusOK, o, err)
}

func (s *Server) createDevice(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Serial string `json:"serial"`
		Model  string `json:"model"`
		Secret string `json:"secret"`
		Status string `json:"status"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	d, err := s.domain.CreateDevice(r.Context(), index.Device{Serial: in.Serial, Model: in.Model, Secret: in.Secret, Status: in.Status})
	s.reply(w, r, http.StatusCreated, d, err)
}

// device resolves the {id} path element, which may be the device's UUID or
// its serial.
func (s *Server) device(w http.ResponseWriter, r *http.Request) (index.Device, bool) {
	ref := r.PathValue("id")
	var (
		d   index.Device
		err error
	)
	if id, perr := uuid.Parse(ref); perr == nil {
		d, err = s.domain.Device(r.Context(), id)
	} else {
		d, err = s.domain.DeviceBySerial(r.Context(), ref)
	}
	if err != nil {
		s.fail(w, r, err)
		return index.Device{}, false
	}
	return d, true
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) {
	if d, ok := s.device(w, r); ok {
		writeJSON(w, http.StatusOK, redactDevice(r, d))
	}
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	ds, err := s.domain.Devices(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]index.Device, 0, len(ds))
	for _, d := range ds {
		out = append(out, redactDevice(r, d))
	}
	writeJSON(w, http.StatusOK, out)
}

// redactDevice hides a camera's RTSP secret from everyone but admins.
func redactDevice(r *http.Request, d index.Device) index.Device {
	if p, _ := PrincipalFrom(r.Context()); p.Role != index.RoleAdmin {
		d.Secret = ""
	}
	return d
}

func (s *Server) setDeviceStatus(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Status string `json:"status"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	d, ok := s.device(w, r)
	if !ok {
		return
	}
	d, err := s.domain.SetDeviceStatus(r.Context(), d.ID, in.Status)
	s.reply(w, r, http.StatusOK, d, err)
}

func (s *Server) checkOut(w http.ResponseWriter, r *http.Request) {
	var in struct {
		OfficerID string    `json:"officer_id"`
		At        time.Time `json:"at"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	officer, err := uuid.Parse(in.OfficerID)
	if err != nil {
		s.fail(w, r, &index.FieldError{Field: "officer_id", Reason: "must be an officer's UUID"})
		return
	}
	d, ok := s.device(w, r)
	if !ok {
		return
	}
	c, err := s.domain.CheckOut(r.Context(), d.ID, officer, in.At)
	s.reply(w, r, http.StatusCreated, c, err)
}

func (s *Server) checkIn(w http.ResponseWriter, r *http.Request) {
	var in struct {
		At time.Time `json:"at"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	d, ok := s.device(w, r)
	if !ok {
		return
	}
	c, err := s.domain.CheckIn(r.Context(), d.ID, in.At)
	s.reply(w, r, http.StatusOK, c, err)
}

func (s *Server) listCheckouts(w http.ResponseWriter, r *http.Request) {
	open := r.URL.Query().Get("open")
	if open != "" && open != "true" && open != "false" {
		s.fail(w, r, &index.FieldError{Field: "open", Reason: "true or false"})
		return
	}
	cs, err := s.domain.Checkouts(r.Context(), open == "true")
	if cs == nil {
		cs = []index.Checkout{}
	}
	s.reply(w, r, http.StatusOK, cs, err)
}

func (s *Server) createIncident(w http.ResponseWriter, r *http.Request) {
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
	if !s.decode(w, r, &in) {
		return
	}
	inc, err := s.domain.CreateIncident(r.Context(), index.Incident{
		Number: in.Number, Type: in.Type, Address: in.Address, Lat: in.Lat, Lon: in.Lon,
		OpenedAt: in.OpenedAt, ClosedAt: in.ClosedAt, Status: in.Status,
	})
	s.reply(w, r, http.StatusCreated, inc, err)
}

func (s *Server) getIncident(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return
	}
	inc, err := s.domain.Incident(r.Context(), id)
	s.reply(w, r, http.StatusOK, inc, err)
}

func (s *Server) assign(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return
	}
	var in struct {
		OfficerID string    `json:"officer_id"`
		At        time.Time `json:"at"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	officer, err := uuid.Parse(in.OfficerID)
	if err != nil {
		s.fail(w, r, &index.FieldError{Field: "officer_id", Reason: "must be an officer's UUID"})
		return
	}
	if _, err := s.domain.Incident(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.domain.Officer(r.Context(), officer); err != nil {
		s.fail(w, r, err)
		return
	}
	a, err := s.domain.Assign(r.Context(), id, officer, in.At)
	if err == nil && s.recordings != nil {
		// recordings running (or made within the rule's window) join the incident now
		links, lerr := s.recordings.AutoLinkOfficer(r.Context(), officer, s.cfg.LinkBuffer)
		if lerr != nil {
			s.log.Error("recordings not linked to new assignment", "officer", officer, "incident", id, "err", lerr)
		}
		for _, l := range links {
			s.refreshLive(l.RecordingID)
		}
	}
	s.reply(w, r, http.StatusCreated, a, err)
}

func (s *Server) listAssignments(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return
	}
	if _, err := s.domain.Incident(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	as, err := s.domain.Assignments(r.Context(), id)
	if as == nil {
		as = []index.Assignment{}
	}
	s.reply(w, r, http.StatusOK, as, err)
}

func (s *Server) clearAssignment(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return
	}
	aid, ok := s.pathID(w, r, "aid")
	if !ok {
		return
	}
	var in struct {
		At time.Time `json:"at"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	a, err := s.domain.ClearAssignment(r.Context(), id, aid, in.At)
	s.reply(w, r, http.StatusOK, a, err)
}

// --- plumbing ---

// apiError is the body of every error response.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

const maxJSONBody = 1 << 20

// decode reads a JSON body strictly: unknown fields, trailing data and
// oversized bodies are 400s that say what is wrong. An empty body is an
// empty object.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if errors.Is(err, io.EOF) {
		return true
	}
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err != nil {
		e := apiError{Error: "invalid JSON body: " + err.Error()}
		var typeErr *json.UnmarshalTypeError
		var timeErr *time.ParseError
		var maxErr *http.MaxBytesError
		switch {
		case errors.As(err, &typeErr):
			e.Field = typeErr.Field
			e.Error = fmt.Sprintf("invalid JSON body: field %q must be a %s", typeErr.Field, typeErr.Type)
		case errors.As(err, &timeErr):
			e.Error = "invalid JSON body: times are RFC 3339, e.g. 2026-11-22T08:30:00Z: " + err.Error()
		case errors.As(err, &maxErr):
			e.Error = fmt.Sprintf("request body larger than %d bytes", maxErr.Limit)
			writeJSON(w, http.StatusRequestEntityTooLarge, e)
			return false
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			e.Field = strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			e.Error = "unknown field " + e.Field
		}
		writeJSON(w, http.StatusBadRequest, e)
		return false
	}
	return true
}

func (s *Server) pathID(w http.ResponseWriter, r *http.Request, name string) (uuid.UUID, bool) {
	id, err := uuid.Parse(r.PathValue(name))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: name + " in the path must be a UUID", Field: name})
		return uuid.Nil, false
	}
	return id, true
}

func (s *Server) reply(w http.ResponseWriter, r *http.Request, code int, v any, err error) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, code, v)
}

// fail maps the platform's error sentinels to HTTP statuses. Unexpected
// errors are logged and answered 500 without internals.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *index.FieldError
	switch {
	case errors.As(err, &fe):
		writeJSON(w, http.StatusBadRequest, apiError{Error: fe.Error(), Field: fe.Field})
	case errors.Is(err, index.ErrInvalid):
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
	case errors.Is(err, index.ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{Error: err.Error()})
	case errors.Is(err, index.ErrConflict):
		writeJSON(w, http.StatusConflict, apiError{Error: err.Error()})
	case errors.Is(err, context.Canceled):
		// the client went away; nothing to answer
	default:
		s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, apiError{Error: "internal error; see the server log"})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
