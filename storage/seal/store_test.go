package seal_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"reflect"
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
	k, v, err := seal.WriteSeal(ctx, store, key, s, retain, false)
	if err != nil || k != seal.Key(s.Recording) || v == "" {
		t.Fatalf("write: %q %q %v", k, v, err)
	}
	if _, v2, err := seal.WriteSeal(ctx, store, key, s, retain, false); err != nil || v2 != v {
		t.Fatalf("rewrite: version %q (first %q) %v", v2, v, err)
	}
	other := s
	other.Segments, other.FinalSeq = 5, 4
	if _, _, err := seal.WriteSeal(ctx, store, key, other, retain, false); !errors.Is(err, blob.ErrConflict) {
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
	docs, rewritten, err := seal.Seals(ctx, store, nil)
	if err != nil || len(docs) != 1 || docs[0] != (seal.Doc{Key: k, Version: v}) || len(rewritten) != 0 {
		t.Errorf("seals: %v %v %v", docs, rewritten, err)
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
	keys, rewritten, err := seal.Checkpoints(ctx, store, now)
	if err != nil || len(rewritten) != 0 {
		t.Fatal(rewritten, err)
	}
	if len(keys) < 2 || keys[0].Key != want[0] || keys[1].Key != want[1] {
		t.Fatalf("checkpoints %v, want newest first %v", keys, want)
	}
	c, err := seal.ReadCheckpoint(ctx, store, testKey().Public().(ed25519.PublicKey), keys[0].Key)
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
	if keys, _, err := seal.Checkpoints(ctx, old, now); err != nil || len(keys) != 1 || keys[0].Key != k {
		t.Errorf("a year-old checkpoint: %v %v", keys, err)
	}
}

// put stores doc under key as a plain PUT (a new version over whatever is
// there), as anyone with the server's identity can.
func put(t *testing.T, store *blob.Store, key string, doc []byte) string {
	t.Helper()
	info, err := store.Client().PutObject(context.Background(), store.Bucket(), key, bytes.NewReader(doc), int64(len(doc)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return info.VersionID
}

// A newer, validly signed seal or checkpoint PUT over one already written
// (the server's own identity can) changes nothing that is read: the first
// version is, the key is reported as rewritten, and a retry of the
// platform's write returns the first version while the forger's bytes are
// a conflict.
func TestRewrittenSealAndCheckpointReadAtFirstVersion(t *testing.T) {
	ctx := context.Background()
	store := storagetest.NewStore(t)
	pub := testKey().Public().(ed25519.PublicKey)
	retain := time.Now().Add(24 * time.Hour)
	s := testSeal()
	k, v1, err := seal.WriteSeal(ctx, store, testKey(), s, retain, false)
	if err != nil {
		t.Fatal(err)
	}
	short := s
	short.Segments, short.FinalSeq = 5, 4
	forged, err := seal.MarshalSeal(short, testKey())
	if err != nil {
		t.Fatal(err)
	}
	if v2 := put(t, store, k, forged); v2 == v1 || v2 == "" {
		t.Fatalf("the forged version %q, the first %q", v2, v1)
	}
	if got, err := seal.ReadSeal(ctx, store, pub, s.Recording); err != nil || got.Segments != 7 {
		t.Fatalf("read after the rewrite: %d segments %v, want the first version's 7", got.Segments, err)
	}
	want := []seal.Rewritten{{Key: k, Versions: 2}}
	for _, recs := range [][]uuid.UUID{nil, {s.Recording}} {
		docs, rewritten, err := seal.Seals(ctx, store, recs)
		if err != nil || !reflect.DeepEqual(docs, []seal.Doc{{Key: k, Version: v1}}) || !reflect.DeepEqual(rewritten, want) {
			t.Errorf("seals of %v: %v %v %v, want the first version and %v", recs, docs, rewritten, err, want)
		}
	}
	// a retry once the recording is held: the hold goes on the first version
	if _, v, err := seal.WriteSeal(ctx, store, testKey(), s, retain, true); err != nil || v != v1 {
		t.Errorf("retry of the seal: version %q %v, want the first %q", v, err, v1)
	}
	if st, err := store.Client().GetObjectLegalHold(ctx, store.Bucket(), k, minio.GetObjectLegalHoldOptions{VersionID: v1}); err != nil || st == nil || *st != minio.LegalHoldEnabled {
		t.Errorf("legal hold on the first version after a held retry: %v %v", st, err)
	}
	if _, _, err := seal.WriteSeal(ctx, store, testKey(), short, retain, false); !errors.Is(err, blob.ErrConflict) {
		t.Errorf("the forger's seal written by the platform: %v, want ErrConflict", err)
	}
	if _, rewritten, _ := seal.Seals(ctx, store, nil); !reflect.DeepEqual(rewritten, want) {
		t.Errorf("after the retries: %v, want %v (nothing written)", rewritten, want)
	}

	c := testCheckpoint()
	ck, cv1, err := seal.WriteCheckpoint(ctx, store, testKey(), c, retain)
	if err != nil {
		t.Fatal(err)
	}
	c2 := c
	c2.AuditSeq, c2.Live = 3, nil
	doc, err := seal.MarshalCheckpoint(c2, testKey())
	if err != nil {
		t.Fatal(err)
	}
	put(t, store, ck, doc)
	docs, rewritten, err := seal.Checkpoints(ctx, store, c.At)
	if err != nil || !reflect.DeepEqual(docs, []seal.Doc{{Key: ck, Version: cv1}}) || !reflect.DeepEqual(rewritten, []seal.Rewritten{{Key: ck, Versions: 2}}) {
		t.Errorf("checkpoints: %v %v %v", docs, rewritten, err)
	}
	if got, err := seal.ReadCheckpoint(ctx, store, pub, ck); err != nil || got.AuditSeq != 17 || len(got.Live) != 1 {
		t.Errorf("read after the rewrite: %+v %v, want the first version", got, err)
	}
}

// A delete marker over a seal (the administrator's keys) hides nothing: the
// seal reads at its version, the key is reported, and a retry does not
// write a second version. A key left with a delete marker only is reported
// and has no seal.
func TestDeleteMarkerOverSeal(t *testing.T) {
	ctx := context.Background()
	store := storagetest.NewStore(t)
	admin := storagetest.Admin(t, store)
	pub := testKey().Public().(ed25519.PublicKey)
	retain := time.Now().Add(24 * time.Hour)
	s := testSeal()
	k, v1, err := seal.WriteSeal(ctx, store, testKey(), s, retain, false)
	if err != nil {
		t.Fatal(err)
	}
	g := s
	g.Recording = uuid.New()
	gone, gv, err := seal.WriteSeal(ctx, store, testKey(), g, retain, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{k, gone} {
		if err := admin.Client().RemoveObject(ctx, store.Bucket(), key, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// governance mode: the administrator can remove the version itself
	if err := admin.Client().RemoveObject(ctx, store.Bucket(), gone, minio.RemoveObjectOptions{VersionID: gv, GovernanceBypass: true}); err != nil {
		t.Fatal(err)
	}
	if l, err := store.LatestVersion(ctx, k); err != nil || !l.DeleteMarker {
		t.Fatalf("latest version of the seal %+v %v, want a delete marker", l, err)
	}
	if got, err := seal.ReadSeal(ctx, store, pub, s.Recording); err != nil || got.Segments != 7 {
		t.Fatalf("read under the delete marker: %+v %v", got, err)
	}
	if _, v, err := seal.WriteSeal(ctx, store, testKey(), s, retain, false); err != nil || v != v1 {
		t.Errorf("retry under the delete marker: version %q %v, want the first %q", v, err, v1)
	}
	docs, rewritten, err := seal.Seals(ctx, store, nil)
	want := []seal.Rewritten{{Key: k, Versions: 1, DeleteMarker: true}, {Key: gone, DeleteMarker: true}}
	if gone < k {
		want[0], want[1] = want[1], want[0]
	}
	if err != nil || !reflect.DeepEqual(docs, []seal.Doc{{Key: k, Version: v1}}) || !reflect.DeepEqual(rewritten, want) {
		t.Errorf("seals: %v %v %v, want %v", docs, rewritten, err, want)
	}
	if _, err := seal.ReadSeal(ctx, store, pub, g.Recording); !errors.Is(err, seal.ErrNotFound) {
		t.Errorf("a key with a delete marker only: %v, want ErrNotFound", err)
	}
}
