package evidence_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/seal"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestCheckpointerWritesWhatChanged: the first checkpoint is always
// written and anchors the audit head; one that would say the same is
// skipped; a new audit event makes the next one anchor it. Run writes one
// at start.
func TestCheckpointerWritesWhatChanged(t *testing.T) {
	ctx := context.Background()
	x := newAnchored(t)
	rec, _ := x.ended(t)
	mustBeSealed(t, x, rec)

	read := func(key string) seal.Checkpoint {
		t.Helper()
		c, err := seal.ReadCheckpoint(ctx, x.store, sealPub, key)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	head := func() (int64, []byte) {
		t.Helper()
		seq, hash, err := x.db.AuditHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return seq, hash
	}

	k1, err := x.cp.Checkpoint(ctx)
	if err != nil || k1 == "" {
		t.Fatalf("first checkpoint: %q, %v; want one written", k1, err)
	}
	c1 := read(k1)
	seq, hash := head()
	if c1.AuditSeq != seq || !bytes.Equal(c1.AuditHash, hash) || len(c1.Live) != 0 || c1.Node != "test-node" {
		t.Fatalf("first checkpoint = %+v; want audit head %d %x, no live recording (the only one is sealed), node test-node", c1, seq, hash)
	}
	if k, err := x.cp.Checkpoint(ctx); err != nil || k != "" {
		t.Fatalf("nothing changed: checkpoint %q, %v; want it skipped", k, err)
	}

	if _, err := x.db.Audit(ctx, index.AuditEvent{Actor: "reviewer", Action: "incident.view", ObjectType: "incident", ObjectID: "x"}); err != nil {
		t.Fatal(err)
	}
	k3, err := x.cp.Checkpoint(ctx)
	if err != nil || k3 == "" || k3 <= k1 {
		t.Fatalf("after an audit event: checkpoint %q, %v; want a newer one than %q", k3, err, k1)
	}
	seq3, hash3 := head()
	if c3 := read(k3); seq3 != seq+1 || c3.AuditSeq != seq3 || !bytes.Equal(c3.AuditHash, hash3) {
		t.Fatalf("second checkpoint anchors audit event %d, want %d (head %d)", c3.AuditSeq, seq3, seq+1)
	}

	// Run writes one at start (a fresh checkpointer remembers nothing)
	cp, err := seal.NewCheckpointer(seal.CheckpointConfig{Every: time.Hour, Node: "other-node", Retention: 24 * time.Hour}, x.db, x.store, sealKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, cp)
	mediatest.Eventually(t, "a checkpoint of other-node", func() bool {
		docs, _, err := seal.Checkpoints(ctx, x.store, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			if read(d.Key).Node == "other-node" {
				return true
			}
		}
		return false
	})
}
