package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
)

// authStore is what authentication needs of the database.
type authStore interface {
	Authenticate(ctx context.Context, login, password string) (index.User, error)
	CreateSession(ctx context.Context, u index.User, ttl time.Duration, remote string) (index.Session, error)
	SessionByToken(ctx context.Context, token string) (index.Session, error)
	DeleteSession(ctx context.Context, token string) error
	APITokenByToken(ctx context.Context, token string) (index.APIToken, error)
	CreateAPIToken(ctx context.Context, name, role, by string) (index.APIToken, error)
	RevokeAPIToken(ctx context.Context, id uuid.UUID) error
	CreateUser(ctx context.Context, u index.User, password string) (index.User, error)
	Users(ctx context.Context) ([]index.User, error)
	SetUserDisabled(ctx context.Context, id uuid.UUID, disabled bool) (index.User, error)
}

var _ authStore = (*index.DB)(nil)

const (
	sessionCookie = "bwc_session"
	csrfHeader    = "X-CSRF-Token"
)

// Principal is who makes a request: a logged-in user or an API token.
type Principal struct {
	Login     string     // the user's login, or "token:<name>"
	Role      string     //
	UserID    uuid.UUID  // uuid.Nil for API tokens
	OfficerID *uuid.UUID // the officer an officer's account belongs to
	Unit      string     //
}

type principalKey struct{}

// PrincipalFrom returns the authenticated principal of a request's context.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Role sets of the routes.
var (
	public      []string // no authentication
	anyone      = []string{index.RoleOfficer, index.RoleSupervisor, index.RoleReviewer, index.RoleAdmin}
	adminOnly   = []string{index.RoleAdmin}
	supervisors = []string{index.RoleSupervisor, index.RoleAdmin}
	staff       = []string{index.RoleSupervisor, index.RoleReviewer, index.RoleAdmin}
)

// Route is a registered API route and the roles allowed on it (none:
// public). The authorization test walks them all.
type Route struct {
	Pattern string
	Roles   []string
}

// Routes lists every route registered with a role check.
func (s *Server) Routes() []Route { return slices.Clone(s.routeTable) }

// handle registers a handler behind authentication and the role check.
func (s *Server) handle(mux *http.ServeMux, pattern string, roles []string, h http.HandlerFunc) {
	s.routeTable = append(s.routeTable, Route{Pattern: pattern, Roles: roles})
	if roles == nil {
		mux.HandleFunc(pattern, h)
		return
	}
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		p, csrf, err := s.authenticate(r)
		switch {
		case err != nil:
			// guessing sessions or tokens counts against the address's
			// limit of unauthenticated requests (those without any were
			// counted by edge)
			if !s.limitFailedAuth(w, r) {
				return
			}
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "authentication required: log in (POST /api/login) or send an API token"})
			return
		case !slices.Contains(roles, p.Role):
			writeJSON(w, http.StatusForbidden, apiError{Error: "role " + p.Role + " may not " + r.Method + " " + r.URL.Path})
			return
		case csrf != "" && !safeMethod(r.Method) && r.Header.Get(csrfHeader) != csrf:
			writeJSON(w, http.StatusForbidden, apiError{Error: "missing or wrong " + csrfHeader + " header (from the login response or GET /api/session)"})
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		if safeMethod(r.Method) {
			h(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h(sw, r)
		if sw.code < 400 && !ownAudit[pattern] {
			s.auditChange(r, pattern, sw.code)
		}
	})
}

// limitFailedAuth charges a request whose session cookie or token was
// refused to its address's limit of unauthenticated requests (requests
// without any were charged by edge), so that guessing sessions or tokens is
// limited too. It answers 429 and returns false when the address is over
// the limit.
func (s *Server) limitFailedAuth(w http.ResponseWriter, r *http.Request) bool {
	if !hasCredentials(r) {
		return true
	}
	if ok, wait := s.anonLimit.allow(clientAddr(r), time.Now()); !ok {
		s.rateLimited.WithLabelValues("unauthenticated").Inc()
		tooMany(w, wait, "requests without a valid session")
		return false
	}
	return true
}

// ownAudit are the changing routes that write their own, more telling
// audit events (an upload's chunks: upload.start/complete, not one event
// per chunk).
var ownAudit = map[string]bool{"PATCH /api/uploads/{id}": true}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// authenticate finds the principal of a request: a bearer API token, or a
// session cookie (then csrf is the session's CSRF token).
func (s *Server) authenticate(r *http.Request) (p Principal, csrf string, err error) {
	if s.auth == nil {
		return Principal{}, "", index.ErrUnauthenticated
	}
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		if len(h) > len("Bearer ")+maxTokenLen {
			return Principal{}, "", index.ErrUnauthenticated
		}
		t, err := s.auth.APITokenByToken(r.Context(), strings.TrimPrefix(h, "Bearer "))
		if err != nil {
			return Principal{}, "", err
		}
		return Principal{Login: "token:" + t.Name, Role: t.Role}, "", nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) > maxTokenLen {
		return Principal{}, "", index.ErrUnauthenticated
	}
	sess, err := s.auth.SessionByToken(r.Context(), c.Value)
	if err != nil {
		return Principal{}, "", err
	}
	u := sess.User
	return Principal{Login: u.Login, Role: u.Role, UserID: u.ID, OfficerID: u.OfficerID, Unit: u.Unit}, sess.CSRFToken, nil
}

// actor is the login of the request's principal, for audit fields.
func actor(r *http.Request) string {
	if p, ok := PrincipalFrom(r.Context()); ok {
		return p.Login
	}
	return ""
}

func (s *Server) authRoutes(mux *http.ServeMux) {
	s.handle(mux, "POST /api/login", public, s.login)
	s.handle(mux, "POST /api/logout", anyone, s.logout)
	s.handle(mux, "GET /api/session", anyone, s.session)
	s.handle(mux, "GET /api/info", anyone, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"camera_url": s.cfg.CameraURL})
	})
	s.handle(mux, "POST /api/users", adminOnly, s.createUser)
	s.handle(mux, "GET /api/users", adminOnly, list(s, func(ctx context.Context) ([]index.User, error) { return s.auth.Users(ctx) }))
	s.handle(mux, "POST /api/users/{id}/disabled", adminOnly, s.setUserDisabled)
	s.handle(mux, "POST /api/tokens", adminOnly, s.createToken)
	s.handle(mux, "DELETE /api/tokens/{id}", adminOnly, s.revokeToken)
}

// login: POST /api/login. In order, cheapest first: the address's login
// rate, the body's size (4 KiB), the fields' lengths (nothing oversized is
// logged or audited), a password-hashing slot (bounded wait), then the
// check itself, which costs the same for unknown and known logins.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	remote := clientAddr(r)
	if ok, wait := s.loginLimit.allow(remote, time.Now()); !ok {
		s.rateLimited.WithLabelValues("login").Inc()
		tooMany(w, wait, "login attempts")
		return
	}
	var in struct {
		Login    string `json:"login"`
		Password string `json:"password"`
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if !s.decode(w, r, &in) {
		return
	}
	switch {
	case len(in.Login) > index.MaxLoginLen:
		writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("login: at most %d bytes", index.MaxLoginLen), Field: "login"})
		return
	case len(in.Password) > index.MaxPasswordLen:
		writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("password: at most %d bytes", index.MaxPasswordLen), Field: "password"})
		return
	}
	release, err := s.acquireHash(r.Context())
	if err != nil {
		if errors.Is(err, errBusy) {
			s.hashBusy.Inc()
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "too many logins at once; retry in a moment"})
		}
		return // else the client went away
	}
	var u index.User
	if until, locked := s.unknownLocks.locked(in.Login, time.Now()); locked {
		err = fmt.Errorf("%w until %s", index.ErrLocked, until.UTC().Format(time.RFC3339))
	} else {
		u, err = s.auth.Authenticate(r.Context(), in.Login, in.Password)
		if errors.Is(err, index.ErrUnknownLogin) {
			s.unknownLocks.fail(in.Login, time.Now())
		}
	}
	release()
	switch {
	case errors.Is(err, index.ErrLocked):
		s.log.Warn("login refused: account locked", "login", in.Login, "remote", remote)
		_ = s.audit(r, index.AuditEvent{Actor: in.Login, Action: "auth.login.locked", ObjectType: "user", ObjectID: in.Login})
		writeJSON(w, http.StatusTooManyRequests, apiError{Error: err.Error()})
		return
	case errors.Is(err, index.ErrBadCredentials):
		s.log.Warn("login failed", "login", in.Login, "remote", remote)
		_ = s.audit(r, index.AuditEvent{Actor: in.Login, Action: "auth.login.failed", ObjectType: "user", ObjectID: in.Login})
		writeJSON(w, http.StatusUnauthorized, apiError{Error: err.Error()})
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	sess, err := s.auth.CreateSession(r.Context(), u, s.cfg.SessionTTL, remote)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: sess.Token, Path: "/", Expires: sess.ExpiresAt,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secureRequest(r),
	})
	s.log.Info("login", "login", u.Login, "role", u.Role, "remote", remote)
	_ = s.audit(r, index.AuditEvent{Actor: u.Login, Role: u.Role, Action: "auth.login", ObjectType: "user", ObjectID: u.Login})
	writeJSON(w, http.StatusOK, map[string]any{"user": u, "csrf_token": sess.CSRFToken, "expires_at": sess.ExpiresAt})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := s.auth.DeleteSession(r.Context(), c.Value); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secureRequest(r)})
	writeJSON(w, http.StatusOK, map[string]string{"status": "logged out"})
}

func (s *Server) session(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	_, csrf, _ := s.authenticate(r)
	writeJSON(w, http.StatusOK, map[string]any{"login": p.Login, "role": p.Role, "officer_id": p.OfficerID, "unit": p.Unit, "csrf_token": csrf})
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Login     string     `json:"login"`
		Password  string     `json:"password"`
		Role      string     `json:"role"`
		Unit      string     `json:"unit"`
		OfficerID *uuid.UUID `json:"officer_id"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	if len(in.Password) > index.MaxPasswordLen {
		s.fail(w, r, &index.FieldError{Field: "password", Reason: fmt.Sprintf("at most %d characters", index.MaxPasswordLen)})
		return
	}
	release, err := s.acquireHash(r.Context())
	if err != nil {
		if errors.Is(err, errBusy) {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "password hashing is busy; retry in a moment"})
		}
		return
	}
	defer release()
	u, err := s.auth.CreateUser(r.Context(), index.User{Login: in.Login, Role: in.Role, Unit: in.Unit, OfficerID: in.OfficerID}, in.Password)
	if err == nil {
		s.unknownLocks.forget(u.Login)
	}
	s.reply(w, r, http.StatusCreated, u, err)
}

func (s *Server) setUserDisabled(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return
	}
	var in struct {
		Disabled bool `json:"disabled"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	u, err := s.auth.SetUserDisabled(r.Context(), id, in.Disabled)
	s.reply(w, r, http.StatusOK, u, err)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name string `json:"name"`
		Role string `json:"role"`
	}
	if !s.decode(w, r, &in) {
		return
	}
	t, err := s.auth.CreateAPIToken(r.Context(), in.Name, in.Role, actor(r))
	s.reply(w, r, http.StatusCreated, t, err)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return
	}
	err := s.auth.RevokeAPIToken(r.Context(), id)
	s.reply(w, r, http.StatusOK, map[string]string{"status": "revoked"}, err)
}
