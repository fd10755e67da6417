package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/storage/index"
)

// Accounts is what logins, sessions, users and API tokens need of the
// database.
type Accounts interface {
	Authenticate(ctx context.Context, login, password string) (index.User, error)
	CreateSession(ctx context.Context, u index.User, ttl time.Duration, remote, method string) (index.Session, error)
	DeleteSession(ctx context.Context, token string) error
	CreateAPIToken(ctx context.Context, name, role string, by index.User, ttl time.Duration) (index.APIToken, error)
	APITokens(ctx context.Context) ([]index.APIToken, error)
	RevokeAPIToken(ctx context.Context, id uuid.UUID) error
	ChangePassword(ctx context.Context, id uuid.UUID, password, keepSession string) (index.User, error)
	ResetPassword(ctx context.Context, id uuid.UUID, password string) (index.User, error)
	CreateUser(ctx context.Context, u index.User, password string) (index.User, error)
	Users(ctx context.Context) ([]index.User, error)
	SetUserDisabled(ctx context.Context, id uuid.UUID, disabled bool) (index.User, error)
}

// accounts: logins, sessions, users and API tokens.
type accounts struct {
	db           Accounts
	sessionTTL   time.Duration
	tokenTTL     time.Duration // the longest (and default) life of an API token
	cookieSecure bool
	edge         *edge
	kit          *kit
	mfa          *secondFactor // the second factor checked after the password (mfa.go)

	loginLimit   *addrLimiter
	unknownLocks *unknownLocks
	hashSlots    chan struct{} // nil: unbounded
	hashWait     time.Duration
	hashWaiting  prometheus.Gauge
	hashBusy     prometheus.Counter
}

func newAccounts(cfg Config, db Accounts, k *kit, e *edge, reg *prometheus.Registry) *accounts {
	a := &accounts{db: db, sessionTTL: cfg.SessionTTL, tokenTTL: cfg.TokenTTL, cookieSecure: cfg.CookieSecure, edge: e, kit: k,
		loginLimit:   newAddrLimiter(cfg.LoginRate, cfg.LoginBurst, maxLimitedAddrs),
		unknownLocks: newUnknownLocks(maxLimitedAddrs),
		hashWait:     cfg.HashWait,
		hashWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bwc_login_hash_waiting", Help: "Logins waiting for a password-hashing slot.",
		}),
		hashBusy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bwc_login_hash_busy_total", Help: "Logins answered 503: no password-hashing slot in time.",
		}),
	}
	if cfg.HashSlots > 0 {
		a.hashSlots = make(chan struct{}, cfg.HashSlots)
	}
	reg.MustRegister(a.hashWaiting, a.hashBusy)
	return a
}

func (a *accounts) routes(r *router) {
	r.handle("POST /api/login", public, a.login)
	r.handle("POST /api/logout", anyone, a.logout)
	r.handle("GET /api/session", anyone, a.session(r))
	r.handle("POST /api/users", adminOnly, a.createUser)
	r.handle("GET /api/users", adminOnly, list(a.kit, a.db.Users))
	r.handle("POST /api/users/{id}/disabled", adminOnly, a.setUserDisabled)
	r.handle("POST /api/users/{id}/password", adminOnly, a.resetPassword)
	r.handle("POST /api/password", anyone, a.changePassword)
	r.handle("POST /api/tokens", adminOnly, a.createToken)
	r.handle("GET /api/tokens", adminOnly, list(a.kit, a.db.APITokens))
	r.handle("DELETE /api/tokens/{id}", adminOnly, a.revokeToken)
}

// passwordChangeRoutes are all a session may reach while its user must
// change their password (after an administrator's reset).
var passwordChangeRoutes = map[string]bool{
	"GET /api/session":   true,
	"POST /api/password": true,
	"POST /api/logout":   true,
}

const errPasswordChangeRequired = "password change required: change your password (POST /api/password, the /account page) first"

// personOf is the user behind a principal: the user, or the creator of an
// API token (nil when unknown).
func personOf(p Principal) *uuid.UUID {
	switch {
	case p.UserID != uuid.Nil:
		return &p.UserID
	case p.CreatorID != uuid.Nil:
		return &p.CreatorID
	}
	return nil
}

// login: POST /api/login. In order, cheapest first: the address's login
// rate, the body's size (4 KiB), the fields' lengths (nothing oversized is
// logged or audited), a password-hashing slot (bounded wait), then the
// check itself, which costs the same for unknown and known logins.
func (a *accounts) login(w http.ResponseWriter, r *http.Request) {
	remote := clientAddr(r)
	if ok, wait := a.loginLimit.allow(remote, time.Now()); !ok {
		a.edge.rateLimited.WithLabelValues("login").Inc()
		tooMany(w, wait, "login attempts")
		return
	}
	var in struct {
		Login    string `json:"login"`
		Password string `json:"password"`
		Code     string `json:"code"` // second factor: TOTP or a recovery code
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if !decode(w, r, &in) {
		return
	}
	switch {
	case len(in.Login) > index.MaxLoginLen:
		writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("login: at most %d bytes", index.MaxLoginLen), Field: "login"})
		return
	case len(in.Password) > index.MaxPasswordLen:
		writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("password: at most %d bytes", index.MaxPasswordLen), Field: "password"})
		return
	case len(in.Code) > index.MaxSecondFactorLen:
		writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("code: at most %d bytes", index.MaxSecondFactorLen), Field: "code"})
		return
	}
	release, err := a.acquireHash(r.Context())
	if err != nil {
		if errors.Is(err, errBusy) {
			a.hashBusy.Inc()
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "too many logins at once; retry in a moment"})
		}
		return // else the client went away
	}
	u, err := a.authenticate(r.Context(), in.Login, in.Password)
	release()
	if err != nil {
		a.refuse(w, r, in.Login, err)
		return
	}
	enrol, ok := a.mfa.checkLogin(w, r, u, in.Code)
	if !ok {
		return // answered: no session without the second factor
	}
	sess, err := a.startSession(w, r, u, index.AuthPassword)
	if err != nil {
		a.kit.fail(w, r, err)
		return
	}
	_ = a.kit.audit(r, index.AuditEvent{Actor: u.Login, Role: u.Role, Action: "auth.login", ObjectType: "user", ObjectID: u.Login})
	writeJSON(w, http.StatusOK, map[string]any{"user": u, "csrf_token": sess.CSRFToken, "expires_at": sess.ExpiresAt, "mfa_enrolment_required": enrol})
}

// startSession starts the session of an authenticated user, by password
// (login) or through the identity provider (oidc.callback), and sets its
// cookie. The caller audits and answers.
func (a *accounts) startSession(w http.ResponseWriter, r *http.Request, u index.User, method string) (index.Session, error) {
	sess, err := a.db.CreateSession(r.Context(), u, a.sessionTTL, clientAddr(r), method)
	if err != nil {
		return index.Session{}, err
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: sess.Token, Path: "/", Expires: sess.ExpiresAt,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: a.secureRequest(r),
	})
	a.kit.log.Info("login", "login", u.Login, "role", u.Role, "method", method, "remote", clientAddr(r))
	return sess, nil
}

// authenticate checks a password; unknown logins are locked after
// repeated failures like known accounts.
func (a *accounts) authenticate(ctx context.Context, login, password string) (index.User, error) {
	if until, locked := a.unknownLocks.locked(login, time.Now()); locked {
		return index.User{}, fmt.Errorf("%w until %s", index.ErrLocked, until.UTC().Format(time.RFC3339))
	}
	u, err := a.db.Authenticate(ctx, login, password)
	if errors.Is(err, index.ErrUnknownLogin) {
		a.unknownLocks.fail(login, time.Now())
	}
	return u, err
}

// refuse answers a login that failed: locked (429) and wrong (401) are
// logged and audited.
func (a *accounts) refuse(w http.ResponseWriter, r *http.Request, login string, err error) {
	switch {
	case errors.Is(err, index.ErrLocked):
		a.kit.log.Warn("login refused: account locked", "login", login, "remote", clientAddr(r))
		_ = a.kit.audit(r, index.AuditEvent{Actor: login, Action: "auth.login.locked", ObjectType: "user", ObjectID: login})
		writeJSON(w, http.StatusTooManyRequests, apiError{Error: err.Error()})
	case errors.Is(err, index.ErrBadCredentials):
		a.kit.log.Warn("login failed", "login", login, "remote", clientAddr(r))
		_ = a.kit.audit(r, index.AuditEvent{Actor: login, Action: "auth.login.failed", ObjectType: "user", ObjectID: login})
		writeJSON(w, http.StatusUnauthorized, apiError{Error: err.Error()})
	default:
		a.kit.fail(w, r, err)
	}
}

func (a *accounts) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := a.db.DeleteSession(r.Context(), c.Value); err != nil {
			a.kit.fail(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: a.secureRequest(r)})
	writeJSON(w, http.StatusOK, map[string]string{"status": "logged out"})
}

// session answers who is logged in (role, officer, unit, the units a
// supervisor oversees), with the session's CSRF token.
func (a *accounts) session(rt *router) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, _ := PrincipalFrom(r.Context())
		_, csrf, _ := rt.authenticate(r)
		oversees := p.Oversees // the setting (empty: the own unit); a token has none
		if oversees == nil {
			oversees = []string{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"login": p.Login, "role": p.Role, "officer_id": p.OfficerID, "unit": p.Unit,
			"oversees": oversees, "csrf_token": csrf, "must_change_password": p.MustChangePassword})
	}
}

func (a *accounts) createUser(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Login     string     `json:"login"`
		Password  string     `json:"password"`
		Role      string     `json:"role"`
		Unit      string     `json:"unit"`
		OfficerID *uuid.UUID `json:"officer_id"`
	}
	if !decode(w, r, &in) {
		return
	}
	if len(in.Password) > index.MaxPasswordLen {
		a.kit.fail(w, r, &index.FieldError{Field: "password", Reason: fmt.Sprintf("at most %d characters", index.MaxPasswordLen)})
		return
	}
	release, err := a.acquireHash(r.Context())
	if err != nil {
		if errors.Is(err, errBusy) {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "password hashing is busy; retry in a moment"})
		}
		return
	}
	defer release()
	u, err := a.db.CreateUser(r.Context(), index.User{Login: in.Login, Role: in.Role, Unit: in.Unit, OfficerID: in.OfficerID}, in.Password)
	if err == nil {
		a.unknownLocks.forget(u.Login)
	}
	a.kit.reply(w, r, http.StatusCreated, u, err)
}

func (a *accounts) setUserDisabled(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var in struct {
		Disabled bool `json:"disabled"`
	}
	if !decode(w, r, &in) {
		return
	}
	u, err := a.db.SetUserDisabled(r.Context(), id, in.Disabled)
	a.kit.reply(w, r, http.StatusOK, u, err)
}

// createToken: an administrator (a person: tokens do not make tokens)
// issues an API token, valid for the -token-ttl setting or a shorter ttl
// asked for (a Go duration, e.g. "720h").
func (a *accounts) createToken(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name string `json:"name"`
		Role string `json:"role"`
		TTL  string `json:"ttl"`
	}
	if !decode(w, r, &in) {
		return
	}
	p, _ := PrincipalFrom(r.Context())
	if p.UserID == uuid.Nil {
		writeJSON(w, http.StatusForbidden, apiError{Error: "an API token may not create API tokens: an administrator must"})
		return
	}
	ttl := a.tokenTTL
	if in.TTL != "" {
		d, err := time.ParseDuration(in.TTL)
		switch {
		case err != nil || d <= 0:
			a.kit.fail(w, r, &index.FieldError{Field: "ttl", Reason: `a positive duration, e.g. "720h"`})
			return
		case d > a.tokenTTL:
			a.kit.fail(w, r, &index.FieldError{Field: "ttl", Reason: fmt.Sprintf("at most %v (-token-ttl)", a.tokenTTL)})
			return
		}
		ttl = d
	}
	t, err := a.db.CreateAPIToken(r.Context(), in.Name, in.Role, index.User{ID: p.UserID, Login: p.Login}, ttl)
	a.kit.reply(w, r, http.StatusCreated, t, err)
}

// changePassword: POST /api/password {current, new}. A user changes their
// own password: the current one is checked like a login (a wrong one
// counts towards the lockout), the new one must meet the policy; the
// user's other sessions end. Audited either way.
func (a *accounts) changePassword(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Current string `json:"current"`
		New     string `json:"new"`
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if !decode(w, r, &in) {
		return
	}
	p, _ := PrincipalFrom(r.Context())
	if p.UserID == uuid.Nil {
		writeJSON(w, http.StatusForbidden, apiError{Error: "an API token has no password"})
		return
	}
	for _, f := range []struct{ name, v string }{{"current", in.Current}, {"new", in.New}} {
		switch {
		case f.v == "":
			a.kit.fail(w, r, &index.FieldError{Field: f.name, Reason: "required"})
			return
		case len(f.v) > index.MaxPasswordLen:
			a.kit.fail(w, r, &index.FieldError{Field: f.name, Reason: fmt.Sprintf("at most %d bytes", index.MaxPasswordLen)})
			return
		}
	}
	release, err := a.acquireHash(r.Context())
	if err != nil {
		a.busy(w, err)
		return
	}
	defer release()
	failed := func(why string) {
		_ = a.kit.audit(r, index.AuditEvent{Action: "auth.password.change.refused", ObjectType: "user", ObjectID: p.Login,
			Details: map[string]any{"why": why}})
	}
	if _, err := a.db.Authenticate(r.Context(), p.Login, in.Current); err != nil {
		switch {
		case errors.Is(err, index.ErrLocked):
			failed("locked")
			writeJSON(w, http.StatusTooManyRequests, apiError{Error: err.Error()})
		case errors.Is(err, index.ErrBadCredentials):
			// 403, not 401: the session stands, the password given is wrong
			failed("wrong current password")
			writeJSON(w, http.StatusForbidden, apiError{Error: "the current password is wrong", Field: "current"})
		default:
			a.kit.fail(w, r, err)
		}
		return
	}
	keep := ""
	if c, err := r.Cookie(sessionCookie); err == nil {
		keep = c.Value
	}
	u, err := a.db.ChangePassword(r.Context(), p.UserID, in.New, keep)
	if errors.Is(err, index.ErrWeakPassword) {
		failed(err.Error())
		var fe *index.FieldError
		errors.As(err, &fe)
		writeJSON(w, http.StatusBadRequest, apiError{Error: "new: " + fe.Reason, Field: "new"})
		return
	}
	if err != nil {
		a.kit.fail(w, r, err)
		return
	}
	a.kit.log.Info("password changed", "login", u.Login)
	_ = a.kit.audit(r, index.AuditEvent{Action: "auth.password.change", ObjectType: "user", ObjectID: u.Login})
	writeJSON(w, http.StatusOK, u)
}

// resetPassword: POST /api/users/{id}/password {password}. An
// administrator (a person, not a token) sets a new password (meeting the
// policy); the user must change it at their next login, and their
// sessions end.
func (a *accounts) resetPassword(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var in struct {
		Password string `json:"password"`
	}
	if !decode(w, r, &in) {
		return
	}
	if p, _ := PrincipalFrom(r.Context()); p.UserID == uuid.Nil {
		// a leaked token must not turn into a person's account
		writeJSON(w, http.StatusForbidden, apiError{Error: "an API token may not reset passwords: an administrator must"})
		return
	}
	if len(in.Password) > index.MaxPasswordLen {
		a.kit.fail(w, r, &index.FieldError{Field: "password", Reason: fmt.Sprintf("at most %d bytes", index.MaxPasswordLen)})
		return
	}
	release, err := a.acquireHash(r.Context())
	if err != nil {
		a.busy(w, err)
		return
	}
	defer release()
	u, err := a.db.ResetPassword(r.Context(), id, in.Password)
	if err != nil {
		a.kit.fail(w, r, err)
		return
	}
	a.unknownLocks.forget(u.Login)
	a.kit.log.Info("password reset", "login", u.Login, "by", actor(r))
	_ = a.kit.audit(r, index.AuditEvent{Action: "user.password.reset", ObjectType: "user", ObjectID: u.Login,
		Details: map[string]any{"user_id": u.ID.String(), "must_change_password": true}})
	writeJSON(w, http.StatusOK, u)
}

// busy answers a request that got no password-hashing slot (nothing when
// the client went away).
func (a *accounts) busy(w http.ResponseWriter, err error) {
	if errors.Is(err, errBusy) {
		a.hashBusy.Inc()
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "password hashing is busy; retry in a moment"})
	}
}

func (a *accounts) revokeToken(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	err := a.db.RevokeAPIToken(r.Context(), id)
	a.kit.reply(w, r, http.StatusOK, map[string]string{"status": "revoked"}, err)
}

// secureRequest: the browser reached us over HTTPS (directly or through a
// trusted TLS-terminating proxy), or the setting says so.
func (a *accounts) secureRequest(r *http.Request) bool {
	return a.cookieSecure || r.TLS != nil || a.edge.fromTrustedProxy(r) && r.Header.Get("X-Forwarded-Proto") == "https"
}

// errBusy: no hashing slot became free within the wait.
var errBusy = errors.New("password checks are busy")

// acquireHash takes one of the password-hashing slots (each check holds an
// argon2id block of 19 MiB), waiting at most the configured time and never
// beyond the request's context. release must be called after.
func (a *accounts) acquireHash(ctx context.Context) (release func(), err error) {
	if a.hashSlots == nil {
		return func() {}, nil
	}
	select {
	case a.hashSlots <- struct{}{}:
		return func() { <-a.hashSlots }, nil
	default:
	}
	t := time.NewTimer(a.hashWait)
	defer t.Stop()
	a.hashWaiting.Inc()
	defer a.hashWaiting.Dec()
	select {
	case a.hashSlots <- struct{}{}:
		return func() { <-a.hashSlots }, nil
	case <-t.C:
		return nil, errBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
