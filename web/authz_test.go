package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
	"github.com/bwcplatform/bwc/web"
)

var allRoles = []string{index.RoleOfficer, index.RoleSupervisor, index.RoleReviewer, index.RoleAdmin}

// TestEveryRouteChecksAuthentication walks the router: every API route
// answers 401 without a session, 403 to each role it does not allow, and
// lets an allowed role through (to whatever the handler then answers).
func TestEveryRouteChecksAuthentication(t *testing.T) {
	db := storagetest.NewDB(t)
	s := newServer(t, testOptions(db))
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	anon := apiClient{t: t, url: ts.URL}
	clients := map[string]apiClient{}
	for _, role := range allRoles {
		clients[role] = anon.loginAs(db, role)
	}
	routes := s.Routes()
	if len(routes) < 20 {
		t.Fatalf("only %d routes registered: the walk is not seeing the router", len(routes))
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	// logout ends the sessions the walk uses: check it last
	slices.SortStableFunc(routes, func(a, b web.Route) int {
		isLogout := func(r web.Route) int {
			if r.Pattern == "POST /api/logout" {
				return 1
			}
			return 0
		}
		return isLogout(a) - isLogout(b)
	})
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = param.ReplaceAllString(path, uuid.NewString())
		if rt.Roles == nil {
			continue // public: login
		}
		if code := rawStatus(t, ts.URL, method, path, nil); code != http.StatusUnauthorized {
			t.Errorf("%s without a session = %d, want 401", rt.Pattern, code)
		}
		for _, role := range allRoles {
			rc := clients[role]
			code := rawStatus(t, ts.URL, method, path, &rc)
			allowed := slices.Contains(rt.Roles, role)
			if !allowed && code != http.StatusForbidden {
				t.Errorf("%s as %s = %d, want 403", rt.Pattern, role, code)
			}
			if allowed && (code == http.StatusForbidden || code == http.StatusUnauthorized) {
				t.Errorf("%s as %s = %d, want the handler's answer", rt.Pattern, role, code)
			}
		}
	}
}

func rawStatus(t *testing.T, base, method, path string, c *apiClient) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if c != nil {
		req.AddCookie(c.cookie)
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestLoginSessionsAndTokens(t *testing.T) {
	c, db := newAPI(t)
	ctx := context.Background()
	if _, err := db.CreateUser(ctx, index.User{Login: "sup1", Role: index.RoleSupervisor}, "supervisor-pass-1"); err != nil {
		t.Fatal(err)
	}
	anon := apiClient{t: t, url: c.url}
	steps := []struct {
		name   string
		client apiClient
		method string
		path   string
		body   string
		code   int
	}{
		{"wrong password", anon, "POST", "/api/login", `{"login":"sup1","password":"nope"}`, 401},
		{"unknown login", anon, "POST", "/api/login", `{"login":"ghost","password":"nope"}`, 401},
		{"right password", anon, "POST", "/api/login", `{"login":"sup1","password":"supervisor-pass-1"}`, 200},
		{"session", c, "GET", "/api/session", ``, 200},
		{"create user with short password", c, "POST", "/api/users", `{"login":"x","password":"short","role":"reviewer"}`, 400},
		{"create officer user without officer", c, "POST", "/api/users", `{"login":"x","password":"long-enough-pw","role":"officer"}`, 400},
		{"create reviewer", c, "POST", "/api/users", `{"login":"rev1","password":"reviewer-pass-1","role":"reviewer"}`, 201},
		{"duplicate login", c, "POST", "/api/users", `{"login":"rev1","password":"reviewer-pass-1","role":"reviewer"}`, 409},
		{"bad token role", c, "POST", "/api/tokens", `{"name":"dispatch","role":"officer"}`, 400},
	}
	for _, st := range steps {
		if code, body, _ := st.client.do(st.method, st.path, st.body); code != st.code {
			t.Errorf("%s: %d %v, want %d", st.name, code, body, st.code)
		}
	}

	// CSRF: a cookie without the header may read but not change anything
	noCSRF := c
	noCSRF.csrf = ""
	if code, _, _ := noCSRF.do("GET", "/api/officers", ""); code != 200 {
		t.Errorf("GET without CSRF header = %d, want 200", code)
	}
	if code, body, _ := noCSRF.do("POST", "/api/officers", `{"badge":"77","name":"x"}`); code != 403 || !strings.Contains(body["error"].(string), "CSRF") {
		t.Errorf("POST without CSRF header = %d %v, want 403 naming CSRF", code, body)
	}

	// API token for a machine client
	code, tok, _ := c.do("POST", "/api/tokens", `{"name":"dispatch","role":"supervisor"}`)
	if code != 201 {
		t.Fatalf("create token: %d %v", code, tok)
	}
	bearer := func(method, path, body string) int {
		req, _ := http.NewRequest(method, c.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok["token"].(string))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := bearer("POST", "/api/incidents", `{"number":"110-TOKEN-1"}`); code != 201 {
		t.Errorf("dispatch token creating an incident = %d, want 201 (no CSRF for tokens)", code)
	}
	if code := bearer("POST", "/api/users", `{}`); code != 403 {
		t.Errorf("supervisor token creating a user = %d, want 403", code)
	}
	if code, _, _ := c.do("DELETE", "/api/tokens/"+tok["id"].(string), ""); code != 200 {
		t.Errorf("revoke token = %d", code)
	}
	if code := bearer("GET", "/api/incidents", ""); code != 401 {
		t.Errorf("revoked token = %d, want 401", code)
	}

	// logout ends the session
	if code, _, _ := c.do("POST", "/api/logout", ""); code != 200 {
		t.Fatalf("logout = %d", code)
	}
	if code, _, _ := c.do("GET", "/api/session", ""); code != 401 {
		t.Errorf("session after logout = %d, want 401", code)
	}
}

func TestLockoutAfterRepeatedFailures(t *testing.T) {
	c, db := newAPI(t)
	if _, err := db.CreateUser(context.Background(), index.User{Login: "rev2", Role: index.RoleReviewer}, "reviewer-pass-2"); err != nil {
		t.Fatal(err)
	}
	anon := apiClient{t: t, url: c.url}
	for i := 0; i < 5; i++ {
		if code, _, _ := anon.do("POST", "/api/login", `{"login":"rev2","password":"guess"}`); code != 401 {
			t.Fatalf("failure %d = %d, want 401", i+1, code)
		}
	}
	if code, body, _ := anon.do("POST", "/api/login", `{"login":"rev2","password":"reviewer-pass-2"}`); code != 429 {
		t.Fatalf("right password while locked = %d %v, want 429", code, body)
	}
}

func TestDisabledUserCannotLogIn(t *testing.T) {
	c, db := newAPI(t)
	u, err := db.CreateUser(context.Background(), index.User{Login: "gone", Role: index.RoleReviewer}, "reviewer-pass-3")
	if err != nil {
		t.Fatal(err)
	}
	user := apiClient{t: t, url: c.url}
	if code, _, _ := c.do("POST", "/api/users/"+u.ID.String()+"/disabled", `{"disabled":true}`); code != 200 {
		t.Fatalf("disable = %d", code)
	}
	if code, _, _ := user.do("POST", "/api/login", `{"login":"gone","password":"reviewer-pass-3"}`); code != 401 {
		t.Fatalf("disabled user login = %d, want 401", code)
	}
}

func TestDeviceSecretOnlyForAdmins(t *testing.T) {
	admin, db := newAPI(t)
	if code, _, _ := admin.do("POST", "/api/devices", `{"serial":"CAM-S","secret":"device-secret-9"}`); code != 201 {
		t.Fatal(code)
	}
	sup := apiClient{t: t, url: admin.url}.loginAs(db, index.RoleSupervisor)
	for _, tc := range []struct {
		c    apiClient
		want string
	}{{admin, "device-secret-9"}, {sup, ""}} {
		_, d, _ := tc.c.do("GET", "/api/devices/CAM-S", "")
		if got, _ := d["secret"].(string); got != tc.want {
			t.Errorf("secret seen = %q, want %q", got, tc.want)
		}
	}
}

// Every change made through the API, and every login, is in the audit
// trail, which reviewers can read and which verifies.
func TestChangesAreAudited(t *testing.T) {
	c, db := newAPI(t) // logged in as an admin: one auth.login event
	if code, _, _ := c.do("POST", "/api/officers", `{"badge":"5001","name":"Zhao Lei"}`); code != 201 {
		t.Fatal(code)
	}
	if code, _, _ := c.do("POST", "/api/officers", `{"badge":""}`); code != 400 {
		t.Fatal(code)
	}
	anon := apiClient{t: t, url: c.url}
	anon.do("POST", "/api/login", `{"login":"nobody","password":"wrong"}`)

	code, _, evs := c.do("GET", "/api/audit?limit=50", "")
	if code != 200 {
		t.Fatalf("GET /api/audit = %d", code)
	}
	var actions []string
	for _, e := range evs {
		ev := e.(map[string]any)
		actions = append(actions, ev["action"].(string))
		if ev["action"] == "api.change" {
			d := ev["details"].(map[string]any)
			if d["route"] != "POST /api/officers" || ev["actor"] == "" || ev["remote_addr"] == "" {
				t.Errorf("change event %v lacks route, actor or address", ev)
			}
		}
	}
	want := []string{"auth.login", "api.change", "auth.login.failed"}
	if !slices.Equal(actions, want) {
		t.Fatalf("audit actions = %v, want %v (the refused change is not a change)", actions, want)
	}
	// the read of the trail itself is audited once its answer starts,
	// after the events it lists were read
	if n, problems, err := db.VerifyAudit(context.Background()); err != nil || n != 4 || len(problems) > 0 {
		t.Fatalf("VerifyAudit = %d %v %v", n, problems, err)
	}
	if code, _, _ := c.do("GET", "/api/audit?incident=nope", ""); code != 400 {
		t.Fatalf("bad filter = %d, want 400", code)
	}
}
