package index

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Footage coverage of an incident.
const (
	CoverageNone     = "none"     // no footage linked
	CoveragePartial  = "partial"  // footage, but not from every assigned officer
	CoverageComplete = "complete" // footage from every assigned officer
)

// IncidentCoverage is one incident on the supervision dashboard.
type IncidentCoverage struct {
	ID               uuid.UUID `json:"id"`
	Number           string    `json:"number"`
	Type             string    `json:"type"`
	Address          string    `json:"address"`
	OpenedAt         time.Time `json:"opened_at"`
	Status           string    `json:"status"`
	AssignedOfficers int       `json:"assigned_officers"`
	FilmingOfficers  int       `json:"filming_officers"` // assigned officers with linked footage
	Recordings       int       `json:"recordings"`
	Missing          []string  `json:"missing"` // "badge name" of assigned officers without footage
	Coverage         string    `json:"coverage"`
}

// Dropoff is a camera that stopped sending during an incident: a gap in a
// linked recording, or a recording that ended while its officer was still
// assigned.
type Dropoff struct {
	RecordingID    uuid.UUID  `json:"recording_id"`
	IncidentNumber string     `json:"incident_number"`
	Device         string     `json:"device"`
	Officer        string     `json:"officer"`
	Kind           string     `json:"kind"` // gap or ended
	From           time.Time  `json:"from"`
	To             *time.Time `json:"to"`
}

// Dashboard is the supervision dashboard for a period and (optionally) a
// unit.
type Dashboard struct {
	From            time.Time          `json:"from"`
	To              time.Time          `json:"to"`
	Unit            string             `json:"unit"`      // the units, joined (all: empty)
	Units           []string           `json:"units"`     // nil: all
	Incidents       []IncidentCoverage `json:"incidents"` // none first, then partial, then complete
	WithFootage     int                `json:"with_footage"`
	AssociationRate float64            `json:"association_rate"` // share of incidents with linked footage
	Unbound         []Recording        `json:"unbound"`
	Dropoffs        []Dropoff          `json:"dropoffs"`
}

// Dashboard computes the video-association figures of the incidents open
// during [from, to), for the officers of units (all when nil; the
// supervisor's scope, web/authz.go).
func (db *DB) Dashboard(ctx context.Context, from, to time.Time, units []string) (Dashboard, error) {
	d := Dashboard{From: from, To: to, Unit: strings.Join(units, ", "), Units: units, Incidents: []IncidentCoverage{}, Unbound: []Recording{}, Dropoffs: []Dropoff{}}
	if !to.After(from) {
		return d, &FieldError{Field: "to", Reason: "must be after from"}
	}
	incs, err := db.incidentCoverage(ctx, from, to, units)
	if err != nil {
		return d, err
	}
	d.Incidents = append(d.Incidents, incs...)
	for _, c := range d.Incidents {
		if c.Recordings > 0 {
			d.WithFootage++
		}
	}
	if len(d.Incidents) > 0 {
		d.AssociationRate = float64(d.WithFootage) / float64(len(d.Incidents))
	}

	unbound, err := db.Recordings(ctx, RecordingFilter{Unbound: true, From: from, To: to, Limit: 500})
	if err != nil {
		return d, fmt.Errorf("dashboard: %w", err)
	}
	d.Unbound = append(d.Unbound, unbound...)

	rows, err := db.pool.Query(ctx, dashboardDropoffsSQL, from, to, units)
	if err != nil {
		return d, mapErr("dashboard dropoffs", err)
	}
	drops, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Dropoff])
	if err != nil {
		return d, mapErr("dashboard dropoffs", err)
	}
	d.Dropoffs = append(d.Dropoffs, drops...)
	return d, nil
}

// dashboardIncidentsSQL: the incidents open in [$1, $2) (of unit $3 when
// not nil) with their assigned and filming officers and recordings.
const dashboardIncidentsSQL = `
	WITH inc AS (
		SELECT i.* FROM incidents i
		WHERE i.opened_at < $2 AND coalesce(i.closed_at, 'infinity') > $1
		  AND ($3::text[] IS NULL OR EXISTS (SELECT 1 FROM assignments a JOIN officers o ON o.id = a.officer_id
		                          WHERE a.incident_id = i.id AND o.unit = ANY($3)))
	), assigned AS (
		SELECT DISTINCT a.incident_id, a.officer_id FROM assignments a JOIN inc ON inc.id = a.incident_id
	), filmed AS (
		SELECT DISTINCT ri.incident_id, r.officer_id FROM recording_incidents ri
		JOIN recordings r ON r.id = ri.recording_id JOIN inc ON inc.id = ri.incident_id
		WHERE ri.unlinked_at IS NULL AND r.officer_id IS NOT NULL
	)
	SELECT inc.id, inc.number, inc.type, inc.address, inc.opened_at, inc.status,
		(SELECT count(*) FROM assigned a WHERE a.incident_id = inc.id),
		(SELECT count(*) FROM assigned a WHERE a.incident_id = inc.id
		   AND EXISTS (SELECT 1 FROM filmed f WHERE f.incident_id = inc.id AND f.officer_id = a.officer_id)),
		(SELECT count(*) FROM recording_incidents ri WHERE ri.incident_id = inc.id AND ri.unlinked_at IS NULL),
		coalesce((SELECT array_agg(o.badge || ' ' || o.name ORDER BY o.badge) FROM assigned a JOIN officers o ON o.id = a.officer_id
		   WHERE a.incident_id = inc.id
		   AND NOT EXISTS (SELECT 1 FROM filmed f WHERE f.incident_id = inc.id AND f.officer_id = a.officer_id)), '{}')
	FROM inc ORDER BY inc.opened_at DESC`

// dashboardDropoffsSQL: gaps in linked recordings, and recordings that
// ended more than a minute before their officer was cleared with no
// recording after.
const dashboardDropoffsSQL = `
	SELECT g.recording_id, i.number, d.serial, coalesce(o.badge || ' ' || o.name, ''), 'gap', g.started_at, g.ended_at
	FROM recording_gaps g
	JOIN recording_incidents ri ON ri.recording_id = g.recording_id AND ri.unlinked_at IS NULL
	JOIN incidents i ON i.id = ri.incident_id
	JOIN recordings r ON r.id = g.recording_id JOIN devices d ON d.id = r.device_id
	LEFT JOIN officers o ON o.id = r.officer_id
	WHERE g.started_at < $2 AND g.ended_at > $1 AND ($3::text[] IS NULL OR o.unit = ANY($3))
	UNION ALL
	SELECT r.id, i.number, d.serial, coalesce(o.badge || ' ' || o.name, ''), 'ended', r.ended_at, a.cleared_at
	FROM recordings r
	JOIN recording_incidents ri ON ri.recording_id = r.id AND ri.unlinked_at IS NULL
	JOIN incidents i ON i.id = ri.incident_id
	JOIN assignments a ON a.incident_id = i.id AND a.officer_id = r.officer_id
	JOIN devices d ON d.id = r.device_id
	LEFT JOIN officers o ON o.id = r.officer_id
	WHERE r.source = 'rtsp' AND r.ended_at IS NOT NULL AND r.ended_at > a.assigned_at
	  AND r.ended_at < coalesce(a.cleared_at, now()) - interval '1 minute'
	  AND r.ended_at >= $1 AND r.ended_at < $2 AND ($3::text[] IS NULL OR o.unit = ANY($3))
	  AND NOT EXISTS (SELECT 1 FROM recordings r2 WHERE r2.officer_id = r.officer_id AND r2.started_at >= r.ended_at
	                  AND r2.started_at < coalesce(a.cleared_at, now()))
	ORDER BY 6 DESC LIMIT 500`

// incidentCoverage lists the incidents of the period with their coverage,
// the least covered first.
func (db *DB) incidentCoverage(ctx context.Context, from, to time.Time, units []string) ([]IncidentCoverage, error) {
	rows, err := db.pool.Query(ctx, dashboardIncidentsSQL, from, to, units)
	if err != nil {
		return nil, mapErr("dashboard incidents", err)
	}
	incs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (IncidentCoverage, error) {
		var c IncidentCoverage
		err := r.Scan(&c.ID, &c.Number, &c.Type, &c.Address, &c.OpenedAt, &c.Status,
			&c.AssignedOfficers, &c.FilmingOfficers, &c.Recordings, &c.Missing)
		switch {
		case c.Recordings == 0:
			c.Coverage = CoverageNone
		case c.FilmingOfficers < c.AssignedOfficers:
			c.Coverage = CoveragePartial
		default:
			c.Coverage = CoverageComplete
		}
		return c, err
	})
	if err != nil {
		return nil, mapErr("dashboard incidents", err)
	}
	rank := map[string]int{CoverageNone: 0, CoveragePartial: 1, CoverageComplete: 2}
	slices.SortStableFunc(incs, func(a, b IncidentCoverage) int { return rank[a.Coverage] - rank[b.Coverage] })
	return incs, nil
}
