package index

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// LiveChannel is the PostgreSQL channel on which every change of a live
// recording the wall shows is announced (migration live_notify: triggers
// on recordings and recording_incidents), whichever node made it. The
// payload is the recording's node.
const LiveChannel = "bwc_live"

// LiveHolder is the node that holds a live recording (its row's node_id)
// and that node's row: where another node pulls its stream from.
// ErrNotFound when the recording is not live or names no node.
func (db *DB) LiveHolder(ctx context.Context, rec uuid.UUID) (Node, error) {
	var n Node
	err := db.pool.QueryRow(ctx, `SELECT n.id, n.rtsp_addr, n.http_addr, n.webrtc_addr, n.capacity, n.version, n.started_at, n.heartbeat_at
		FROM recordings r JOIN nodes n ON n.id = r.node_id WHERE r.id = $1 AND r.status <> 'ended'`, rec).
		Scan(&n.ID, &n.RTSPAddr, &n.HTTPAddr, &n.WebRTCAddr, &n.Capacity, &n.Version, &n.StartedAt, &n.HeartbeatAt)
	return n, mapErr("holder of live recording "+rec.String(), err)
}

// LiveLink is an incident a live recording is linked to.
type LiveLink struct {
	ID     uuid.UUID
	Number string
	Method string
}

// LiveRecording is a live recording held by some node, with its incidents.
type LiveRecording struct {
	Recording
	Incidents []LiveLink
}

// LiveElsewhere lists the live recordings (not ended, not uploads) held by
// nodes other than self, oldest first, with their officer and incidents.
func (db *DB) LiveElsewhere(ctx context.Context, self string) ([]LiveRecording, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+recCols+recFrom+`WHERE r.status <> 'ended' AND r.source <> 'upload'
		AND r.node_id IS NOT NULL AND r.node_id <> $1 ORDER BY r.started_at, r.id`, self)
	if err != nil {
		return nil, mapErr("live recordings of other nodes", err)
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LiveRecording, error) {
		rec, err := scanRecording(r)
		return LiveRecording{Recording: rec}, err
	})
	if err != nil || len(recs) == 0 {
		return recs, mapErr("live recordings of other nodes", err)
	}
	ids := make([]uuid.UUID, len(recs))
	at := make(map[uuid.UUID]int, len(recs))
	for i, r := range recs {
		ids[i], at[r.ID] = r.ID, i
	}
	rows, err = db.pool.Query(ctx, `SELECT ri.recording_id, i.id, i.number, ri.method FROM recording_incidents ri
		JOIN incidents i ON i.id = ri.incident_id WHERE ri.unlinked_at IS NULL AND ri.recording_id = ANY($1)
		ORDER BY ri.linked_at, i.number`, ids)
	if err != nil {
		return nil, mapErr("incidents of live recordings", err)
	}
	defer rows.Close()
	for rows.Next() {
		var rec uuid.UUID
		var l LiveLink
		if err := rows.Scan(&rec, &l.ID, &l.Number, &l.Method); err != nil {
			return nil, mapErr("incidents of live recordings", err)
		}
		if i, ok := at[rec]; ok {
			recs[i].Incidents = append(recs[i].Incidents, l)
		}
	}
	return recs, mapErr("incidents of live recordings", rows.Err())
}

// AdvertiseHTTP sets the address the other nodes reach this node's HTTP
// server at (once it is bound: a configured port 0 is known only then).
func (db *DB) AdvertiseHTTP(ctx context.Context, node, addr string) error {
	tag, err := db.pool.Exec(ctx, `UPDATE nodes SET http_addr = $2 WHERE id = $1`, node, addr)
	if err != nil {
		return mapErr("advertise node "+node, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("advertise node %s: %w", node, ErrNotFound)
	}
	return nil
}

// LiveListener receives the announcements of LiveChannel on a connection
// of its own (outside the pool: LISTEN holds its session).
type LiveListener struct {
	conn *pgx.Conn
}

// ListenLive opens a connection and LISTENs on LiveChannel.
func (db *DB) ListenLive(ctx context.Context) (*LiveListener, error) {
	conn, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, mapErr("listen "+LiveChannel, err)
	}
	if _, err := conn.Exec(ctx, `LISTEN `+LiveChannel); err != nil {
		_ = conn.Close(context.Background())
		return nil, mapErr("listen "+LiveChannel, err)
	}
	return &LiveListener{conn: conn}, nil
}

// Wait returns the payload of the next announcement (the node of the
// recording that changed). An error means the connection is gone (or ctx
// ended): Close and listen again.
func (l *LiveListener) Wait(ctx context.Context) (string, error) {
	n, err := l.conn.WaitForNotification(ctx)
	if err != nil {
		return "", fmt.Errorf("wait on %s: %w", LiveChannel, err)
	}
	return n.Payload, nil
}

// Close ends the listening connection.
func (l *LiveListener) Close() {
	_ = l.conn.Close(context.Background())
}
