package seal

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
)

// ErrConfig: a checkpointer configuration field is invalid; the error
// names it.
var ErrConfig = errors.New("invalid checkpoint configuration")

// CheckpointConfig configures the checkpointer. Every field is required.
type CheckpointConfig struct {
	Every     time.Duration // a checkpoint this often (and at start)
	Node      string        // this node's name, in each checkpoint and its key
	Retention time.Duration // object-lock retention of each checkpoint
}

func (c CheckpointConfig) validate() error {
	var errs []error
	if c.Every <= 0 {
		errs = append(errs, fmt.Errorf("%w: Every is %v, must be positive", ErrConfig, c.Every))
	}
	if err := ValidNode(c.Node); err != nil {
		errs = append(errs, fmt.Errorf("%w: Node: %v", ErrConfig, err))
	}
	if c.Retention <= 0 {
		errs = append(errs, fmt.Errorf("%w: Retention is %v, must be positive", ErrConfig, c.Retention))
	}
	return errors.Join(errs...)
}

// Checkpointer writes a signed checkpoint every Every: the latest indexed
// segment of each recording not sealed yet and the audit chain's head. A
// checkpoint that would say what the last one written said (no live
// recording moved, no audit event since) is skipped. Several nodes may
// each write theirs: the node is in the key.
type Checkpointer struct {
	cfg   CheckpointConfig
	db    *index.DB
	blobs *blob.Store
	key   ed25519.PrivateKey
	log   *slog.Logger
	ready chan struct{}

	last *Checkpoint // the last one written (Run's goroutine only)
}

// NewCheckpointer validates the configuration; key is the platform's
// signing key.
func NewCheckpointer(cfg CheckpointConfig, db *index.DB, blobs *blob.Store, key ed25519.PrivateKey, log *slog.Logger) (*Checkpointer, error) {
	err := cfg.validate()
	if len(key) != ed25519.PrivateKeySize {
		err = errors.Join(err, fmt.Errorf("%w: no Ed25519 signing key", ErrConfig))
	}
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Checkpointer{cfg: cfg, db: db, blobs: blobs, key: key, log: log, ready: make(chan struct{})}, nil
}

// Ready is closed once Run has started.
func (c *Checkpointer) Ready() <-chan struct{} { return c.ready }

// Run writes a checkpoint at once and then every Every until ctx ends. A
// failure is logged and the next tick tries again.
func (c *Checkpointer) Run(ctx context.Context) error {
	close(c.ready)
	t := time.NewTicker(c.cfg.Every)
	defer t.Stop()
	for {
		if _, err := c.Checkpoint(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("checkpoint: cannot write: what happens to live recordings is not anchored until it works again", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Close has nothing to wait for: Run's loop is the caller's goroutine.
func (c *Checkpointer) Close() error { return nil }

// Checkpoint writes one checkpoint now, unless it would say what the last
// one said; it returns the key written ("" when skipped). Only Run's
// goroutine (or a test, instead of Run) calls it.
func (c *Checkpointer) Checkpoint(ctx context.Context) (string, error) {
	heads, err := c.db.UnsealedHeads(ctx)
	if err != nil {
		return "", err
	}
	seq, hash, err := c.db.AuditHead(ctx)
	if err != nil {
		return "", err
	}
	cp := Checkpoint{At: time.Now(), Node: c.cfg.Node, AuditSeq: seq, AuditHash: hash}
	for _, h := range heads {
		cp.Live = append(cp.Live, Live{Recording: h.RecordingID, Seq: h.Seq, Chain: h.Chain})
	}
	if c.last != nil && sameState(*c.last, cp) {
		return "", nil
	}
	key, version, err := WriteCheckpoint(ctx, c.blobs, c.key, cp, time.Now().Add(c.cfg.Retention))
	if err != nil {
		return "", err
	}
	c.last = &cp
	c.log.Debug("checkpoint written", "key", key, "version", version, "live", len(cp.Live), "audit_seq", seq)
	return key, nil
}

// sameState: two checkpoints say the same of the recordings and the trail.
func sameState(a, b Checkpoint) bool {
	return a.AuditSeq == b.AuditSeq && bytes.Equal(a.AuditHash, b.AuditHash) &&
		slices.EqualFunc(a.Live, b.Live, func(x, y Live) bool {
			return x.Recording == y.Recording && x.Seq == y.Seq && bytes.Equal(x.Chain, y.Chain)
		})
}
