package index

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/bwcplatform/bwc/storage/internal/chain"
)

// A recording continued on another node (issue 16). The node holding a
// live recording writes, when its camera disconnects, until when it waits
// for it (SetHeldStatus: released_at, grace_until); within that window, or
// at once when the holding node is dead (its session advisory lock is
// free: the process is gone), another node the camera reconnects to takes
// the recording over (TakeOverRecording): one compare-and-set on node_id
// under the row's lock, so exactly one node wins. The new holder writes a
// part of its own (recording_parts; see storage/internal/chain for its
// segment numbers and chain). Every write of a holder is conditional on
// still holding the recording: the node that lost it gets ErrNotHeld and
// lets go.

// ErrNotHeld: the recording is held by another node (it took it over):
// the caller must not write it and lets go of it.
var ErrNotHeld = errors.New("the recording is held by another node")

// SetHeldStatus moves a recording node holds between live and
// reconnecting, and records where the camera connects from. Reconnecting
// records until when node waits for the camera (graceUntil): within it
// another node may take the recording over; live clears it. A recording
// another node holds is ErrNotHeld and is not changed; an ended one is left
// as it is (nil).
func (db *DB) SetHeldStatus(ctx context.Context, id uuid.UUID, node, status, remoteAddr string, graceUntil time.Time) error {
	what := "set status of recording " + id.String()
	var released, until *time.Time
	switch status {
	case RecordingLive:
	case RecordingReconnecting:
		now, g := db.now().UTC(), db.stamp(graceUntil)
		released, until = &now, &g
	default:
		return &FieldError{Field: "status", Reason: "must be live or reconnecting"}
	}
	tag, err := db.pool.Exec(ctx, `UPDATE recordings SET status = $3, remote_addr = CASE WHEN $4 = '' THEN remote_addr ELSE $4 END,
			released_at = $5, grace_until = $6
		WHERE id = $1 AND node_id IS NOT DISTINCT FROM $2 AND status <> 'ended'`, id, nullText(node), status, remoteAddr, released, until)
	if err != nil {
		return mapErr(what, err)
	}
	if tag.RowsAffected() == 0 {
		return db.heldBy(ctx, what, id, node)
	}
	return nil
}

// EndHeld ends a recording node holds at `at`. Ending an ended recording
// is a no-op; one another node holds is ErrNotHeld and stays live.
func (db *DB) EndHeld(ctx context.Context, id uuid.UUID, node string, at time.Time) error {
	what := "end recording " + id.String()
	tag, err := db.pool.Exec(ctx, `UPDATE recordings SET status = 'ended', ended_at = greatest($3, started_at), grace_until = NULL
		WHERE id = $1 AND node_id IS NOT DISTINCT FROM $2 AND status <> 'ended'`, id, nullText(node), db.stamp(at))
	if err != nil {
		return mapErr(what, err)
	}
	if tag.RowsAffected() == 0 {
		return db.heldBy(ctx, what, id, node)
	}
	return nil
}

// heldBy explains a conditional write that changed nothing: the recording
// is unknown (ErrNotFound), ended (nil), or another node's (ErrNotHeld).
func (db *DB) heldBy(ctx context.Context, what string, id uuid.UUID, node string) error {
	r, err := db.Recording(ctx, id)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case r.Status == RecordingEnded || r.NodeID == node:
		return nil
	}
	return fmt.Errorf("%s: %w: node %s holds it, not %s", what, ErrNotHeld, r.NodeID, node)
}

func nullText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// TakeOver asks to continue a device's live recording on Node.
type TakeOver struct {
	Device uuid.UUID
	Node   string        // the node the camera reconnected to
	Remote string        // where the camera connects from
	Grace  time.Duration // a dead holder's recording is taken while its last heartbeat is within it
}

// Continued is a recording taken over from another node.
type Continued struct {
	Recording Recording // as it is now: held by the new node, live
	Part      int       // the new holder's part (>= 1)
	From      string    // the node that held it
	GapFrom   time.Time // the last media the database knows of (the camera's disconnection, or the last archived segment's end)
}

// nodeLockFree is true when no session holds node $1's advisory lock
// (nodeLockSQL): its process is gone. pg_locks shows an int8 key as
// classid (high 32 bits) and objid (low 32 bits) with objsubid 1.
const nodeLockFree = `NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
	AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('bwc-node:' || $1, 0))`

// TakeOverRecording continues the device's live recording on t.Node when
// its holder let it go within its grace window (the camera disconnected
// from it, grace_until not passed), or when the holder is dead (its
// advisory lock is free) and was alive within t.Grace. In one transaction,
// under the recording's row lock (so that of nodes racing for it exactly
// one wins): node_id becomes t.Node, the part is recorded. The gap (from
// GapFrom to the first frame on the new node) is the caller's to record.
// When the recording cannot be taken the error is a *DeviceLiveError
// (ErrDeviceLive) naming it and its holder; with no live recording,
// ErrNotFound.
func (db *DB) TakeOverRecording(ctx context.Context, t TakeOver) (Continued, error) {
	if t.Node == "" {
		return Continued{}, invalid("node", "is empty")
	}
	var c Continued
	var refused *DeviceLiveError
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var id uuid.UUID
		var holder string
		var released bool
		var releasedAt *time.Time
		err := tx.QueryRow(ctx, `SELECT id, coalesce(node_id, ''), coalesce(grace_until > now(), false), released_at
			FROM recordings WHERE device_id = $1 AND source IN ('rtsp', 'gb28181') AND status <> 'ended' FOR UPDATE`, t.Device).
			Scan(&id, &holder, &released, &releasedAt)
		if err != nil {
			return err
		}
		refused = &DeviceLiveError{Device: t.Device, Recording: id, Node: holder}
		if holder == "" || holder == t.Node {
			return nil // a recording of no node, or this node's own: not a takeover
		}
		if !released {
			var dead bool
			err := tx.QueryRow(ctx, `SELECT `+nodeLockFree+` AND coalesce((SELECT heartbeat_at FROM nodes WHERE id = $1) > now() - make_interval(secs => $2), false)`,
				holder, t.Grace.Seconds()).Scan(&dead)
			if err != nil || !dead {
				return err
			}
		}
		var part int
		if err := tx.QueryRow(ctx, `INSERT INTO recording_parts (recording_id, part, node_id, from_node)
			SELECT $1, coalesce(max(part), 0) + 1, $2, $3 FROM recording_parts WHERE recording_id = $1 RETURNING part`,
			id, t.Node, holder).Scan(&part); err != nil {
			return err
		}
		if part > chain.MaxPart {
			return fmt.Errorf("recording %s: %w: %d parts already", id, ErrInvalid, chain.MaxPart)
		}
		var lastSeg *time.Time
		if err := tx.QueryRow(ctx, `SELECT max(ended_at) FROM segments WHERE recording_id = $1`, id).Scan(&lastSeg); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE recordings SET node_id = $2, status = 'live', grace_until = NULL, released_at = NULL,
			remote_addr = CASE WHEN $3 = '' THEN remote_addr ELSE $3 END WHERE id = $1`, id, t.Node, t.Remote); err != nil {
			return err
		}
		rec, err := scanRecording(tx.QueryRow(ctx, `SELECT `+recCols+recFrom+`WHERE r.id = $1`, id))
		if err != nil {
			return err
		}
		c = Continued{Recording: rec, Part: part, From: holder, GapFrom: rec.StartedAt}
		switch {
		case releasedAt != nil:
			c.GapFrom = *releasedAt
		case lastSeg != nil:
			c.GapFrom = *lastSeg
		}
		refused = nil
		return nil
	})
	if err != nil {
		return Continued{}, mapErr("take over the live recording of device "+t.Device.String(), err)
	}
	if refused != nil {
		return Continued{}, fmt.Errorf("take over: %w", refused)
	}
	return c, nil
}

// Part is a part of a recording continued on another node.
type Part struct {
	Part      int       `json:"part"`
	Node      string    `json:"node"`
	FromNode  string    `json:"from_node"`
	StartedAt time.Time `json:"started_at"`
}

// RecordingParts lists a recording's parts after the first, in order
// (none for a recording one node held throughout).
func (db *DB) RecordingParts(ctx context.Context, id uuid.UUID) ([]Part, error) {
	rows, err := db.pool.Query(ctx, `SELECT part, node_id, from_node, started_at FROM recording_parts WHERE recording_id = $1 ORDER BY part`, id)
	if err != nil {
		return nil, mapErr("parts of recording "+id.String(), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Part])
	return out, mapErr("parts of recording "+id.String(), err)
}

// partsPendingSQL is true while a part of recording r.id other than its
// last is not uploaded by the node that held it (PartsUploaded): the
// recording must not be sealed yet. A recording one node held has no part
// rows: never pending.
const partsPendingSQL = `EXISTS (SELECT 1 FROM (SELECT 0 AS part UNION ALL SELECT part FROM recording_parts WHERE recording_id = r.id) p
	WHERE p.part < (SELECT coalesce(max(part), 0) FROM recording_parts WHERE recording_id = r.id)
	  AND NOT EXISTS (SELECT 1 FROM recording_part_uploads u WHERE u.recording_id = r.id AND u.part = p.part))`

// PartsUploaded records that node's spool holds nothing more of the
// recording: every part node held (part 0 when it started it, and the
// parts it took over) is uploaded. Again: no-op.
func (db *DB) PartsUploaded(ctx context.Context, id uuid.UUID, node string) error {
	if node == "" {
		return invalid("node", "is empty")
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO recording_part_uploads (recording_id, part, node_id)
		SELECT $1, p.part, $2 FROM (SELECT part, node_id FROM recording_parts WHERE recording_id = $1
			UNION ALL SELECT 0, from_node FROM recording_parts WHERE recording_id = $1 AND part = 1) p
		WHERE p.node_id = $2
		ON CONFLICT DO NOTHING`, id, node)
	return mapErr(fmt.Sprintf("parts of recording %s uploaded by node %s", id, node), err)
}

// PartsPending reports whether a part of the recording other than its last
// is not uploaded yet by the node that held it (see PartsUploaded): the
// recording is sealed once none is.
func (db *DB) PartsPending(ctx context.Context, id uuid.UUID) (bool, error) {
	var pending bool
	err := db.pool.QueryRow(ctx, `SELECT `+partsPendingSQL+` FROM recordings r WHERE r.id = $1`, id).Scan(&pending)
	return pending, mapErr("parts of recording "+id.String(), err)
}
