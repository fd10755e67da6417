package index

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Recording statuses.
const (
	RecordingLive         = "live"
	RecordingReconnecting = "reconnecting"
	RecordingEnded        = "ended"
)

// Recording sources.
const (
	SourceRTSP   = "rtsp"
	SourceGB     = "gb28181" // a GB/T 28181 device's real-time stream
	SourceUpload = "upload"
)

// Recording is one continuous stream from one device (continued across
// short reconnects), or one uploaded file, bound to the officer who wore the
// device.
type Recording struct {
	ID            uuid.UUID  `json:"id"`
	DeviceID      uuid.UUID  `json:"device_id"` // uuid.Nil: none (an upload from a phone)
	DeviceSerial  string     `json:"device_serial"`
	OfficerID     *uuid.UUID `json:"officer_id"` // nil: unbound
	OfficerName   string     `json:"officer_name,omitempty"`
	OfficerBadge  string     `json:"officer_badge,omitempty"`
	Source        string     `json:"source"`
	Status        string     `json:"status"`
	StartedAt     time.Time  `json:"started_at"`
	EndedAt       *time.Time `json:"ended_at"`
	VideoCodec    string     `json:"video_codec"`
	AudioCodec    string     `json:"audio_codec"`
	Width         int        `json:"width"`
	Height        int        `json:"height"`
	ClockOffsetMS *float64   `json:"clock_offset_ms"` // camera clock minus server clock
	RemoteAddr    string     `json:"remote_addr,omitempty"`
	NodeID        string     `json:"node_id,omitempty"` // the node holding a live recording ("" for uploads and older rows)
}

// Gap is media missing inside a recording.
type Gap struct {
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	Reason    string    `json:"reason"`
}

// Link methods.
const (
	LinkAuto   = "auto"
	LinkManual = "manual"
)

// IncidentLink links a recording to an incident. Ended links are kept
// (UnlinkedAt set) as history.
type IncidentLink struct {
	ID             uuid.UUID  `json:"id"`
	RecordingID    uuid.UUID  `json:"recording_id"`
	IncidentID     uuid.UUID  `json:"incident_id"`
	IncidentNumber string     `json:"incident_number"`
	Method         string     `json:"method"`
	LinkedBy       string     `json:"linked_by"`
	LinkedAt       time.Time  `json:"linked_at"`
	UnlinkedAt     *time.Time `json:"unlinked_at"`
	UnlinkedBy     *string    `json:"unlinked_by"`
	Reason         string     `json:"reason"`
}

// Binding is one change of a recording's officer.
type Binding struct {
	OfficerID *uuid.UUID `json:"officer_id"`
	ChangedBy string     `json:"changed_by"`
	ChangedAt time.Time  `json:"changed_at"`
	Reason    string     `json:"reason"`
}

const recCols = `r.id, coalesce(r.device_id, '00000000-0000-0000-0000-000000000000'::uuid), coalesce(d.serial, ''), r.officer_id, coalesce(o.name, ''), coalesce(o.badge, ''),
	r.source, r.status, r.started_at, r.ended_at, r.video_codec, r.audio_codec, r.width, r.height,
	r.clock_offset_ms, r.remote_addr, coalesce(r.node_id, '')`

const recFrom = ` FROM recordings r LEFT JOIN devices d ON d.id = r.device_id LEFT JOIN officers o ON o.id = r.officer_id `

func scanRecording(row pgx.Row) (Recording, error) {
	var r Recording
	err := row.Scan(&r.ID, &r.DeviceID, &r.DeviceSerial, &r.OfficerID, &r.OfficerName, &r.OfficerBadge,
		&r.Source, &r.Status, &r.StartedAt, &r.EndedAt, &r.VideoCodec, &r.AudioCodec, &r.Width, &r.Height,
		&r.ClockOffsetMS, &r.RemoteAddr, &r.NodeID)
	return r, err
}

// CreateRecording stores a new recording. ID is generated (UUIDv7) when
// nil; Status defaults to live and Source to rtsp. When the recording is
// bound to an officer the binding is kept as its first history row, made by
// `by` (the check-out rule, or the uploading user). A device holds one live
// recording at a time, over every node: a second is a *DeviceLiveError
// (ErrDeviceLive) naming the live one and its node; the same recording
// written again is ErrConflict.
func (db *DB) CreateRecording(ctx context.Context, r Recording, by string) (Recording, error) {
	if r.ID == uuid.Nil {
		r.ID = uuid.Must(uuid.NewV7())
	}
	if r.Source == "" {
		r.Source = SourceRTSP
	}
	if r.Status == "" {
		r.Status = RecordingLive
	}
	r.StartedAt = db.stamp(r.StartedAt)
	if by == "" {
		by = "system"
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error { return insertRecording(ctx, tx, r, by) })
	if constraintOf(err) == "recordings_one_live_per_device" {
		if live := db.liveOfDevice(ctx, r.DeviceID); live.Recording != r.ID {
			return Recording{}, fmt.Errorf("create recording: %w", live)
		}
		// this very recording, written by an earlier try
	}
	if err != nil {
		return Recording{}, mapErr("create recording", err)
	}
	return db.Recording(ctx, r.ID)
}

// insertRecording writes a recording (and its first binding) in tx.
func insertRecording(ctx context.Context, tx pgx.Tx, r Recording, by string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO recordings (id, device_id, officer_id, source, status, started_at, ended_at,
		video_codec, audio_codec, width, height, clock_offset_ms, remote_addr, node_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, nullif($14, ''))`,
		r.ID, nullUUID(r.DeviceID), r.OfficerID, r.Source, r.Status, r.StartedAt, r.EndedAt,
		r.VideoCodec, r.AudioCodec, r.Width, r.Height, r.ClockOffsetMS, r.RemoteAddr, r.NodeID); err != nil {
		return err
	}
	if r.OfficerID != nil {
		_, err := tx.Exec(ctx, `INSERT INTO recording_bindings (id, recording_id, officer_id, changed_by, reason)
			VALUES ($1, $2, $3, $4, 'bound at start')`, uuid.Must(uuid.NewV7()), r.ID, r.OfficerID, by)
		return err
	}
	return nil
}

// Recording returns one recording.
func (db *DB) Recording(ctx context.Context, id uuid.UUID) (Recording, error) {
	r, err := scanRecording(db.pool.QueryRow(ctx, `SELECT `+recCols+recFrom+`WHERE r.id = $1`, id))
	return r, mapErr("recording "+id.String(), err)
}

// RecordingFilter selects recordings; zero fields match everything.
type RecordingFilter struct {
	Status    string     // live, reconnecting, ended; "active" = not ended
	OfficerID *uuid.UUID //
	DeviceID  *uuid.UUID //
	Unbound   bool       // only recordings with no officer
	From, To  time.Time  // overlapping [From, To)
	Limit     int        // default 200
	Scope     *Scope     // only the recordings in this scope (nil: no restriction, for the platform's own use)
}

// Recordings lists recordings, newest first.
func (db *DB) Recordings(ctx context.Context, f RecordingFilter) ([]Recording, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	switch f.Status {
	case "":
	case "active":
		where = append(where, "r.status <> 'ended'")
	default:
		where = append(where, "r.status = "+arg(f.Status))
	}
	if f.OfficerID != nil {
		where = append(where, "r.officer_id = "+arg(*f.OfficerID))
	}
	if f.DeviceID != nil {
		where = append(where, "r.device_id = "+arg(*f.DeviceID))
	}
	if f.Unbound {
		where = append(where, "r.officer_id IS NULL")
	}
	if !f.From.IsZero() {
		where = append(where, "coalesce(r.ended_at, 'infinity') > "+arg(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "r.started_at < "+arg(f.To))
	}
	if f.Scope != nil {
		a := &sqlArgs{args: args}
		where = append(where, f.Scope.recordingSQL("r.id", "r.officer_id", a))
		args = a.args
	}
	if f.Limit <= 0 {
		f.Limit = 200
	}
	q := `SELECT ` + recCols + recFrom
	if len(where) > 0 {
		q += "WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY r.started_at DESC LIMIT " + arg(f.Limit)
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, mapErr("list recordings", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Recording, error) { return scanRecording(r) })
	return out, mapErr("list recordings", err)
}

// SetRecordingMedia records what a recording carries (after the camera's
// SDP, or a change of resolution).
func (db *DB) SetRecordingMedia(ctx context.Context, id uuid.UUID, videoCodec, audioCodec string, width, height int) error {
	tag, err := db.pool.Exec(ctx, `UPDATE recordings SET video_codec = $2, audio_codec = $3, width = $4, height = $5 WHERE id = $1`,
		id, videoCodec, audioCodec, width, height)
	return affected("set media of recording "+id.String(), tag.RowsAffected(), err)
}

// SetRecordingStatus moves a recording between live and reconnecting, and
// records where the camera connects from.
func (db *DB) SetRecordingStatus(ctx context.Context, id uuid.UUID, status, remoteAddr string) error {
	if status != RecordingLive && status != RecordingReconnecting {
		return &FieldError{Field: "status", Reason: "must be live or reconnecting"}
	}
	tag, err := db.pool.Exec(ctx, `UPDATE recordings SET status = $2, remote_addr = CASE WHEN $3 = '' THEN remote_addr ELSE $3 END
		WHERE id = $1 AND status <> 'ended'`, id, status, remoteAddr)
	return affected("set status of recording "+id.String(), tag.RowsAffected(), err)
}

// SetClockOffset records the measured camera-minus-server clock offset.
func (db *DB) SetClockOffset(ctx context.Context, id uuid.UUID, offset time.Duration) error {
	ms := float64(offset) / float64(time.Millisecond)
	tag, err := db.pool.Exec(ctx, `UPDATE recordings SET clock_offset_ms = $2 WHERE id = $1`, id, ms)
	return affected("set clock offset of recording "+id.String(), tag.RowsAffected(), err)
}

// EndRecording marks a recording ended at `at`. Ending an ended recording
// is a no-op.
func (db *DB) EndRecording(ctx context.Context, id uuid.UUID, at time.Time) error {
	at = db.stamp(at)
	tag, err := db.pool.Exec(ctx, `UPDATE recordings SET status = 'ended', ended_at = greatest($2, started_at)
		WHERE id = $1 AND status <> 'ended'`, id, at)
	if err == nil && tag.RowsAffected() == 0 {
		_, err = db.Recording(ctx, id)
		return err
	}
	return mapErr("end recording "+id.String(), err)
}

// AddGap records media missing inside a recording.
func (db *DB) AddGap(ctx context.Context, id uuid.UUID, g Gap) error {
	if g.Reason == "" {
		g.Reason = "reconnect"
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO recording_gaps (recording_id, started_at, ended_at, reason) VALUES ($1, $2, $3, $4)
		ON CONFLICT (recording_id, started_at) DO UPDATE SET ended_at = greatest(recording_gaps.ended_at, excluded.ended_at)`,
		id, db.stamp(g.StartedAt), db.stamp(g.EndedAt), g.Reason)
	return mapErr("add gap to recording "+id.String(), err)
}

// Gaps returns a recording's gaps in time order.
func (db *DB) Gaps(ctx context.Context, id uuid.UUID) ([]Gap, error) {
	rows, err := db.pool.Query(ctx, `SELECT started_at, ended_at, reason FROM recording_gaps WHERE recording_id = $1 ORDER BY started_at`, id)
	if err != nil {
		return nil, mapErr("gaps of recording "+id.String(), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Gap])
	return out, mapErr("gaps of recording "+id.String(), err)
}

// ErrBindingChanged: the recording's officer is no longer the one the
// caller saw when it decided to bind (someone else bound it meanwhile).
// It is an ErrConflict too.
var ErrBindingChanged = errors.New("the recording's officer changed meanwhile")

// BindOfficerFrom binds a recording to an officer, as a compare-and-set:
// only while its officer is still previous (nil: unbound), the officer the
// caller saw and decided on. The change is kept in the binding history with
// who made it and why; a reason is required. An officer changed meanwhile
// is ErrBindingChanged (and ErrConflict); binding to the officer it already
// has is ErrConflict; an unknown recording or officer ErrNotFound. Who may
// bind or re-bind is the caller's rule (web).
func (db *DB) BindOfficerFrom(ctx context.Context, id uuid.UUID, previous *uuid.UUID, officerID uuid.UUID, by, reason string) (Recording, error) {
	what := "bind recording " + id.String()
	if strings.TrimSpace(by) == "" {
		return Recording{}, &FieldError{Field: "by", Reason: "required"}
	}
	if strings.TrimSpace(reason) == "" {
		return Recording{}, &FieldError{Field: "reason", Reason: "required to bind a recording to an officer"}
	}
	if previous != nil && *previous == officerID {
		return Recording{}, fmt.Errorf("%s: already bound to officer %s: %w", what, officerID, ErrConflict)
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE recordings SET officer_id = $2 WHERE id = $1 AND officer_id IS NOT DISTINCT FROM $3`,
			id, officerID, previous)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM recordings WHERE id = $1)`, id).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return pgx.ErrNoRows
			}
			return fmt.Errorf("%w (%w)", ErrBindingChanged, ErrConflict)
		}
		_, err = tx.Exec(ctx, `INSERT INTO recording_bindings (id, recording_id, officer_id, changed_by, reason) VALUES ($1, $2, $3, $4, $5)`,
			uuid.Must(uuid.NewV7()), id, officerID, by, reason)
		return err
	})
	if err != nil {
		return Recording{}, mapErr(what, err)
	}
	return db.Recording(ctx, id)
}

// Bindings returns the history of a recording's officer binding.
func (db *DB) Bindings(ctx context.Context, id uuid.UUID) ([]Binding, error) {
	rows, err := db.pool.Query(ctx, `SELECT officer_id, changed_by, changed_at, reason FROM recording_bindings
		WHERE recording_id = $1 ORDER BY changed_at, id`, id)
	if err != nil {
		return nil, mapErr("bindings of recording "+id.String(), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Binding])
	return out, mapErr("bindings of recording "+id.String(), err)
}

// AutoLinkRule names the automatic association rule in links it makes.
func AutoLinkRule(buffer time.Duration) string {
	return "assignment overlap ±" + buffer.String()
}

// autoLinkSQL links recordings to the incidents their officer was assigned
// to when the assignment window, widened by $1 on each side, overlaps the
// recording (a live one extends to now). An incident already linked, or
// unlinked by a person, is left alone: automatic linking never overrides a
// supervisor's decision.
const autoLinkSQL = `INSERT INTO recording_incidents (id, recording_id, incident_id, method, linked_by)
	SELECT DISTINCT ON (r.id, a.incident_id) gen_random_uuid(), r.id, a.incident_id, 'auto', $2
	FROM recordings r JOIN assignments a ON a.officer_id = r.officer_id
	WHERE %s
	  AND tstzrange(r.started_at, coalesce(r.ended_at, greatest(now(), r.started_at)), '[]')
	   && tstzrange(a.assigned_at - $1::interval, coalesce(a.cleared_at + $1::interval, 'infinity'), '[]')
	  AND NOT EXISTS (SELECT 1 FROM recording_incidents ri WHERE ri.recording_id = r.id AND ri.incident_id = a.incident_id
	                  AND (ri.unlinked_at IS NULL OR ri.unlinked_by IS DISTINCT FROM $2))
	ON CONFLICT DO NOTHING
	RETURNING id`

// AutoLink associates a recording with every incident its officer is
// assigned to over the recording's span widened by buffer, and returns the
// links it made.
func (db *DB) AutoLink(ctx context.Context, recordingID uuid.UUID, buffer time.Duration) ([]IncidentLink, error) {
	return db.autoLink(ctx, "r.id = $3", buffer, recordingID)
}

// AutoLinkOfficer does AutoLink for every recording of an officer (after a
// new assignment, which may concern a recording already running or ended).
func (db *DB) AutoLinkOfficer(ctx context.Context, officerID uuid.UUID, buffer time.Duration) ([]IncidentLink, error) {
	return db.autoLink(ctx, "r.officer_id = $3", buffer, officerID)
}

func (db *DB) autoLink(ctx context.Context, cond string, buffer time.Duration, id uuid.UUID) ([]IncidentLink, error) {
	rows, err := db.pool.Query(ctx, fmt.Sprintf(autoLinkSQL, cond), buffer, AutoLinkRule(buffer), id)
	if err != nil {
		return nil, mapErr("auto-link "+id.String(), err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, mapErr("auto-link "+id.String(), err)
	}
	out := make([]IncidentLink, 0, len(ids))
	for _, lid := range ids {
		l, err := scanLink(db.pool.QueryRow(ctx, `SELECT `+linkCols+linkFrom+`WHERE ri.id = $1`, lid))
		if err != nil {
			return nil, mapErr("auto-link "+id.String(), err)
		}
		out = append(out, l)
	}
	return out, nil
}

const linkCols = `ri.id, ri.recording_id, ri.incident_id, i.number, ri.method, ri.linked_by, ri.linked_at, ri.unlinked_at, ri.unlinked_by, ri.reason`
const linkFrom = ` FROM recording_incidents ri JOIN incidents i ON i.id = ri.incident_id `

func scanLink(row pgx.Row) (IncidentLink, error) {
	var l IncidentLink
	err := row.Scan(&l.ID, &l.RecordingID, &l.IncidentID, &l.IncidentNumber, &l.Method, &l.LinkedBy, &l.LinkedAt, &l.UnlinkedAt, &l.UnlinkedBy, &l.Reason)
	return l, err
}

// LinkIncident links a recording to an incident by hand. An active link is
// ErrConflict; an unknown recording or incident ErrNotFound.
func (db *DB) LinkIncident(ctx context.Context, recordingID, incidentID uuid.UUID, by, reason string) (IncidentLink, error) {
	if strings.TrimSpace(by) == "" {
		return IncidentLink{}, &FieldError{Field: "by", Reason: "required"}
	}
	id := uuid.Must(uuid.NewV7())
	_, err := db.pool.Exec(ctx, `INSERT INTO recording_incidents (id, recording_id, incident_id, method, linked_by, reason)
		VALUES ($1, $2, $3, 'manual', $4, $5)`, id, recordingID, incidentID, by, reason)
	if err != nil {
		return IncidentLink{}, mapErr("link recording "+recordingID.String()+" to incident "+incidentID.String(), err)
	}
	l, err := scanLink(db.pool.QueryRow(ctx, `SELECT `+linkCols+linkFrom+`WHERE ri.id = $1`, id))
	return l, mapErr("link recording", err)
}

// UnlinkIncident ends a recording's active link to an incident (kept as
// history). No active link is ErrNotFound.
func (db *DB) UnlinkIncident(ctx context.Context, recordingID, incidentID uuid.UUID, by, reason string) (IncidentLink, error) {
	if strings.TrimSpace(by) == "" {
		return IncidentLink{}, &FieldError{Field: "by", Reason: "required"}
	}
	if strings.TrimSpace(reason) == "" {
		return IncidentLink{}, &FieldError{Field: "reason", Reason: "required to unlink evidence"}
	}
	var id uuid.UUID
	err := db.pool.QueryRow(ctx, `UPDATE recording_incidents SET unlinked_at = now(), unlinked_by = $3,
		reason = CASE WHEN reason = '' THEN $4 ELSE reason || '; ' || $4 END
		WHERE recording_id = $1 AND incident_id = $2 AND unlinked_at IS NULL RETURNING id`,
		recordingID, incidentID, by, reason).Scan(&id)
	if err != nil {
		return IncidentLink{}, mapErr("unlink recording "+recordingID.String()+" from incident "+incidentID.String(), err)
	}
	l, err := scanLink(db.pool.QueryRow(ctx, `SELECT `+linkCols+linkFrom+`WHERE ri.id = $1`, id))
	return l, mapErr("unlink recording", err)
}

// RecordingLinks returns a recording's incident links, the ended ones too
// when history is set.
func (db *DB) RecordingLinks(ctx context.Context, recordingID uuid.UUID, history bool) ([]IncidentLink, error) {
	q := `SELECT ` + linkCols + linkFrom + `WHERE ri.recording_id = $1`
	if !history {
		q += ` AND ri.unlinked_at IS NULL`
	}
	rows, err := db.pool.Query(ctx, q+` ORDER BY ri.linked_at, ri.id`, recordingID)
	if err != nil {
		return nil, mapErr("links of recording "+recordingID.String(), err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (IncidentLink, error) { return scanLink(r) })
	return out, mapErr("links of recording "+recordingID.String(), err)
}

// IncidentRecordings returns the recordings linked (now) to an incident,
// with their links, earliest first.
func (db *DB) IncidentRecordings(ctx context.Context, incidentID uuid.UUID) ([]Recording, []IncidentLink, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+recCols+recFrom+`JOIN recording_incidents ri ON ri.recording_id = r.id
		WHERE ri.incident_id = $1 AND ri.unlinked_at IS NULL ORDER BY r.started_at, r.id`, incidentID)
	if err != nil {
		return nil, nil, mapErr("recordings of incident "+incidentID.String(), err)
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Recording, error) { return scanRecording(r) })
	if err != nil {
		return nil, nil, mapErr("recordings of incident "+incidentID.String(), err)
	}
	rows, err = db.pool.Query(ctx, `SELECT `+linkCols+linkFrom+`WHERE ri.incident_id = $1 AND ri.unlinked_at IS NULL ORDER BY ri.linked_at`, incidentID)
	if err != nil {
		return nil, nil, mapErr("links of incident "+incidentID.String(), err)
	}
	links, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (IncidentLink, error) { return scanLink(r) })
	return recs, links, mapErr("links of incident "+incidentID.String(), err)
}

// affected maps an UPDATE that touched no row to ErrNotFound.
func affected(what string, n int64, err error) error {
	if err != nil {
		return mapErr(what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// nullUUID is NULL for uuid.Nil.
func nullUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}
