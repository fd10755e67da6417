package web

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
)

// Who may see what: ONE authorization rule per resource, written once as
// the table below. The router's role check (auth.go) decides whether a
// role may use a route at all; this table decides which objects inside
// the route a principal may touch. Every route that touches a resource
// goes through authz: a single object out of scope is refused (403, with
// an audited access.refused event, through kit.refuse); a listing is
// filtered in SQL by the same scope (storage/index/scope.go), never
// refused. TestAuthzTable walks the table; TestAuthorizationMatrix walks
// every route of the router against it.

// Resource is a kind of object routes touch.
type Resource string

// The resources of the table.
const (
	// ResRecording: a recording and everything of it: detail, segments,
	// HLS, seek, playback, the uploaded file, timeline rows, legal holds,
	// links to incidents, its officer binding.
	ResRecording Resource = "recording"
	// ResIncident: an incident, its assignments and timeline, the target
	// of a link or a grant.
	ResIncident Resource = "incident"
	// ResExport: an evidence export of an incident (request, list,
	// approval, download), by its incident; a reviewer downloads only the
	// exports they requested (exports.go, refused through kit.refuse too).
	ResExport Resource = "export"
	// ResAudit: the audit trail (events about recordings and incidents in
	// scope; events about neither, such as logins, for admins only).
	ResAudit Resource = "audit"
	// ResLive: the live wall and live views (WHEP).
	ResLive Resource = "live"
	// ResDashboard: the supervision dashboard (by unit).
	ResDashboard Resource = "dashboard"
	// ResOfficer: an officer (roster, check-out to, assignment to, binding
	// a recording to).
	ResOfficer Resource = "officer"
	// ResCamera: a body camera and its check-outs: free cameras, and those
	// checked out to an officer in scope.
	ResCamera Resource = "camera"
	// ResTrack: a camera's positions (its track on the map), by the
	// camera: whoever may watch its live view may see where it is.
	ResTrack Resource = "track"
)

// Resources lists the table's resources, for tests and the README.
var Resources = []Resource{ResRecording, ResIncident, ResExport, ResAudit, ResLive, ResDashboard, ResOfficer, ResCamera, ResTrack}

// Scope kinds (storage/index/scope.go turns them into SQL).
const (
	ScopeNone      = index.ScopeNone      // nothing
	ScopeOwn       = index.ScopeOwn       // officer: own recordings; incidents they are or were assigned to
	ScopeUnits     = index.ScopeUnits     // supervisor: officers of the units they oversee (users.oversees; empty: their unit), and unbound recordings
	ScopeIncidents = index.ScopeIncidents // reviewer: incidents granted to them or of their unit; only the recordings linked to those
	ScopeAll       = index.ScopeAll       // everything
)

// authzTable is the rule: resource → role → scope. A role missing from a
// row has ScopeNone. API tokens have the role they were issued with, no
// unit and no officer: a supervisor token sees only unbound recordings, a
// reviewer token the incidents granted to "token:<name>".
var authzTable = map[Resource]map[string]string{
	ResRecording: {index.RoleOfficer: ScopeOwn, index.RoleSupervisor: ScopeUnits, index.RoleReviewer: ScopeIncidents, index.RoleAdmin: ScopeAll},
	// supervisors assign officers to the incidents dispatch opens, so they
	// see every incident; the recordings on its timeline stay scoped
	ResIncident:  {index.RoleOfficer: ScopeOwn, index.RoleSupervisor: ScopeAll, index.RoleReviewer: ScopeIncidents, index.RoleAdmin: ScopeAll},
	ResExport:    {index.RoleSupervisor: ScopeAll, index.RoleReviewer: ScopeIncidents, index.RoleAdmin: ScopeAll},
	ResAudit:     {index.RoleSupervisor: ScopeUnits, index.RoleReviewer: ScopeIncidents, index.RoleAdmin: ScopeAll},
	ResLive:      {index.RoleSupervisor: ScopeUnits, index.RoleAdmin: ScopeAll},
	ResDashboard: {index.RoleSupervisor: ScopeUnits, index.RoleAdmin: ScopeAll},
	// reviewers read officers' names on every timeline anyway
	ResOfficer: {index.RoleOfficer: ScopeOwn, index.RoleSupervisor: ScopeUnits, index.RoleReviewer: ScopeAll, index.RoleAdmin: ScopeAll},
	ResCamera:  {index.RoleSupervisor: ScopeUnits, index.RoleAdmin: ScopeAll},
	// as ResLive: the supervisors of the wearer's unit (a camera checked
	// out to an officer they oversee, or free), and admins
	ResTrack: {index.RoleSupervisor: ScopeUnits, index.RoleAdmin: ScopeAll},
}

// ScopeKind is the table's entry for a resource and role (ScopeNone when
// absent), for tests and the README.
func ScopeKind(res Resource, role string) string {
	if k, ok := authzTable[res][role]; ok {
		return k
	}
	return ScopeNone
}

// units are the units a principal oversees: the setting, else their own
// unit. A token has none.
func (p Principal) units() []string {
	if p.UserID == uuid.Nil {
		return []string{}
	}
	if len(p.Oversees) > 0 {
		return p.Oversees
	}
	return []string{p.Unit}
}

// scopeOf is p's scope on a resource, by the table.
func scopeOf(p Principal, res Resource) index.Scope {
	s := index.Scope{Kind: ScopeKind(res, p.Role)}
	switch s.Kind {
	case ScopeOwn:
		s.OfficerID = p.OfficerID
	case ScopeUnits:
		s.Units = p.units()
	case ScopeIncidents:
		s.Login, s.Unit = p.Login, p.Unit
	}
	return s
}

// ScopeStore is what the rule needs of the index: whether one object is
// in a scope (listings take the scope as a filter).
type ScopeStore interface {
	RecordingInScope(ctx context.Context, id uuid.UUID, s index.Scope) (bool, error)
	IncidentInScope(ctx context.Context, id uuid.UUID, s index.Scope) (bool, error)
	RecordingsInScope(ctx context.Context, ids []uuid.UUID, s index.Scope) (map[uuid.UUID]bool, error)
	OfficerInScope(ctx context.Context, id uuid.UUID, s index.Scope) (bool, error)
	DeviceInScope(ctx context.Context, id uuid.UUID, s index.Scope) (bool, error)
}

// authz applies the table to requests. Every handler group that touches
// a resource holds the one authz.
type authz struct {
	db  ScopeStore
	kit *kit
}

// scope is the request principal's scope on a resource.
func (a *authz) scope(r *http.Request, res Resource) index.Scope {
	p, _ := PrincipalFrom(r.Context())
	return scopeOf(p, res)
}

// recording answers whether the request may touch the recording as res
// (ResRecording, or ResLive for live views). An unknown recording is
// answered 404, one out of scope 403 and audited; both return false.
func (a *authz) recording(w http.ResponseWriter, r *http.Request, res Resource, id uuid.UUID) bool {
	s := a.scope(r, res)
	ok, err := a.db.RecordingInScope(r.Context(), id, s)
	return a.decide(w, r, res, "recording", id, s, ok, err)
}

// incident answers whether the request may touch the incident as res
// (ResIncident, or ResExport for its exports), like recording.
func (a *authz) incident(w http.ResponseWriter, r *http.Request, res Resource, id uuid.UUID) bool {
	s := a.scope(r, res)
	ok, err := a.db.IncidentInScope(r.Context(), id, s)
	return a.decide(w, r, res, "incident", id, s, ok, err)
}

// officer answers whether the request may touch the officer (ResOfficer),
// like recording.
func (a *authz) officer(w http.ResponseWriter, r *http.Request, id uuid.UUID) bool {
	s := a.scope(r, ResOfficer)
	ok, err := a.db.OfficerInScope(r.Context(), id, s)
	return a.decide(w, r, ResOfficer, "officer", id, s, ok, err)
}

// device answers whether the request may touch the camera (ResCamera),
// like recording.
func (a *authz) device(w http.ResponseWriter, r *http.Request, id uuid.UUID) bool {
	s := a.scope(r, ResCamera)
	ok, err := a.db.DeviceInScope(r.Context(), id, s)
	return a.decide(w, r, ResCamera, "device", id, s, ok, err)
}

// track answers whether the request may see the camera's positions
// (ResTrack), like recording.
func (a *authz) track(w http.ResponseWriter, r *http.Request, id uuid.UUID) bool {
	s := a.scope(r, ResTrack)
	ok, err := a.db.DeviceInScope(r.Context(), id, s)
	return a.decide(w, r, ResTrack, "device", id, s, ok, err)
}

func (a *authz) decide(w http.ResponseWriter, r *http.Request, res Resource, typ string, id uuid.UUID, s index.Scope, ok bool, err error) bool {
	switch {
	case err != nil:
		a.kit.fail(w, r, err)
		return false
	case !ok:
		a.kit.refuse(w, r, object{Type: typ, ID: id}, refusalReason(res, typ, s))
		return false
	}
	return true
}

// inScope filters ids (live recordings) to those in the request's scope
// on res. Everything is in ScopeAll without asking the index: an admin's
// wall shows recordings the index has not caught up with (database slow
// or down); scoped walls show them once indexed.
func (a *authz) inScope(r *http.Request, res Resource, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	s := a.scope(r, res)
	if s.Kind == ScopeAll {
		all := make(map[uuid.UUID]bool, len(ids))
		for _, id := range ids {
			all[id] = true
		}
		return all, nil
	}
	return a.db.RecordingsInScope(r.Context(), ids, s)
}

// auditScope narrows the audit trail for the request (nil: all of it).
func (a *authz) auditScope(r *http.Request) *index.AuditScope {
	s := a.scope(r, ResAudit)
	if s.Kind == ScopeAll {
		return nil
	}
	return &index.AuditScope{Recordings: s, Incidents: s}
}

// units are the units the request's principal may ask the dashboard for
// (nil: all).
func (a *authz) units(r *http.Request) []string {
	s := a.scope(r, ResDashboard)
	switch s.Kind {
	case ScopeAll:
		return nil
	case ScopeUnits:
		return s.Units
	}
	return []string{}
}

// mayUnit answers whether the request may see a unit on the dashboard;
// a unit not overseen is refused (403, audited).
func (a *authz) mayUnit(w http.ResponseWriter, r *http.Request, unit string) bool {
	if us := a.units(r); us == nil || slices.Contains(us, unit) {
		return true
	}
	a.kit.refuse(w, r, object{Type: "unit", Name: unit}, fmt.Sprintf("unit %q is not one you oversee", unit))
	return false
}

// refusalReason says why an object is out of a scope.
func refusalReason(res Resource, typ string, s index.Scope) string {
	switch s.Kind {
	case ScopeOwn:
		if typ == "incident" {
			return "you are not assigned to this incident"
		}
		return "not your " + typ
	case ScopeUnits:
		if typ == "device" {
			return fmt.Sprintf("camera checked out to an officer of a unit you do not oversee (you oversee %q)", s.Units)
		}
		return fmt.Sprintf("%s of a unit you do not oversee (you oversee %q)", typ, s.Units)
	case ScopeIncidents:
		if typ == "incident" {
			return "incident not granted to you nor of your unit"
		}
		return "recording not linked to an incident granted to you or of your unit"
	}
	return fmt.Sprintf("your role has no access to %s", res)
}

// object names what a refusal was about.
type object struct {
	Type string
	ID   uuid.UUID
	Name string // when not an ID (a unit)
}

func (o object) String() string {
	if o.Name != "" {
		return o.Name
	}
	return o.ID.String()
}

// refuse answers an out-of-scope access to a single object: 403 with a
// clear error, and an access.refused event in the audit trail (object,
// route, reason). It is the one way every route refuses an object.
func (k *kit) refuse(w http.ResponseWriter, r *http.Request, o object, reason string) {
	k.auditRefused(r, o.Type, o.String(), reason, func(e *index.AuditEvent) {
		switch o.Type {
		case "recording":
			e.RecordingID = &o.ID
		case "incident":
			e.IncidentID = &o.ID
		}
	})
	k.log.Warn("access refused", "actor", actor(r), "route", r.Pattern, o.Type, o.String(), "reason", reason)
	writeJSON(w, http.StatusForbidden, apiError{Error: fmt.Sprintf("access refused: %s %s: %s", o.Type, o, reason)})
}

// ScopedStore is what listings need of the index: lists filtered by a
// scope in SQL.
type ScopedStore interface {
	IncidentsInScope(ctx context.Context, s index.Scope) ([]index.Incident, error)
	IncidentRecordingsInScope(ctx context.Context, incidentID uuid.UUID, s index.Scope) ([]index.Recording, error)
	ExportsInScope(ctx context.Context, incident *uuid.UUID, s index.Scope) ([]index.Export, error)
	OfficersInScope(ctx context.Context, s index.Scope) ([]index.Officer, error)
	DevicesInScope(ctx context.Context, s index.Scope) ([]index.Device, error)
	CheckoutsInScope(ctx context.Context, openOnly bool, s index.Scope) ([]index.Checkout, error)
}

// UserScopes is what setting a user's scope needs of the index.
type UserScopes interface {
	SetUserScope(ctx context.Context, id uuid.UUID, unit string, oversees []string) (index.User, error)
}

// userScopes: administrators set a user's unit and the units a
// supervisor oversees (PUT /api/users/{id}).
type userScopes struct {
	db  UserScopes
	kit *kit
}

func (h *userScopes) routes(r *router) {
	r.handle("PUT /api/users/{id}", adminOnly, h.setScope)
}

// setScope: PUT /api/users/{id} {"unit": "...", "oversees": ["..."]};
// the change is audited (api.change, and user.scope with the values).
func (h *userScopes) setScope(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var in struct {
		Unit     string   `json:"unit"`
		Oversees []string `json:"oversees"`
	}
	if !decode(w, r, &in) {
		return
	}
	u, err := h.db.SetUserScope(r.Context(), id, in.Unit, in.Oversees)
	if err == nil {
		_ = h.kit.audit(r, index.AuditEvent{Action: "user.scope", ObjectType: "user", ObjectID: u.Login,
			Details: map[string]any{"unit": u.Unit, "oversees": u.Oversees}})
	}
	h.kit.reply(w, r, http.StatusOK, u, err)
}
