// Package storagetest gives integration tests the real PostgreSQL and MinIO
// that scripts/test.sh starts: each caller gets a fresh database and a fresh
// bucket, so tests never see each other's data. Like the server, tests work
// with the least-privilege credentials scripts/services.sh makes (the
// database login bwc_app, the MinIO user bwc-test); the database is created
// and migrated by its owner bwc_owner and the bucket by the MinIO root user,
// and tampering goes through Superuser and Admin. When the services are not
// configured the test fails (never skips) with a message saying how to start
// them.
package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
)

const howToStart = "start the services with `scripts/services.sh up && source /var/tmp/bwc/env`, or run everything with scripts/test.sh"

// Env returns a required test environment variable, failing the test when
// it is missing.
func Env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: this test needs the real services; %s", name, howToStart)
	}
	return v
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

func uniqueName(t testing.TB, prefix string, max int) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := nonWord.ReplaceAllString(strings.ToLower(t.Name()), "-")
	suffix := "-" + hex.EncodeToString(b)
	if len(prefix)+len(name)+len(suffix) > max {
		name = name[:max-len(prefix)-len(suffix)]
	}
	return strings.Trim(prefix+name, "-") + suffix
}

// DatabaseURL creates a fresh, empty database owned by the schema owner
// (index.OwnerRole) and returns its URL for that owner: what `bwc migrate`
// connects with. The database is dropped when the test ends.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	admin := Env(t, "BWC_TEST_DATABASE_URL")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL %s: %v; %s", index.Redact(admin), err, howToStart)
	}
	defer conn.Close(ctx)
	name := strings.ReplaceAll(uniqueName(t, "t_", 63), "-", "_")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" OWNER "+index.OwnerRole); err != nil {
		t.Fatalf("create test database %s owned by %s: %v; %s", name, index.OwnerRole, err, howToStart)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	return withDatabase(t, Env(t, "BWC_TEST_DATABASE_OWNER_URL"), name)
}

// AppURL is the URL of the database of dbURL for the application's login
// (index.AppRole): what `bwc serve` connects with.
func AppURL(t testing.TB, dbURL string) string {
	t.Helper()
	return withDatabase(t, Env(t, "BWC_TEST_DATABASE_APP_URL"), databaseOf(t, dbURL))
}

// withDatabase is base (a URL from the environment) for database name.
func withDatabase(t testing.TB, base, name string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("test database URL %s: %v", index.Redact(base), err)
	}
	u.Path = "/" + name
	return u.String()
}

// databaseOf is the database name of a URL.
func databaseOf(t testing.TB, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("database URL %s: %v", index.Redact(dbURL), err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// NewDB opens a fresh database, migrated by its owner as `bwc migrate`
// does, with a pool of the application's login (index.AppRole) as `bwc
// serve` has; closed when the test ends.
func NewDB(t testing.TB) *index.DB {
	t.Helper()
	ctx := context.Background()
	owner := DatabaseURL(t)
	mig, err := index.Open(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	_, err = mig.Migrate(ctx)
	mig.Close()
	if err != nil {
		t.Fatal(err)
	}
	db, err := index.Open(ctx, AppURL(t, owner))
	if err != nil {
		t.Fatalf("%v; %s", err, howToStart)
	}
	t.Cleanup(db.Close)
	// second-factor secrets are sealed with a key, as bwc serve's (derived
	// from its signing key)
	if err := db.SetSecretsKey(make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	return db
}

// Superuser connects to db's database as the PostgreSQL superuser, for
// tests that act as an administrator with full rights would (tampering,
// faults).
func Superuser(t testing.TB, db *index.DB) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, withDatabase(t, Env(t, "BWC_TEST_DATABASE_URL"), databaseOf(t, db.URL())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// BlobConfig returns the test MinIO's settings for the platform's
// least-privilege test identity (BWC_TEST_S3_ACCESS_KEY, made by `bwc
// setup-storage` for the buckets "t-*") with a fresh bucket name (the
// bucket is not created) and governance retention, so that tests can
// tamper as the administrator (Admin).
func BlobConfig(t testing.TB) blob.Config {
	t.Helper()
	return blob.Config{
		Endpoint:      Env(t, "BWC_TEST_S3_ENDPOINT"),
		AccessKey:     Env(t, "BWC_TEST_S3_ACCESS_KEY"),
		SecretKey:     Env(t, "BWC_TEST_S3_SECRET_KEY"),
		Bucket:        uniqueName(t, "t-", 63),
		RetentionMode: blob.Governance,
	}
}

// AdminConfig is cfg with the test MinIO's administrator (root) keys.
func AdminConfig(t testing.TB, cfg blob.Config) blob.Config {
	t.Helper()
	cfg.AccessKey = Env(t, "BWC_TEST_S3_ADMIN_ACCESS_KEY")
	cfg.SecretKey = Env(t, "BWC_TEST_S3_ADMIN_SECRET_KEY")
	return cfg
}

// NewBucket creates a fresh evidence bucket (with object lock) as the
// administrator, as `bwc setup-storage` does, and returns the settings of
// the least-privilege test identity for it.
func NewBucket(t testing.TB) blob.Config {
	t.Helper()
	cfg := BlobConfig(t)
	admin, err := blob.Open(AdminConfig(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := admin.CreateBucket(ctx); err != nil {
		t.Fatalf("%v; %s", err, howToStart)
	}
	return cfg
}

// NewStore creates a fresh evidence bucket (with object lock) and returns
// the store opened with the platform's least-privilege test identity, as
// the server opens it; its idle connections are closed when the test ends.
func NewStore(t testing.TB) *blob.Store {
	t.Helper()
	s, err := blob.Open(NewBucket(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatalf("%v; %s", err, howToStart)
	}
	return s
}

// Admin returns the store's bucket opened with the MinIO administrator's
// (root) keys, for tests that tamper with evidence as only an
// administrator can (delete markers, governance-bypass deletes). The
// platform's own code never gets it.
func Admin(t testing.TB, store *blob.Store) *blob.Store {
	t.Helper()
	cfg := BlobConfig(t)
	cfg.Bucket = store.Bucket()
	s, err := blob.Open(AdminConfig(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Describe is a short description of the services, for test logs.
func Describe() string {
	return fmt.Sprintf("PostgreSQL %s, MinIO %s", index.Redact(os.Getenv("BWC_TEST_DATABASE_URL")), os.Getenv("BWC_TEST_S3_ENDPOINT"))
}
