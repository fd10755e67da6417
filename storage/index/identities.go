package index

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// How a session was started (sessions.method).
const (
	AuthPassword = "password" // a local account's password
	AuthOIDC     = "oidc"     // an OpenID Connect identity provider
)

// ErrUnknownBadge: an officer signed in through the identity provider, but
// no officer of the roster has the badge the provider named.
var ErrUnknownBadge = errors.New("no officer with this badge")

// Identity is a person as an OpenID Connect provider names them, with the
// role and unit their claims map to at this sign-in.
type Identity struct {
	Issuer, Subject string
	Login           string // the preferred login of a new user (made unique)
	Role, Unit      string
	Badge           string // officers: the roster badge their account belongs to
}

// noPassword is the password hash of users who sign in only through an
// identity provider: it is no argon2id hash, so no password matches it.
const noPassword = "!"

// SignInIdentity finds the user of an identity by (issuer, subject), or
// creates it, and sets its role, unit and officer from this sign-in's
// claims. A disabled user is returned as it is (Disabled set): the caller
// refuses it.
func (db *DB) SignInIdentity(ctx context.Context, id Identity) (User, error) {
	switch {
	case id.Issuer == "" || id.Subject == "":
		return User{}, invalid("subject", "an identity needs an issuer and a subject")
	case !ValidRole(id.Role):
		return User{}, invalid("role", "one of officer, supervisor, reviewer, admin")
	}
	what := "sign in " + id.Issuer + " " + id.Subject
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return User{}, mapErr(what, err)
	}
	defer tx.Rollback(ctx)
	var officer *uuid.UUID
	if id.Role == RoleOfficer {
		var o uuid.UUID
		err := tx.QueryRow(ctx, `SELECT id FROM officers WHERE badge = $1`, id.Badge).Scan(&o)
		if errors.Is(err, pgx.ErrNoRows) {
			return User{}, fmt.Errorf("%s: badge %q: %w", what, id.Badge, ErrUnknownBadge)
		}
		if err != nil {
			return User{}, mapErr(what, err)
		}
		officer = &o
	}
	var userID uuid.UUID
	err = tx.QueryRow(ctx, `UPDATE user_identities SET last_login = now() WHERE issuer = $1 AND subject = $2 RETURNING user_id`,
		id.Issuer, id.Subject).Scan(&userID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		userID = uuid.Must(uuid.NewV7())
		login, err := freeLogin(ctx, tx, id.Login, userID)
		if err != nil {
			return User{}, mapErr(what, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO users (id, login, password_hash, role, officer_id, unit) VALUES ($1, $2, $3, $4, $5, $6)`,
			userID, login, noPassword, id.Role, officer, id.Unit); err != nil {
			return User{}, mapErr(what, err)
		}
		// a parallel first sign-in of the same identity makes this a
		// conflict (primary key): the caller's retry finds the user
		if _, err := tx.Exec(ctx, `INSERT INTO user_identities (issuer, subject, user_id) VALUES ($1, $2, $3)`,
			id.Issuer, id.Subject, userID); err != nil {
			return User{}, mapErr(what, err)
		}
	case err != nil:
		return User{}, mapErr(what, err)
	}
	u, err := scanUser(tx.QueryRow(ctx, `UPDATE users SET role = $2, unit = $3, officer_id = $4 WHERE id = $1 RETURNING `+userCols,
		userID, id.Role, id.Unit, officer))
	if err != nil {
		return User{}, mapErr(what, err)
	}
	return u, mapErr(what, tx.Commit(ctx))
}

// freeLogin makes a login for a new identity's user: the preferred one
// (cleaned), or with a suffix of the user's ID when it is taken, e.g. by a
// local account of the same name.
func freeLogin(ctx context.Context, tx pgx.Tx, preferred string, id uuid.UUID) (string, error) {
	login := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return '_'
		}
		return r
	}, strings.TrimSpace(preferred))
	if login == "" {
		login = "sso"
	}
	suffix := "-" + strings.ReplaceAll(id.String(), "-", "")[24:]
	if len(login) > MaxLoginLen-len(suffix) {
		login = strings.ToValidUTF8(login[:MaxLoginLen-len(suffix)], "") // a cut rune is dropped
	}
	var taken bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE login = $1)`, login).Scan(&taken); err != nil {
		return "", err
	}
	if taken {
		login += suffix
	}
	return login, nil
}

// OIDCLogin is a sign-in under way: kept from the redirect to the
// provider until its callback, once.
type OIDCLogin struct {
	State, Browser  string // random values: the state parameter, the browser's cookie
	Nonce, Verifier string // the ID token's nonce, the PKCE code verifier
	ExpiresAt       time.Time
}

// ErrNoLogin: the callback's state names no sign-in under way (unknown,
// used already, expired, or started in another browser).
var ErrNoLogin = errors.New("no such sign-in under way")

// StartOIDCLogin stores a sign-in under way (and forgets expired ones).
func (db *DB) StartOIDCLogin(ctx context.Context, l OIDCLogin) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM oidc_logins WHERE expires_at < $1`, db.now()); err != nil {
		return mapErr("forget expired sign-ins", err)
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO oidc_logins (state_hash, browser_hash, nonce, verifier, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		tokenHash(l.State), tokenHash(l.Browser), l.Nonce, l.Verifier, l.ExpiresAt)
	return mapErr("start sign-in", err)
}

// TakeOIDCLogin consumes the sign-in of a state: it is deleted whatever
// the outcome, so a state is used at most once. ErrNoLogin when there is
// none, it expired or the browser's cookie is not the one it started with.
func (db *DB) TakeOIDCLogin(ctx context.Context, state, browser string) (OIDCLogin, error) {
	l := OIDCLogin{State: state, Browser: browser}
	var browserHash []byte
	err := db.pool.QueryRow(ctx, `DELETE FROM oidc_logins WHERE state_hash = $1 RETURNING browser_hash, nonce, verifier, expires_at`,
		tokenHash(state)).Scan(&browserHash, &l.Nonce, &l.Verifier, &l.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return OIDCLogin{}, ErrNoLogin
	}
	if err != nil {
		return OIDCLogin{}, mapErr("take sign-in", err)
	}
	if !db.now().Before(l.ExpiresAt) || subtle.ConstantTimeCompare(browserHash, tokenHash(browser)) != 1 {
		return OIDCLogin{}, ErrNoLogin
	}
	return l, nil
}
