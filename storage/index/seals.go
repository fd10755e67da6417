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
// (live, or ended without a row in seals), its latest indexed segment, in
// recording order. Recordings with no segment yet are left out: there is
// nothing of theirs to anchor. It reads the partial index
// recordings_unsealed (migration 010), not every recording ever made.
func (db *DB) UnsealedHeads(ctx context.Context) ([]ChainHead, error) {
	rows, err := db.pool.Query(ctx, `SELECT r.id, s.seq, s.chain FROM recordings r
		JOIN LATERAL (SELECT seq, chain FROM segments WHERE recording_id = r.id ORDER BY seq DESC LIMIT 1) s ON true
		WHERE r.source = 'rtsp' AND NOT r.sealed
		ORDER BY r.id`)
	if err != nil {
		return nil, mapErr("unsealed recordings", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ChainHead])
	return out, mapErr("unsealed recordings", err)
}

// EndedUnsealed lists the ended live-archived recordings with segments and
// no seal (recordings_unsealed, as UnsealedHeads) that node may seal: its
// own, those of no node (before migration 016), and those of nodes whose
// heartbeat is older than deadAfter. A live node's ended recordings are
// left to it: its spool may still hold segments to upload, and a seal now
// would vouch for a truncated index. So is a recording continued on other
// nodes while a part but its last is not uploaded yet (PartsPending).
func (db *DB) EndedUnsealed(ctx context.Context, node string, deadAfter time.Duration) ([]uuid.UUID, error) {
	rows, err := db.pool.Query(ctx, `SELECT r.id FROM recordings r
		WHERE r.source = 'rtsp' AND NOT r.sealed AND r.status = 'ended'
		  AND EXISTS (SELECT 1 FROM segments s WHERE s.recording_id = r.id) AND NOT `+partsPendingSQL+`
		  AND (r.node_id IS NULL OR r.node_id = $1 OR NOT EXISTS (SELECT 1 FROM nodes n
		        WHERE n.id = r.node_id AND n.heartbeat_at >= now() - make_interval(secs => $2)))
		ORDER BY r.id`, node, deadAfter.Seconds())
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

// SealRow is a recording's seal as indexed: the object in the bucket and
// the version written.
type SealRow struct {
	RecordingID uuid.UUID
	Key         string
	VersionID   string // "" when the store returned none
	SHA256      []byte // nil for seals indexed from the audit trail (migration 010)
	SealedAt    time.Time
}

// RecordSeal indexes a recording's seal and appends its audit event
// (ActionSealed by the system; details: the seal's key and version_id and
// whatever else details holds), in one transaction, once: when the
// recording already has a seal row nothing is written and it returns
// false. The row marks the recording sealed (recordings.sealed), which
// takes it out of UnsealedHeads and EndedUnsealed.
func (db *DB) RecordSeal(ctx context.Context, s SealRow, details map[string]any) (bool, error) {
	what := "seal of " + s.RecordingID.String()
	if s.Key == "" {
		return false, invalid("key", "a seal needs its object key")
	}
	d := map[string]any{"key": s.Key, "version_id": s.VersionID}
	for k, v := range details {
		if _, ok := d[k]; !ok {
			d[k] = v
		}
	}
	rec := s.RecordingID
	e, det, err := db.newAudit(AuditEvent{Actor: "system", Role: "system", Action: ActionSealed,
		ObjectType: "recording", ObjectID: rec.String(), RecordingID: &rec, Details: d})
	if err != nil {
		return false, err
	}
	var added bool
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO seals (recording_id, object_key, version_id, sha256, sealed_at)
			VALUES ($1, $2, NULLIF($3, ''), $4, $5) ON CONFLICT (recording_id) DO NOTHING`,
			s.RecordingID, s.Key, s.VersionID, s.SHA256, e.At)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE recordings SET sealed = true WHERE id = $1 AND NOT sealed`, s.RecordingID); err != nil {
			return err
		}
		if added = tag.RowsAffected() == 1; !added {
			return nil
		}
		return appendAudit(ctx, tx, &e, det)
	})
	if err != nil {
		return false, mapErr(what, err)
	}
	return added, nil
}

// Seal is a recording's indexed seal; ErrNotFound when it has none.
func (db *DB) Seal(ctx context.Context, rec uuid.UUID) (SealRow, error) {
	rows, err := db.pool.Query(ctx, `SELECT recording_id, object_key, COALESCE(version_id, ''), sha256, sealed_at
		FROM seals WHERE recording_id = $1`, rec)
	if err != nil {
		return SealRow{}, mapErr("seal of "+rec.String(), err)
	}
	s, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[SealRow])
	return s, mapErr("seal of "+rec.String(), err)
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
