package index

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Node is one `bwc serve` process sharing the database, named by its
// -node setting.
type Node struct {
	ID          string    `json:"id"`
	RTSPAddr    string    `json:"rtsp_addr"`
	HTTPAddr    string    `json:"http_addr"`
	WebRTCAddr  string    `json:"webrtc_addr"`
	Capacity    int       `json:"capacity"` // cameras it takes; 0: not said
	Version     string    `json:"version"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
}

// ErrNodeRunning: another process holds the node's name (two processes
// must not share a -node setting).
var ErrNodeRunning = errors.New("another process is running as this node")

// NodeLease is a node's hold on its name: a session advisory lock on a
// connection of its own (not the pool's), so that a process that dies
// lets go at once, and a start token its heartbeats must match, so that a
// process that lost its connection and whose name was taken since learns
// it at its next heartbeat.
type NodeLease struct {
	db    *DB
	id    string
	token uuid.UUID

	mu       sync.Mutex
	conn     *pgx.Conn // nil after Release, or while reconnecting
	released bool
}

// errReleased: a heartbeat after Release.
var errReleased = errors.New("node lease released")

// nodeLockSQL takes a node name's advisory lock without waiting.
const nodeLockSQL = `SELECT pg_try_advisory_lock(hashtextextended('bwc-node:' || $1, 0))`

// AcquireNode registers n (its addresses, capacity, version; started and
// heartbeat now) and holds its name until Release. A name held by a
// running process is ErrNodeRunning, naming the node and its last
// heartbeat.
func (db *DB) AcquireNode(ctx context.Context, n Node) (*NodeLease, error) {
	if n.ID == "" {
		return nil, invalid("id", "is empty")
	}
	l := &NodeLease{db: db, id: n.ID, token: uuid.Must(uuid.NewV7())}
	conn, err := l.lock(ctx)
	if err != nil {
		return nil, err
	}
	_, err = conn.Exec(ctx, `INSERT INTO nodes (id, rtsp_addr, http_addr, webrtc_addr, capacity, version, start_token, started_at, heartbeat_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now())
		ON CONFLICT (id) DO UPDATE SET rtsp_addr = excluded.rtsp_addr, http_addr = excluded.http_addr, webrtc_addr = excluded.webrtc_addr,
			capacity = excluded.capacity, version = excluded.version, start_token = excluded.start_token,
			started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`,
		n.ID, n.RTSPAddr, n.HTTPAddr, n.WebRTCAddr, n.Capacity, n.Version, l.token)
	if err != nil {
		conn.Close(context.Background())
		return nil, mapErr("register node "+n.ID, err)
	}
	l.conn = conn
	return l, nil
}

// lock opens the lease's own connection and takes the name's advisory lock.
func (l *NodeLease) lock(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, l.db.url)
	if err != nil {
		return nil, fmt.Errorf("node %s: connect: %w", l.id, err)
	}
	var got bool
	if err := conn.QueryRow(ctx, nodeLockSQL, l.id).Scan(&got); err != nil {
		conn.Close(context.Background())
		return nil, mapErr("node "+l.id+": lock", err)
	}
	if !got {
		conn.Close(context.Background())
		return nil, l.db.runningErr(ctx, l.id)
	}
	return conn, nil
}

// runningErr names the node another process holds and its heartbeat.
func (db *DB) runningErr(ctx context.Context, id string) error {
	var started, beat time.Time
	err := db.pool.QueryRow(ctx, `SELECT started_at, heartbeat_at FROM nodes WHERE id = $1`, id).Scan(&started, &beat)
	if err != nil {
		return fmt.Errorf("%w: node %q (its row: %v)", ErrNodeRunning, id, mapErr("node", err))
	}
	return fmt.Errorf("%w: node %q, started %s, last heartbeat %s (%s ago); give each process its own -node",
		ErrNodeRunning, id, started.UTC().Format(time.RFC3339), beat.UTC().Format(time.RFC3339Nano),
		db.now().Sub(beat).Round(time.Millisecond))
}

// ID is the node's name.
func (l *NodeLease) ID() string { return l.id }

// Heartbeat records that the node is alive. When its connection was lost
// it reconnects and takes the lock again; a name another process took
// meanwhile (lock held, or another start token) is ErrNodeRunning: this
// process must stop.
func (l *NodeLease) Heartbeat(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return fmt.Errorf("heartbeat of node %s: %w", l.id, errReleased)
	}
	if l.conn == nil || l.conn.IsClosed() {
		if l.conn != nil {
			l.conn.Close(context.Background())
			l.conn = nil
		}
		conn, err := l.lock(ctx)
		if err != nil {
			return err
		}
		l.conn = conn
	}
	tag, err := l.conn.Exec(ctx, `UPDATE nodes SET heartbeat_at = now() WHERE id = $1 AND start_token = $2`, l.id, l.token)
	if err != nil {
		return mapErr("heartbeat of node "+l.id, err)
	}
	if tag.RowsAffected() == 0 {
		// another process started as this node: let go of the name for good
		l.conn.Close(context.Background())
		l.conn = nil
		return l.db.runningErr(ctx, l.id)
	}
	return nil
}

// Release lets go of the name (the row stays; its heartbeat ages).
func (l *NodeLease) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released = true
	if l.conn != nil {
		l.conn.Close(context.Background()) // the session's advisory lock goes with it
		l.conn = nil
	}
}

// Nodes lists the registered nodes, by name.
func (db *DB) Nodes(ctx context.Context) ([]Node, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, rtsp_addr, http_addr, webrtc_addr, capacity, version, started_at, heartbeat_at
		FROM nodes ORDER BY id`)
	if err != nil {
		return nil, mapErr("list nodes", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Node, error) {
		var n Node
		err := r.Scan(&n.ID, &n.RTSPAddr, &n.HTTPAddr, &n.WebRTCAddr, &n.Capacity, &n.Version, &n.StartedAt, &n.HeartbeatAt)
		return n, err
	})
	return out, mapErr("list nodes", err)
}

// endAtLastSegment is the end of a recording left open: the end of its
// last archived segment, or its start.
const endAtLastSegment = `greatest(r.started_at, coalesce((SELECT max(s.ended_at) FROM segments s WHERE s.recording_id = r.id), r.started_at))`

// EndNodeRecordings ends, at their last archived segment, the live
// recordings of source that node left open (a previous run that crashed),
// and those written before recordings named their node (node_id NULL).
// Another node's recordings are never touched.
func (db *DB) EndNodeRecordings(ctx context.Context, node, source string) (int64, error) {
	tag, err := db.pool.Exec(ctx, `UPDATE recordings r SET status = 'ended', ended_at = `+endAtLastSegment+`
		WHERE r.status <> 'ended' AND r.source = $2 AND (r.node_id = $1 OR r.node_id IS NULL)`, node, source)
	if err != nil {
		return 0, mapErr("end recordings of node "+node, err)
	}
	return tag.RowsAffected(), nil
}

// OrphanRecording is a recording ended because the node holding it died.
type OrphanRecording struct {
	ID      uuid.UUID
	Device  string
	Node    string
	EndedAt time.Time
}

// EndDeadNodeRecordings ends, at their last archived segment, the live
// recordings held by nodes other than self whose heartbeat is older than
// deadAfter (by the database's clock). Each is ended once: the rows are
// claimed with FOR UPDATE SKIP LOCKED, and an ended one is not ended again,
// so nodes reaping at the same time share the work.
func (db *DB) EndDeadNodeRecordings(ctx context.Context, self string, deadAfter time.Duration) ([]OrphanRecording, error) {
	rows, err := db.pool.Query(ctx, `WITH dead AS (
			SELECT r.id FROM recordings r JOIN nodes n ON n.id = r.node_id
			WHERE r.status <> 'ended' AND n.id <> $1 AND n.heartbeat_at < now() - make_interval(secs => $2)
			FOR UPDATE OF r SKIP LOCKED)
		UPDATE recordings r SET status = 'ended', ended_at = `+endAtLastSegment+`
		FROM dead WHERE r.id = dead.id AND r.status <> 'ended'
		RETURNING r.id, coalesce((SELECT d.serial FROM devices d WHERE d.id = r.device_id), ''), r.node_id, r.ended_at`,
		self, deadAfter.Seconds())
	if err != nil {
		return nil, mapErr("end recordings of dead nodes", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OrphanRecording, error) {
		var o OrphanRecording
		err := r.Scan(&o.ID, &o.Device, &o.Node, &o.EndedAt)
		return o, err
	})
	return out, mapErr("end recordings of dead nodes", err)
}

// DeviceLiveError: a device already has a live recording (on this node or
// another): the database holds one live recording per device.
type DeviceLiveError struct {
	Device    uuid.UUID
	Recording uuid.UUID // the live one
	Node      string    // its node ("" when unknown)
}

func (e *DeviceLiveError) Error() string {
	node := e.Node
	if node == "" {
		node = "an unnamed node"
	}
	return fmt.Sprintf("device %s already has a live recording (%s, held by node %s)", e.Device, e.Recording, node)
}

// Is makes errors.Is(err, ErrDeviceLive) hold.
func (e *DeviceLiveError) Is(target error) bool { return target == ErrDeviceLive }

// ErrDeviceLive: the device already has a live recording.
var ErrDeviceLive = errors.New("device already has a live recording")

// liveOfDevice names the device's live recording after a violation of
// recordings_one_live_per_device.
func (db *DB) liveOfDevice(ctx context.Context, device uuid.UUID) *DeviceLiveError {
	e := &DeviceLiveError{Device: device}
	_ = db.pool.QueryRow(ctx, `SELECT id, coalesce(node_id, '') FROM recordings WHERE device_id = $1 AND status <> 'ended' AND source IN ('rtsp', 'gb28181')`,
		device).Scan(&e.Recording, &e.Node)
	return e
}
