package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// accountsEnv is a server on a fresh database with an admin logged in.
type accountsEnv struct {
	t     *testing.T
	db    *index.DB
	anon  apiClient
	admin apiClient
}

func newAccountsEnv(t *testing.T) accountsEnv {
	t.Helper()
	db := storagetest.NewDB(t)
	opts := testOptions(db)
	opts.Config.ExportApproval = true
	s := newServer(t, opts)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	anon := apiClient{t: t, url: ts.URL}
	return accountsEnv{t: t, db: db, anon: anon, admin: anon.loginAs(db, index.RoleAdmin)}
}

// user creates an account.
func (e accountsEnv) user(login, role, password string) index.User {
	e.t.Helper()
	u, err := e.db.CreateUser(context.Background(), index.User{Login: login, Role: role}, password)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// login opens a session; the answer's body is returned too.
func (e accountsEnv) login(login, password string) (apiClient, int, map[string]any) {
	e.t.Helper()
	b, _ := json.Marshal(map[string]string{"login": login, "password": password})
	res, err := http.Post(e.anon.url+"/api/login", "application/json", strings.NewReader(string(b)))
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(res.Body).Decode(&body)
	c := e.anon
	for _, ck := range res.Cookies() {
		if ck.Name == "bwc_session" {
			c.cookie = ck
		}
	}
	if csrf, ok := body["csrf_token"].(string); ok {
		c.csrf = csrf
	}
	return c, res.StatusCode, body
}

// bearer calls the API with an API token.
func (e accountsEnv) bearer(token, method, path, body string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.anon.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var obj map[string]any
	_ = json.Unmarshal(raw, &obj)
	return res.StatusCode, obj
}

// audited reports whether the trail holds an event of the action by actor
// whose details' "why" contains why.
func (e accountsEnv) audited(actor, action, why string) bool {
	e.t.Helper()
	events, err := e.db.AuditEvents(context.Background(), index.AuditFilter{Actor: actor, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ev := range events {
		if w, _ := ev.Details["why"].(string); ev.Action == action && strings.Contains(w, why) {
			return true
		}
	}
	return false
}

// TestAPITokenRoutes: ttl (default, shorter, longer refused), the listing
// (no secret, creator, last use), expiry and the creator's disabling as
// 401, and tokens may not mint tokens.
func TestAPITokenRoutes(t *testing.T) {
	e := newAccountsEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, body string
		code       int
		life       time.Duration // of a created token
	}{
		{"default ttl", `{"name":"dispatch","role":"supervisor"}`, 201, 90 * 24 * time.Hour},
		{"shorter ttl", `{"name":"cad","role":"reviewer","ttl":"24h"}`, 201, 24 * time.Hour},
		{"longer ttl than the setting", `{"name":"forever","role":"reviewer","ttl":"2161h"}`, 400, 0},
		{"malformed ttl", `{"name":"x","role":"reviewer","ttl":"soon"}`, 400, 0},
		{"negative ttl", `{"name":"x","role":"reviewer","ttl":"-1h"}`, 400, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, tok, _ := e.admin.do("POST", "/api/tokens", tc.body)
			if code != tc.code {
				t.Fatalf("create: %d %v, want %d", code, tok, tc.code)
			}
			if code != 201 {
				return
			}
			created, _ := time.Parse(time.RFC3339Nano, tok["created_at"].(string))
			expires, _ := time.Parse(time.RFC3339Nano, tok["expires_at"].(string))
			if expires.Sub(created) != tc.life || tok["token"] == "" {
				t.Fatalf("token %v: lives %v, want %v, with its secret", tok, expires.Sub(created), tc.life)
			}
		})
	}
	code, tok, _ := e.admin.do("POST", "/api/tokens", `{"name":"wall","role":"admin","ttl":"1h"}`)
	if code != 201 {
		t.Fatalf("create: %d %v", code, tok)
	}
	secret := tok["token"].(string)
	if code, _ := e.bearer(secret, "GET", "/api/incidents", ""); code != 200 {
		t.Fatalf("valid token: %d", code)
	}
	if code, body := e.bearer(secret, "POST", "/api/tokens", `{"name":"child","role":"reviewer"}`); code != 403 {
		t.Fatalf("a token creating a token: %d %v, want 403", code, body)
	}

	code, _, list := e.admin.do("GET", "/api/tokens", "")
	if code != 200 || len(list) != 3 {
		t.Fatalf("list: %d, %d tokens; want 3", code, len(list))
	}
	for _, it := range list {
		m := it.(map[string]any)
		for _, k := range []string{"token", "token_hash", "hash"} {
			if _, ok := m[k]; ok {
				t.Fatalf("listed token shows %q: %v", k, m)
			}
		}
		for _, k := range []string{"name", "role", "created_by", "created_by_id", "created_at", "expires_at", "last_used_at", "revoked_at"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("listed token lacks %q: %v", k, m)
			}
		}
		if m["name"] == "wall" && m["last_used_at"] == nil {
			t.Fatalf("used token without a last use: %v", m)
		}
		if m["name"] == "cad" && m["last_used_at"] != nil {
			t.Fatalf("unused token with a last use: %v", m)
		}
	}
	if code, _, _ := e.anon.loginAs(e.db, index.RoleSupervisor).do("GET", "/api/tokens", ""); code != 403 {
		t.Fatalf("supervisor listing tokens: %d, want 403", code)
	}

	// expired: 401 like an unknown token
	id := uuid.MustParse(tok["id"].(string))
	if _, err := e.db.Pool().Exec(ctx, `UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.bearer(secret, "GET", "/api/incidents", ""); code != 401 {
		t.Fatalf("expired token: %d, want 401", code)
	}

	// the creator disabled: their tokens stop working
	chief := e.user("chief-2", index.RoleAdmin, "correct horse battery")
	c, code, _ := e.login("chief-2", "correct horse battery")
	if code != 200 {
		t.Fatalf("login: %d", code)
	}
	_, tok2, _ := c.do("POST", "/api/tokens", `{"name":"cad-2","role":"supervisor"}`)
	secret2 := tok2["token"].(string)
	if code, _ := e.bearer(secret2, "GET", "/api/incidents", ""); code != 200 {
		t.Fatalf("token of chief-2: %d", code)
	}
	if code, _, _ := e.admin.do("POST", "/api/users/"+chief.ID.String()+"/disabled", `{"disabled":true}`); code != 200 {
		t.Fatalf("disable: %d", code)
	}
	if code, _ := e.bearer(secret2, "GET", "/api/incidents", ""); code != 401 {
		t.Fatalf("token of a disabled creator: %d, want 401", code)
	}
}

// TestOwnPasswordChange: the current password is checked (a wrong one is
// 403, counted towards the lockout and audited), the policy applies, the
// other sessions end and this one stays.
func TestOwnPasswordChange(t *testing.T) {
	e := newAccountsEnv(t)
	e.user("liu", index.RoleReviewer, "correct horse battery")
	c, _, _ := e.login("liu", "correct horse battery")
	other, _, _ := e.login("liu", "correct horse battery")
	// a wrong current password: 403, counted like a failed login, audited
	if code, body, _ := c.do("POST", "/api/password", `{"current":"not my password","new":"a brand new phrase"}`); code != 403 || body["field"] != "current" {
		t.Fatalf("wrong current password: %d %v, want 403 naming current", code, body)
	}
	if n, _, err := e.db.FailedLogins(context.Background(), "liu"); err != nil || n != 1 {
		t.Fatalf("failed logins after a wrong current password: %d, %v; want 1", n, err)
	}
	if !e.audited("liu", "auth.password.change.refused", "wrong current password") {
		t.Fatal("wrong current password not audited")
	}
	for _, tc := range []struct {
		name, body string
		code       int
		field      string
	}{
		{"missing current", `{"new":"a brand new phrase"}`, 400, "current"},
		{"too short", `{"current":"correct horse battery","new":"short one"}`, 400, "new"},
		{"contains the login", `{"current":"correct horse battery","new":"liu-password-2026"}`, 400, "new"},
		{"common", `{"current":"correct horse battery","new":"password1234"}`, 400, "new"},
		{"one character", `{"current":"correct horse battery","new":"xxxxxxxxxxxxxx"}`, 400, "new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := c.do("POST", "/api/password", tc.body)
			if code != tc.code || body["field"] != tc.field {
				t.Fatalf("%d %v, want %d naming %s", code, body, tc.code, tc.field)
			}
		})
	}
	if code, body, _ := c.do("POST", "/api/password", `{"current":"correct horse battery","new":"a brand new phrase"}`); code != 200 {
		t.Fatalf("change: %d %v", code, body)
	}
	if !e.audited("liu", "auth.password.change", "") {
		t.Fatal("change not audited")
	}
	if code, _, _ := c.do("GET", "/api/session", ""); code != 200 {
		t.Fatalf("the changing session after the change: %d, want 200", code)
	}
	if code, _, _ := other.do("GET", "/api/session", ""); code != 401 {
		t.Fatalf("another session after the change: %d, want 401", code)
	}
	if _, code, _ := e.login("liu", "correct horse battery"); code != 401 {
		t.Fatalf("old password: %d, want 401", code)
	}
	if _, code, _ := e.login("liu", "a brand new phrase"); code != 200 {
		t.Fatalf("new password: %d, want 200", code)
	}
}

// TestAdminPasswordReset: an administrator's reset applies the policy,
// ends the user's sessions and forces a change: until then the user's
// session reaches only the session, the change and logout.
func TestAdminPasswordReset(t *testing.T) {
	e := newAccountsEnv(t)
	u := e.user("chen", index.RoleSupervisor, "correct horse battery")
	before, _, _ := e.login("chen", "correct horse battery")
	path := "/api/users/" + u.ID.String() + "/password"
	if code, body, _ := e.admin.do("POST", path, `{"password":"chen-temporary-1"}`); code != 400 || body["field"] != "password" {
		t.Fatalf("reset to a password containing the login: %d %v, want 400", code, body)
	}
	if code, _, _ := e.anon.loginAs(e.db, index.RoleSupervisor).do("POST", path, `{"password":"a temporary phrase"}`); code != 403 {
		t.Fatalf("reset by a supervisor: %d, want 403", code)
	}
	_, tok, _ := e.admin.do("POST", "/api/tokens", `{"name":"idm","role":"admin"}`)
	if code, body := e.bearer(tok["token"].(string), "POST", path, `{"password":"a temporary phrase"}`); code != 403 {
		t.Fatalf("reset with an admin API token: %d %v, want 403", code, body)
	}
	if code, body, _ := e.admin.do("POST", path, `{"password":"a temporary phrase"}`); code != 200 || body["must_change_password"] != true {
		t.Fatalf("reset: %d %v", code, body)
	}
	if code, _, _ := before.do("GET", "/api/session", ""); code != 401 {
		t.Fatalf("session from before the reset: %d, want 401", code)
	}
	c, code, body := e.login("chen", "a temporary phrase")
	if code != 200 || body["user"].(map[string]any)["must_change_password"] != true {
		t.Fatalf("login after the reset: %d %v, want must_change_password", code, body)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
	}{
		{"GET", "/api/session", "", 200},
		{"GET", "/api/incidents", "", 403},
		{"GET", "/api/recordings", "", 403},
		{"POST", "/api/incidents", `{"number":"110-X"}`, 403},
	} {
		code, body, _ := c.do(tc.method, tc.path, tc.body)
		if code != tc.code {
			t.Errorf("%s %s while a change is due: %d %v, want %d", tc.method, tc.path, code, body, tc.code)
		}
		if code == 403 && !strings.Contains(body["error"].(string), "password change required") {
			t.Errorf("%s %s: error %q, want it to say a password change is required", tc.method, tc.path, body["error"])
		}
	}
	// pages send the user to /account
	req, _ := http.NewRequest("GET", e.anon.url+"/wall", nil)
	req.AddCookie(c.cookie)
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/account" {
		t.Fatalf("/wall while a change is due: %d to %q, want 303 to /account", res.StatusCode, res.Header.Get("Location"))
	}
	if code, body, _ := c.do("POST", "/api/password", `{"current":"a temporary phrase","new":"my own new phrase"}`); code != 200 || body["must_change_password"] != false {
		t.Fatalf("change after the reset: %d %v", code, body)
	}
	if code, _, _ := c.do("GET", "/api/incidents", ""); code != 200 {
		t.Fatalf("incidents after the change: %d, want 200", code)
	}
	events, err := e.db.AuditEvents(context.Background(), index.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var reset bool
	for _, ev := range events {
		reset = reset || ev.Action == "user.password.reset" && ev.ObjectID == "chen" && ev.Role == index.RoleAdmin
	}
	if !reset {
		t.Fatal("reset not audited")
	}
}

// TestExportFourEyes: the requester's user ID may not decide their own
// export, through a second session or a token they created; no API token
// decides; each refusal is 403 and audited; another supervisor approves.
func TestExportFourEyes(t *testing.T) {
	e := newAccountsEnv(t)
	ctx := context.Background()
	inc, err := e.db.CreateIncident(ctx, index.Incident{Number: "110-4EYES"})
	if err != nil {
		t.Fatal(err)
	}
	e.user("sup-a", index.RoleSupervisor, "correct horse battery")
	first, _, _ := e.login("sup-a", "correct horse battery")
	second, _, _ := e.login("sup-a", "correct horse battery")
	request := func(c apiClient) string {
		t.Helper()
		code, ex, _ := c.do("POST", "/api/exports", `{"incident_id":"`+inc.ID.String()+`","reason":"court"}`)
		if code != 201 || ex["status"] != "requested" || ex["requested_by_id"] == nil {
			t.Fatalf("request export: %d %v", code, ex)
		}
		return ex["id"].(string)
	}
	id := request(first)
	// a supervisor token, made by an admin
	_, tok, _ := e.admin.do("POST", "/api/tokens", `{"name":"dispatch","role":"supervisor"}`)
	secret := tok["token"].(string)
	for _, tc := range []struct {
		name string
		do   func() (int, map[string]any)
		why  string
	}{
		{"same user, second session, approve", func() (int, map[string]any) {
			c, b, _ := second.do("POST", "/api/exports/"+id+"/approve", `{}`)
			return c, b
		}, "their own export"},
		{"same user, second session, reject", func() (int, map[string]any) {
			c, b, _ := second.do("POST", "/api/exports/"+id+"/reject", `{"reason":"no"}`)
			return c, b
		}, "their own export"},
		{"API token approves", func() (int, map[string]any) {
			return e.bearer(secret, "POST", "/api/exports/"+id+"/approve", `{}`)
		}, "API token"},
		{"API token rejects", func() (int, map[string]any) {
			return e.bearer(secret, "POST", "/api/exports/"+id+"/reject", `{"reason":"no"}`)
		}, "API token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := tc.do()
			if code != 403 || !strings.Contains(body["error"].(string), tc.why) {
				t.Fatalf("%d %v, want 403 saying %q", code, body, tc.why)
			}
		})
	}
	if !e.audited("sup-a", "export.decide.refused", "their own export") || !e.audited("token:dispatch", "export.decide.refused", "API token") {
		t.Fatal("refusals not audited as export.decide.refused with the reason")
	}
	inIncident, err := e.db.AuditEvents(ctx, index.AuditFilter{IncidentID: &inc.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	refusals := 0
	for _, ev := range inIncident {
		if ev.Action == "export.decide.refused" {
			refusals++
		}
	}
	if refusals != 4 {
		t.Fatalf("%d refusals in the incident's trail, want 4", refusals)
	}
	if ex, _ := e.db.Export(ctx, uuid.MustParse(id)); ex.Status != index.ExportRequested {
		t.Fatalf("export after the refusals: %s, want requested", ex.Status)
	}

	// a token requests: its creator (the admin) is the requester
	code, ex := e.bearer(secret, "POST", "/api/exports", `{"incident_id":"`+inc.ID.String()+`","reason":"court"}`)
	if code != 201 {
		t.Fatalf("token requests export: %d %v", code, ex)
	}
	if code, body, _ := e.admin.do("POST", "/api/exports/"+ex["id"].(string)+"/approve", `{}`); code != 403 {
		t.Fatalf("the token's creator approving its request: %d %v, want 403", code, body)
	}

	// another person approves
	other := e.anon.loginAs(e.db, index.RoleSupervisor)
	if code, body, _ := other.do("POST", "/api/exports/"+id+"/approve", `{}`); code != 200 || body["status"] != "approved" || body["decided_by_id"] == nil {
		t.Fatalf("another supervisor approves: %d %v", code, body)
	}
}
