package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// ErrConflict: the key already holds an object with other contents; nothing
// was written.
var ErrConflict = errors.New("object exists with other contents")

// ErrChecksum: the body sent is not the bytes of the SHA-256 it was sent
// with (the server refused it); nothing was written.
var ErrChecksum = errors.New("object body does not match its SHA-256")

// maxSinglePut is the largest object S3 takes in one PUT; larger evidence
// goes up in parts (each part's SHA-256 verified by the server).
const maxSinglePut = 5 << 30

// Evidence is one evidence object to store.
type Evidence struct {
	Key         string
	Body        io.Reader // Size bytes whose SHA-256 is SHA256
	Size        int64
	SHA256      []byte
	ContentType string
	Metadata    map[string]string // user metadata
	RetainUntil time.Time         // object lock retention, in the store's RetentionMode
	LegalHold   bool
}

// Stored is an evidence object in the bucket.
type Stored struct {
	VersionID string
	Size      int64
	SHA256    []byte
	Existed   bool // already there (a retry): nothing was written
}

// PutEvidence stores an evidence object once: with its SHA-256 as the S3
// checksum (the server verifies the body against it), retention in the
// store's RetentionMode until RetainUntil and, when asked, a legal hold.
// When the key already holds an object with the same SHA-256 (a retry
// after a crash) that object is the result (and gets the legal hold when
// asked); with another SHA-256 the error is ErrConflict and nothing is
// written. A single PUT (up to 5 GiB: every archived segment) is one
// conditional request (If-None-Match: *), atomic write-once; the key is
// looked at only when the server refuses it.
func (s *Store) PutEvidence(ctx context.Context, e Evidence) (Stored, error) {
	if e.Key == "" || len(e.SHA256) != sha256.Size || e.Size < 0 || e.Body == nil || e.RetainUntil.IsZero() {
		return Stored{}, fmt.Errorf("put evidence %q: key, body, size, SHA-256 and retention are required", e.Key)
	}
	single := e.Size <= maxSinglePut
	if !single { // a multipart upload is checked first; a single PUT is conditional (below)
		old, err := s.Stat(ctx, e.Key)
		switch {
		case err == nil:
			return s.existing(ctx, e, old)
		case !errors.Is(err, ErrNoObject):
			return Stored{}, err
		}
	}
	um := map[string]string{}
	for k, v := range e.Metadata {
		um[k] = v
	}
	opts := minio.PutObjectOptions{
		ContentType:     e.ContentType,
		UserMetadata:    um,
		Mode:            minio.RetentionMode(s.cfg.RetentionMode),
		RetainUntilDate: e.RetainUntil.UTC(),
	}
	if single {
		// write-once in one request: the server refuses the PUT
		// (412) when the key already holds an object, instead of a
		// HEAD before every PUT (a request, and MinIO's work on it, per
		// archived segment); the existing object is then looked at.
		opts.SetMatchETagExcept("*")
		um["x-amz-checksum-sha256"] = base64.StdEncoding.EncodeToString(e.SHA256)
		opts.DisableMultipart = true
		// the body is bound to the request by that checksum (a signed
		// header the server verifies against the whole body): over plain
		// HTTP minio-go would also hash it again, 64 KiB chunk by chunk,
		// for a streaming signature the server verifies too (a second
		// SHA-256 pass on each side for nothing: issue 19). Unsigned
		// payload, checksummed body.
		opts.DisableContentSha256 = true
	} else {
		opts.Checksum = minio.ChecksumSHA256
	}
	if e.LegalHold {
		opts.LegalHold = minio.LegalHoldEnabled
	}
	info, err := s.client.PutObject(ctx, s.cfg.Bucket, e.Key, e.Body, e.Size, opts)
	if err != nil {
		var er minio.ErrorResponse
		errors.As(err, &er)
		switch er.Code {
		case "PreconditionFailed": // the key holds an object already (a retry after a crash, or a conflict)
			old, err := s.Stat(ctx, e.Key)
			if err != nil {
				return Stored{}, err
			}
			return s.existing(ctx, e, old)
		case "XAmzContentChecksumMismatch", "BadDigest":
			return Stored{}, fmt.Errorf("put %s: %w: %w", e.Key, ErrChecksum, err)
		}
		return Stored{}, fmt.Errorf("put %s: %w", e.Key, err)
	}
	return Stored{VersionID: info.VersionID, Size: info.Size, SHA256: e.SHA256}, nil
}

// existing is PutEvidence's answer for a key that already holds old.
func (s *Store) existing(ctx context.Context, e Evidence, old Stored) (Stored, error) {
	if !bytes.Equal(old.SHA256, e.SHA256) {
		return Stored{}, fmt.Errorf("%w: %s", ErrConflict, e.Key)
	}
	if e.LegalHold {
		if err := s.setLegalHold(ctx, e.Key, old.VersionID, true); err != nil {
			return Stored{}, err
		}
	}
	old.Existed = true
	return old, nil
}

// Stat describes the current version of an object, with its SHA-256: the
// server's full-object SHA-256 checksum, else the "sha256" metadata (hex),
// else the object's bytes hashed. A missing object is ErrNoObject.
func (s *Store) Stat(ctx context.Context, key string) (Stored, error) {
	st, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		if code := minio.ToErrorResponse(err).Code; code == "NoSuchKey" || code == "NoSuchVersion" {
			return Stored{}, fmt.Errorf("stat %s: %w", key, ErrNoObject)
		}
		return Stored{}, fmt.Errorf("stat %s: %w", key, err)
	}
	out := Stored{VersionID: st.VersionID, Size: st.Size}
	if c := st.ChecksumSHA256; c != "" && !strings.Contains(c, "-") { // "-<parts>": a composite checksum
		if sum, err := base64.StdEncoding.DecodeString(c); err == nil && len(sum) == sha256.Size {
			out.SHA256 = sum
			return out, nil
		}
	}
	if sum, err := hex.DecodeString(metaSHA256(st.UserMetadata)); err == nil && len(sum) == sha256.Size {
		out.SHA256 = sum
		return out, nil
	}
	out.SHA256, err = s.versionSHA256(ctx, key, st.VersionID)
	if err != nil {
		return Stored{}, fmt.Errorf("hash %s: %w", key, err)
	}
	return out, nil
}

// metaSHA256 is the "sha256" user metadata of an object ("" when absent).
func metaSHA256(meta map[string]string) string {
	for k, v := range meta {
		if strings.EqualFold(k, "sha256") || strings.EqualFold(k, "x-amz-meta-sha256") {
			return v
		}
	}
	return ""
}

func (s *Store) versionSHA256(ctx context.Context, key, version string) ([]byte, error) {
	o, err := s.client.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{VersionID: version})
	if err != nil {
		return nil, err
	}
	defer o.Close()
	h := sha256.New()
	if _, err := io.Copy(h, o); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func (s *Store) setLegalHold(ctx context.Context, key, version string, on bool) error {
	st := minio.LegalHoldDisabled
	if on {
		st = minio.LegalHoldEnabled
	}
	err := s.client.PutObjectLegalHold(ctx, s.cfg.Bucket, key, minio.PutObjectLegalHoldOptions{VersionID: version, Status: &st})
	if err != nil {
		return fmt.Errorf("legal hold %s on %s: %w", st, key, err)
	}
	return nil
}
