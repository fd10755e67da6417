package index

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/argon2"
)

// Roles of users.
const (
	RoleOfficer    = "officer"
	RoleSupervisor = "supervisor"
	RoleReviewer   = "reviewer"
	RoleAdmin      = "admin"
)

// ValidRole reports whether r is one of the four roles.
func ValidRole(r string) bool {
	switch r {
	case RoleOfficer, RoleSupervisor, RoleReviewer, RoleAdmin:
		return true
	}
	return false
}

// Authentication errors.
var (
	// ErrBadCredentials: unknown login, wrong password or disabled account
	// (deliberately not told apart).
	ErrBadCredentials = errors.New("wrong login or password")
	// ErrLocked: too many failed logins; try again later.
	ErrLocked = errors.New("account temporarily locked after repeated failed logins")
	// ErrUnauthenticated: no valid session or token.
	ErrUnauthenticated = errors.New("not authenticated")
	// ErrUnknownLogin: no such login. It is also ErrBadCredentials and
	// reads the same; the web layer uses it to lock unknown logins after
	// repeated failures like known ones, so that a lock does not tell
	// which logins exist.
	ErrUnknownLogin error = unknownLogin{}
)

type unknownLogin struct{}

func (unknownLogin) Error() string { return ErrBadCredentials.Error() }
func (unknownLogin) Unwrap() error { return ErrBadCredentials }

// LockoutFor is how long an account is locked after its n-th consecutive
// failed login (0: not locked); the database applies the same rule.
func LockoutFor(n int) time.Duration {
	if n < lockoutAfter {
		return 0
	}
	return min(lockoutBase<<min(n-lockoutAfter, 20), lockoutMax)
}

// User is a person who logs in.
type User struct {
	ID        uuid.UUID  `json:"id"`
	Login     string     `json:"login"`
	Role      string     `json:"role"`
	Unit      string     `json:"unit"`
	OfficerID *uuid.UUID `json:"officer_id"`
	Disabled  bool       `json:"disabled"`
	CreatedAt time.Time  `json:"created_at"`
}

// Lockout policy: after lockoutAfter consecutive failures each further one
// locks the account for lockoutBase doubled per failure, at most lockoutMax.
const (
	lockoutAfter = 5
	lockoutBase  = 30 * time.Second
	lockoutMax   = 15 * time.Minute
)

// argon2id parameters (RFC 9106's second recommendation, lighter memory).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// hashPassword returns an encoded argon2id hash with a random salt.
func hashPassword(pw string) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// checkPassword compares pw with an encoded argon2id hash in constant time.
func checkPassword(encoded, pw string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m > 1<<20 || t > 16 || p == 0 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// CreateUser stores a user with an argon2id hash of the password.
func (db *DB) CreateUser(ctx context.Context, u User, password string) (User, error) {
	u.Login = strings.TrimSpace(u.Login)
	switch {
	case u.Login == "" || len(u.Login) > MaxLoginLen || strings.ContainsAny(u.Login, " \t\r\n"):
		return User{}, invalid("login", "1 to 64 characters without spaces")
	case !ValidRole(u.Role):
		return User{}, invalid("role", "one of officer, supervisor, reviewer, admin")
	case len(password) < 10:
		return User{}, invalid("password", "at least 10 characters")
	case len(password) > MaxPasswordLen:
		return User{}, invalid("password", "at most 256 characters")
	case u.Role == RoleOfficer && u.OfficerID == nil:
		return User{}, invalid("officer_id", "an officer's account must name the officer")
	}
	u.ID = uuid.Must(uuid.NewV7())
	err := db.pool.QueryRow(ctx, `INSERT INTO users (id, login, password_hash, role, officer_id, unit)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`,
		u.ID, u.Login, hashPassword(password), u.Role, u.OfficerID, u.Unit).Scan(&u.CreatedAt)
	if err != nil {
		return User{}, mapErr("create user "+u.Login, err)
	}
	return u, nil
}

const userCols = `id, login, role, unit, officer_id, disabled, created_at`

func scanUser(r pgx.Row) (User, error) {
	var u User
	err := r.Scan(&u.ID, &u.Login, &u.Role, &u.Unit, &u.OfficerID, &u.Disabled, &u.CreatedAt)
	return u, err
}

// Users lists every user by login.
func (db *DB) Users(ctx context.Context) ([]User, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+userCols+` FROM users ORDER BY login`)
	if err != nil {
		return nil, mapErr("list users", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	return out, mapErr("list users", err)
}

// UserByLogin returns one user.
func (db *DB) UserByLogin(ctx context.Context, login string) (User, error) {
	u, err := scanUser(db.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE login = $1`, login))
	return u, mapErr("user "+login, err)
}

// SetUserDisabled disables or re-enables an account; disabling ends its
// sessions.
func (db *DB) SetUserDisabled(ctx context.Context, id uuid.UUID, disabled bool) (User, error) {
	u, err := scanUser(db.pool.QueryRow(ctx, `UPDATE users SET disabled = $2 WHERE id = $1 RETURNING `+userCols, id, disabled))
	if err != nil {
		return User{}, mapErr("disable user "+id.String(), err)
	}
	if disabled {
		if _, err := db.pool.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, id); err != nil {
			return User{}, mapErr("end sessions of user "+id.String(), err)
		}
	}
	return u, nil
}

// Authentication input caps: a login or password longer than these is
// refused before anything is looked up, hashed, logged or audited.
const (
	MaxLoginLen    = 64
	MaxPasswordLen = 256
)

// Authenticate checks a login and password. Repeated failures lock the
// account with a growing back-off (ErrLocked, even for the right password,
// until it expires). Unknown logins cost the same work as known ones: the
// same lookup, one argon2id verification (against a fixed hash) and the
// same failure-counting UPDATE (which finds no row).
//
// Every verified failure counts: the counter is incremented in one UPDATE
// and the lock decided from the value it returns, so parallel guesses cannot
// overwrite each other's count.
func (db *DB) Authenticate(ctx context.Context, login, password string) (User, error) {
	if len(login) > MaxLoginLen || len(password) > MaxPasswordLen {
		return User{}, ErrBadCredentials
	}
	var (
		u      User
		hash   string
		locked *time.Time
		known  = true
	)
	err := db.pool.QueryRow(ctx, `SELECT `+userCols+`, password_hash, locked_until FROM users WHERE login = $1`, login).
		Scan(&u.ID, &u.Login, &u.Role, &u.Unit, &u.OfficerID, &u.Disabled, &u.CreatedAt, &hash, &locked)
	if errors.Is(err, pgx.ErrNoRows) {
		known, hash = false, dummyHash
	} else if err != nil {
		return User{}, mapErr("authenticate "+login, err)
	}
	now := db.now()
	if known && locked != nil && now.Before(*locked) {
		return User{}, fmt.Errorf("%w until %s", ErrLocked, locked.UTC().Format(time.RFC3339))
	}
	ok := checkPassword(hash, password)
	if known && ok && !u.Disabled {
		// reset the counter unless a parallel failure locked the account
		// meanwhile
		err := db.pool.QueryRow(ctx, `UPDATE users SET failed_logins = 0, locked_until = NULL
			WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $2) RETURNING id`, u.ID, now).Scan(&u.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			return User{}, ErrLocked
		}
		if err != nil {
			return User{}, mapErr("reset failed logins", err)
		}
		return u, nil
	}
	var failed int
	err = db.pool.QueryRow(ctx, `UPDATE users SET failed_logins = failed_logins + 1,
		locked_until = CASE WHEN failed_logins + 1 >= $2
			THEN $3::timestamptz + make_interval(secs => LEAST($4::float8 * power(2, LEAST(failed_logins + 1 - $2, 20)), $5::float8))
			ELSE locked_until END
		WHERE login = $1 RETURNING failed_logins`,
		login, lockoutAfter, now, lockoutBase.Seconds(), lockoutMax.Seconds()).Scan(&failed)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) { // no row: an unknown login
		return User{}, mapErr("record failed login", err)
	}
	if !known {
		return User{}, ErrUnknownLogin
	}
	return User{}, ErrBadCredentials
}

// FailedLogins returns a user's count of consecutive failed logins and the
// end of its lock (nil: not locked).
func (db *DB) FailedLogins(ctx context.Context, login string) (int, *time.Time, error) {
	var (
		n      int
		locked *time.Time
	)
	err := db.pool.QueryRow(ctx, `SELECT failed_logins, locked_until FROM users WHERE login = $1`, login).Scan(&n, &locked)
	return n, locked, mapErr("failed logins of "+login, err)
}

var dummyHash = hashPassword("timing equaliser for unknown logins")

// Session is a logged-in browser.
type Session struct {
	Token     string // only known when created; stored hashed
	CSRFToken string
	User      User
	ExpiresAt time.Time
	Method    string // how it was started: AuthPassword or AuthOIDC
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// CreateSession starts a session for a user, authenticated by method
// (AuthPassword or AuthOIDC).
func (db *DB) CreateSession(ctx context.Context, u User, ttl time.Duration, remote, method string) (Session, error) {
	s := Session{Token: randomToken(), CSRFToken: randomToken(), User: u, ExpiresAt: db.now().Add(ttl).UTC(), Method: method}
	_, err := db.pool.Exec(ctx, `INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at, remote_addr, method) VALUES ($1, $2, $3, $4, $5, $6)`,
		tokenHash(s.Token), u.ID, s.CSRFToken, s.ExpiresAt, remote, method)
	if err != nil {
		return Session{}, mapErr("create session for "+u.Login, err)
	}
	return s, nil
}

// SessionByToken returns the live session of a token; ErrUnauthenticated
// when it is unknown, expired or its user is disabled.
func (db *DB) SessionByToken(ctx context.Context, token string) (Session, error) {
	var s Session
	err := db.pool.QueryRow(ctx, `SELECT u.id, u.login, u.role, u.unit, u.officer_id, u.disabled, u.created_at, s.csrf_token, s.expires_at, s.method
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = $1 AND s.expires_at > now() AND NOT u.disabled`, tokenHash(token)).
		Scan(&s.User.ID, &s.User.Login, &s.User.Role, &s.User.Unit, &s.User.OfficerID, &s.User.Disabled, &s.User.CreatedAt, &s.CSRFToken, &s.ExpiresAt, &s.Method)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, ErrUnauthenticated
	}
	return s, mapErr("look up session", err)
}

// DeleteSession ends a session (logout).
func (db *DB) DeleteSession(ctx context.Context, token string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, tokenHash(token))
	return mapErr("delete session", err)
}

// APIToken is a bearer token for a machine client (e.g. a dispatch system).
type APIToken struct {
	ID        uuid.UUID  `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	Token     string     `json:"token,omitempty"` // only when created
}

// CreateAPIToken issues a token; its secret is returned once.
func (db *DB) CreateAPIToken(ctx context.Context, name, role, by string) (APIToken, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return APIToken{}, invalid("name", "required")
	case !ValidRole(role) || role == RoleOfficer:
		return APIToken{}, invalid("role", "one of supervisor, reviewer, admin")
	}
	t := APIToken{ID: uuid.Must(uuid.NewV7()), Name: name, Role: role, CreatedBy: by, Token: "bwc_" + randomToken()}
	err := db.pool.QueryRow(ctx, `INSERT INTO api_tokens (id, name, token_hash, role, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING created_at`,
		t.ID, t.Name, tokenHash(t.Token), t.Role, by).Scan(&t.CreatedAt)
	return t, mapErr("create API token "+name, err)
}

// APITokenByToken returns the unrevoked token with this secret;
// ErrUnauthenticated otherwise.
func (db *DB) APITokenByToken(ctx context.Context, token string) (APIToken, error) {
	var t APIToken
	err := db.pool.QueryRow(ctx, `SELECT id, name, role, created_by, created_at, revoked_at FROM api_tokens
		WHERE token_hash = $1 AND revoked_at IS NULL`, tokenHash(token)).
		Scan(&t.ID, &t.Name, &t.Role, &t.CreatedBy, &t.CreatedAt, &t.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return APIToken{}, ErrUnauthenticated
	}
	return t, mapErr("look up API token", err)
}

// RevokeAPIToken revokes a token.
func (db *DB) RevokeAPIToken(ctx context.Context, id uuid.UUID) error {
	tag, err := db.pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, id)
	if err != nil {
		return mapErr("revoke API token", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke API token %s: %w", id, ErrNotFound)
	}
	return nil
}
