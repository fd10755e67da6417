package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
)

// NodeConfig is this process's place among the nodes sharing the
// database.
type NodeConfig struct {
	Node      index.Node    // its name (ID, the -node setting) and what it advertises
	Heartbeat time.Duration // how often it says it is alive
	DeadAfter time.Duration // a node silent this long is dead: its live recordings are ended
}

func (c NodeConfig) validate() error {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("%w: %s %s", ErrConfig, field, why)) }
	if c.Node.ID == "" {
		bad("Node.ID", "is empty")
	}
	if c.Heartbeat <= 0 {
		bad("Heartbeat", fmt.Sprintf("is %v, must be positive", c.Heartbeat))
	}
	if c.DeadAfter < 2*c.Heartbeat {
		bad("DeadAfter", fmt.Sprintf("is %v, must be at least twice Heartbeat (%v)", c.DeadAfter, c.Heartbeat))
	}
	return errors.Join(errs...)
}

// nodeStore is what the node needs of the index.
type nodeStore interface {
	AcquireNode(ctx context.Context, n index.Node) (*index.NodeLease, error)
	EndDeadNodeRecordings(ctx context.Context, self string, deadAfter time.Duration) ([]index.OrphanRecording, error)
}

var _ nodeStore = (*index.DB)(nil)

// Node registers this process as a node (refusing to start when another
// process runs under the same name), heartbeats, and ends the live
// recordings of nodes whose heartbeat expired (each once, whichever live
// node claims it first). It runs before the ingest, which ends only this
// node's own recordings left open.
type Node struct {
	cfg      NodeConfig
	db       nodeStore
	log      *slog.Logger
	ready    chan struct{}
	lastBeat atomic.Int64 // unix ns of the last heartbeat the database took (registration included)
	now      func() time.Time

	mu     sync.Mutex
	lease  *index.NodeLease
	closed bool
	stop   chan struct{} // closed by Close: Run returns
	done   chan struct{} // closed when Run returns (nil: Run not started)
}

// NewNode validates cfg. Nothing is registered until Run.
func NewNode(cfg NodeConfig, db nodeStore, log *slog.Logger) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Node{cfg: cfg, db: db, log: log, now: time.Now, ready: make(chan struct{}), stop: make(chan struct{})}, nil
}

// Ready is closed once the node is registered and holds its name.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Run registers the node (index.ErrNodeRunning when another process holds
// its name), closes Ready, then heartbeats and reaps dead nodes'
// recordings every Heartbeat until ctx ends or Close. It returns an error
// when the name is taken by another process while it runs.
func (n *Node) Run(ctx context.Context) error {
	n.mu.Lock()
	if n.closed || n.done != nil {
		n.mu.Unlock()
		return nil
	}
	done := make(chan struct{})
	n.done = done
	n.mu.Unlock()
	defer close(done)

	lease, err := n.db.AcquireNode(ctx, n.cfg.Node)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.mu.Lock()
	n.lease = lease
	n.mu.Unlock()
	n.lastBeat.Store(n.now().UnixNano())
	n.log.Info("node registered", "node", n.cfg.Node.ID, "heartbeat", n.cfg.Heartbeat, "dead_after", n.cfg.DeadAfter)
	close(n.ready)

	tick := time.NewTicker(n.cfg.Heartbeat)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-n.stop:
			return nil
		case <-tick.C:
		}
		err := n.beat(ctx, lease)
		switch {
		case errors.Is(err, index.ErrNodeRunning):
			n.log.Error("node name taken by another process: stopping", "node", n.cfg.Node.ID, "err", err)
			return fmt.Errorf("node: %w", err)
		case err != nil && ctx.Err() == nil:
			if !failing {
				n.log.Warn("node heartbeat failed: other nodes end this node's recordings once it is silent for dead_after",
					"node", n.cfg.Node.ID, "dead_after", n.cfg.DeadAfter, "err", err)
			}
			failing = true
		case err == nil && failing:
			failing = false
			n.log.Info("node heartbeat works again", "node", n.cfg.Node.ID)
		}
	}
}

// beat heartbeats, then ends the recordings of dead nodes.
func (n *Node) beat(ctx context.Context, lease *index.NodeLease) error {
	bctx, cancel := context.WithTimeout(ctx, n.cfg.Heartbeat)
	defer cancel()
	if err := lease.Heartbeat(bctx); err != nil {
		return err
	}
	n.lastBeat.Store(n.now().UnixNano())
	_, err := n.Reap(bctx)
	return err
}

// Check fails (for /readyz) while the node's last heartbeat is older than
// DeadAfter: the other nodes take it for dead and end its recordings, so a
// balancer should send it no camera. Before Run registered: nil.
func (n *Node) Check(context.Context) error {
	last := n.lastBeat.Load()
	if last == 0 {
		return nil
	}
	if since := n.now().Sub(time.Unix(0, last)); since > n.cfg.DeadAfter {
		return fmt.Errorf("node %s: no heartbeat for %v (dead after %v): other nodes end its recordings",
			n.cfg.Node.ID, since.Round(time.Second), n.cfg.DeadAfter)
	}
	return nil
}

// Reap ends, once, the live recordings held by nodes whose heartbeat
// expired, logging each; it returns how many. Run calls it every
// Heartbeat.
func (n *Node) Reap(ctx context.Context) (int, error) {
	ended, err := n.db.EndDeadNodeRecordings(ctx, n.cfg.Node.ID, n.cfg.DeadAfter)
	if err != nil {
		return 0, err
	}
	for _, o := range ended {
		n.log.Warn("recording of a dead node ended at its last archived segment",
			"device", o.Device, "recording", o.ID, "node", o.Node, "ended_at", o.EndedAt)
	}
	return len(ended), nil
}

// Close stops Run and lets go of the node's name. The ingest closes
// first (services close in reverse order), so its last writes are made
// while the name is held.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	close(n.stop)
	done := n.done
	n.mu.Unlock()
	if done != nil {
		<-done
	}
	n.mu.Lock()
	lease := n.lease
	n.lease = nil
	n.mu.Unlock()
	if lease != nil {
		lease.Release()
	}
	return nil
}
