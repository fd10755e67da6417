package index

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
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
	Oversees  []string   `json:"oversees"` // a supervisor's units (empty: their own unit)
	Disabled  bool       `json:"disabled"`
	CreatedAt time.Time  `json:"created_at"`
	// MustChangePassword: an administrator reset the password; until the
	// user changes it, their session reaches only the password change.
	MustChangePassword bool `json:"must_change_password"`
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

// CreateUser stores a user with an argon2id hash of the password, which
// must meet the password policy (CheckPassword).
func (db *DB) CreateUser(ctx context.Context, u User, password string) (User, error) {
	u.Login = strings.TrimSpace(u.Login)
	if err := CheckPassword(u.Login, password); err != nil {
		return User{}, weakPassword(err)
	}
	return db.createUser(ctx, u, password)
}

// CreateDemoUser stores one of the demo's published accounts (bwc
// seed-demo) without the password policy: their passwords are printed by
// scripts/demo.sh and name the role. Never for real accounts.
func (db *DB) CreateDemoUser(ctx context.Context, u User, password string) (User, error) {
	return db.createUser(ctx, u, password)
}

func (db *DB) createUser(ctx context.Context, u User, password string) (User, error) {
	u.Login = strings.TrimSpace(u.Login)
	switch {
	case u.Login == "" || len(u.Login) > MaxLoginLen || strings.ContainsAny(u.Login, " \t\r\n"):
		return User{}, invalid("login", "1 to 64 characters without spaces")
	case !ValidRole(u.Role):
		return User{}, invalid("role", "one of officer, supervisor, reviewer, admin")
	case password == "":
		return User{}, invalid("password", "required")
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

const userCols = `id, login, role, unit, officer_id, oversees, disabled, created_at, must_change_password`

func scanUser(r pgx.Row) (User, error) {
	var u User
	err := r.Scan(u.fields()...)
	return u, err
}

// fields are the scan targets of userCols, in order.
func (u *User) fields() []any {
	return []any{&u.ID, &u.Login, &u.Role, &u.Unit, &u.OfficerID, &u.Oversees, &u.Disabled, &u.CreatedAt, &u.MustChangePassword}
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

// SetUserScope sets a user's unit and the units a supervisor oversees
// (empty: their own unit); they take effect at the user's next request.
func (db *DB) SetUserScope(ctx context.Context, id uuid.UUID, unit string, oversees []string) (User, error) {
	clean := []string{}
	for _, o := range oversees {
		if o = strings.TrimSpace(o); o != "" && !slices.Contains(clean, o) {
			clean = append(clean, o)
		}
	}
	u, err := scanUser(db.pool.QueryRow(ctx, `UPDATE users SET unit = $2, oversees = $3 WHERE id = $1 RETURNING `+userCols,
		id, strings.TrimSpace(unit), clean))
	return u, mapErr("set scope of user "+id.String(), err)
}

// SetUserDisabled disables or re-enables an account. Disabling ends its
// sessions and revokes the API tokens it created, in one transaction
// (re-enabling revives neither); APITokenByToken also refuses a token
// whose creator is disabled.
func (db *DB) SetUserDisabled(ctx context.Context, id uuid.UUID, disabled bool) (User, error) {
	var u User
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `UPDATE users SET disabled = $2 WHERE id = $1 RETURNING `+userCols, id, disabled))
		if err != nil || !disabled {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, id); err != nil {
			return fmt.Errorf("end sessions: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE api_tokens SET revoked_at = $2 WHERE created_by_id = $1 AND revoked_at IS NULL`, id, db.now()); err != nil {
			return fmt.Errorf("revoke API tokens: %w", err)
		}
		return nil
	})
	if err != nil {
		return User{}, mapErr("disable user "+id.String(), err)
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
		Scan(append(u.fields(), &hash, &locked)...)
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
		err := db.pool.QueryRow(ctx, `UPDATE users SET failed_logins = `+keepFailuresWithSecondFactor+`, locked_until = NULL
			WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $2) RETURNING id`, u.ID, now).Scan(&u.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			return User{}, ErrLocked
		}
		if err != nil {
			return User{}, mapErr("reset failed logins", err)
		}
		return u, nil
	}
	if err := db.countFailedLogin(ctx, login); err != nil {
		return User{}, err
	}
	if !known {
		return User{}, ErrUnknownLogin
	}
	return User{}, ErrBadCredentials
}

// countFailedLogin counts one failed login (a wrong password or
// second-factor code) in one UPDATE, and locks the account from the value
// it returns. An unknown login finds no row.
func (db *DB) countFailedLogin(ctx context.Context, login string) error {
	var failed int
	err := db.pool.QueryRow(ctx, `UPDATE users SET failed_logins = failed_logins + 1,
		locked_until = CASE WHEN failed_logins + 1 >= $2
			THEN $3::timestamptz + make_interval(secs => LEAST($4::float8 * power(2, LEAST(failed_logins + 1 - $2, 20)), $5::float8))
			ELSE locked_until END
		WHERE login = $1 RETURNING failed_logins`,
		login, lockoutAfter, db.now(), lockoutBase.Seconds(), lockoutMax.Seconds()).Scan(&failed)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) { // no row: an unknown login
		return mapErr("record failed login", err)
	}
	return nil
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
	err := db.pool.QueryRow(ctx, `SELECT u.id, u.login, u.role, u.unit, u.officer_id, u.oversees, u.disabled, u.created_at, u.must_change_password,
			s.csrf_token, s.expires_at, s.method
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = $1 AND s.expires_at > now() AND NOT u.disabled`, tokenHash(token)).
		Scan(append(s.User.fields(), &s.CSRFToken, &s.ExpiresAt, &s.Method)...)
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

// APIToken is a bearer token for a machine client (e.g. a dispatch
// system). Its secret is shown once, at creation; only its SHA-256 hash is
// stored, and neither is ever listed.
type APIToken struct {
	ID          uuid.UUID  `json:"id"`
	Name        string     `json:"name"`
	Role        string     `json:"role"`
	CreatedBy   string     `json:"created_by"`    // the creator's login
	CreatedByID *uuid.UUID `json:"created_by_id"` // the creator (nil: made before creators were recorded)
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"` // nil: made before tokens expired (refused)
	LastUsedAt  *time.Time `json:"last_used_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	Token       string     `json:"token,omitempty"` // only when created
}

// LastUseEvery: a token's last use is written at most this often, so that a
// busy client does not cost a write per request.
const LastUseEvery = time.Minute

const tokenCols = `t.id, t.name, t.role, t.created_by, t.created_by_id, t.created_at, t.expires_at, t.last_used_at, t.revoked_at`

func (t *APIToken) fields() []any {
	return []any{&t.ID, &t.Name, &t.Role, &t.CreatedBy, &t.CreatedByID, &t.CreatedAt, &t.ExpiresAt, &t.LastUsedAt, &t.RevokedAt}
}

// CreateAPIToken issues a token made by user by (ID and login), valid for
// ttl; its secret is returned once. The longest ttl is the caller's rule
// (the -token-ttl setting).
func (db *DB) CreateAPIToken(ctx context.Context, name, role string, by User, ttl time.Duration) (APIToken, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return APIToken{}, invalid("name", "required")
	case !ValidRole(role) || role == RoleOfficer:
		return APIToken{}, invalid("role", "one of supervisor, reviewer, admin")
	case by.ID == uuid.Nil:
		return APIToken{}, invalid("created_by", "a user creates a token")
	case ttl <= 0:
		return APIToken{}, invalid("ttl", "must be positive")
	}
	now := db.now().UTC().Truncate(time.Microsecond) // PostgreSQL's precision
	expires := now.Add(ttl)
	t := APIToken{ID: uuid.Must(uuid.NewV7()), Name: name, Role: role, CreatedBy: by.Login, CreatedByID: &by.ID,
		ExpiresAt: &expires, Token: "bwc_" + randomToken()}
	err := db.pool.QueryRow(ctx, `INSERT INTO api_tokens (id, name, token_hash, role, created_by, created_by_id, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING created_at`,
		t.ID, t.Name, tokenHash(t.Token), t.Role, by.Login, by.ID, now, expires).Scan(&t.CreatedAt)
	return t, mapErr("create API token "+name, err)
}

// APITokenByToken returns the token with this secret when it is neither
// revoked nor expired and its creator is an enabled user; ErrUnauthenticated
// otherwise (all alike). It records the use, at most once per LastUseEvery
// per token, in the same statement.
func (db *DB) APITokenByToken(ctx context.Context, token string) (APIToken, error) {
	var t APIToken
	now := db.now()
	err := db.pool.QueryRow(ctx, `WITH t AS (
			SELECT `+tokenCols+` FROM api_tokens t JOIN users u ON u.id = t.created_by_id
			WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 AND NOT u.disabled),
		used AS (
			UPDATE api_tokens SET last_used_at = $2 WHERE id = (SELECT id FROM t)
				AND (last_used_at IS NULL OR last_used_at <= $2::timestamptz - make_interval(secs => $3::float8))
			RETURNING last_used_at)
		SELECT t.id, t.name, t.role, t.created_by, t.created_by_id, t.created_at, t.expires_at,
			COALESCE((SELECT last_used_at FROM used), t.last_used_at), t.revoked_at FROM t`,
		tokenHash(token), now, LastUseEvery.Seconds()).Scan(t.fields()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return APIToken{}, ErrUnauthenticated
	}
	return t, mapErr("look up API token", err)
}

// APITokens lists every token, newest first, without secrets: expired and
// revoked ones too, for the record.
func (db *DB) APITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+tokenCols+` FROM api_tokens t ORDER BY t.created_at DESC, t.id DESC`)
	if err != nil {
		return nil, mapErr("list API tokens", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIToken, error) {
		var t APIToken
		err := r.Scan(t.fields()...)
		return t, err
	})
	return out, mapErr("list API tokens", err)
}

// RevokeAPIToken revokes a token.
func (db *DB) RevokeAPIToken(ctx context.Context, id uuid.UUID) error {
	tag, err := db.pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, db.now())
	if err != nil {
		return mapErr("revoke API token", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke API token %s: %w", id, ErrNotFound)
	}
	return nil
}

// ErrWeakPassword: a password breaks the policy (CheckPassword); the
// wrapping error names the rule.
var ErrWeakPassword = errors.New("password too weak")

// MinPasswordLen is the policy's shortest password, in characters.
const MinPasswordLen = 12

// commonPasswords are refused whatever their length (compared
// case-insensitively): the first guesses of any attacker.
var commonPasswords = map[string]bool{
	"password": true, "password1": true, "password12": true, "password123": true, "password1234": true,
	"passw0rd": true, "p@ssw0rd": true, "p@ssword123": true, "passwordpassword": true,
	"123456789012": true, "1234567890123": true, "12345678901234": true, "123456123456": true,
	"qwertyuiop": true, "qwertyuiop12": true, "qwertyuiop123": true, "qwerty123456": true, "1qaz2wsx3edc": true,
	"1q2w3e4r5t6y": true, "asdfghjkl123": true, "zxcvbnm12345": true, "abc123456789": true, "abcdefghijkl": true,
	"iloveyou1234": true, "letmein12345": true, "welcome12345": true, "welcome123456": true,
	"administrator": true, "changeme1234": true, "trustno11234": true, "football1234": true,
	"woaini1314520": true, "5201314520": true, "aa123456789": true, "a123456789012": true,
}

// CheckPassword is the password policy, the one place it is written: at
// least MinPasswordLen characters (and at most MaxPasswordLen bytes), not
// containing the login (case-insensitively), not one of a list of common
// passwords, not one character repeated. It applies to new accounts, own
// changes and administrators' resets. The error wraps ErrWeakPassword and
// names the rule broken.
func CheckPassword(login, password string) error {
	lower := strings.ToLower(password)
	runes := []rune(password)
	switch {
	case len(runes) < MinPasswordLen:
		return fmt.Errorf("%w: at least %d characters", ErrWeakPassword, MinPasswordLen)
	case len(password) > MaxPasswordLen:
		return fmt.Errorf("%w: at most %d bytes", ErrWeakPassword, MaxPasswordLen)
	case strings.Count(password, string(runes[0])) == len(runes):
		return fmt.Errorf("%w: not one character repeated", ErrWeakPassword)
	case login != "" && strings.Contains(lower, strings.ToLower(login)):
		return fmt.Errorf("%w: must not contain the login", ErrWeakPassword)
	case commonPasswords[lower]:
		return fmt.Errorf("%w: a commonly used password", ErrWeakPassword)
	}
	return nil
}

// weakPassword is CheckPassword's error as a field error of "password":
// both an ErrInvalid (*FieldError) and an ErrWeakPassword.
func weakPassword(err error) error {
	return policyError{field: &FieldError{Field: "password", Reason: strings.TrimPrefix(err.Error(), ErrWeakPassword.Error()+": ")}, rule: err}
}

type policyError struct {
	field *FieldError
	rule  error
}

func (e policyError) Error() string   { return e.field.Error() }
func (e policyError) Unwrap() []error { return []error{e.field, e.rule} }

// ChangePassword sets a user's own new password (the caller checked the
// current one, e.g. with Authenticate), which must meet the policy: it
// clears a forced change and ends the user's other sessions (keep is the
// token of the session that made the change; "" ends all).
func (db *DB) ChangePassword(ctx context.Context, id uuid.UUID, password, keep string) (User, error) {
	return db.setPassword(ctx, id, password, false, keep)
}

// ResetPassword is an administrator's reset: the new password must meet
// the policy, the user must change it at the next login, every session of
// the user ends and a lockout is lifted.
func (db *DB) ResetPassword(ctx context.Context, id uuid.UUID, password string) (User, error) {
	return db.setPassword(ctx, id, password, true, "")
}

func (db *DB) setPassword(ctx context.Context, id uuid.UUID, password string, mustChange bool, keep string) (User, error) {
	what := "set password of user " + id.String()
	u, err := scanUser(db.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if err != nil {
		return User{}, mapErr(what, err)
	}
	if err := CheckPassword(u.Login, password); err != nil {
		return User{}, weakPassword(err)
	}
	hash := hashPassword(password)
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `UPDATE users SET password_hash = $2, must_change_password = $3,
			failed_logins = CASE WHEN $3 THEN 0 ELSE failed_logins END,
			locked_until = CASE WHEN $3 THEN NULL ELSE locked_until END
			WHERE id = $1 RETURNING `+userCols, id, hash, mustChange))
		if err != nil {
			return err
		}
		var keepHash []byte
		if keep != "" {
			keepHash = tokenHash(keep)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1 AND ($2::bytea IS NULL OR token_hash <> $2)`, id, keepHash); err != nil {
			return fmt.Errorf("end sessions: %w", err)
		}
		return nil
	})
	if err != nil {
		return User{}, mapErr(what, err)
	}
	return u, nil
}
