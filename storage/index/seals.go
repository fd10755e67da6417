package index

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ActionSealed is the audit action of a recording's seal written to the
// bucket (details: its key and version).
const ActionSealed = "recording.sealed"

// ChainHead is a recording's latest indexed segment.
type ChainHead struct {
	RecordingID uuid.UUID
	Seq         int64
	Chain       []byte
}

// UnsealedHeads returns, for every live-archived recording not sealed yet
// (not ended, or ended without a recording.sealed event), its latest
// indexed segment, in recording order. Recordings with no segment yet are
// left out: there is nothing of theirs to anchor.
func (db *DB) UnsealedHeads(ctx context.Context) ([]ChainHead, error) {
	rows, err := db.pool.Query(ctx, `SELECT r.id, s.seq, s.chain FROM recordings r
		JOIN LATERAL (SELECT seq, chain FROM segments WHERE recording_id = r.id ORDER BY seq DESC LIMIT 1) s ON true
		WHERE r.source = 'rtsp' AND (r.status <> 'ended' OR NOT EXISTS (SELECT 1 FROM audit_events a
			WHERE a.recording_id = r.id AND a.action = $1))
		ORDER BY r.id`, ActionSealed)
	if err != nil {
		return nil, mapErr("unsealed recordings", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ChainHead])
	return out, mapErr("unsealed recordings", err)
}

// EndedUnsealed lists the ended live-archived recordings with segments and
// no recording.sealed event.
func (db *DB) EndedUnsealed(ctx context.Context) ([]uuid.UUID, error) {
	rows, err := db.pool.Query(ctx, `SELECT r.id FROM recordings r
		WHERE r.source = 'rtsp' AND r.status = 'ended' AND EXISTS (SELECT 1 FROM segments s WHERE s.recording_id = r.id)
		  AND NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.recording_id = r.id AND a.action = $1)
		ORDER BY r.id`, ActionSealed)
	if err != nil {
		return nil, mapErr("ended unsealed recordings", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	return out, mapErr("ended unsealed recordings", err)
}

// EndedArchived lists the live-archived recordings with segments that
// ended before `before`.
func (db *DB) EndedArchived(ctx context.Context, before time.Time) ([]uuid.UUID, error) {
	rows, err := db.pool.Query(ctx, `SELECT r.id FROM recordings r
		WHERE r.source = 'rtsp' AND r.status = 'ended' AND r.ended_at < $1
		  AND EXISTS (SELECT 1 FROM segments s WHERE s.recording_id = r.id) ORDER BY r.id`, before)
	if err != nil {
		return nil, mapErr("ended recordings", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	return out, mapErr("ended recordings", err)
}

// SealAudited reports whether a recording's seal is in the audit trail.
func (db *DB) SealAudited(ctx context.Context, rec uuid.UUID) (bool, error) {
	var ok bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_events WHERE recording_id = $1 AND action = $2)`,
		rec, ActionSealed).Scan(&ok)
	return ok, mapErr("seal of "+rec.String()+" audited", err)
}

// AuditHead is the audit chain's newest event: its sequence number and
// hash (0 and nil when the trail is empty).
func (db *DB) AuditHead(ctx context.Context) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := db.pool.QueryRow(ctx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, nil
	}
	return seq, hash, mapErr("audit head", err)
}

// AuditHash is the stored hash of audit event seq; ErrNotFound when the
// trail has no such event.
func (db *DB) AuditHash(ctx context.Context, seq int64) ([]byte, error) {
	var hash []byte
	err := db.pool.QueryRow(ctx, `SELECT hash FROM audit_events WHERE seq = $1`, seq).Scan(&hash)
	return hash, mapErr(fmt.Sprintf("audit event %d", seq), err)
}
