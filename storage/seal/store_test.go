package seal_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/seal"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// A seal goes into the bucket WORM-locked at a version; writing it again
// (a retry) is that version, a different seal under its key is a
// conflict, and it reads back with its signature checked.
func TestWriteReadSeal(t *testing.T) {
	ctx := context.Background()
	store := storagetest.NewStore(t)
	key := testKey()
	pub := key.Public().(ed25519.PublicKey)
	s := testSeal()
	retain := time.Now().Add(24 * time.Hour)
	k, v, err := seal.WriteSeal(ctx, store, key, s, retain)
	if err != nil || k != seal.Key(s.Recording) || v == "" {
		t.Fatalf("write: %q %q %v", k, v, err)
	}
	if _, v2, err := seal.WriteSeal(ctx, store, key, s, retain); err != nil || v2 != v {
		t.Fatalf("rewrite: version %q (first %q) %v", v2, v, err)
	}
	other := s
	other.Segments, other.FinalSeq = 5, 4
	if _, _, err := seal.WriteSeal(ctx, store, key, other, retain); !errors.Is(err, blob.ErrConflict) {
		t.Fatalf("a different seal under the key: %v, want ErrConflict", err)
	}
	mode, until, err := store.Client().GetObjectRetention(ctx, store.Bucket(), k, v)
	if err != nil || mode == nil || until == nil || until.Before(retain.Add(-time.Second)) {
		t.Fatalf("retention of the seal: %v %v %v", mode, until, err)
	}
	got, err := seal.ReadSeal(ctx, store, pub, s.Recording)
	if err != nil || got.Segments != 7 {
		t.Fatalf("read: %+v %v", got, err)
	}
	if _, err := seal.ReadSeal(ctx, store, pub, uuid.New()); !errors.Is(err, seal.ErrNotFound) {
		t.Errorf("missing seal: %v", err)
	}
	_, otherKey, _ := ed25519.GenerateKey(nil)
	if _, err := seal.ReadSeal(ctx, store, otherKey.Public().(ed25519.PublicKey), s.Recording); !errors.Is(err, seal.ErrSignature) {
		t.Errorf("read with another public key: %v", err)
	}
	ids, err := seal.Sealed(ctx, store)
	if err != nil || len(ids) != 1 || ids[0] != s.Recording {
		t.Errorf("sealed: %v %v", ids, err)
	}
}

// A seal copied under another recording's key is refused.
func TestSealUnderAnotherKey(t *testing.T) {
	ctx := context.Background()
	store := storagetest.NewStore(t)
	doc, err := seal.MarshalSeal(testSeal(), testKey())
	if err != nil {
		t.Fatal(err)
	}
	victim := uuid.New()
	if _, err := store.Client().PutObject(ctx, store.Bucket(), seal.Key(victim), strings.NewReader(string(doc)), int64(len(doc)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := seal.ReadSeal(ctx, store, testKey().Public().(ed25519.PublicKey), victim); !errors.Is(err, seal.ErrFormat) {
		t.Errorf("another recording's seal: %v, want ErrFormat", err)
	}
}

// Checkpoints list newest first, across months and nodes.
func TestCheckpointsNewestFirst(t *testing.T) {
	ctx := context.Background()
	store := storagetest.NewStore(t)
	now := time.Now().UTC()
	var want []string
	for i, at := range []time.Time{now.AddDate(0, -3, 0), now.AddDate(0, -1, 0), now.Add(-time.Minute), now} {
		c := testCheckpoint()
		c.At, c.Node = at, []string{"b", "a", "c", "a"}[i]
		k, _, err := seal.WriteCheckpoint(ctx, store, testKey(), c, now.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		want = append([]string{k}, want...)
	}
	keys, err := seal.Checkpoints(ctx, store, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 2 || keys[0] != want[0] || keys[1] != want[1] {
		t.Fatalf("checkpoints %v, want newest first %v", keys, want)
	}
	c, err := seal.ReadCheckpoint(ctx, store, testKey().Public().(ed25519.PublicKey), keys[0])
	if err != nil || c.Node != "a" || c.AuditSeq != 17 {
		t.Fatalf("read %+v %v", c, err)
	}
	// only old ones: the whole prefix is listed
	old := storagetest.NewStore(t)
	c.At = now.AddDate(-1, 0, 0)
	k, _, err := seal.WriteCheckpoint(ctx, old, testKey(), c, now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := seal.Checkpoints(ctx, old, now); err != nil || len(keys) != 1 || keys[0] != k {
		t.Errorf("a year-old checkpoint: %v %v", keys, err)
	}
}
