package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// InitSegment is one fMP4 init segment (ftyp+moov) of a recording: one per
// codec configuration, numbered from 0.
type InitSegment struct {
	RecordingID uuid.UUID `json:"recording_id"`
	N           int       `json:"n"`
	Key         string    `json:"key"`
	SHA256      []byte    `json:"sha256"`
	Size        int64     `json:"size"`
	IndexedAt   time.Time `json:"indexed_at"`
	VersionID   string    `json:"version_id,omitempty"` // the object's version in the bucket ("" for rows indexed before)
}

// Segment is one fMP4 media segment of a recording, in the object store,
// with its place in the recording's hash chain. Times are stored with
// microsecond precision (PostgreSQL timestamptz).
type Segment struct {
	RecordingID uuid.UUID     `json:"recording_id"`
	Seq         int64         `json:"seq"`
	InitN       int           `json:"init"`
	Key         string        `json:"key"`
	SHA256      []byte        `json:"sha256"`
	PrevChain   []byte        `json:"prev_chain"`
	Chain       []byte        `json:"chain"`
	Size        int64         `json:"size"`
	StartedAt   time.Time     `json:"started_at"`
	EndedAt     time.Time     `json:"ended_at"`
	StartDTS    time.Duration `json:"start_dts_ns"`
	EndDTS      time.Duration `json:"end_dts_ns"`
	Gap         bool          `json:"gap"`
	Recovered   bool          `json:"recovered"`
	SealedAt    time.Time     `json:"sealed_at"`
	IndexedAt   time.Time     `json:"indexed_at"`
	VersionID   string        `json:"version_id,omitempty"` // the object's version in the bucket ("" for rows indexed before)
}

// LegalHold is a hold placed on a recording; released ones are history.
type LegalHold struct {
	ID            uuid.UUID  `json:"id"`
	RecordingID   uuid.UUID  `json:"recording_id"`
	Case          string     `json:"case"`
	HeldBy        string     `json:"held_by"`
	Reason        string     `json:"reason"`
	HeldAt        time.Time  `json:"held_at"`
	ReleasedAt    *time.Time `json:"released_at"`
	ReleasedBy    *string    `json:"released_by"`
	ReleaseReason *string    `json:"release_reason"`
}

// RecordingSpan is a recording with the time its archived segments cover.
type RecordingSpan struct {
	RecordingID uuid.UUID `json:"recording_id"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Segments    int64     `json:"segments"`
}

// PutInitSegment records an init segment. Recording the same one again is a
// no-op (the uploader retries after crashes); a different one under the same
// number is ErrConflict and changes nothing.
func (db *DB) PutInitSegment(ctx context.Context, s InitSegment) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO init_segments (recording_id, n, object_key, sha256, size, version_id)
		VALUES ($1, $2, $3, $4, $5, NULLIF($6, '')) ON CONFLICT DO NOTHING`, s.RecordingID, s.N, s.Key, s.SHA256, s.Size, s.VersionID)
	if err != nil {
		return mapErr(fmt.Sprintf("index init segment %d of %s", s.N, s.RecordingID), err)
	}
	var sha []byte
	var key string
	err = db.pool.QueryRow(ctx, `SELECT sha256, object_key FROM init_segments WHERE recording_id = $1 AND n = $2`,
		s.RecordingID, s.N).Scan(&sha, &key)
	if err != nil {
		return mapErr(fmt.Sprintf("index init segment %d of %s", s.N, s.RecordingID), err)
	}
	if !bytes.Equal(sha, s.SHA256) || key != s.Key {
		return fmt.Errorf("index init segment %d of %s: %w: indexed with another SHA-256 or key", s.N, s.RecordingID, ErrConflict)
	}
	return nil
}

// PutSegment records a media segment, idempotently: the same segment again
// is a no-op, a different one under the same sequence number is ErrConflict.
func (db *DB) PutSegment(ctx context.Context, s Segment) error {
	what := fmt.Sprintf("index segment %d of %s", s.Seq, s.RecordingID)
	_, err := db.pool.Exec(ctx, `INSERT INTO segments (recording_id, seq, init_n, object_key, sha256, prev_chain, chain,
		size, started_at, ended_at, start_dts_ns, end_dts_ns, gap, recovered, sealed_at, version_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULLIF($16, '')) ON CONFLICT DO NOTHING`,
		s.RecordingID, s.Seq, s.InitN, s.Key, s.SHA256, s.PrevChain, s.Chain, s.Size, s.StartedAt, s.EndedAt,
		int64(s.StartDTS), int64(s.EndDTS), s.Gap, s.Recovered, s.SealedAt, s.VersionID)
	if err != nil {
		return mapErr(what, err)
	}
	var sha, chain []byte
	err = db.pool.QueryRow(ctx, `SELECT sha256, chain FROM segments WHERE recording_id = $1 AND seq = $2`,
		s.RecordingID, s.Seq).Scan(&sha, &chain)
	if err != nil {
		return mapErr(what, err)
	}
	if !bytes.Equal(sha, s.SHA256) || !bytes.Equal(chain, s.Chain) {
		return fmt.Errorf("%s: %w: indexed with another SHA-256 or chain", what, ErrConflict)
	}
	// a recording ended after a crash (at its last segment indexed then)
	// covers the segments the spool still held
	_, err = db.pool.Exec(ctx, `UPDATE recordings SET ended_at = $2 WHERE id = $1 AND status = 'ended' AND ended_at < $2`,
		s.RecordingID, s.EndedAt)
	return mapErr(what, err)
}

const segmentCols = `recording_id, seq, init_n, object_key, sha256, prev_chain, chain, size, started_at, ended_at,
	start_dts_ns, end_dts_ns, gap, recovered, sealed_at, indexed_at, COALESCE(version_id, '') AS version_id`

func scanSegments(rows pgx.Rows) ([]Segment, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Segment, error) {
		var s Segment
		var start, end int64
		err := r.Scan(&s.RecordingID, &s.Seq, &s.InitN, &s.Key, &s.SHA256, &s.PrevChain, &s.Chain, &s.Size,
			&s.StartedAt, &s.EndedAt, &start, &end, &s.Gap, &s.Recovered, &s.SealedAt, &s.IndexedAt, &s.VersionID)
		s.StartDTS, s.EndDTS = time.Duration(start), time.Duration(end)
		return s, err
	})
}

// Segments returns every indexed segment of a recording in sequence order.
func (db *DB) Segments(ctx context.Context, recordingID uuid.UUID) ([]Segment, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+segmentCols+` FROM segments WHERE recording_id = $1 ORDER BY seq`, recordingID)
	if err != nil {
		return nil, mapErr("segments of "+recordingID.String(), err)
	}
	out, err := scanSegments(rows)
	return out, mapErr("segments of "+recordingID.String(), err)
}

// SegmentsInRange returns the segments of a recording whose wall-clock span
// overlaps [from, to), in sequence order.
func (db *DB) SegmentsInRange(ctx context.Context, recordingID uuid.UUID, from, to time.Time) ([]Segment, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+segmentCols+` FROM segments
		WHERE recording_id = $1 AND ended_at > $2 AND started_at < $3 ORDER BY seq`, recordingID, from, to)
	if err != nil {
		return nil, mapErr("segments of "+recordingID.String(), err)
	}
	out, err := scanSegments(rows)
	return out, mapErr("segments of "+recordingID.String(), err)
}

const initCols = `recording_id, n, object_key, sha256, size, indexed_at, COALESCE(version_id, '') AS version_id`

// InitSegments returns the init segments of a recording in order.
func (db *DB) InitSegments(ctx context.Context, recordingID uuid.UUID) ([]InitSegment, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+initCols+` FROM init_segments WHERE recording_id = $1 ORDER BY n`, recordingID)
	if err != nil {
		return nil, mapErr("init segments of "+recordingID.String(), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[InitSegment])
	return out, mapErr("init segments of "+recordingID.String(), err)
}

// ArchivedRecordings lists every recording that has archived objects:
// segments, or an upload's original.
func (db *DB) ArchivedRecordings(ctx context.Context) ([]uuid.UUID, error) {
	rows, err := db.pool.Query(ctx, `SELECT recording_id FROM init_segments UNION SELECT recording_id FROM segments
		UNION SELECT recording_id FROM uploads WHERE recording_id IS NOT NULL ORDER BY 1`)
	if err != nil {
		return nil, mapErr("archived recordings", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	return out, mapErr("archived recordings", err)
}

// RecordingsOfIncident returns the recordings linked (now) to an incident
// that have archived segments overlapping [from, to), with the span those
// segments cover, earliest first.
func (db *DB) RecordingsOfIncident(ctx context.Context, incidentID uuid.UUID, from, to time.Time) ([]RecordingSpan, error) {
	rows, err := db.pool.Query(ctx, `SELECT s.recording_id, min(s.started_at), max(s.ended_at), count(*)
		FROM recording_incidents ri JOIN segments s ON s.recording_id = ri.recording_id
		WHERE ri.incident_id = $1 AND ri.unlinked_at IS NULL AND s.ended_at > $2 AND s.started_at < $3
		GROUP BY s.recording_id ORDER BY 2`, incidentID, from, to)
	if err != nil {
		return nil, mapErr("recordings of incident "+incidentID.String(), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[RecordingSpan])
	return out, mapErr("recordings of incident "+incidentID.String(), err)
}

const holdCols = `id, recording_id, case_ref, held_by, reason, held_at, released_at, released_by, release_reason`

// PlaceHold puts a recording under legal hold. A recording already held is
// ErrConflict; an unknown one ErrNotFound.
func (db *DB) PlaceHold(ctx context.Context, recordingID uuid.UUID, by, caseRef, reason string) (LegalHold, error) {
	if strings.TrimSpace(by) == "" {
		return LegalHold{}, invalid("by", "required: who places the hold")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return LegalHold{}, err
	}
	rows, err := db.pool.Query(ctx, `INSERT INTO legal_holds (id, recording_id, case_ref, held_by, reason, held_at)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+holdCols, id, recordingID, caseRef, by, reason, db.now())
	if err != nil {
		return LegalHold{}, mapErr("place legal hold on "+recordingID.String(), err)
	}
	h, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[LegalHold])
	if err != nil && constraintOf(err) == "legal_holds_active" {
		return LegalHold{}, fmt.Errorf("place legal hold on %s: %w: already held", recordingID, ErrConflict)
	}
	return h, mapErr("place legal hold on "+recordingID.String(), err)
}

// ReleaseHold ends the active hold of a recording, recording who released
// it and why (both required). No active hold is ErrNotFound.
func (db *DB) ReleaseHold(ctx context.Context, recordingID uuid.UUID, by, reason string) (LegalHold, error) {
	switch {
	case strings.TrimSpace(by) == "":
		return LegalHold{}, invalid("by", "required: who releases the hold")
	case strings.TrimSpace(reason) == "":
		return LegalHold{}, invalid("reason", "required: why the hold is released")
	}
	rows, err := db.pool.Query(ctx, `UPDATE legal_holds SET released_at = $2, released_by = $3, release_reason = $4
		WHERE recording_id = $1 AND released_at IS NULL RETURNING `+holdCols, recordingID, db.now(), by, reason)
	if err != nil {
		return LegalHold{}, mapErr("release legal hold on "+recordingID.String(), err)
	}
	h, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[LegalHold])
	if errors.Is(err, pgx.ErrNoRows) {
		return LegalHold{}, fmt.Errorf("release legal hold on %s: no active hold: %w", recordingID, ErrNotFound)
	}
	return h, mapErr("release legal hold on "+recordingID.String(), err)
}

// Held reports whether a recording is under legal hold now.
func (db *DB) Held(ctx context.Context, recordingID uuid.UUID) (bool, error) {
	var held bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM legal_holds WHERE recording_id = $1 AND released_at IS NULL)`,
		recordingID).Scan(&held)
	return held, mapErr("legal hold of "+recordingID.String(), err)
}

// Holds returns the hold history of a recording, oldest first.
func (db *DB) Holds(ctx context.Context, recordingID uuid.UUID) ([]LegalHold, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+holdCols+` FROM legal_holds WHERE recording_id = $1 ORDER BY held_at, id`, recordingID)
	if err != nil {
		return nil, mapErr("legal holds of "+recordingID.String(), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[LegalHold])
	return out, mapErr("legal holds of "+recordingID.String(), err)
}

// Segment returns one segment of a recording.
func (db *DB) Segment(ctx context.Context, recordingID uuid.UUID, seq int64) (Segment, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+segmentCols+` FROM segments WHERE recording_id = $1 AND seq = $2`, recordingID, seq)
	if err != nil {
		return Segment{}, mapErr("segment", err)
	}
	out, err := scanSegments(rows)
	if err == nil && len(out) == 0 {
		err = pgx.ErrNoRows
	}
	if err != nil {
		return Segment{}, mapErr(fmt.Sprintf("segment %d of %s", seq, recordingID), err)
	}
	return out[0], nil
}

// SegmentAt returns the segment of a recording that holds the wall-clock
// instant at, or the first one after it (at fell in a gap): one index
// lookup, no scan.
func (db *DB) SegmentAt(ctx context.Context, recordingID uuid.UUID, at time.Time) (Segment, error) {
	// two index probes (segments_time): the last segment starting at or
	// before the instant, if it still runs then; else the next one
	rows, err := db.pool.Query(ctx, `SELECT `+segmentCols+` FROM (
		(SELECT `+segmentCols+`, 0 AS pref FROM segments WHERE recording_id = $1 AND started_at <= $2 ORDER BY started_at DESC LIMIT 1)
		UNION ALL
		(SELECT `+segmentCols+`, 1 FROM segments WHERE recording_id = $1 AND started_at > $2 ORDER BY started_at LIMIT 1)) c
		WHERE c.pref = 1 OR c.ended_at > $2 ORDER BY c.pref LIMIT 1`, recordingID, at)
	if err != nil {
		return Segment{}, mapErr("segment at", err)
	}
	out, err := scanSegments(rows)
	if err == nil && len(out) == 0 {
		err = pgx.ErrNoRows
	}
	if err != nil {
		return Segment{}, mapErr(fmt.Sprintf("segment of %s at %s", recordingID, at.Format(time.RFC3339)), err)
	}
	return out[0], nil
}

// InitSegment returns one init segment of a recording.
func (db *DB) InitSegment(ctx context.Context, recordingID uuid.UUID, n int) (InitSegment, error) {
	var s InitSegment
	err := db.pool.QueryRow(ctx, `SELECT `+initCols+` FROM init_segments WHERE recording_id = $1 AND n = $2`, recordingID, n).
		Scan(&s.RecordingID, &s.N, &s.Key, &s.SHA256, &s.Size, &s.IndexedAt, &s.VersionID)
	return s, mapErr(fmt.Sprintf("init segment %d of %s", n, recordingID), err)
}
