// Package blob is the platform's S3-compatible object store (MinIO): the
// evidence bucket, created with S3 Object Lock so that stored evidence is
// write-once. It imports nothing of this module.
package blob

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ErrNoObjectLock: the bucket exists but was created without object lock,
// which cannot be turned on afterwards; evidence must not go there.
var ErrNoObjectLock = errors.New("bucket has no object lock")

// ErrNoBucket: the evidence bucket does not exist; the server does not
// create it (its identity may not), `bwc setup-storage` does.
var ErrNoBucket = errors.New("bucket does not exist")

// RetentionMode is the S3 object-lock mode PutEvidence applies.
type RetentionMode string

const (
	// Compliance: nobody, not even the store's root user, can delete a
	// locked version or shorten its retention before the date.
	Compliance RetentionMode = "COMPLIANCE"
	// Governance: a user granted s3:BypassGovernanceRetention (the root
	// user; never the platform's own identity) can.
	Governance RetentionMode = "GOVERNANCE"
)

// Config says how to reach the object store.
type Config struct {
	Endpoint      string // host:port
	AccessKey     string
	SecretKey     string
	Bucket        string
	Region        string
	UseTLS        bool
	RetentionMode RetentionMode // of every object PutEvidence writes
}

// Store is the evidence bucket.
type Store struct {
	cfg       Config
	client    *minio.Client
	transport *http.Transport // minio-go's default, kept to close its idle connections
}

// Open makes a client for the store; it does not contact it (see
// EnsureBucket).
func Open(cfg Config) (*Store, error) {
	if cfg.RetentionMode != Compliance && cfg.RetentionMode != Governance {
		return nil, fmt.Errorf("object store config: RetentionMode %q is not %s or %s", cfg.RetentionMode, Compliance, Governance)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	tr, err := minio.DefaultTransport(cfg.UseTLS)
	if err != nil {
		return nil, fmt.Errorf("object store client for %s: %w", cfg.Endpoint, err)
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.UseTLS,
		Region:    cfg.Region,
		Transport: tr,
		// the platform retries on its own terms (the archive's uploader
		// backs off); a few quick retries here, not minio-go's ten.
		MaxRetries: 3,
		// lets PUTs carry an x-amz-checksum-sha256 header, which the
		// server verifies against the body (the archive sends each
		// segment's SHA-256 this way).
		TrailingHeaders: true,
	})
	if err != nil {
		return nil, fmt.Errorf("object store client for %s: %w", cfg.Endpoint, err)
	}
	return &Store{cfg: cfg, client: c, transport: tr}, nil
}

// Close closes the client's idle connections (and with them their reader
// and writer goroutines). The store stays usable: a later request opens a
// new connection.
func (s *Store) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

// Bucket is the name of the evidence bucket.
func (s *Store) Bucket() string { return s.cfg.Bucket }

// Client is the underlying minio client, for the other storage packages.
func (s *Store) Client() *minio.Client { return s.client }

// EnsureBucket checks that the evidence bucket exists and has object lock
// enabled; it creates nothing (the platform's identity may not create
// buckets: `bwc setup-storage` does, see CreateBucket). Errors say what is
// wrong in words an operator can act on.
func (s *Store) EnsureBucket(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	exists, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return s.explain("check bucket", err)
	}
	if !exists {
		return fmt.Errorf("object store %s: %w: %q (run `bwc setup-storage` with the administrator's keys to create it with object lock)",
			s.cfg.Endpoint, ErrNoBucket, s.cfg.Bucket)
	}
	return s.checkObjectLock(ctx)
}

// CreateBucket creates the evidence bucket with object lock when it is
// missing and checks that an existing one has object lock: an
// administrator's operation (`bwc setup-storage`, tests), not the server's.
func (s *Store) CreateBucket(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	exists, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return s.explain("check bucket", err)
	}
	if !exists {
		err := s.client.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{Region: s.cfg.Region, ObjectLocking: true})
		if err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
			return s.explain("create bucket", err)
		}
	}
	return s.checkObjectLock(ctx)
}

// checkObjectLock refuses a bucket without object lock.
func (s *Store) checkObjectLock(ctx context.Context) error {
	enabled, err := s.ObjectLockEnabled(ctx)
	if err != nil {
		return err
	}
	if !enabled {
		return fmt.Errorf("bucket %q at %s: %w (object lock can only be enabled when a bucket is created: use a new bucket name)",
			s.cfg.Bucket, s.cfg.Endpoint, ErrNoObjectLock)
	}
	return nil
}

// ObjectLockEnabled reports whether the bucket was created with object lock.
func (s *Store) ObjectLockEnabled(ctx context.Context) (bool, error) {
	status, _, _, _, err := s.client.GetObjectLockConfig(ctx, s.cfg.Bucket)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "ObjectLockConfigurationNotFoundError" {
			return false, nil
		}
		return false, s.explain("read object lock configuration", err)
	}
	return status == "Enabled", nil
}

// Ping checks that the store answers and the bucket is there.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return s.explain("check bucket", err)
	}
	if !ok {
		return fmt.Errorf("object store %s: bucket %q does not exist", s.cfg.Endpoint, s.cfg.Bucket)
	}
	return nil
}

func (s *Store) explain(what string, err error) error {
	resp := minio.ToErrorResponse(err)
	var netErr net.Error
	switch {
	case resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch" || resp.Code == "AccessDenied":
		return fmt.Errorf("object store %s: %s %q: credentials refused (%s): check the access and secret keys: %w",
			s.cfg.Endpoint, what, s.cfg.Bucket, resp.Code, err)
	case errors.As(err, &netErr) || strings.Contains(err.Error(), "connection refused"):
		return fmt.Errorf("object store %s unreachable: %s %q: %w", s.cfg.Endpoint, what, s.cfg.Bucket, err)
	}
	return fmt.Errorf("object store %s: %s %q: %w", s.cfg.Endpoint, what, s.cfg.Bucket, err)
}

// ErrNoObject: the key is not in the bucket.
var ErrNoObject = errors.New("object not found")

// Object is a stored object opened for reading: seekable, so that HTTP
// range requests are served without reading what is skipped.
type Object struct {
	*minio.Object
	Size    int64
	ModTime time.Time
}

// Open opens the current version of an object for reading. A missing
// object is ErrNoObject. Evidence is read by its indexed version
// (OpenVersion), not by key.
func (s *Store) Open(ctx context.Context, key string) (*Object, error) {
	return s.OpenVersion(ctx, key, "")
}

// OpenVersion opens one version of an object for reading: the version the
// index holds, so that a newer version PUT over the key or a delete marker
// changes nothing a reader gets ("": the current version, for rows indexed
// before version IDs). A missing object or version is ErrNoObject.
func (s *Store) OpenVersion(ctx context.Context, key, version string) (*Object, error) {
	o, err := s.client.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{VersionID: version})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", describe(key, version), err)
	}
	st, err := o.Stat()
	if err != nil {
		o.Close()
		if missing(err) {
			return nil, fmt.Errorf("open %s: %w", describe(key, version), ErrNoObject)
		}
		return nil, fmt.Errorf("open %s: %w", describe(key, version), err)
	}
	return &Object{Object: o, Size: st.Size, ModTime: st.LastModified}, nil
}

// missing: the error says the key, or the version asked for, is not there
// (a GET of a key whose current version is a delete marker is NoSuchKey).
func missing(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == "NoSuchKey" || code == "NoSuchVersion"
}

// describe names a key and, when one is asked for, its version.
func describe(key, version string) string {
	if version == "" {
		return key
	}
	return key + " version " + version
}

// SetLegalHold puts (on) or lifts an S3 legal hold on one version of an
// object ("": the current one).
func (s *Store) SetLegalHold(ctx context.Context, key, version string, on bool) error {
	return s.setLegalHold(ctx, key, version, on)
}

// SHA256 downloads one version of an object ("": the current one) and
// hashes it, with its size. A missing object or version is ErrNoObject.
func (s *Store) SHA256(ctx context.Context, key, version string) ([]byte, int64, error) {
	o, err := s.OpenVersion(ctx, key, version)
	if err != nil {
		return nil, 0, err
	}
	defer o.Close()
	h := sha256.New()
	n, err := io.Copy(h, o)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", describe(key, version), err)
	}
	return h.Sum(nil), n, nil
}

// Latest is what a key's newest version is: its version ID, or a delete
// marker (an object removed by key: its versions stay).
type Latest struct {
	VersionID    string
	DeleteMarker bool
	Exists       bool // the key has any version at all
}

// LatestVersion lists a key's versions and reports the newest one.
func (s *Store) LatestVersion(ctx context.Context, key string) (Latest, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine once the key is found
	var out Latest
	for oi := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if oi.Err != nil {
			return Latest{}, fmt.Errorf("versions of %s: %w", key, oi.Err)
		}
		if oi.Key != key {
			continue
		}
		out.Exists = true
		if oi.IsLatest {
			out.VersionID, out.DeleteMarker = oi.VersionID, oi.IsDeleteMarker
			return out, nil
		}
	}
	return out, nil
}
