package index

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// EvidenceObject is one object in the bucket that holds (part of) a
// recording: an init or media segment, the upload original, the
// recording's seal, or an export package of an incident the recording is
// (or was) linked to.
type EvidenceObject struct {
	Kind      string // "init", "segment", "upload", "seal" or "export"
	Key       string
	VersionID string // "" for rows written before version IDs (the current version)
	// Shared: an export package of an incident another recording under an
	// active legal hold is (or was) linked to; releasing this recording's
	// hold must not lift the package's.
	Shared bool
}

// RecordingObjects lists every object of a recording, in kind and key
// order: the one index query for holding, releasing and checking a
// recording's evidence.
func (db *DB) RecordingObjects(ctx context.Context, recordingID uuid.UUID) ([]EvidenceObject, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT 'init', object_key, COALESCE(version_id, ''), false FROM init_segments WHERE recording_id = $1
		UNION ALL
		SELECT 'segment', object_key, COALESCE(version_id, ''), false FROM segments WHERE recording_id = $1
		UNION ALL
		SELECT 'upload', object_key, COALESCE(version_id, ''), false FROM uploads WHERE recording_id = $1
		UNION ALL
		SELECT 'seal', object_key, COALESCE(version_id, ''), false FROM seals WHERE recording_id = $1
		UNION ALL
		SELECT 'export', e.object_key, COALESCE(e.version_id, ''), EXISTS (
			SELECT 1 FROM recording_incidents o JOIN legal_holds h ON h.recording_id = o.recording_id AND h.released_at IS NULL
			WHERE o.incident_id = e.incident_id AND o.recording_id <> $1)
		FROM exports e
		WHERE e.status = 'ready' AND e.object_key IS NOT NULL
			AND e.incident_id IN (SELECT incident_id FROM recording_incidents WHERE recording_id = $1)
		ORDER BY 1, 2`, recordingID)
	if err != nil {
		return nil, mapErr("objects of "+recordingID.String(), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[EvidenceObject])
	return out, mapErr("objects of "+recordingID.String(), err)
}

// IncidentHeld reports whether a recording (ever) linked to the incident is
// under an active legal hold: its export packages are then held too.
func (db *DB) IncidentHeld(ctx context.Context, incidentID uuid.UUID) (bool, error) {
	var held bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM recording_incidents ri
		JOIN legal_holds h ON h.recording_id = ri.recording_id AND h.released_at IS NULL WHERE ri.incident_id = $1)`,
		incidentID).Scan(&held)
	return held, mapErr("holds of incident "+incidentID.String(), err)
}
