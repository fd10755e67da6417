package web

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
)

// Sessions is what authentication needs of the database: the principal
// behind a session cookie or an API token.
type Sessions interface {
	SessionByToken(ctx context.Context, token string) (index.Session, error)
	APITokenByToken(ctx context.Context, token string) (index.APIToken, error)
}

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
	Oversees  []string   // a supervisor's units (empty: Unit); see authz.go
	TokenID   uuid.UUID  // the API token (uuid.Nil for users)
	CreatorID uuid.UUID  // the user who created the API token
	// MustChangePassword: an administrator reset the password; the
	// session reaches only passwordChangeRoutes (accounts.go).
	MustChangePassword bool
	// ExternalMFA: the session's second factor was checked by an identity
	// provider (OpenID Connect), so the local one is not required of it
	// (mfa.go). Set it from the session's own marker, never from input.
	ExternalMFA bool
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

// router registers the routes of the handler groups behind
// authentication and the role check, and keeps the table of them.
type router struct {
	mux      *http.ServeMux
	sessions Sessions
	kit      *kit
	edge     *edge
	mfa      *secondFactor // the second-factor enrolment gate (nil: none)
	table    []Route
}

// handle registers a handler behind authentication and the role check.
// The router audits every request it lets through or refuses: a change
// that succeeded (api.change), a read (api.read, aggregated: audit_reads.go)
// and a 403 (access.refused); routes in ownAudit write their own events.
func (rt *router) handle(pattern string, roles []string, h http.HandlerFunc) {
	rt.table = append(rt.table, Route{Pattern: pattern, Roles: roles})
	if roles == nil {
		rt.mux.HandleFunc(pattern, h)
		return
	}
	typ := objectType(pattern)
	rt.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		p, csrf, err := rt.authenticate(r)
		if err != nil {
			// guessing sessions or tokens counts against the address's
			// limit of unauthenticated requests (those without any were
			// counted by edge); not audited one by one, for the same reason
			if !rt.edge.limitFailedAuth(w, r) {
				return
			}
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "authentication required: log in (POST /api/login) or send an API token"})
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		switch {
		case p.MustChangePassword && !passwordChangeRoutes[pattern]:
			rt.kit.auditRefusal(r, r.PathValue("id"), "password change required")
			writeJSON(w, http.StatusForbidden, apiError{Error: errPasswordChangeRequired})
			return
		case !slices.Contains(roles, p.Role):
			rt.kit.auditRefusal(r, r.PathValue("id"), "role "+p.Role)
			writeJSON(w, http.StatusForbidden, apiError{Error: "role " + p.Role + " may not " + r.Method + " " + r.URL.Path})
			return
		case csrf != "" && !safeMethod(r.Method) && r.Header.Get(csrfHeader) != csrf:
			rt.kit.auditRefusal(r, r.PathValue("id"), "missing or wrong "+csrfHeader)
			writeJSON(w, http.StatusForbidden, apiError{Error: "missing or wrong " + csrfHeader + " header (from the login response or GET /api/session)"})
			return
		}
		if rt.mfa != nil && !rt.mfa.gate(w, r, pattern, p) {
			return // refused (audited): the role requires a second factor first
		}
		switch {
		case ownAudit[pattern] != "" || r.Method == http.MethodOptions:
			h(w, r)
		case safeMethod(r.Method):
			rt.kit.auditedRead(w, r, pattern, typ, h)
		default:
			sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
			h(sw, r)
			if sw.code < 400 {
				rt.kit.auditChange(r, pattern, sw.code)
			}
		}
	})
}

// ownAudit are the routes the router does not audit, and why: they write
// their own, more telling events, or disclose nothing of the evidence. Every
// other route behind authentication is audited by default.
var ownAudit = map[string]string{
	"PATCH /api/uploads/{id}":                  "an upload's chunks: upload.start and upload.complete, not one event per chunk",
	"HEAD /api/uploads/{id}":                   "the offset of the officer's own upload (tus resume): upload.start and upload.complete",
	"GET /api/recordings/{id}/hls.m3u8":        "evidence.view, once per user and recording per playback session",
	"GET /api/recordings/{id}/segments/{file}": "evidence.view, once per user and recording per playback session",
	"GET /api/recordings/{id}/playback":        "evidence.view, once per user and recording per playback session",
	"GET /api/recordings/{id}/file":            "evidence.view, once per user and recording per playback session",
	"GET /api/incidents/{id}/timeline":         "incident.view (aggregated like reads), with the incident's ID for its audit trail",
	"GET /api/exports/{id}/download":           "export.download, every download of a package",
	"GET /api/session":                         "the principal's own session: nothing of the evidence",
	"GET /api/info":                            "the URL cameras publish to: nothing of the evidence",
	"GET /api/public-key":                      "the public key that verifies packages: public",
	"PATCH /api/live/{id}/whep/{session}":      "a live view's trickle ICE, part of its start (live.view.start); the path holds the session ID",
	"DELETE /api/live/{id}/whep/{session}":     "web/live.go audits the end by the session's reference (the path holds the session ID)",
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// authenticate finds the principal of a request: a bearer API token, or a
// session cookie (then csrf is the session's CSRF token).
func (rt *router) authenticate(r *http.Request) (p Principal, csrf string, err error) {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		if len(h) > len("Bearer ")+maxTokenLen {
			return Principal{}, "", index.ErrUnauthenticated
		}
		t, err := rt.sessions.APITokenByToken(r.Context(), strings.TrimPrefix(h, "Bearer "))
		if err != nil {
			return Principal{}, "", err
		}
		p := Principal{Login: "token:" + t.Name, Role: t.Role, TokenID: t.ID}
		if t.CreatedByID != nil {
			p.CreatorID = *t.CreatedByID
		}
		return p, "", nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) > maxTokenLen {
		return Principal{}, "", index.ErrUnauthenticated
	}
	sess, err := rt.sessions.SessionByToken(r.Context(), c.Value)
	if err != nil {
		return Principal{}, "", err
	}
	u := sess.User
	return Principal{Login: u.Login, Role: u.Role, UserID: u.ID, OfficerID: u.OfficerID, Unit: u.Unit, Oversees: u.Oversees,
		MustChangePassword: u.MustChangePassword, ExternalMFA: sess.Method == index.AuthOIDC}, sess.CSRFToken, nil
}

// actor is the login of the request's principal, for audit fields.
func actor(r *http.Request) string {
	if p, ok := PrincipalFrom(r.Context()); ok {
		return p.Login
	}
	return ""
}
