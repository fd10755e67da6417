package ingest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
)

// startNode runs a Node on db until the test ends; it returns once the
// node holds its name.
func startNode(t *testing.T, db nodeStore, id string, heartbeat, deadAfter time.Duration) *Node {
	t.Helper()
	n, err := NewNode(NodeConfig{Node: index.Node{ID: id, RTSPAddr: "127.0.0.1:8554"}, Heartbeat: heartbeat, DeadAfter: deadAfter},
		db, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(context.Background()) }()
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("node %s: %v", id, err)
	}
	t.Cleanup(func() { n.Close(); <-done })
	return n
}

// secondIngest runs another node's ingest on w's database.
func secondIngest(t *testing.T, w *world, node string) *Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	srv, err := New(testConfig(Config{Node: node}), w.db, reg, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runServer(t, srv))
	return srv
}

// liveOf returns the device's recordings that are not ended.
func liveOf(t *testing.T, w *world) []index.Recording {
	t.Helper()
	recs, err := w.db.Recordings(context.Background(), index.RecordingFilter{Status: "active", DeviceID: &w.device.ID})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestTwoNodesOneDatabase: two nodes' ingests on one PostgreSQL. Starting
// node B leaves node A's live recording live; the same camera publishing
// to B while A holds it is refused (409, counted, one recording); once A's
// heartbeat expires, B ends A's recording (at its last archived segment)
// and the camera is admitted on B.
func TestTwoNodesOneDatabase(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, worldOpts{cfg: Config{Node: "node-a", Grace: time.Minute}, checkout: true})
	nodeA := startNode(t, w.db, "node-a", 50*time.Millisecond, 300*time.Millisecond)
	cam, err := dialCamera(t, w.url(w.device.Serial, secret), false, true)
	if err != nil {
		t.Fatal(err)
	}
	defer cam.close()
	st := w.nextStream(t)
	if err := cam.send(mediatest.Load(t).Frames[:30]); err != nil {
		t.Fatal(err)
	}
	recA := st.Info().RecordingID

	var b *Server
	parent := t // node B runs until the whole test ends
	steps := []struct {
		name string
		do   func(t *testing.T)
	}{
		{"starting node B leaves A's recording live", func(t *testing.T) {
			startNode(parent, w.db, "node-b", 50*time.Millisecond, 300*time.Millisecond)
			b = secondIngest(parent, w, "node-b") // its Run ends the recordings node-b left open
			live := liveOf(t, w)
			if len(live) != 1 || live[0].ID != recA || live[0].NodeID != "node-a" {
				t.Fatalf("live after node B started: %+v, want A's %s", live, recA)
			}
		}},
		{"the same camera on node B is refused", func(t *testing.T) {
			c, err := dialCamera(t, strings.Replace(w.url(w.device.Serial, secret), w.srv.Addr(), b.Addr(), 1), false, true)
			if err == nil {
				c.close()
				t.Fatal("node B admitted a device live on node A")
			}
			var bad liberrors.ErrClientBadStatusCode
			if !errors.As(err, &bad) || bad.Code != statusConflict || !strings.Contains(bad.Message, "Another Node") {
				t.Fatalf("refusal = %v, want 409 saying the device records on another node", err)
			}
			if n := testutil.ToFloat64(b.met.authFailures.WithLabelValues("device_live")); n != 1 {
				t.Fatalf("refused{device_live} = %v, want 1", n)
			}
			if live := liveOf(t, w); len(live) != 1 || live[0].ID != recA || len(b.Live()) != 0 {
				t.Fatalf("live after the refusal: %+v (node B %d)", live, len(b.Live()))
			}
		}},
		{"node A's later writes still land", func(t *testing.T) {
			w.srv.addGap(recA, time.Now().Add(-2*time.Second), time.Now().Add(-time.Second), "test")
			mediatest.Eventually(t, "gap of A's recording written", func() bool {
				gaps, err := w.db.Gaps(ctx, recA)
				return err == nil && len(gaps) == 1
			})
		}},
		{"A's heartbeat expires: B ends A's recording, the camera gets in on B", func(t *testing.T) {
			nodeA.Close() // A stops heartbeating (its ingest is cut off from the cluster)
			mediatest.Eventually(t, "A's recording ended by node B", func() bool {
				r, err := w.db.Recording(ctx, recA)
				return err == nil && r.Status == index.RecordingEnded
			})
			c, err := dialCamera(t, strings.Replace(w.url(w.device.Serial, secret), w.srv.Addr(), b.Addr(), 1), false, true)
			if err != nil {
				t.Fatalf("camera on node B after A died: %v", err)
			}
			defer c.close()
			live := liveOf(t, w)
			if len(live) != 1 || live[0].ID == recA || live[0].NodeID != "node-b" || len(b.Live()) != 1 {
				t.Fatalf("live after the handover: %+v, want one new recording on node-b", live)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.do) {
			return // the steps build on each other
		}
	}
}

// TestNodeNameIsOneProcess: a second process with a running node's name
// refuses to start, naming the node and the other's heartbeat; a node's
// own ingest, restarted, ends the recordings it left open.
func TestNodeNameIsOneProcess(t *testing.T) {
	w := newWorld(t, worldOpts{cfg: Config{Node: "node-a"}})
	startNode(t, w.db, "node-a", 50*time.Millisecond, 300*time.Millisecond)
	cases := []struct {
		name string
		node string
		want error
	}{
		{"same name", "node-a", index.ErrNodeRunning},
		{"another name", "node-b", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := NewNode(NodeConfig{Node: index.Node{ID: c.node}, Heartbeat: 50 * time.Millisecond, DeadAfter: 300 * time.Millisecond},
				w.db, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- n.Run(ctx) }()
			select {
			case err = <-done:
			case <-n.Ready():
				cancel()
				err = <-done
			}
			cancel()
			n.Close()
			if !errors.Is(err, c.want) {
				t.Fatalf("run: %v, want %v", err, c.want)
			}
			if c.want != nil && (!strings.Contains(err.Error(), `"node-a"`) || !strings.Contains(err.Error(), "last heartbeat")) {
				t.Fatalf("refusal %q does not name the node and its heartbeat", err)
			}
		})
	}
}

// TestNodeConfigRefused: NewNode names every bad field.
func TestNodeConfigRefused(t *testing.T) {
	_, err := NewNode(NodeConfig{Heartbeat: time.Second, DeadAfter: time.Second}, nil, nil)
	for _, field := range []string{"Node.ID", "DeadAfter"} {
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("config error %v does not name %s", err, field)
		}
	}
}

// TestNodeCheckFailsWhenThoughtDead: /readyz fails while the node's last
// heartbeat is older than DeadAfter (the others end its recordings); a
// running node's heartbeats keep it passing.
func TestNodeCheckFailsWhenThoughtDead(t *testing.T) {
	w := newWorld(t, worldOpts{cfg: Config{Node: "node-a"}})
	ctx := context.Background()
	running := startNode(t, w.db, "node-a", 100*time.Millisecond, time.Second)
	time.Sleep(1500 * time.Millisecond) // longer than DeadAfter: only heartbeats keep it ready
	if err := running.Check(ctx); err != nil {
		t.Fatalf("check of a running node: %v", err)
	}
	n, err := NewNode(NodeConfig{Node: index.Node{ID: "node-b"}, Heartbeat: time.Second, DeadAfter: 30 * time.Second}, w.db, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		lastBeat time.Time // zero: never registered
		fails    bool
	}{
		{"not registered yet", time.Time{}, false},
		{"heartbeat a moment ago", time.Now().Add(-time.Second), false},
		{"heartbeat older than dead-after", time.Now().Add(-time.Minute), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.lastBeat.IsZero() {
				n.lastBeat.Store(0)
			} else {
				n.lastBeat.Store(c.lastBeat.UnixNano())
			}
			err := n.Check(ctx)
			if (err != nil) != c.fails || c.fails && !strings.Contains(err.Error(), "node-b") {
				t.Fatalf("check: %v, want failing %v (naming the node)", err, c.fails)
			}
		})
	}
}
