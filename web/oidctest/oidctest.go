// Package oidctest runs a real OpenID Connect provider for tests: the
// provider of github.com/zitadel/oidc/v3 (pkg/op: discovery, the
// authorization endpoint, the token endpoint with PKCE, signed ID tokens,
// the key set) over a small in-memory storage of its own, with one
// confidential client and a plain login form that a test's HTTP client or
// a browser fills in. Go tests serve it with httptest; cmd/bwc-testop
// serves it for the browser tests.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is a person the provider knows.
type User struct {
	Subject  string   // stable ID ("sub")
	Username string   // what the login form asks for (and "preferred_username")
	Password string   //
	Groups   []string // the "groups" claim
	Unit     string   // the "unit" claim ("" : none)
	Badge    string   // the "badge" claim ("" : none)
}

// Config of a provider.
type Config struct {
	Issuer       string   // its URL as clients reach it
	ClientID     string   // the one client
	ClientSecret string   //
	RedirectURIs []string // the client's callbacks
	Users        []User
}

// Provider is an OpenID provider; it serves HTTP.
type Provider struct {
	handler http.Handler
	store   *storage
}

// New builds a provider. It binds nothing: serve it at the issuer URL.
func New(cfg Config) (*Provider, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("oidctest: an issuer and a client ID are required")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	s := &storage{cfg: cfg, key: key, keyID: randomID()[:8], users: map[string]User{}, requests: map[string]*authRequest{}, codes: map[string]string{}}
	for _, u := range cfg.Users {
		s.users[u.Username] = u
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:      sha256.Sum256([]byte(randomID())),
		CodeMethodS256: true,
		AuthMethodPost: true,
	}, s, op.StaticIssuer(cfg.Issuer), op.WithAllowInsecure())
	if err != nil {
		return nil, fmt.Errorf("oidctest: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", s.loginForm)
	mux.HandleFunc("POST /login", s.checkLogin)
	mux.Handle("/", provider)
	return &Provider{handler: mux, store: s}, nil
}

func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.handler.ServeHTTP(w, r) }

// SetUser adds a user or replaces the one with the same username (e.g.
// moved to another group: the next sign-in carries the new claims).
func (p *Provider) SetUser(u User) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.users[u.Username] = u
}

// AllowRedirect registers another callback URL of the client.
func (p *Provider) AllowRedirect(uri string) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.cfg.RedirectURIs = append(p.store.cfg.RedirectURIs, uri)
}

// Tampering makes the provider issue ID tokens a relying party must
// refuse (a misbehaving provider, or an attacker replaying tokens).
type Tampering struct {
	WrongNonce bool // another nonce than the client sent
	Expired    bool // expired when issued
}

// Tamper applies to the sign-ins started from now on (zero: none).
func (p *Provider) Tamper(t Tampering) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.tamper = t
}

// LastChallengeMethod is the PKCE method of the latest authorization
// request ("" : it had no code challenge).
func (p *Provider) LastChallengeMethod() string {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	return p.store.lastChallenge
}

func randomID() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// storage is the provider's state, in memory: authorization requests
// (and their codes, deleted when exchanged), the users and the signing
// key. It implements op.Storage; what the tests do not use (refresh
// tokens, JWT profile, introspection) is refused.
type storage struct {
	key   *rsa.PrivateKey
	keyID string

	mu            sync.Mutex
	cfg           Config
	users         map[string]User // by username
	requests      map[string]*authRequest
	codes         map[string]string // code → request ID
	tamper        Tampering
	lastChallenge string
}

type authRequest struct {
	id        string
	req       oidc.AuthRequest
	subject   string
	authTime  time.Time
	done      bool
	tamper    Tampering
	challenge *oidc.CodeChallenge
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string                 { return []string{a.req.ClientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.req.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string {
	if a.tamper.WrongNonce {
		return a.req.Nonce + "-not-yours"
	}
	return a.req.Nonce
}
func (a *authRequest) GetRedirectURI() string             { return a.req.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.req.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.req.ResponseMode }
func (a *authRequest) GetScopes() []string                { return a.req.Scopes }
func (a *authRequest) GetState() string                   { return a.req.State }
func (a *authRequest) GetSubject() string                 { return a.subject }
func (a *authRequest) Done() bool                         { return a.done }

var errNotFound = errors.New("oidctest: not found")

func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &authRequest{id: randomID(), req: *req, tamper: s.tamper}
	if req.CodeChallenge != "" {
		a.challenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	s.lastChallenge = string(req.CodeChallengeMethod)
	s.requests[a.id] = a
	return a, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.requests[id]
	if !ok {
		return nil, errNotFound
	}
	return a, nil
}

func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.requests[s.codes[code]]
	if !ok {
		return nil, errNotFound
	}
	return a, nil
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest: the token endpoint deletes a request once its code is
// exchanged, so a code works once.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

func (s *storage) CreateAccessToken(context.Context, op.TokenRequest) (string, time.Time, error) {
	return randomID(), time.Now().Add(5 * time.Minute), nil
}

var errUnsupported = errors.New("oidctest: not supported by the test provider")

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errUnsupported
}
func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, errUnsupported
}
func (s *storage) TerminateSession(context.Context, string, string) error { return nil }
func (s *storage) RevokeToken(context.Context, string, string, string) *oidc.Error {
	return oidc.ErrUnsupportedGrantType()
}
func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	return signingKey{s.keyID, s.key}, nil
}
func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}
func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{signingKey{s.keyID, s.key}}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != s.cfg.ClientID {
		return nil, errNotFound
	}
	lifetime := 5 * time.Minute
	if s.tamper.Expired {
		lifetime = -time.Minute
	}
	return &client{id: id, redirects: slices.Clone(s.cfg.RedirectURIs), issuer: s.cfg.Issuer, lifetime: lifetime}, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != s.cfg.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(s.cfg.ClientSecret)) != 1 {
		return errors.New("oidctest: wrong client or secret")
	}
	return nil
}

func (s *storage) SetUserinfoFromScopes(_ context.Context, info *oidc.UserInfo, subject, _ string, _ []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.Subject == subject {
			info.Subject = u.Subject
			info.PreferredUsername = u.Username
			info.AppendClaims("groups", slices.Clone(u.Groups))
			if u.Unit != "" {
				info.AppendClaims("unit", u.Unit)
			}
			if u.Badge != "" {
				info.AppendClaims("badge", u.Badge)
			}
			return nil
		}
	}
	return errNotFound
}

func (s *storage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, _, subject, _ string) error {
	return s.SetUserinfoFromScopes(ctx, info, subject, "", nil)
}
func (s *storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errUnsupported
}
func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}
func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errUnsupported
}
func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errUnsupported
}
func (s *storage) Health(context.Context) error { return nil }

// client is the one confidential web client. DevMode: its callbacks may
// be plain http (loopback tests).
type client struct {
	id, issuer string
	redirects  []string
	lifetime   time.Duration // of its ID tokens
}

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return c.redirects }
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType        { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) LoginURL(id string) string           { return c.issuer + "/login?id=" + id }
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration      { return c.lifetime }
func (c *client) DevMode() bool                       { return true }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) IsScopeAllowed(string) bool { return false }

// IDTokenUserinfoClaimsAssertion: the user's claims (groups, unit) go
// into the ID token, where the relying party reads them.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Test identity provider</title></head>
<body><h1>Test identity provider</h1>
<form method="post" action="/login">
<input type="hidden" name="id" value="{{.ID}}">
<label>Username <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<p id="error">{{.Error}}</p>
<button type="submit">Sign in</button>
</form></body></html>`))

func (s *storage) loginForm(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, http.StatusOK, r.URL.Query().Get("id"), "")
}

func (s *storage) renderLogin(w http.ResponseWriter, code int, id, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_ = loginTmpl.Execute(w, map[string]string{"ID": id, "Error": msg})
}

// checkLogin: the form's answer. Right: the request is done and the
// browser goes on to the provider's callback, which issues the code.
func (s *storage) checkLogin(w http.ResponseWriter, r *http.Request) {
	id, username, password := r.FormValue("id"), r.FormValue("username"), r.FormValue("password")
	s.mu.Lock()
	a, ok := s.requests[id]
	u, known := s.users[username]
	good := ok && known && subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) == 1
	if good {
		a.subject, a.authTime, a.done = u.Subject, time.Now(), true
	}
	issuer := s.cfg.Issuer
	s.mu.Unlock()
	switch {
	case !ok:
		s.renderLogin(w, http.StatusBadRequest, id, "unknown sign-in request")
	case !good:
		s.renderLogin(w, http.StatusUnauthorized, id, "wrong username or password")
	default:
		http.Redirect(w, r, issuer+"/authorize/callback?id="+id, http.StatusFound)
	}
}
