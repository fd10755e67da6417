// Package index is the platform's PostgreSQL layer: the connection pool, the
// embedded schema migrations and the queries of the domain (officers,
// devices, check-outs, incidents, assignments, users) and, later, of the
// evidence index. It imports nothing of this module, so that every other
// package can depend on it without cycles.
package index

import (
	"context"
	"crypto/cipher"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable records which migrations have run (tern's bookkeeping).
const versionTable = "schema_version"

// Sentinel errors callers branch on. They are wrapped with context; use
// errors.Is.
var (
	// ErrNotFound: the row (or a row it refers to) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the change contradicts stored state (a duplicate, a
	// device already checked out, an overlapping assignment).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input breaks a rule of the domain. Errors of this kind
	// are *FieldError values naming the field.
	ErrInvalid = errors.New("invalid")
)

// FieldError is an ErrInvalid that names the offending field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func invalid(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// AppRole is the database login the application works as: it may read
// and write the platform's tables but only append to the audit trail and
// the evidence index (migrations 004, 005 and 007 grant it). It is not a
// superuser and owns nothing, so no statement of the server can widen its
// rights. The schema is owned, and migrated, by another login (OwnerRole).
const AppRole = "bwc_app"

// OwnerRole is the conventional login that owns the database and runs the
// migrations (`bwc migrate`); not a superuser.
const OwnerRole = "bwc_owner"

// ErrSchemaBehind: the database's schema is older than this binary's
// migrations (or newer: a newer binary migrated it).
var ErrSchemaBehind = errors.New("database schema is not at this version of bwc")

// DB is the platform's database: a pgx pool plus the domain's queries.
type DB struct {
	url  string
	pool *pgxpool.Pool
	now  func() time.Time

	secrets cipher.AEAD // seals second-factor secrets (SetSecretsKey, mfa.go)

	positions positionWatch // woken when positions are stored (positions.go)
}

// Open connects to PostgreSQL as the URL's login and checks the
// connection, failing fast with a message that names the server (never the
// password).
func Open(ctx context.Context, databaseURL string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL %s: %w", Redact(databaseURL), err)
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open PostgreSQL pool for %s: %w", Redact(databaseURL), err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL at %s:%d (database %q, user %q): %w",
			cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, cfg.ConnConfig.User, err)
	}
	return &DB{url: databaseURL, pool: pool, now: time.Now}, nil
}

// URL is the database URL the DB was opened with (for tools and tests that
// need a connection of their own).
func (db *DB) URL() string { return db.url }

// Close releases every connection.
func (db *DB) Close() { db.pool.Close() }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping PostgreSQL: %w", err)
	}
	return nil
}

// Pool exposes the pool to the other storage packages of the platform.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Migrate applies the embedded migrations that have not run yet, as the
// login of the URL the DB was opened with: the schema's owner (OwnerRole),
// never the application's login. It is idempotent and safe to call from
// several processes at once (tern holds an advisory lock while it migrates).
func (db *DB) Migrate(ctx context.Context) (version int32, err error) {
	conn, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return 0, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.Background())
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	if err := m.LoadMigrations(sub); err != nil {
		return 0, fmt.Errorf("migrate: load embedded migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	v, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: read schema version: %w", err)
	}
	return v, nil
}

// LatestSchema is the version the embedded migrations bring a database to
// (the highest migration number).
func LatestSchema() int32 {
	ents, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		panic(err) // embedded at build time
	}
	var latest int32
	for _, e := range ents {
		var n int32
		if _, err := fmt.Sscanf(e.Name(), "%d_", &n); err == nil && n > latest {
			latest = n
		}
	}
	return latest
}

// CheckSchema reads the database's schema version (the application's
// login may read it, not change it) and fails with ErrSchemaBehind unless
// it is LatestSchema: a server must not run on a schema it does not know.
func (db *DB) CheckSchema(ctx context.Context) (int32, error) {
	var v int32
	err := db.pool.QueryRow(ctx, `SELECT version FROM `+versionTable).Scan(&v)
	if err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42P01" { // undefined_table: never migrated
			return 0, fmt.Errorf("read schema version: %w", err)
		}
	}
	if want := LatestSchema(); v != want {
		return v, fmt.Errorf("%w: the database is at schema version %d, this bwc needs %d: run `bwc migrate` as the schema owner (-database-url of %s)",
			ErrSchemaBehind, v, want, OwnerRole)
	}
	return v, nil
}

// Redact hides the password of a database URL for logs and errors.
func Redact(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil || u.User == nil {
		return databaseURL
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// mapErr turns PostgreSQL constraint violations into the package's
// sentinels, keeping the original error in the chain.
func mapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505", "23P01": // unique_violation, exclusion_violation
			return fmt.Errorf("%s: %w (%s)", what, ErrConflict, pgErr.ConstraintName)
		case "23503": // foreign_key_violation
			return fmt.Errorf("%s: referenced row %w (%s)", what, ErrNotFound, pgErr.ConstraintName)
		case "23514", "22P02", "22007", "22008": // check, invalid text, datetime
			return fmt.Errorf("%s: %w: %s", what, ErrInvalid, pgErr.Message)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// constraintOf names the constraint a PostgreSQL error violated, if any.
func constraintOf(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.ConstraintName
	}
	return ""
}
