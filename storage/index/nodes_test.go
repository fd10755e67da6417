package index_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// acquire registers a node for the test and releases it at the end.
func acquire(t *testing.T, db *index.DB, id string) *index.NodeLease {
	t.Helper()
	l, err := db.AcquireNode(context.Background(), index.Node{ID: id, RTSPAddr: id + ":8554", Capacity: 100, Version: "test"})
	if err != nil {
		t.Fatalf("acquire node %s: %v", id, err)
	}
	t.Cleanup(l.Release)
	return l
}

// TestNodeNameHeldByOneProcess: a second process with a running node's
// name is refused, naming the node and its heartbeat. A node whose
// connection broke takes its name again at the next heartbeat, unless
// another process took it meanwhile: then it learns so (ErrNodeRunning).
func TestNodeNameHeldByOneProcess(t *testing.T) {
	ctx := context.Background()
	db := newFixture(t).db
	first := acquire(t, db, "node-a")
	if err := first.Heartbeat(ctx); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	_, err := db.AcquireNode(ctx, index.Node{ID: "node-a"})
	if !errors.Is(err, index.ErrNodeRunning) || !strings.Contains(err.Error(), `"node-a"`) || !strings.Contains(err.Error(), "last heartbeat") {
		t.Fatalf("second process as node-a: %v, want ErrNodeRunning naming the node and its heartbeat", err)
	}
	other := acquire(t, db, "node-b") // another name is fine meanwhile
	nodes, err := db.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].ID != "node-a" || nodes[0].RTSPAddr != "node-a:8554" || nodes[0].Capacity != 100 || nodes[1].ID != "node-b" {
		t.Fatalf("nodes = %+v %v", nodes, err)
	}
	other.Release()

	// the first process's connection breaks (network, PostgreSQL restart):
	// the lock goes with it; its next heartbeat fails, the one after that
	// reconnects and takes the lock again
	su := storagetest.Superuser(t, db)
	var killed int
	if err := su.QueryRow(ctx, `SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l
		WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d lock holders: %v", killed, err)
	}
	if err := first.Heartbeat(ctx); err == nil {
		t.Fatal("heartbeat on a terminated connection succeeded")
	}
	if err := first.Heartbeat(ctx); err != nil {
		t.Fatalf("heartbeat after reconnecting: %v", err)
	}

	// the connection breaks again and another process starts as node-a
	// meanwhile: the first learns, at its next heartbeat, that the name is
	// taken (lock held), and again once the other let go (another start)
	if err := su.QueryRow(ctx, `SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l
		WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d lock holders: %v", killed, err)
	}
	_ = first.Heartbeat(ctx) // fails: the connection is gone
	second := acquire(t, db, "node-a")
	if err := second.Heartbeat(ctx); err != nil {
		t.Fatalf("heartbeat of the new holder: %v", err)
	}
	if err := first.Heartbeat(ctx); !errors.Is(err, index.ErrNodeRunning) {
		t.Fatalf("heartbeat of a process whose name was taken: %v, want ErrNodeRunning", err)
	}
	second.Release()
	if err := first.Heartbeat(ctx); !errors.Is(err, index.ErrNodeRunning) {
		t.Fatalf("heartbeat after another process started as the node: %v, want ErrNodeRunning", err)
	}
	if err := second.Heartbeat(ctx); err == nil || errors.Is(err, index.ErrNodeRunning) {
		t.Fatalf("heartbeat after Release: %v, want the lease's own error", err)
	}
	// released (as a process that stops, or dies): the name is free
	acquire(t, db, "node-a")
}

// TestNodesEndOnlyTheirOwnOrTheDeadsRecordings: a node starting ends only
// its own recordings left open; the recordings of a node whose heartbeat
// expired are ended by the live nodes, each exactly once however many
// reap at the same time.
func TestNodesEndOnlyTheirOwnOrTheDeadsRecordings(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	db := f.db
	acquire(t, db, "node-a")
	acquire(t, db, "node-b")
	acquire(t, db, "node-c")
	start := time.Now().UTC().Add(-time.Minute)
	live := func(dev uuid.UUID, node string) uuid.UUID {
		r, err := db.CreateRecording(ctx, index.Recording{DeviceID: dev, StartedAt: start, NodeID: node}, "")
		if err != nil {
			t.Fatal(err)
		}
		if r.NodeID != node || r.Status != index.RecordingLive {
			t.Fatalf("recording = %+v, want live on %s", r, node)
		}
		return r.ID
	}
	recA := live(f.devices[0].ID, "node-a")
	recB := live(f.devices[1].ID, "node-b")
	status := func(id uuid.UUID) string {
		r, err := db.Recording(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r.Status
	}

	// node B restarts: its own recording left open ends, A's does not
	if n, err := db.EndNodeRecordings(ctx, "node-b", index.SourceRTSP); err != nil || n != 1 {
		t.Fatalf("node-b's start ended %d (%v), want its 1", n, err)
	}
	if status(recA) != index.RecordingLive || status(recB) != index.RecordingEnded {
		t.Fatalf("after node-b's start: A %s, B %s", status(recA), status(recB))
	}
	// A heartbeats: alive, nothing to reap
	if got, err := db.EndDeadNodeRecordings(ctx, "node-b", 30*time.Second); err != nil || len(got) != 0 {
		t.Fatalf("reaped while every node is alive: %+v %v", got, err)
	}
	// A falls silent for longer than dead-after
	if _, err := db.Pool().Exec(ctx, `UPDATE nodes SET heartbeat_at = now() - interval '1 minute' WHERE id = 'node-a'`); err != nil {
		t.Fatal(err)
	}
	// A dead node does not reap itself (it is the one to restart)
	if got, err := db.EndDeadNodeRecordings(ctx, "node-a", 30*time.Second); err != nil || len(got) != 0 {
		t.Fatalf("node-a reaped its own: %+v %v", got, err)
	}
	// B and C reap at once, each several times: A's recording ends once
	var mu sync.Mutex
	var ended []index.OrphanRecording
	var wg sync.WaitGroup
	for _, self := range []string{"node-b", "node-c", "node-b", "node-c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := db.EndDeadNodeRecordings(ctx, self, 30*time.Second)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			ended = append(ended, got...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(ended) != 1 || ended[0].ID != recA || ended[0].Node != "node-a" || ended[0].Device != f.devices[0].Serial {
		t.Fatalf("reaped %+v, want node-a's recording %s exactly once", ended, recA)
	}
	r, _ := db.Recording(ctx, recA)
	if r.Status != index.RecordingEnded || r.EndedAt == nil || !r.EndedAt.Equal(r.StartedAt) {
		t.Fatalf("node-a's recording = %+v, want ended at its last segment (none: its start)", r)
	}
}

// TestOneLiveRecordingPerDevice: the database holds one live (or
// reconnecting) recording per device, whichever node writes it; the
// refusal names the live recording and its node. Ended recordings and
// uploads do not count; the same recording written again is a conflict,
// not a refusal.
func TestOneLiveRecordingPerDevice(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	db := f.db
	dev := f.devices[0].ID
	first, err := db.CreateRecording(ctx, index.Recording{DeviceID: dev, NodeID: "node-a"}, "")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		rec     index.Recording
		prepare func()
		want    error // nil: created
	}{
		{"same device on another node", index.Recording{DeviceID: dev, NodeID: "node-b"}, nil, index.ErrDeviceLive},
		{"same device on the same node", index.Recording{DeviceID: dev, NodeID: "node-a"}, nil, index.ErrDeviceLive},
		{"while reconnecting", index.Recording{DeviceID: dev, NodeID: "node-b"}, func() {
			if err := db.SetRecordingStatus(ctx, first.ID, index.RecordingReconnecting, ""); err != nil {
				t.Fatal(err)
			}
		}, index.ErrDeviceLive},
		{"the same recording again", index.Recording{ID: first.ID, DeviceID: dev, NodeID: "node-a"}, nil, index.ErrConflict},
		{"another device", index.Recording{DeviceID: f.devices[1].ID, NodeID: "node-b"}, nil, nil},
		{"an upload of the device", index.Recording{DeviceID: dev, Source: index.SourceUpload, Status: index.RecordingEnded}, nil, nil},
		{"after the live one ended", index.Recording{DeviceID: dev, NodeID: "node-b"}, func() {
			if err := db.EndRecording(ctx, first.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.prepare != nil {
				c.prepare()
			}
			_, err := db.CreateRecording(ctx, c.rec, "")
			if c.want == nil {
				if err != nil {
					t.Fatalf("create: %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("create: %v, want %v", err, c.want)
			}
			var live *index.DeviceLiveError
			if c.want == index.ErrDeviceLive && (!errors.As(err, &live) || live.Recording != first.ID || live.Node != "node-a") {
				t.Fatalf("refusal %v does not name recording %s on node-a", err, first.ID)
			}
			if c.want == index.ErrConflict && errors.Is(err, index.ErrDeviceLive) {
				t.Fatalf("the same recording written again is a refusal: %v", err)
			}
		})
	}
}

// TestMigrationEndsDuplicateLiveRecordings: a database from before 016
// may hold several live recordings of one device (a single node that
// crashed and was not restarted); migrating ends all but the newest, so
// that the one-live-recording index can be built, and migrating again
// (after a rollback) changes nothing more.
func TestMigrationEndsDuplicateLiveRecordings(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	db := f.db
	su := storagetest.Superuser(t, db)
	migrate := func(sqls ...string) { t.Helper(); remigrate(t, db, sqls...) }
	// the schema before 016, with two live recordings of one device
	if _, err := su.Exec(ctx, `DROP INDEX recordings_one_live_per_device`); err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Hour)
	var older, newer, other uuid.UUID
	for _, r := range []struct {
		id  *uuid.UUID
		dev uuid.UUID
		at  time.Time
	}{{&older, f.devices[0].ID, start}, {&newer, f.devices[0].ID, start.Add(time.Minute)}, {&other, f.devices[1].ID, start}} {
		*r.id = uuid.Must(uuid.NewV7())
		if _, err := su.Exec(ctx, `INSERT INTO recordings (id, device_id, started_at) VALUES ($1, $2, $3)`, *r.id, r.dev, r.at); err != nil {
			t.Fatal(err)
		}
	}
	want := map[uuid.UUID]string{older: index.RecordingEnded, newer: index.RecordingLive, other: index.RecordingLive}
	check := func(when string) {
		t.Helper()
		for id, status := range want {
			r, err := db.Recording(ctx, id)
			if err != nil || r.Status != status {
				t.Errorf("%s: recording %s is %q (%v), want %s", when, id, r.Status, err, status)
			}
		}
	}
	migrate(`UPDATE schema_version SET version = 15`)
	check("after 016")
	migrate(`UPDATE schema_version SET version = 15`)
	check("migrated again")
	if _, err := db.CreateRecording(ctx, index.Recording{DeviceID: f.devices[0].ID}, ""); !errors.Is(err, index.ErrDeviceLive) {
		t.Fatalf("a second live recording after the migration: %v, want ErrDeviceLive", err)
	}
}
