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
// retainUntil) and returns its version ID. A seal or checkpoint is written
// once: when the key already holds a version, the first one is the
// document, so writing the same bytes again (a retry) returns that version
// and writes nothing, whatever was put or deleted over it since; other
// bytes are blob.ErrConflict. held puts a legal hold on the document (a
// seal of a recording under legal hold): on the first version when there
// is one, as blob.PutEvidence does on a retry.
func Write(ctx context.Context, store *blob.Store, key string, doc []byte, retainUntil time.Time, held bool) (string, error) {
	sum := sha256.Sum256(doc)
	docs, _, err := versions(ctx, store, key)
	if err != nil {
		return "", err
	}
	if d, ok := find(docs, key); ok {
		got, _, err := store.SHA256(ctx, key, d.Version)
		if err != nil {
			return "", err
		}
		if !bytes.Equal(got, sum[:]) {
			return "", fmt.Errorf("%w: %s", blob.ErrConflict, key)
		}
		if held {
			if err := store.SetLegalHold(ctx, key, d.Version, true); err != nil {
				return "", err
			}
		}
		return d.Version, nil
	}
	st, err := store.PutEvidence(ctx, blob.Evidence{Key: key, Body: bytes.NewReader(doc), Size: int64(len(doc)),
		SHA256: sum[:], ContentType: "application/json", RetainUntil: retainUntil, LegalHold: held})
	if err != nil {
		return "", err
	}
	return st.VersionID, nil
}

// WriteSeal signs and stores a recording's seal, with a legal hold when
// held; it returns the key and version ID.
func WriteSeal(ctx context.Context, store *blob.Store, key ed25519.PrivateKey, s Seal, retainUntil time.Time, held bool) (string, string, error) {
	doc, err := MarshalSeal(s, key)
	if err != nil {
		return "", "", err
	}
	k := Key(s.Recording)
	v, err := Write(ctx, store, k, doc, retainUntil, held)
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
	v, err := Write(ctx, store, k, doc, retainUntil, false)
	return k, v, err
}

// Doc is a seal or checkpoint in the bucket and the version of it to
// read: the first one written under its key, the one the platform wrote.
type Doc struct {
	Key     string
	Version string
}

// Rewritten is a seal or checkpoint key that holds more than the one
// version the platform wrote, or whose latest version is a delete marker.
// Seals and checkpoints are written once, so either is tampering (the
// server's own identity can put versions; a delete marker needs more):
// readers keep to the first version, and verify names the key.
type Rewritten struct {
	Key          string
	Versions     int  // object versions under the key, delete markers not counted
	DeleteMarker bool // the key's latest version is a delete marker
}

// versions lists the keys under prefix with their versions, in one
// listing: each key's first version (keys left with delete markers only
// have none), and the keys rewritten. The first version is the oldest by
// modification time; S3 lists a key's versions newest first, which
// decides a tie.
func versions(ctx context.Context, store *blob.Store, prefix string) ([]Doc, []Rewritten, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine on an error
	type seen struct {
		first   string
		firstAt time.Time
		n       int
		marker  bool
	}
	byKey := map[string]*seen{}
	var keys []string
	for o := range store.Client().ListObjects(ctx, store.Bucket(), minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			return nil, nil, fmt.Errorf("list versions of %s: %w", prefix, o.Err)
		}
		k := byKey[o.Key]
		if k == nil {
			k = &seen{}
			byKey[o.Key] = k
			keys = append(keys, o.Key)
		}
		if o.IsDeleteMarker {
			k.marker = k.marker || o.IsLatest
			continue
		}
		k.n++
		if k.first == "" || !o.LastModified.After(k.firstAt) {
			k.first, k.firstAt = o.VersionID, o.LastModified
		}
	}
	sort.Strings(keys)
	var docs []Doc
	var rewritten []Rewritten
	for _, key := range keys {
		k := byKey[key]
		if k.n > 0 {
			docs = append(docs, Doc{Key: key, Version: k.first})
		}
		if k.n > 1 || k.marker {
			rewritten = append(rewritten, Rewritten{Key: key, Versions: k.n, DeleteMarker: k.marker})
		}
	}
	return docs, rewritten, nil
}

// find is key's entry in docs.
func find(docs []Doc, key string) (Doc, bool) {
	for _, d := range docs {
		if d.Key == key {
			return d, true
		}
	}
	return Doc{}, false
}

// first is the first version of key ("" and ErrNotFound when it has none).
func first(ctx context.Context, store *blob.Store, key string) (string, error) {
	docs, _, err := versions(ctx, store, key)
	if err != nil {
		return "", err
	}
	d, ok := find(docs, key)
	if !ok {
		return "", fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return d.Version, nil
}

// read reads one version of a document (at most MaxSize bytes).
func read(ctx context.Context, store *blob.Store, key, version string) ([]byte, error) {
	o, err := store.OpenVersion(ctx, key, version)
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

// ReadSeal reads a recording's seal at its first version (see Seals) and
// checks its signature: ErrNotFound when there is none, ErrSignature or
// ErrFormat when it is not one the platform signed.
func ReadSeal(ctx context.Context, store *blob.Store, pub ed25519.PublicKey, rec uuid.UUID) (Seal, error) {
	v, err := first(ctx, store, Key(rec))
	if err != nil {
		return Seal{}, err
	}
	return ReadSealAt(ctx, store, pub, rec, v)
}

// ReadSealAt reads one version of a recording's seal and checks its
// signature. A valid seal stored under another recording's key is
// ErrFormat.
func ReadSealAt(ctx context.Context, store *blob.Store, pub ed25519.PublicKey, rec uuid.UUID, version string) (Seal, error) {
	data, err := read(ctx, store, Key(rec), version)
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

// ReadCheckpoint reads a checkpoint at its first version and checks its
// signature.
func ReadCheckpoint(ctx context.Context, store *blob.Store, pub ed25519.PublicKey, key string) (Checkpoint, error) {
	v, err := first(ctx, store, key)
	if err != nil {
		return Checkpoint{}, err
	}
	return ReadCheckpointAt(ctx, store, pub, key, v)
}

// ReadCheckpointAt reads one version of a checkpoint and checks its
// signature.
func ReadCheckpointAt(ctx context.Context, store *blob.Store, pub ed25519.PublicKey, key, version string) (Checkpoint, error) {
	data, err := read(ctx, store, key, version)
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

// RecordingOf is the recording whose seal's key is key (false: not a
// seal's key).
func RecordingOf(key string) (uuid.UUID, bool) {
	id, err := uuid.Parse(strings.TrimSuffix(strings.TrimPrefix(key, SealPrefix), ".json"))
	if err != nil || Key(id) != key {
		return uuid.Nil, false
	}
	return id, true
}

// Seals lists the seals in the bucket (one listing), or those of recs (one
// listing each): each at its first version, by key, and the seal keys
// rewritten (more than one version, or a delete marker over them).
func Seals(ctx context.Context, store *blob.Store, recs []uuid.UUID) ([]Doc, []Rewritten, error) {
	if len(recs) == 0 {
		docs, rewritten, err := versions(ctx, store, SealPrefix)
		if err != nil {
			return nil, nil, err
		}
		return sealKeys(docs, func(d Doc) string { return d.Key }), sealKeys(rewritten, func(w Rewritten) string { return w.Key }), nil
	}
	var docs []Doc
	var rewritten []Rewritten
	for _, rec := range recs {
		d, w, err := versions(ctx, store, Key(rec))
		if err != nil {
			return nil, nil, err
		}
		for _, x := range d {
			if x.Key == Key(rec) {
				docs = append(docs, x)
			}
		}
		for _, x := range w {
			if x.Key == Key(rec) {
				rewritten = append(rewritten, x)
			}
		}
	}
	return docs, rewritten, nil
}

// sealKeys keeps the entries whose key is a seal's.
func sealKeys[T any](in []T, key func(T) string) []T {
	var out []T
	for _, x := range in {
		if _, ok := RecordingOf(key(x)); ok {
			out = append(out, x)
		}
	}
	return out
}

// Checkpoints lists the checkpoints, newest first, each at its first
// version, and the checkpoint keys rewritten. It lists this month's and
// last month's first (one listing each) and the whole prefix only when
// those hold none (checkpoints are written every minute while anything
// changes); a rewritten checkpoint key is named when it is listed.
func Checkpoints(ctx context.Context, store *blob.Store, now time.Time) ([]Doc, []Rewritten, error) {
	this := time.Date(now.UTC().Year(), now.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	var docs []Doc
	var rewritten []Rewritten
	for _, month := range []time.Time{this, this.AddDate(0, -1, 0)} {
		d, w, err := versions(ctx, store, CheckpointPrefix+month.Format("2006-01"))
		if err != nil {
			return nil, nil, err
		}
		docs, rewritten = append(docs, d...), append(rewritten, w...)
	}
	if len(docs) == 0 {
		d, w, err := versions(ctx, store, CheckpointPrefix)
		if err != nil {
			return nil, nil, err
		}
		docs, rewritten = d, w
	}
	sort.Slice(docs, func(i, j int) bool { return docs[i].Key > docs[j].Key })
	sort.Slice(rewritten, func(i, j int) bool { return rewritten[i].Key > rewritten[j].Key })
	return docs, rewritten, nil
}
