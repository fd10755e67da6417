package seal

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/blob"
)

// ErrNotFound: no seal or checkpoint under the key.
var ErrNotFound = blob.ErrNoObject

// Write stores a signed document under key through the one evidence writer
// (blob.PutEvidence: SHA-256 checksum, the store's retention mode until
// retainUntil) and returns its version ID. Writing the same bytes again is
// a no-op that returns the stored version; other bytes under the key are
// blob.ErrConflict.
func Write(ctx context.Context, store *blob.Store, key string, doc []byte, retainUntil time.Time) (string, error) {
	sum := sha256.Sum256(doc)
	st, err := store.PutEvidence(ctx, blob.Evidence{Key: key, Body: bytes.NewReader(doc), Size: int64(len(doc)),
		SHA256: sum[:], ContentType: "application/json", RetainUntil: retainUntil})
	if err != nil {
		return "", err
	}
	return st.VersionID, nil
}

// WriteSeal signs and stores a recording's seal; it returns the key and
// version ID.
func WriteSeal(ctx context.Context, store *blob.Store, key ed25519.PrivateKey, s Seal, retainUntil time.Time) (string, string, error) {
	doc, err := MarshalSeal(s, key)
	if err != nil {
		return "", "", err
	}
	k := Key(s.Recording)
	v, err := Write(ctx, store, k, doc, retainUntil)
	return k, v, err
}

// WriteCheckpoint signs and stores a checkpoint; it returns the key and
// version ID.
func WriteCheckpoint(ctx context.Context, store *blob.Store, key ed25519.PrivateKey, c Checkpoint, retainUntil time.Time) (string, string, error) {
	doc, err := MarshalCheckpoint(c, key)
	if err != nil {
		return "", "", err
	}
	k := CheckpointKey(c.At, c.Node)
	v, err := Write(ctx, store, k, doc, retainUntil)
	return k, v, err
}

// read reads the current version of a document (at most MaxSize bytes).
func read(ctx context.Context, store *blob.Store, key string) ([]byte, error) {
	o, err := store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	data, err := io.ReadAll(io.LimitReader(o, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return data, nil
}

// ReadSeal reads a recording's seal and checks its signature: ErrNotFound
// when there is none, ErrSignature or ErrFormat when it is not one the
// platform signed. A valid seal stored under another recording's key is
// ErrFormat.
func ReadSeal(ctx context.Context, store *blob.Store, pub ed25519.PublicKey, rec uuid.UUID) (Seal, error) {
	data, err := read(ctx, store, Key(rec))
	if err != nil {
		return Seal{}, err
	}
	s, err := ParseSeal(data, pub)
	if err != nil {
		return Seal{}, fmt.Errorf("%s: %w", Key(rec), err)
	}
	if s.Recording != rec {
		return Seal{}, fmt.Errorf("%s: %w: the seal of recording %s", Key(rec), ErrFormat, s.Recording)
	}
	return s, nil
}

// ReadCheckpoint reads a checkpoint and checks its signature.
func ReadCheckpoint(ctx context.Context, store *blob.Store, pub ed25519.PublicKey, key string) (Checkpoint, error) {
	data, err := read(ctx, store, key)
	if err != nil {
		return Checkpoint{}, err
	}
	c, err := ParseCheckpoint(data, pub)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%s: %w", key, err)
	}
	if CheckpointKey(c.At, c.Node) != key {
		return Checkpoint{}, fmt.Errorf("%s: %w: the checkpoint of %s at %s", key, ErrFormat, c.Node, c.At.Format(checkpointTime))
	}
	return c, nil
}

// list lists the keys under a prefix.
func list(ctx context.Context, store *blob.Store, prefix string) ([]string, error) {
	var keys []string
	for o := range store.Client().ListObjects(ctx, store.Bucket(), minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys, nil
}

// Sealed lists the recordings that have a seal in the bucket (whatever its
// contents: ReadSeal checks them).
func Sealed(ctx context.Context, store *blob.Store) ([]uuid.UUID, error) {
	keys, err := list(ctx, store, SealPrefix)
	if err != nil {
		return nil, err
	}
	var out []uuid.UUID
	for _, k := range keys {
		id, err := uuid.Parse(strings.TrimSuffix(strings.TrimPrefix(k, SealPrefix), ".json"))
		if err != nil || Key(id) != k {
			continue // not a seal's key
		}
		out = append(out, id)
	}
	return out, nil
}

// Checkpoints lists the checkpoints' keys, newest first. It lists this
// month's and last month's first and the whole prefix only when those hold
// none (checkpoints are written every minute while anything changes).
func Checkpoints(ctx context.Context, store *blob.Store, now time.Time) ([]string, error) {
	this := time.Date(now.UTC().Year(), now.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	var keys []string
	for _, month := range []time.Time{this, this.AddDate(0, -1, 0)} {
		k, err := list(ctx, store, CheckpointPrefix+month.Format("2006-01"))
		if err != nil {
			return nil, err
		}
		keys = append(keys, k...)
	}
	if len(keys) == 0 {
		var err error
		if keys, err = list(ctx, store, CheckpointPrefix); err != nil {
			return nil, err
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	return keys, nil
}
