package index

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// AuditedRecording is a recording the audit trail names: the first event
// that does.
type AuditedRecording struct {
	RecordingID uuid.UUID
	Seq         int64
	Action      string
}

// AuditedRecordingsMissing lists the recordings that audit events name
// (an upload stored, a seal written, a view, a hold) and the index does
// not hold, each with the first event naming it. The audit trail is
// anchored by the checkpoints, so a recording whose rows were deleted
// stays named here unless the trail is rewritten too (which the
// checkpoints show).
func (db *DB) AuditedRecordingsMissing(ctx context.Context) ([]AuditedRecording, error) {
	rows, err := db.pool.Query(ctx, `SELECT DISTINCT ON (a.recording_id) a.recording_id, a.seq, a.action
		FROM audit_events a
		WHERE a.recording_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.id = a.recording_id)
		ORDER BY a.recording_id, a.seq`)
	if err != nil {
		return nil, mapErr("recordings named by the audit trail", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[AuditedRecording])
	return out, mapErr("recordings named by the audit trail", err)
}
