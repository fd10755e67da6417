package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bwcplatform/bwc/storage/index"
)

// Single sign-on with OpenID Connect: this server is a relying party of
// the police's identity provider. The authorization code flow with PKCE
// (S256), a state bound to the browser and used once, and a nonce; the ID
// token is verified (signature, issuer, audience, expiry, nonce), its
// claims mapped to a role and a unit, and the user found or created by the
// provider's (issuer, subject). The session is then the one a password
// login starts (accounts.startSession), marked index.AuthOIDC. Local
// accounts remain for break-glass.

// OIDCConfig is the identity provider. Issuer "" turns single sign-on off.
type OIDCConfig struct {
	Issuer       string        // the provider's issuer URL (its discovery document is under it)
	Name         string        // shown on the login page: "Sign in with <Name>"
	ClientID     string        // this server's client at the provider
	ClientSecret string        // its secret ("" : a public client, PKCE only)
	RedirectURL  string        // this server's /auth/oidc/callback as the browser reaches it, registered at the provider
	RoleClaim    string        // the claim holding the groups (a string or a list of strings)
	RoleMap      []RoleMapping // group → role, in order: the first group of the user's that maps wins
	UnitClaim    string        // the claim holding the unit ("" : users signed in this way have no unit)
	BadgeClaim   string        // the claim holding an officer's badge (an officer's account belongs to the roster's officer with it)
	LoginTTL     time.Duration // how long a sign-in at the provider may take (> 0)
	HTTPTimeout  time.Duration // each request to the provider (> 0)
}

// RoleMapping maps one value of the role claim (a group) to a role.
type RoleMapping struct {
	Group, Role string
}

// Enabled: an issuer is set.
func (c OIDCConfig) Enabled() bool { return c.Issuer != "" }

// ParseRoleMap reads "group=role,group=role" (the -oidc-role-map setting).
func ParseRoleMap(s string) ([]RoleMapping, error) {
	var out []RoleMapping
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		group, role, ok := strings.Cut(item, "=")
		group, role = strings.TrimSpace(group), strings.TrimSpace(role)
		if !ok || group == "" || !index.ValidRole(role) {
			return nil, fmt.Errorf("role map entry %q: want group=role with a role of officer, supervisor, reviewer, admin", item)
		}
		out = append(out, RoleMapping{Group: group, Role: role})
	}
	return out, nil
}

// validate names every invalid field (none when single sign-on is off).
func (c OIDCConfig) validate() []error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("web: Config.OIDC.%s %s", field, why)) }
	for _, u := range []struct{ field, v string }{{"Issuer", c.Issuer}, {"RedirectURL", c.RedirectURL}} {
		if p, err := url.Parse(u.v); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			bad(u.field, fmt.Sprintf("must be an http(s) URL, not %q", u.v))
		}
	}
	if c.ClientID == "" {
		bad("ClientID", "is required with an issuer")
	}
	if c.RoleClaim == "" {
		bad("RoleClaim", "is required with an issuer")
	}
	if len(c.RoleMap) == 0 {
		bad("RoleMap", "must map at least one group to a role")
	}
	for _, m := range c.RoleMap {
		if m.Group == "" || !index.ValidRole(m.Role) {
			bad("RoleMap", fmt.Sprintf("entry %q=%q: want a group and a role of officer, supervisor, reviewer, admin", m.Group, m.Role))
		}
	}
	if c.LoginTTL <= 0 {
		bad("LoginTTL", fmt.Sprintf("must be positive, not %v", c.LoginTTL))
	}
	if c.HTTPTimeout <= 0 {
		bad("HTTPTimeout", fmt.Sprintf("must be positive, not %v", c.HTTPTimeout))
	}
	return errs
}

// OIDCStore is what single sign-on needs of the database.
type OIDCStore interface {
	StartOIDCLogin(ctx context.Context, l index.OIDCLogin) error
	TakeOIDCLogin(ctx context.Context, state, browser string) (index.OIDCLogin, error)
	SignInIdentity(ctx context.Context, id index.Identity) (index.User, error)
}

// oidcCookie binds a sign-in under way to the browser that started it.
const oidcCookie = "bwc_oidc"

// singleSignOn: the relying party's routes.
type singleSignOn struct {
	cfg      OIDCConfig
	db       OIDCStore
	accounts *accounts // starts the session, as for a password login
	kit      *kit
	client   *http.Client

	mu       sync.Mutex
	provider *oidcProvider // discovered at the first sign-in (New reads nothing from the network)
}

type oidcProvider struct {
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func newSingleSignOn(cfg OIDCConfig, db OIDCStore, a *accounts, k *kit) *singleSignOn {
	return &singleSignOn{cfg: cfg, db: db, accounts: a, kit: k, client: &http.Client{
		Timeout: cfg.HTTPTimeout,
		// no idle connections left behind: the provider is asked a few
		// times per sign-in
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true},
	}}
}

func (s *singleSignOn) routes(r *router) {
	r.handle("GET /api/login/options", public, s.options)
	if !s.cfg.Enabled() {
		return
	}
	r.handle("GET /auth/oidc/login", public, s.login)
	r.handle("GET /auth/oidc/callback", public, s.callback)
}

// options tells the login page whether to offer single sign-on.
func (s *singleSignOn) options(w http.ResponseWriter, r *http.Request) {
	type sso struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	}
	out := struct {
		OIDC *sso `json:"oidc"`
	}{}
	if s.cfg.Enabled() {
		out.OIDC = &sso{Name: s.cfg.Name, URL: "/auth/oidc/login"}
	}
	writeJSON(w, http.StatusOK, out)
}

// discover fetches the provider's discovery document once (a failure is
// retried at the next sign-in).
func (s *singleSignOn) discover() (*oidcProvider, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.provider != nil {
		return s.provider, nil
	}
	// the key set fetches keys later with this context: not a request's
	ctx := oidc.ClientContext(context.Background(), s.client)
	p, err := oidc.NewProvider(ctx, s.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery of %s: %w", s.cfg.Issuer, err)
	}
	s.provider = &oidcProvider{
		oauth: oauth2.Config{
			ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret, RedirectURL: s.cfg.RedirectURL,
			Endpoint: p.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile"},
		},
		verifier: p.Verifier(&oidc.Config{ClientID: s.cfg.ClientID}), // issuer, audience, expiry, signature
	}
	return s.provider, nil
}

// reachProvider is discover for a sign-in: when the provider cannot be
// reached it answers 502 with a page that offers the local login.
func (s *singleSignOn) reachProvider(w http.ResponseWriter) (*oidcProvider, bool) {
	p, err := s.discover()
	if err != nil {
		s.kit.log.Error("oidc: identity provider unreachable", "issuer", s.cfg.Issuer, "err", err)
		ssoPage(w, http.StatusBadGateway, "The identity provider cannot be reached; try again, or sign in with a local account.", "无法连接身份提供方，请重试，或使用本地账号登录。")
		return nil, false
	}
	return p, true
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// login: GET /auth/oidc/login redirects the browser to the provider.
// Starting sign-ins counts against the address's login rate, as password
// logins do: each one stores a row until it is used or expires.
func (s *singleSignOn) login(w http.ResponseWriter, r *http.Request) {
	if ok, wait := s.accounts.loginLimit.allow(clientAddr(r), time.Now()); !ok {
		s.accounts.edge.rateLimited.WithLabelValues("login").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
		ssoPage(w, http.StatusTooManyRequests, "Too many sign-ins from your address: try again in a moment.", "您的地址登录次数过多，请稍后再试。")
		return
	}
	p, ok := s.reachProvider(w)
	if !ok {
		return
	}
	l := index.OIDCLogin{State: randomString(), Browser: randomString(), Nonce: randomString(),
		Verifier: oauth2.GenerateVerifier(), ExpiresAt: time.Now().Add(s.cfg.LoginTTL)}
	if err := s.db.StartOIDCLogin(r.Context(), l); err != nil {
		s.kit.log.Error("oidc: start sign-in", "err", err)
		ssoPage(w, http.StatusInternalServerError, "Internal error; see the server log.", "内部错误，请查看服务器日志。")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: oidcCookie, Value: l.Browser, Path: "/auth/oidc/", MaxAge: int(s.cfg.LoginTTL.Seconds()),
		// Lax: the provider sends the browser back with a top-level GET
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.accounts.secureRequest(r),
	})
	http.Redirect(w, r, p.oauth.AuthCodeURL(l.State, oidc.Nonce(l.Nonce), oauth2.S256ChallengeOption(l.Verifier)), http.StatusSeeOther)
}

// Why a sign-in through the provider was refused.
var (
	errNoRole   = errors.New("no group of the user maps to a role")
	errNonce    = errors.New("the ID token's nonce is not the sign-in's")
	errProvider = errors.New("the identity provider refused")
)

// callback: GET /auth/oidc/callback, where the provider sends the browser
// back with a code.
func (s *singleSignOn) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	browser := ""
	if c, err := r.Cookie(oidcCookie); err == nil && len(c.Value) <= maxTokenLen {
		browser = c.Value
	}
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: "/auth/oidc/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: s.accounts.secureRequest(r)})
	state := q.Get("state")
	if len(state) > maxTokenLen {
		state = ""
	}
	l, err := s.db.TakeOIDCLogin(r.Context(), state, browser)
	if err != nil {
		if !errors.Is(err, index.ErrNoLogin) {
			s.kit.log.Error("oidc: take sign-in", "err", err)
			ssoPage(w, http.StatusInternalServerError, "Internal error; see the server log.", "内部错误，请查看服务器日志。")
			return
		}
		s.refuse(w, r, http.StatusBadRequest, err, nil,
			"This sign-in expired, was used already or was started in another browser. Start again.",
			"此次登录已过期、已使用或由其他浏览器发起，请重新登录。")
		return
	}
	if e := q.Get("error"); e != "" {
		s.refuse(w, r, http.StatusForbidden, fmt.Errorf("%w: %s", errProvider, truncate(e+": "+q.Get("error_description"), 200)), nil,
			"The identity provider did not sign you in.", "身份提供方未能完成登录。")
		return
	}
	p, ok := s.reachProvider(w)
	if !ok {
		return
	}
	ctx := oidc.ClientContext(r.Context(), s.client)
	tok, err := p.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(l.Verifier))
	if err != nil {
		s.refuse(w, r, http.StatusForbidden, fmt.Errorf("%w the code: %w", errProvider, err), nil,
			"The identity provider refused this sign-in. Start again.", "身份提供方拒绝了此次登录，请重新登录。")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		s.refuse(w, r, http.StatusForbidden, fmt.Errorf("ID token: %w", err), nil,
			"The identity provider's answer could not be verified.", "无法验证身份提供方的应答。")
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(l.Nonce)) != 1 {
		s.refuse(w, r, http.StatusForbidden, errNonce, idt,
			"The identity provider's answer does not belong to this sign-in. Start again.", "身份提供方的应答与此次登录不符，请重新登录。")
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		s.refuse(w, r, http.StatusForbidden, fmt.Errorf("ID token claims: %w", err), idt,
			"The identity provider's answer could not be read.", "无法读取身份提供方的应答。")
		return
	}
	id, err := s.identity(idt, claims)
	if err != nil {
		s.refuse(w, r, http.StatusForbidden, err, idt,
			"Your account at the identity provider is in no group that may use this platform. Ask your administrator.",
			"您在身份提供方的账号不属于任何可使用本平台的用户组，请联系管理员。")
		return
	}
	u, err := s.db.SignInIdentity(r.Context(), id)
	if errors.Is(err, index.ErrConflict) { // a parallel first sign-in of the same person created the user
		u, err = s.db.SignInIdentity(r.Context(), id)
	}
	switch {
	case errors.Is(err, index.ErrUnknownBadge):
		s.refuse(w, r, http.StatusForbidden, err, idt,
			"Your badge is not on the roster: an officer's account belongs to a rostered officer. Ask your administrator.",
			"您的警号不在人员名册中，请联系管理员。")
		return
	case err != nil:
		s.kit.log.Error("oidc: sign in", "issuer", id.Issuer, "subject", id.Subject, "err", err)
		ssoPage(w, http.StatusInternalServerError, "Internal error; see the server log.", "内部错误，请查看服务器日志。")
		return
	case u.Disabled:
		s.refuse(w, r, http.StatusForbidden, errors.New("the account is disabled"), idt,
			"Your account is disabled on this platform.", "您的账号已在本平台停用。")
		return
	}
	if _, err := s.accounts.startSession(w, r, u, index.AuthOIDC); err != nil {
		s.kit.log.Error("oidc: start session", "login", u.Login, "err", err)
		ssoPage(w, http.StatusInternalServerError, "Internal error; see the server log.", "内部错误，请查看服务器日志。")
		return
	}
	_ = s.kit.audit(r, index.AuditEvent{Actor: u.Login, Role: u.Role, Action: "auth.login.oidc", ObjectType: "user", ObjectID: u.Login,
		Details: map[string]any{"issuer": id.Issuer, "subject": id.Subject, "unit": u.Unit}})
	landing(w, homeOf(u.Role))
}

// identity maps the ID token's claims to the platform's identity: the
// first group of the role map the user is in gives the role.
func (s *singleSignOn) identity(idt *oidc.IDToken, claims map[string]any) (index.Identity, error) {
	groups := claimStrings(claims[s.cfg.RoleClaim])
	id := index.Identity{Issuer: idt.Issuer, Subject: idt.Subject}
	for _, m := range s.cfg.RoleMap {
		if slices.Contains(groups, m.Group) {
			id.Role = m.Role
			break
		}
	}
	if id.Role == "" {
		return id, fmt.Errorf("%w (claim %q: %q)", errNoRole, s.cfg.RoleClaim, truncate(strings.Join(groups, ","), 200))
	}
	if s.cfg.UnitClaim != "" {
		id.Unit, _ = claims[s.cfg.UnitClaim].(string)
	}
	if s.cfg.BadgeClaim != "" {
		id.Badge, _ = claims[s.cfg.BadgeClaim].(string)
	}
	for _, c := range []string{"preferred_username", "email", "sub"} {
		if v, _ := claims[c].(string); v != "" {
			id.Login = v
			break
		}
	}
	return id, nil
}

// claimStrings reads a claim that is a string or a list of strings.
func claimStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// refuse answers a refused sign-in with a page, logs and audits it (the
// provider's subject when the ID token was verified).
func (s *singleSignOn) refuse(w http.ResponseWriter, r *http.Request, code int, why error, idt *oidc.IDToken, en, zh string) {
	details := map[string]any{"reason": why.Error()}
	actor := "anonymous"
	if idt != nil {
		details["issuer"], details["subject"] = idt.Issuer, idt.Subject
		actor = "oidc:" + truncate(idt.Subject, 64)
	}
	s.kit.log.Warn("oidc: sign-in refused", "reason", why, "remote", clientAddr(r))
	_ = s.kit.audit(r, index.AuditEvent{Actor: actor, Action: "auth.login.oidc.refused", ObjectType: "user", ObjectID: actor, Details: details})
	ssoPage(w, code, en, zh)
}

var ssoTmpl = template.Must(template.New("sso").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Code}}</title><link rel="stylesheet" href="/assets/app.css"></head>
<body><main class="narrow"><h1>{{.Code}}</h1>
<p id="sso-error">{{.En}} · {{.Zh}}</p>
<p><a href="/">Back to sign-in · 返回登录</a></p></main></body></html>`))

// ssoPage is a refused (or failed) sign-in's page, in English and Chinese.
func ssoPage(w http.ResponseWriter, code int, en, zh string) {
	var b bytes.Buffer
	_ = ssoTmpl.Execute(&b, map[string]any{"Code": code, "En": en, "Zh": zh})
	ssoHeaders(w.Header())
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

var landingTmpl = template.Must(template.New("landing").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={{.}}"><title>BWC</title><link rel="stylesheet" href="/assets/app.css"></head>
<body><main class="narrow"><p>Signed in · 已登录: <a id="home" href="{{.}}">{{.}}</a></p></main></body></html>`))

// landing sends the signed-in browser to its home. Not a redirect: the
// browser came from the provider's site, and a redirect would still be
// part of that cross-site navigation, which leaves the SameSite=Strict
// session cookie out; the page's own navigation is same-site.
func landing(w http.ResponseWriter, home string) {
	var b bytes.Buffer
	_ = landingTmpl.Execute(&b, home)
	ssoHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	w.Write(b.Bytes())
}

// ssoHeaders: the pages' protections (no framing, no sniffing, no script),
// and no referrer: the callback's code and state stay out of the next
// request.
func ssoHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; frame-ancestors 'none'")
}
