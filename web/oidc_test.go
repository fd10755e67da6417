package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
	"github.com/bwcplatform/bwc/web"
	"github.com/bwcplatform/bwc/web/oidctest"
)

// ssoEnv is the platform and a real OpenID provider (zitadel's pkg/op),
// each behind its own httptest server.
type ssoEnv struct {
	t   *testing.T
	db  *index.DB
	op  *oidctest.Provider
	url string // the platform's
}

var ssoUsers = []oidctest.User{
	{Subject: "sub-sv", Username: "sv.chen", Password: "pw-sv", Groups: []string{"staff", "bwc-supervisors"}, Unit: "north"},
	{Subject: "sub-rv", Username: "rv.li", Password: "pw-rv", Groups: []string{"bwc-reviewers"}, Unit: "south"},
	{Subject: "sub-both", Username: "both", Password: "pw-both", Groups: []string{"bwc-officers", "bwc-admins"}},
	{Subject: "sub-cafe", Username: "cook", Password: "pw-cook", Groups: []string{"cafeteria"}},
	{Subject: "sub-of", Username: "of.wang", Password: "pw-of", Groups: []string{"bwc-officers"}, Badge: "B-7"},
	{Subject: "sub-nobadge", Username: "of.zhao", Password: "pw-of", Groups: []string{"bwc-officers"}, Badge: "B-404"},
	{Subject: "sub-admin", Username: "admin", Password: "pw-admin", Groups: []string{"bwc-reviewers"}},
}

// newSSO: edit, if any, changes the platform's configuration.
func newSSO(t *testing.T, edit ...func(*web.Config)) ssoEnv {
	t.Helper()
	db := storagetest.NewDB(t)
	opTS := httptest.NewUnstartedServer(nil)
	bwcTS := httptest.NewUnstartedServer(nil)
	issuer, bwcURL := "http://"+opTS.Listener.Addr().String(), "http://"+bwcTS.Listener.Addr().String()
	op, err := oidctest.New(oidctest.Config{Issuer: issuer, ClientID: "bwc", ClientSecret: "client-secret",
		RedirectURIs: []string{bwcURL + "/auth/oidc/callback"}, Users: ssoUsers})
	if err != nil {
		t.Fatal(err)
	}
	opTS.Config.Handler = op
	opTS.Start()
	t.Cleanup(opTS.Close)
	opts := testOptions(db)
	roles, err := web.ParseRoleMap("bwc-admins=admin,bwc-supervisors=supervisor,bwc-reviewers=reviewer,bwc-officers=officer")
	if err != nil {
		t.Fatal(err)
	}
	opts.Config.OIDC = web.OIDCConfig{Issuer: issuer, Name: "Police ID", ClientID: "bwc", ClientSecret: "client-secret",
		RedirectURL: bwcURL + "/auth/oidc/callback", RoleClaim: "groups", RoleMap: roles, UnitClaim: "unit", BadgeClaim: "badge",
		LoginTTL: time.Minute, HTTPTimeout: 10 * time.Second}
	for _, f := range edit {
		f(&opts.Config)
	}
	s := newServer(t, opts)
	bwcTS.Config.Handler = s.Handler()
	bwcTS.Start()
	t.Cleanup(bwcTS.Close)
	return ssoEnv{t: t, db: db, op: op, url: bwcURL}
}

// browser is an HTTP client with a cookie jar that stops before the
// platform's callback, so that a test may tamper with it.
func (e ssoEnv) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Jar: jar, Transport: tr, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if r.URL.Path == "/auth/oidc/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

// authorize starts a sign-in at the platform and fills in the provider's
// login form: the callback URL the provider sends the browser to.
func (e ssoEnv) authorize(c *http.Client, username, password string) *url.URL {
	e.t.Helper()
	res, err := c.Get(e.url + "/auth/oidc/login")
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `name="password"`) {
		e.t.Fatalf("sign-in start: %d at %s: %s", res.StatusCode, res.Request.URL, body)
	}
	form := res.Request.URL // the provider's login form
	res, err = c.PostForm(form.Scheme+"://"+form.Host+"/login", url.Values{
		"id": {form.Query().Get("id")}, "username": {username}, "password": {password}})
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	loc, err := res.Location()
	if res.StatusCode != http.StatusSeeOther && res.StatusCode != http.StatusFound || err != nil || loc.Path != "/auth/oidc/callback" {
		e.t.Fatalf("provider login: %d, Location %v: %s", res.StatusCode, loc, body)
	}
	return loc
}

// finish follows the provider's redirect to the platform's callback.
func (e ssoEnv) finish(c *http.Client, callback *url.URL) (int, string) {
	e.t.Helper()
	res, err := c.Get(callback.String())
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// cookie is the browser's cookie of that name for u (the test fails
// without one).
func (e ssoEnv) cookie(c *http.Client, u *url.URL, name string) *http.Cookie {
	e.t.Helper()
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == name {
			return &http.Cookie{Name: ck.Name, Value: ck.Value}
		}
	}
	e.t.Fatalf("no cookie %s for %s", name, u)
	return nil
}

// session is the platform's session of a browser (nil: none).
func (e ssoEnv) session(c *http.Client) *index.Session {
	e.t.Helper()
	u, _ := url.Parse(e.url)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "bwc_session" {
			s, err := e.db.SessionByToken(context.Background(), ck.Value)
			if err != nil {
				e.t.Fatalf("session cookie: %v", err)
			}
			return &s
		}
	}
	return nil
}

// audited: the actions of the audit trail, in order.
func (e ssoEnv) audited() []index.AuditEvent {
	e.t.Helper()
	events, err := e.db.AuditEvents(context.Background(), index.AuditFilter{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return events
}

func countAction(events []index.AuditEvent, action string) int {
	n := 0
	for _, ev := range events {
		if ev.Action == action {
			n++
		}
	}
	return n
}

// TestOIDCSignIn: the whole flow against the real provider lands each
// person on their role's home with the mapped role and unit, in a session
// marked as single sign-on, audited; PKCE is S256.
func TestOIDCSignIn(t *testing.T) {
	e := newSSO(t)
	officer, err := e.db.CreateOfficer(context.Background(), index.Officer{Badge: "B-7", Name: "Wang"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		username, password string
		role, unit, home   string
		officer            bool
	}{
		{"sv.chen", "pw-sv", index.RoleSupervisor, "north", "/wall", false},
		{"rv.li", "pw-rv", index.RoleReviewer, "south", "/incidents", false},
		{"both", "pw-both", index.RoleAdmin, "", "/admin", false}, // in two mapped groups: bwc-admins comes first in the role map
		{"of.wang", "pw-of", index.RoleOfficer, "", "/upload", true},
	} {
		t.Run(tc.username, func(t *testing.T) {
			c := e.browser()
			code, body := e.finish(c, e.authorize(c, tc.username, tc.password))
			if code != http.StatusOK || !strings.Contains(body, `url=`+tc.home+`"`) {
				t.Fatalf("callback: %d %s, want the landing page to %s", code, body, tc.home)
			}
			s := e.session(c)
			if s == nil {
				t.Fatal("no session cookie after the callback")
			}
			if s.User.Role != tc.role || s.User.Unit != tc.unit || s.Method != index.AuthOIDC || s.User.Login != tc.username {
				t.Fatalf("session: login %q role %q unit %q method %q, want %q %q %q %q",
					s.User.Login, s.User.Role, s.User.Unit, s.Method, tc.username, tc.role, tc.unit, index.AuthOIDC)
			}
			if tc.officer && (s.User.OfficerID == nil || *s.User.OfficerID != officer.ID) {
				t.Fatalf("officer account belongs to %v, want the rostered officer %s", s.User.OfficerID, officer.ID)
			}
			// the session works for the API as a password login's does
			res, err := c.Get(e.url + "/api/session")
			if err != nil {
				t.Fatal(err)
			}
			var me map[string]any
			_ = json.NewDecoder(res.Body).Decode(&me)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || me["role"] != tc.role || me["unit"] != tc.unit {
				t.Fatalf("GET /api/session: %d %v", res.StatusCode, me)
			}
			if m := e.op.LastChallengeMethod(); m != "S256" {
				t.Fatalf("PKCE method %q, want S256", m)
			}
		})
	}
	events := e.audited()
	if n := countAction(events, "auth.login.oidc"); n != 4 {
		t.Fatalf("%d auth.login.oidc events, want 4", n)
	}
}

// TestOIDCRefused: every tampered or unmapped sign-in is refused, starts no
// session and is audited.
func TestOIDCRefused(t *testing.T) {
	e := newSSO(t)
	for _, tc := range []struct {
		name   string
		code   int
		reason string // in the audited refusal
		run    func(t *testing.T, c *http.Client) (int, string)
	}{
		{"wrong state", http.StatusBadRequest, "no such sign-in", func(t *testing.T, c *http.Client) (int, string) {
			cb := e.authorize(c, "sv.chen", "pw-sv")
			q := cb.Query()
			q.Set("state", "forged-"+q.Get("state"))
			cb.RawQuery = q.Encode()
			return e.finish(c, cb)
		}},
		{"state of another browser", http.StatusBadRequest, "no such sign-in", func(t *testing.T, c *http.Client) (int, string) {
			cb := e.authorize(e.browser(), "sv.chen", "pw-sv") // started elsewhere
			return e.finish(c, cb)
		}},
		{"state used twice", http.StatusBadRequest, "no such sign-in", func(t *testing.T, c *http.Client) (int, string) {
			cb := e.authorize(c, "sv.chen", "pw-sv")
			binding := e.cookie(c, cb, "bwc_oidc")
			if code, body := e.finish(c, cb); code != http.StatusOK {
				t.Fatalf("first use: %d %s", code, body)
			}
			// the same browser again, its binding cookie put back: only
			// the state's single use can refuse it
			c.Jar, _ = cookiejar.New(nil)
			c.Jar.SetCookies(cb, []*http.Cookie{binding})
			return e.finish(c, cb)
		}},
		{"replayed code", http.StatusForbidden, "invalid_grant", func(t *testing.T, c *http.Client) (int, string) {
			first := e.authorize(c, "sv.chen", "pw-sv")
			if code, body := e.finish(c, first); code != http.StatusOK {
				t.Fatalf("first sign-in: %d %s", code, body)
			}
			c.Jar, _ = cookiejar.New(nil)
			second := e.authorize(c, "sv.chen", "pw-sv")
			q := second.Query()
			q.Set("code", first.Query().Get("code")) // a fresh state with a used code
			second.RawQuery = q.Encode()
			return e.finish(c, second)
		}},
		{"wrong nonce", http.StatusForbidden, "nonce", tampered(e, oidctest.Tampering{WrongNonce: true})},
		{"expired ID token", http.StatusForbidden, "expired", tampered(e, oidctest.Tampering{Expired: true})},
		{"no mapped group", http.StatusForbidden, `no group of the user maps to a role (claim "groups": "cafeteria")`, func(t *testing.T, c *http.Client) (int, string) {
			return e.finish(c, e.authorize(c, "cook", "pw-cook"))
		}},
		{"officer badge not on the roster", http.StatusForbidden, "no officer with this badge", func(t *testing.T, c *http.Client) (int, string) {
			return e.finish(c, e.authorize(c, "of.zhao", "pw-of"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := countAction(e.audited(), "auth.login.oidc.refused")
			c := e.browser()
			code, body := tc.run(t, c)
			if code != tc.code {
				t.Fatalf("callback: %d %s, want %d", code, body, tc.code)
			}
			if !strings.Contains(body, "返回登录") {
				t.Fatalf("refusal page is not in English and Chinese: %s", body)
			}
			if s := e.session(c); s != nil {
				t.Fatalf("a refused sign-in has a session: %+v", s)
			}
			events := e.audited()
			if after := countAction(events, "auth.login.oidc.refused"); after != before+1 {
				t.Fatalf("refusals audited: %d → %d, want one more", before, after)
			}
			last := events[len(events)-1]
			if reason, _ := last.Details["reason"].(string); last.Action != "auth.login.oidc.refused" || !strings.Contains(reason, tc.reason) {
				t.Fatalf("last audit event %s %v, want a refusal naming %q", last.Action, last.Details, tc.reason)
			}
		})
	}
	// the cook has no account: refused before any user was made
	users, err := e.db.Users(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(users, func(u index.User) bool { return u.Login == "cook" || u.Login == "of.zhao" }) {
		t.Fatalf("a refused person got an account: %v", users)
	}
}

// tampered signs in while the provider issues a token the platform must
// refuse.
func tampered(e ssoEnv, tm oidctest.Tampering) func(*testing.T, *http.Client) (int, string) {
	return func(t *testing.T, c *http.Client) (int, string) {
		e.op.Tamper(tm)
		defer e.op.Tamper(oidctest.Tampering{})
		return e.finish(c, e.authorize(c, "sv.chen", "pw-sv"))
	}
}

// TestOIDCRemapped: the role and unit follow the provider's groups at each
// sign-in; the user stays the same (found by issuer and subject).
func TestOIDCRemapped(t *testing.T) {
	e := newSSO(t)
	c := e.browser()
	if code, body := e.finish(c, e.authorize(c, "rv.li", "pw-rv")); code != http.StatusOK {
		t.Fatalf("first sign-in: %d %s", code, body)
	}
	first := e.session(c)
	e.op.SetUser(oidctest.User{Subject: "sub-rv", Username: "rv.li", Password: "pw-rv", Groups: []string{"bwc-supervisors"}, Unit: "east"})
	c = e.browser()
	if code, body := e.finish(c, e.authorize(c, "rv.li", "pw-rv")); code != http.StatusOK || !strings.Contains(body, "url=/wall") {
		t.Fatalf("second sign-in: %d %s", code, body)
	}
	second := e.session(c)
	if second.User.ID != first.User.ID || second.User.Role != index.RoleSupervisor || second.User.Unit != "east" {
		t.Fatalf("re-mapped: user %s role %q unit %q, want user %s supervisor east", second.User.ID, second.User.Role, second.User.Unit, first.User.ID)
	}
	// disabled on the platform: refused although the provider signs them in
	if _, err := e.db.SetUserDisabled(context.Background(), first.User.ID, true); err != nil {
		t.Fatal(err)
	}
	c = e.browser()
	if code, body := e.finish(c, e.authorize(c, "rv.li", "pw-rv")); code != http.StatusForbidden || !strings.Contains(body, "disabled") {
		t.Fatalf("sign-in of a disabled user: %d %s, want 403", code, body)
	}
	if _, err := e.db.SetUserDisabled(context.Background(), first.User.ID, false); err != nil {
		t.Fatal(err)
	}
	// removed from every mapped group: refused at the next sign-in
	e.op.SetUser(oidctest.User{Subject: "sub-rv", Username: "rv.li", Password: "pw-rv", Groups: []string{"alumni"}})
	c = e.browser()
	if code, _ := e.finish(c, e.authorize(c, "rv.li", "pw-rv")); code != http.StatusForbidden {
		t.Fatalf("sign-in without a mapped group: %d, want 403", code)
	}
}

// TestOIDCLocalAccountsRemain: a local (break-glass) account and an
// identity of the same name are two users; the local password still works
// and the single sign-on user has no password.
func TestOIDCLocalAccountsRemain(t *testing.T) {
	e := newSSO(t)
	ctx := context.Background()
	local, err := e.db.CreateUser(ctx, index.User{Login: "admin", Role: index.RoleAdmin}, "break-glass-password")
	if err != nil {
		t.Fatal(err)
	}
	c := e.browser()
	if code, body := e.finish(c, e.authorize(c, "admin", "pw-admin")); code != http.StatusOK {
		t.Fatalf("sign-in: %d %s", code, body)
	}
	s := e.session(c)
	if s.User.ID == local.ID || s.User.Login == "admin" || s.User.Role != index.RoleReviewer {
		t.Fatalf("the provider's admin became %q (%s, %s); the local admin is %s", s.User.Login, s.User.ID, s.User.Role, local.ID)
	}
	if _, err := e.db.Authenticate(ctx, "admin", "break-glass-password"); err != nil {
		t.Fatalf("local break-glass login: %v", err)
	}
	for _, pw := range []string{"", "!", "pw-admin"} {
		if _, err := e.db.Authenticate(ctx, s.User.Login, pw); err == nil {
			t.Fatalf("the single sign-on user logged in locally with %q", pw)
		}
	}
}

// TestOIDCLoginOptions: the login page offers single sign-on only when an
// issuer is set; without one the routes do not exist.
func TestOIDCLoginOptions(t *testing.T) {
	e := newSSO(t)
	off := httptest.NewServer(newServer(t, testOptions(e.db)).Handler())
	t.Cleanup(off.Close)
	for _, tc := range []struct {
		base string
		want string
		sso  int // GET /auth/oidc/login, not following
	}{
		{e.url, `"name": "Police ID"`, http.StatusSeeOther},
		{off.URL, `"oidc": null`, http.StatusNotFound},
	} {
		res, err := http.Get(tc.base + "/api/login/options")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), tc.want) {
			t.Fatalf("%s options: %d %s, want %s", tc.base, res.StatusCode, body, tc.want)
		}
		res, err = http.DefaultTransport.RoundTrip(mustRequest(t, tc.base+"/auth/oidc/login"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.sso {
			t.Fatalf("%s /auth/oidc/login: %d, want %d", tc.base, res.StatusCode, tc.sso)
		}
	}
}

func mustRequest(t *testing.T, u string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestOIDCLoginRate: starting sign-ins counts against the address's login
// rate, as password logins do (each start stores a row).
func TestOIDCLoginRate(t *testing.T) {
	e := newSSO(t, func(c *web.Config) { c.LoginRate, c.LoginBurst = 0.001, 2 })
	noRedirect := &http.Client{Transport: &http.Transport{}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(noRedirect.CloseIdleConnections)
	for i, want := range []int{http.StatusSeeOther, http.StatusSeeOther, http.StatusTooManyRequests} {
		res, err := noRedirect.Get(e.url + "/auth/oidc/login")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want || want == http.StatusTooManyRequests && res.Header.Get("Retry-After") == "" {
			t.Fatalf("start %d: %d (Retry-After %q), want %d", i+1, res.StatusCode, res.Header.Get("Retry-After"), want)
		}
	}
}
