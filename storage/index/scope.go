package index

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Scope kinds: what part of the recordings or incidents a principal may
// see. web's authorization table (web/authz.go) chooses one per resource
// and role; the queries here turn it into SQL, so that a listing is
// filtered by the very rule that refuses a single object.
const (
	ScopeNone      = "none"      // nothing
	ScopeOwn       = "own"       // an officer: their recordings; the incidents they are or were assigned to
	ScopeUnits     = "units"     // recordings of officers of Units, and unbound ones; incidents with an officer of Units assigned
	ScopeIncidents = "incidents" // incidents granted to Login or with an officer of Unit assigned; the recordings linked to those
	ScopeAll       = "all"       // everything
)

// Scope is one principal's scope on one resource. The zero value is
// ScopeNone.
type Scope struct {
	Kind      string
	OfficerID *uuid.UUID // ScopeOwn
	Units     []string   // ScopeUnits
	Login     string     // ScopeIncidents: grants (incident_grants.login)
	Unit      string     // ScopeIncidents: the reviewer's unit ("" : grants only)
}

// sqlArgs collects the arguments of a query being built.
type sqlArgs struct{ args []any }

func (a *sqlArgs) add(v any) string {
	a.args = append(a.args, v)
	return fmt.Sprintf("$%d", len(a.args))
}

// reviewableSQL: the incident inc is granted to the login or has an
// officer of the unit assigned (ever).
func (s Scope) reviewableSQL(inc string, a *sqlArgs) string {
	cond := `EXISTS (SELECT 1 FROM incident_grants sg WHERE sg.incident_id = ` + inc + ` AND sg.login = ` + a.add(s.Login) + `)`
	if s.Unit != "" {
		cond += ` OR EXISTS (SELECT 1 FROM assignments sa JOIN officers so ON so.id = sa.officer_id
			WHERE sa.incident_id = ` + inc + ` AND so.unit = ` + a.add(s.Unit) + `)`
	}
	return "(" + cond + ")"
}

// recordingSQL is the condition that the recording rec (a column: its
// id) with officer column off is in scope.
func (s Scope) recordingSQL(rec, off string, a *sqlArgs) string {
	switch s.Kind {
	case ScopeAll:
		return "TRUE"
	case ScopeOwn:
		return s.officerSQL(off, a) // an unbound recording is nobody's own: false, not NULL
	case ScopeUnits:
		return "(" + off + " IS NULL OR " + s.officerSQL(off, a) + ")" // unbound: every supervisor's, to bind it
	case ScopeIncidents:
		return `EXISTS (SELECT 1 FROM recording_incidents sri WHERE sri.recording_id = ` + rec + ` AND sri.unlinked_at IS NULL
			AND ` + s.reviewableSQL("sri.incident_id", a) + `)`
	}
	return "FALSE"
}

// incidentSQL is the condition that the incident inc (a column: its id)
// is in scope.
func (s Scope) incidentSQL(inc string, a *sqlArgs) string {
	switch s.Kind {
	case ScopeAll:
		return "TRUE"
	case ScopeOwn:
		if s.OfficerID == nil {
			return "FALSE"
		}
		return `EXISTS (SELECT 1 FROM assignments sa WHERE sa.incident_id = ` + inc + ` AND sa.officer_id = ` + a.add(*s.OfficerID) + `)`
	case ScopeUnits:
		return `EXISTS (SELECT 1 FROM assignments sa JOIN officers so ON so.id = sa.officer_id
			WHERE sa.incident_id = ` + inc + ` AND so.unit = ANY(` + a.add(nonNil(s.Units)) + `))`
	case ScopeIncidents:
		return s.reviewableSQL(inc, a)
	}
	return "FALSE"
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// inScope reports whether the row id of table ("recordings r": the name
// and its alias, whose id column is matched) meets the scope's condition
// cond; ErrNotFound when there is no such row. The single-object checks
// below are this one query with their resource's condition.
func (db *DB) inScope(ctx context.Context, what, table string, id uuid.UUID, cond func(*sqlArgs) string) (bool, error) {
	_, alias, _ := strings.Cut(table, " ")
	a := &sqlArgs{}
	q := `SELECT coalesce(` + cond(a) + `, false) FROM ` + table + ` WHERE ` + alias + `.id = ` + a.add(id)
	var ok bool
	err := db.pool.QueryRow(ctx, q, a.args...).Scan(&ok)
	return ok, mapErr("scope of "+what+" "+id.String(), err)
}

// RecordingInScope reports whether the recording is in the scope;
// ErrNotFound when there is no such recording.
func (db *DB) RecordingInScope(ctx context.Context, id uuid.UUID, s Scope) (bool, error) {
	return db.inScope(ctx, "recording", `recordings r`, id, func(a *sqlArgs) string { return s.recordingSQL("r.id", "r.officer_id", a) })
}

// RecordingsInScope returns which of the recordings are in the scope (the
// live wall filters the ingest's list with it).
func (db *DB) RecordingsInScope(ctx context.Context, ids []uuid.UUID, s Scope) (map[uuid.UUID]bool, error) {
	out := map[uuid.UUID]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	a := &sqlArgs{}
	q := `SELECT r.id FROM recordings r WHERE r.id = ANY(` + a.add(ids) + `) AND ` + s.recordingSQL("r.id", "r.officer_id", a)
	rows, err := db.pool.Query(ctx, q, a.args...)
	if err != nil {
		return nil, mapErr("scope of recordings", err)
	}
	in, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, mapErr("scope of recordings", err)
	}
	for _, id := range in {
		out[id] = true
	}
	return out, nil
}

// IncidentInScope reports whether the incident is in the scope;
// ErrNotFound when there is no such incident.
func (db *DB) IncidentInScope(ctx context.Context, id uuid.UUID, s Scope) (bool, error) {
	return db.inScope(ctx, "incident", `incidents i`, id, func(a *sqlArgs) string { return s.incidentSQL("i.id", a) })
}

// IncidentsInScope lists the incidents in the scope, newest first.
func (db *DB) IncidentsInScope(ctx context.Context, s Scope) ([]Incident, error) {
	a := &sqlArgs{}
	rows, err := db.pool.Query(ctx, `SELECT `+incidentCols+` FROM incidents i WHERE `+s.incidentSQL("i.id", a)+` ORDER BY opened_at DESC, id`, a.args...)
	if err != nil {
		return nil, mapErr("list incidents", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Incident, error) { return scanIncident(r) })
	return out, mapErr("list incidents", err)
}

// IncidentRecordingsInScope returns the recordings linked (now) to an
// incident that are in the scope, earliest first.
func (db *DB) IncidentRecordingsInScope(ctx context.Context, incidentID uuid.UUID, s Scope) ([]Recording, error) {
	a := &sqlArgs{}
	q := `SELECT ` + recCols + recFrom + `JOIN recording_incidents ri ON ri.recording_id = r.id
		WHERE ri.incident_id = ` + a.add(incidentID) + ` AND ri.unlinked_at IS NULL AND ` + s.recordingSQL("r.id", "r.officer_id", a) + `
		ORDER BY r.started_at, r.id`
	rows, err := db.pool.Query(ctx, q, a.args...)
	if err != nil {
		return nil, mapErr("recordings of incident "+incidentID.String(), err)
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Recording, error) { return scanRecording(r) })
	return recs, mapErr("recordings of incident "+incidentID.String(), err)
}

// ExportsInScope lists the exports (of one incident, or all) whose
// incident is in the scope, newest first.
func (db *DB) ExportsInScope(ctx context.Context, incident *uuid.UUID, s Scope) ([]Export, error) {
	a := &sqlArgs{}
	where := []string{s.incidentSQL("e.incident_id", a)}
	if incident != nil {
		where = append(where, "e.incident_id = "+a.add(*incident))
	}
	return db.exportsWhere(ctx, strings.Join(where, " AND "), a.args)
}

// officerSQL is the condition that the officer off (a column: its id) is
// in scope: ScopeUnits, an officer of the units.
func (s Scope) officerSQL(off string, a *sqlArgs) string {
	switch s.Kind {
	case ScopeAll:
		return "TRUE"
	case ScopeOwn:
		if s.OfficerID == nil {
			return "FALSE"
		}
		return "(" + off + " IS NOT NULL AND " + off + " = " + a.add(*s.OfficerID) + ")"
	case ScopeUnits:
		return `EXISTS (SELECT 1 FROM officers so WHERE so.id = ` + off + ` AND so.unit = ANY(` + a.add(nonNil(s.Units)) + `))`
	}
	return "FALSE"
}

// deviceSQL is the condition that the camera dev (a column: its id) is in
// scope: ScopeUnits, a camera nobody has checked out or one checked out to
// an officer of the units.
func (s Scope) deviceSQL(dev string, a *sqlArgs) string {
	switch s.Kind {
	case ScopeAll:
		return "TRUE"
	case ScopeUnits:
	default:
		return "FALSE"
	}
	return `(NOT EXISTS (SELECT 1 FROM checkouts sc WHERE sc.device_id = ` + dev + ` AND sc.checked_in_at IS NULL)
		OR EXISTS (SELECT 1 FROM checkouts sc WHERE sc.device_id = ` + dev + ` AND sc.checked_in_at IS NULL AND ` + s.officerSQL("sc.officer_id", a) + `))`
}

// OfficerInScope reports whether the officer is in the scope;
// ErrNotFound when there is no such officer.
func (db *DB) OfficerInScope(ctx context.Context, id uuid.UUID, s Scope) (bool, error) {
	return db.inScope(ctx, "officer", `officers o`, id, func(a *sqlArgs) string { return s.officerSQL("o.id", a) })
}

// DeviceInScope reports whether the camera is in the scope; ErrNotFound
// when there is no such camera.
func (db *DB) DeviceInScope(ctx context.Context, id uuid.UUID, s Scope) (bool, error) {
	return db.inScope(ctx, "device", `devices d`, id, func(a *sqlArgs) string { return s.deviceSQL("d.id", a) })
}

// OfficersInScope lists the officers in the scope by badge.
func (db *DB) OfficersInScope(ctx context.Context, s Scope) ([]Officer, error) {
	a := &sqlArgs{}
	rows, err := db.pool.Query(ctx, `SELECT `+officerCols+` FROM officers WHERE `+s.officerSQL("officers.id", a)+` ORDER BY badge`, a.args...)
	if err != nil {
		return nil, mapErr("list officers", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Officer, error) { return scanOfficer(r) })
	return out, mapErr("list officers", err)
}

// DevicesInScope lists the cameras in the scope by serial.
func (db *DB) DevicesInScope(ctx context.Context, s Scope) ([]Device, error) {
	a := &sqlArgs{}
	rows, err := db.pool.Query(ctx, `SELECT `+deviceCols+` FROM devices WHERE `+s.deviceSQL("devices.id", a)+` ORDER BY serial`, a.args...)
	if err != nil {
		return nil, mapErr("list devices", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Device, error) { return scanDevice(r) })
	return out, mapErr("list devices", err)
}

// CheckoutsInScope lists the check-outs (open ones only when openOnly) of
// officers in the scope, newest first.
func (db *DB) CheckoutsInScope(ctx context.Context, openOnly bool, s Scope) ([]Checkout, error) {
	a := &sqlArgs{args: []any{openOnly}}
	rows, err := db.pool.Query(ctx, `SELECT `+checkoutCols+` FROM checkouts
		WHERE (NOT $1 OR checked_in_at IS NULL) AND `+s.officerSQL("checkouts.officer_id", a)+` ORDER BY checked_out_at DESC, id`, a.args...)
	if err != nil {
		return nil, mapErr("list check-outs", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Checkout, error) { return scanCheckout(r) })
	return out, mapErr("list check-outs", err)
}

// UploadsInScope lists the uploads whose recording is in the scope (an
// upload is a recording with source upload: bound to its officer, or
// unbound), newest first.
func (db *DB) UploadsInScope(ctx context.Context, s Scope) ([]Upload, error) {
	a := &sqlArgs{}
	return db.uploadWhere(ctx, "uploads", `EXISTS (SELECT 1 FROM recordings r WHERE r.id = uploads.recording_id AND `+
		s.recordingSQL("r.id", "r.officer_id", a)+`)`, a.args...)
}

// RecordingLinksInScope returns a recording's links to the incidents in
// the scope (the ended ones too when history is set): a recording's
// detail does not name incidents the caller may not see.
func (db *DB) RecordingLinksInScope(ctx context.Context, recordingID uuid.UUID, history bool, s Scope) ([]IncidentLink, error) {
	a := &sqlArgs{}
	q := `SELECT ` + linkCols + linkFrom + `WHERE ri.recording_id = ` + a.add(recordingID) + ` AND ` + s.incidentSQL("ri.incident_id", a)
	if !history {
		q += ` AND ri.unlinked_at IS NULL`
	}
	rows, err := db.pool.Query(ctx, q+` ORDER BY ri.linked_at, ri.id`, a.args...)
	if err != nil {
		return nil, mapErr("links of recording "+recordingID.String(), err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (IncidentLink, error) { return scanLink(r) })
	return out, mapErr("links of recording "+recordingID.String(), err)
}
