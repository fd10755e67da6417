package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/evidence"
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

// The authorization matrix: every route of the router × role (officer,
// supervisor, reviewer, admin, an API token) × scope (own, same unit,
// other unit, granted; "not granted" is the other scopes for reviewers)
// → the expected status, on the real PostgreSQL and MinIO with real
// fixtures. A route without a row in matrixRows fails the test: a new
// route cannot be added without deciding who may use it on what.

// Scopes of the fixtures: each is an officer, their recording (archived:
// one init and one media segment in MinIO) linked to an incident they
// are assigned to, and a requested export of that incident.
const (
	scopeOwn     = "own"        // the officer's own (unit U1)
	scopeUnit    = "same unit"  // another officer of U1, the supervisor's unit
	scopeOther   = "other unit" // an officer of U2
	scopeGranted = "granted"    // an officer of U2, incident granted to the reviewer and the token
)

var matrixScopes = []string{scopeOwn, scopeUnit, scopeOther, scopeGranted}

// matrixRoles: the four roles and an API token (a reviewer token granted
// the "granted" incident).
var matrixRoles = []string{index.RoleOfficer, index.RoleSupervisor, index.RoleReviewer, index.RoleAdmin, "token"}

// expected scopes per resource and role, written out independently of
// web's table: the test fails when either changes alone.
var matrixInScope = map[string]map[string][]string{
	"recording": {
		index.RoleOfficer: {scopeOwn}, index.RoleSupervisor: {scopeOwn, scopeUnit}, index.RoleReviewer: {scopeGranted},
		index.RoleAdmin: matrixScopes, "token": {scopeGranted},
	},
	"incident": {
		index.RoleOfficer: {scopeOwn}, index.RoleSupervisor: matrixScopes, index.RoleReviewer: {scopeGranted},
		index.RoleAdmin: matrixScopes, "token": {scopeGranted},
	},
	"export": {index.RoleSupervisor: matrixScopes, index.RoleReviewer: {scopeGranted}, index.RoleAdmin: matrixScopes, "token": {scopeGranted}},
	"live":   {index.RoleSupervisor: {scopeOwn, scopeUnit}, index.RoleAdmin: matrixScopes},
	// downloads: the export's incident in scope, and for reviewers only their
	// own requests (the fixtures' exports were requested by someone else)
	"download": {index.RoleSupervisor: matrixScopes, index.RoleAdmin: matrixScopes},
	"officer":  {index.RoleOfficer: {scopeOwn}, index.RoleSupervisor: {scopeOwn, scopeUnit}, index.RoleReviewer: matrixScopes, index.RoleAdmin: matrixScopes, "token": matrixScopes},
	// a camera checked out to the scope's officer
	"camera": {index.RoleSupervisor: {scopeOwn, scopeUnit}, index.RoleAdmin: matrixScopes},
	// a camera's positions: as its live view (the camera's wearer in the
	// units overseen)
	"track": {index.RoleSupervisor: {scopeOwn, scopeUnit}, index.RoleAdmin: matrixScopes},
}

type matrixFixture struct {
	officer, rec, inc, export, device uuid.UUID
	at                                time.Time // an instant inside the recording's segment
	serial                            string    // the device's
}

// matrixRow is how a route is exercised: res is the resource whose scope
// decides ("" : no object, the role check only), also a second one the
// request names (the incident of a link, the officer of a check-out); ok
// the statuses the handler answers when the request is allowed (never
// 401 or 403).
type matrixRow struct {
	res  string
	also string
	path func(f matrixFixture) string
	body func(f matrixFixture) string
	ok   []int
	skip string // why the route is not called here (still a row)
	// person: a route about a person's own account (password, second
	// factor): an API token, which is nobody's account, is refused (403)
	person bool
}

func recPath(suffix string) func(matrixFixture) string {
	return func(f matrixFixture) string { return "/api/recordings/" + f.rec.String() + suffix }
}
func incPath(suffix string) func(matrixFixture) string {
	return func(f matrixFixture) string { return "/api/incidents/" + f.inc.String() + suffix }
}
func expPath(suffix string) func(matrixFixture) string {
	return func(f matrixFixture) string { return "/api/exports/" + f.export.String() + suffix }
}
func devPath(suffix string) func(matrixFixture) string {
	return func(f matrixFixture) string { return "/api/devices/" + f.device.String() + suffix }
}
func livePath(suffix string) func(matrixFixture) string {
	return func(f matrixFixture) string { return "/api/live/" + f.rec.String() + suffix }
}
func fixed(p string) func(matrixFixture) string { return func(matrixFixture) string { return p } }
func body(s string) func(matrixFixture) string  { return func(matrixFixture) string { return s } }

var matrixRows = map[string]matrixRow{
	// recordings and their media
	"GET /api/recordings":                          {path: fixed("/api/recordings"), ok: []int{200}},
	"GET /api/recordings/{id}":                     {res: "recording", path: recPath(""), ok: []int{200}},
	"GET /api/recordings/{id}/hls.m3u8":            {res: "recording", path: recPath("/hls.m3u8"), ok: []int{200}},
	"GET /api/recordings/{id}/init/{file}":         {res: "recording", path: recPath("/init/0.mp4"), ok: []int{200}},
	"GET /api/recordings/{id}/segments/{file}":     {res: "recording", path: recPath("/segments/000000.m4s"), ok: []int{200}},
	"GET /api/recordings/{id}/playback":            {res: "recording", path: recPath("/playback"), ok: []int{200}},
	"GET /api/recordings/{id}/file":                {res: "recording", path: recPath("/file"), ok: []int{404}}, // not an upload
	"GET /api/recordings/{id}/holds":               {res: "recording", path: recPath("/holds"), ok: []int{200}},
	"POST /api/recordings/{id}/hold":               {res: "recording", path: recPath("/hold"), body: body(`{"case_ref":"CASE-M"}`), ok: []int{201, 409}},
	"DELETE /api/recordings/{id}/hold":             {res: "recording", path: recPath("/hold?reason=matrix"), ok: []int{200, 404}},
	"POST /api/recordings/{id}/officer":            {res: "recording", also: "officer", path: recPath("/officer"), body: func(f matrixFixture) string { return `{"officer_id":"` + f.officer.String() + `","reason":"matrix"}` }, ok: []int{200}},
	"POST /api/recordings/{id}/links":              {res: "recording", also: "incident", path: recPath("/links"), body: func(f matrixFixture) string { return `{"incident_id":"` + f.inc.String() + `"}` }, ok: []int{409}}, // already linked
	"DELETE /api/recordings/{id}/links/{incident}": {res: "recording", also: "incident", path: func(f matrixFixture) string { return "/api/recordings/" + f.rec.String() + "/links/" + f.inc.String() }, ok: []int{400}},    // no reason
	"GET /api/recordings/{id}/seek": {res: "recording", path: func(f matrixFixture) string {
		return "/api/recordings/" + f.rec.String() + "/seek?at=" + f.at.UTC().Format(time.RFC3339Nano)
	}, ok: []int{200}},

	// incidents
	"POST /api/incidents":                              {path: fixed("/api/incidents"), ok: []int{400}},
	"GET /api/incidents":                               {path: fixed("/api/incidents"), ok: []int{200}},
	"GET /api/incidents/{id}":                          {res: "incident", path: incPath(""), ok: []int{200}},
	"GET /api/incidents/{id}/assignments":              {res: "incident", path: incPath("/assignments"), ok: []int{200}},
	"POST /api/incidents/{id}/assignments":             {res: "incident", also: "officer", path: incPath("/assignments"), body: func(f matrixFixture) string { return `{"officer_id":"` + f.officer.String() + `"}` }, ok: []int{201, 409}},
	"POST /api/incidents/{id}/assignments/{aid}/clear": {res: "incident", path: incPath("/assignments/" + uuid.NewString() + "/clear"), ok: []int{404}},
	"GET /api/incidents/{id}/timeline":                 {res: "incident", path: incPath("/timeline"), ok: []int{200}},
	"POST /api/incidents/{id}/grants":                  {res: "incident", path: incPath("/grants"), body: body(`{"login":"someone"}`), ok: []int{201}},
	"GET /api/dashboard":                               {path: fixed("/api/dashboard"), ok: []int{200}},

	// exports
	"POST /api/exports":              {res: "export", path: fixed("/api/exports"), body: func(f matrixFixture) string { return `{"incident_id":"` + f.inc.String() + `","reason":"matrix"}` }, ok: []int{201}},
	"GET /api/exports":               {path: fixed("/api/exports"), ok: []int{200}},
	"GET /api/exports/{id}":          {res: "export", path: expPath(""), ok: []int{200}},
	"POST /api/exports/{id}/approve": {res: "export", path: expPath("/approve"), ok: []int{200, 409}},
	"POST /api/exports/{id}/reject":  {res: "export", path: expPath("/reject"), body: body(`{"reason":"matrix"}`), ok: []int{200, 409}},
	"GET /api/exports/{id}/download": {res: "download", path: expPath("/download"), ok: []int{409}}, // not built
	"GET /api/public-key":            {path: fixed("/api/public-key"), ok: []int{200}},

	// live
	"GET /api/live":                        {path: fixed("/api/live"), ok: []int{200}},
	"GET /api/live/events":                 {path: fixed("/api/live/events"), ok: []int{200}},
	"POST /api/live/{id}/whep":             {res: "live", path: livePath("/whep"), ok: []int{415}}, // not SDP: refused only after the rule
	"PATCH /api/live/{id}/whep/{session}":  {res: "live", path: livePath("/whep/no-such-session"), ok: []int{404}},
	"DELETE /api/live/{id}/whep/{session}": {res: "live", path: livePath("/whep/no-such-session"), ok: []int{404}},

	// the audit trail (a listing: filtered, see TestListingsAreScoped)
	"GET /api/audit": {path: fixed("/api/audit"), ok: []int{200}},

	// no evidence object: the role check only
	"POST /api/login":                      {skip: "public"},
	"POST /api/logout":                     {skip: "ends the session the matrix uses; TestEveryRouteChecksAuthentication walks it"},
	"GET /api/session":                     {path: fixed("/api/session"), ok: []int{200}},
	"POST /api/users":                      {path: fixed("/api/users"), ok: []int{400}},
	"GET /api/users":                       {path: fixed("/api/users"), ok: []int{200}},
	"PUT /api/users/{id}":                  {path: fixed("/api/users/" + uuid.NewString()), ok: []int{404}},
	"POST /api/users/{id}/disabled":        {path: fixed("/api/users/" + uuid.NewString() + "/disabled"), ok: []int{404}},
	"POST /api/tokens":                     {path: fixed("/api/tokens"), ok: []int{400}},
	"DELETE /api/tokens/{id}":              {path: fixed("/api/tokens/" + uuid.NewString()), ok: []int{404}},
	"POST /api/officers":                   {path: fixed("/api/officers"), ok: []int{400}},
	"GET /api/officers":                    {path: fixed("/api/officers"), ok: []int{200}},
	"GET /api/officers/{id}":               {res: "officer", path: func(f matrixFixture) string { return "/api/officers/" + f.officer.String() }, ok: []int{200}},
	"POST /api/devices":                    {path: fixed("/api/devices"), ok: []int{400}},
	"GET /api/devices":                     {path: fixed("/api/devices"), ok: []int{200}},
	"GET /api/devices/{id}":                {res: "camera", path: devPath(""), ok: []int{200}},
	"POST /api/devices/{id}/status":        {res: "camera", path: devPath("/status"), body: body(`{"status":"active"}`), ok: []int{200}},
	"POST /api/devices/{id}/gb28181":       {res: "camera", path: devPath("/gb28181"), body: body(`{}`), ok: []int{200}},                                                                                              // clears the GB/T 28181 ID
	"POST /api/devices/{id}/checkout":      {res: "camera", also: "officer", path: devPath("/checkout"), body: func(f matrixFixture) string { return `{"officer_id":"` + f.officer.String() + `"}` }, ok: []int{409}}, // already out
	"POST /api/devices/{id}/checkin":       {res: "camera", path: devPath("/checkin"), ok: []int{200, 409}},                                                                                                           // checks the camera in (no later route depends on it); again: 409
	"GET /api/checkouts":                   {path: fixed("/api/checkouts"), ok: []int{200}},
	"GET /api/devices/{serial}/positions":  {res: "track", path: func(f matrixFixture) string { return "/api/devices/" + f.serial + "/positions" }, ok: []int{200}}, // registered before the check-in row frees the cameras
	"POST /api/devices/{serial}/positions": {skip: "a camera's own route, authenticated by its secret, no session (TestDevicePositions)"},
	"GET /api/info":                        {path: fixed("/api/info"), ok: []int{200}},
	"POST /api/uploads/":                   {path: fixed("/api/uploads/"), ok: []int{404}}, // the test's upload service admits nothing
	"HEAD /api/uploads/{id}":               {path: fixed("/api/uploads/x"), ok: []int{404}},
	"PATCH /api/uploads/{id}":              {path: fixed("/api/uploads/x"), ok: []int{404}},
	"DELETE /api/uploads/{id}":             {path: fixed("/api/uploads/x"), ok: []int{404}},
	"OPTIONS /api/uploads/":                {path: fixed("/api/uploads/"), ok: []int{404}},
	"GET /api/uploads":                     {path: fixed("/api/uploads"), ok: []int{200}},

	// one's own account: password and second factor; tokens are nobody's
	"GET /api/login/options":        {skip: "public"},
	"GET /internal/live/{id}":       {skip: "no user's: the other nodes pull with the link's token (403 without: cmd/bwc TestClusterLiveView)"},
	"POST /api/password":            {path: fixed("/api/password"), ok: []int{400}, person: true}, // no current password
	"GET /api/tokens":               {path: fixed("/api/tokens"), ok: []int{200}},
	"POST /api/users/{id}/password": {path: fixed("/api/users/" + uuid.NewString() + "/password"), body: body(`{"password":"a long enough matrix password"}`), ok: []int{404}, person: true},
	"GET /api/mfa/totp":             {path: fixed("/api/mfa/totp"), ok: []int{200}, person: true},
	"POST /api/mfa/totp":            {path: fixed("/api/mfa/totp"), ok: []int{200, 201}, person: true},    // starts an enrolment, not confirmed
	"POST /api/mfa/totp/confirm":    {path: fixed("/api/mfa/totp/confirm"), ok: []int{400}, person: true}, // no code
	"DELETE /api/mfa/totp":          {path: fixed("/api/mfa/totp"), ok: []int{400, 409}, person: true},
	"DELETE /api/users/{id}/mfa":    {path: fixed("/api/users/" + uuid.NewString() + "/mfa?reason=matrix"), ok: []int{404}},
}

// matrixEnv is the server with the fixtures and a client per role.
type matrixEnv struct {
	t       *testing.T
	db      *index.DB
	srv     *web.Server
	url     string
	clients map[string]func(*http.Request)
	fix     map[string]matrixFixture
}

func newMatrixEnv(t *testing.T) *matrixEnv {
	ctx := context.Background()
	db := storagetest.NewDB(t)
	store := storagetest.NewStore(t)
	opts := testOptions(db)
	opts.Objects = store
	opts.Holds = evidence.NewHolder(db, store, nil)
	live := &scopedLive{fakeLive: fakeLive{ch: make(chan struct{})}}
	opts.Ingest = live
	s := newServer(t, opts)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	e := &matrixEnv{t: t, db: db, srv: s, url: ts.URL, clients: map[string]func(*http.Request){}, fix: map[string]matrixFixture{}}

	now := time.Now().UTC().Truncate(time.Millisecond)
	units := map[string]string{scopeOwn: "U1", scopeUnit: "U1", scopeOther: "U2", scopeGranted: "U2"}
	for i, sc := range matrixScopes {
		o, err := db.CreateOfficer(ctx, index.Officer{Badge: fmt.Sprint("M", i), Name: "Officer " + sc, Unit: units[sc]})
		if err != nil {
			t.Fatal(err)
		}
		inc, err := db.CreateIncident(ctx, index.Incident{Number: "110-M-" + fmt.Sprint(i), OpenedAt: now.Add(-3 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Assign(ctx, inc.ID, o.ID, now.Add(-2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		dev, err := db.CreateDevice(ctx, index.Device{Serial: fmt.Sprint("CAM-M-", i), Secret: "camera-secret-m"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CheckOut(ctx, dev.ID, o.ID, now.Add(-3*time.Hour)); err != nil {
			t.Fatal(err)
		}
		start := now.Add(-time.Hour)
		rec, err := db.CreateRecording(ctx, index.Recording{OfficerID: &o.ID, StartedAt: start, Source: index.SourceRTSP}, "fixture")
		if err != nil {
			t.Fatal(err)
		}
		if err := db.EndRecording(ctx, rec.ID, start.Add(2*time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.LinkIncident(ctx, rec.ID, inc.ID, "fixture", "matrix"); err != nil {
			t.Fatal(err)
		}
		e.archive(store, rec.ID, start)
		ex, err := db.RequestExport(ctx, index.Export{IncidentID: inc.ID, RequestedBy: "fixture", Reason: "matrix"}, true)
		if err != nil {
			t.Fatal(err)
		}
		e.fix[sc] = matrixFixture{officer: o.ID, rec: rec.ID, inc: inc.ID, export: ex.ID, device: dev.ID, at: start.Add(time.Second), serial: dev.Serial}
		live.recs = append(live.recs, ingest.Live{RecordingID: rec.ID, Device: fmt.Sprint("CAM-M-", i), Indexed: true, Status: index.RecordingLive})
	}
	off := e.fix[scopeOwn].officer
	users := map[string]index.User{
		index.RoleOfficer:    {Login: "m-officer", Role: index.RoleOfficer, Unit: "U1", OfficerID: &off},
		index.RoleSupervisor: {Login: "m-supervisor", Role: index.RoleSupervisor, Unit: "U1"},
		index.RoleReviewer:   {Login: "m-reviewer", Role: index.RoleReviewer, Unit: "U3"},
		index.RoleAdmin:      {Login: "m-admin", Role: index.RoleAdmin},
	}
	for role, u := range users {
		if _, err := db.CreateUser(ctx, u, "correct horse battery"); err != nil {
			t.Fatal(err)
		}
		c := apiClient{t: t, url: ts.URL}
		c = c.logIn(u.Login, "correct horse battery")
		e.clients[role] = func(r *http.Request) {
			r.AddCookie(c.cookie)
			r.Header.Set("X-CSRF-Token", c.csrf)
		}
	}
	madmin, err := db.UserByLogin(ctx, "m-admin")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := db.CreateAPIToken(ctx, "matrix", index.RoleReviewer, madmin, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.clients["token"] = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok.Token) }
	for _, login := range []string{"m-reviewer", "token:matrix"} {
		if err := db.GrantIncident(ctx, e.fix[scopeGranted].inc, login, "m-admin"); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// scopedLive has the fixtures' recordings live (as the ingest lists
// them).
type scopedLive struct {
	fakeLive
	recs []ingest.Live
}

func (l *scopedLive) Live() []ingest.Live { return slices.Clone(l.recs) }

// archive stores one init and one media segment of a recording in MinIO
// and indexes them, as the archive does.
func (e *matrixEnv) archive(store *blob.Store, rec uuid.UUID, start time.Time) {
	ctx := context.Background()
	put := func(key string, b []byte) (string, []byte) {
		sum := sha256.Sum256(b)
		st, err := store.PutEvidence(ctx, blob.Evidence{Key: key, Body: bytes.NewReader(b), Size: int64(len(b)), SHA256: sum[:],
			ContentType: "video/mp4", RetainUntil: time.Now().Add(24 * time.Hour)})
		if err != nil {
			e.t.Fatal(err)
		}
		return st.VersionID, sum[:]
	}
	initKey, segKey := "matrix/"+rec.String()+"/init-0.mp4", "matrix/"+rec.String()+"/000000.m4s"
	initBytes, segBytes := []byte("not really an init segment"), []byte("not really a media segment")
	v, sum := put(initKey, initBytes)
	if err := e.db.PutInitSegment(ctx, index.InitSegment{RecordingID: rec, N: 0, Key: initKey, SHA256: sum, Size: int64(len(initBytes)), VersionID: v}); err != nil {
		e.t.Fatal(err)
	}
	v, sum = put(segKey, segBytes)
	chain := sha256.Sum256(append(make([]byte, 32), sum...))
	if err := e.db.PutSegment(ctx, index.Segment{RecordingID: rec, Seq: 0, InitN: 0, Key: segKey, SHA256: sum, PrevChain: make([]byte, 32), Chain: chain[:],
		Size: int64(len(segBytes)), StartedAt: start, EndedAt: start.Add(2 * time.Second), EndDTS: 2 * time.Second, SealedAt: time.Now(), VersionID: v}); err != nil {
		e.t.Fatal(err)
	}
}

// call makes a request as a role; the status.
func (e *matrixEnv) call(role, method, path, body string) int {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	e.clients[role](req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// roleOf is the role a matrix role has on routes.
func roleOf(role string) string {
	if role == "token" {
		return index.RoleReviewer
	}
	return role
}

func TestAuthorizationMatrix(t *testing.T) {
	e := newMatrixEnv(t)
	routes := e.srv.Routes()
	seen := map[string]bool{}
	for _, rt := range routes {
		seen[rt.Pattern] = true
		row, ok := matrixRows[rt.Pattern]
		if !ok {
			t.Errorf("route %s has no row in the authorization matrix (matrixRows): say who may use it on what", rt.Pattern)
			continue
		}
		if row.skip != "" {
			continue
		}
		method, _, _ := strings.Cut(rt.Pattern, " ")
		scopes := matrixScopes
		if row.res == "" {
			scopes = []string{scopeOwn} // no object: one call per role
		}
		for _, role := range matrixRoles {
			for _, sc := range scopes {
				f := e.fix[sc]
				b := "{}"
				if row.body != nil {
					b = row.body(f)
				}
				code := e.call(role, method, row.path(f), b)
				switch {
				case !slices.Contains(rt.Roles, roleOf(role)):
					if code != http.StatusForbidden {
						t.Errorf("%s as %s: %d, want 403 (role)", rt.Pattern, role, code)
					}
				case row.res != "" && !slices.Contains(matrixInScope[row.res][role], sc),
					row.also != "" && !slices.Contains(matrixInScope[row.also][role], sc):
					if code != http.StatusForbidden {
						t.Errorf("%s as %s on %s: %d, want 403 (out of scope)", rt.Pattern, role, sc, code)
					}
				case row.person && role == "token":
					if code != http.StatusForbidden {
						t.Errorf("%s as a token: %d, want 403 (nobody's account)", rt.Pattern, code)
					}
				default:
					if !slices.Contains(row.ok, code) {
						t.Errorf("%s as %s on %s: %d, want one of %v (allowed)", rt.Pattern, role, sc, code, row.ok)
					}
				}
			}
		}
	}
	for p := range matrixRows {
		if !seen[p] {
			t.Errorf("matrix row %s names no route of the router", p)
		}
	}
}

// The reviewer-copy case: a reviewer fetching the HLS playlist and the
// segments of a recording of an incident not granted to them (what ffmpeg
// does to copy it) is refused, and each refusal is in the audit trail
// with the object, the route and the reason; linking that recording into
// the incident they hold is refused the same way.
func TestReviewerCopyIsRefusedAndAudited(t *testing.T) {
	e := newMatrixEnv(t)
	ctx := context.Background()
	other, granted := e.fix[scopeOther], e.fix[scopeGranted]
	steps := []struct {
		method, path, body, route string
	}{
		{"GET", "/api/recordings/" + other.rec.String() + "/hls.m3u8", "", "GET /api/recordings/{id}/hls.m3u8"},
		{"GET", "/api/recordings/" + other.rec.String() + "/segments/000000.m4s", "", "GET /api/recordings/{id}/segments/{file}"},
		{"POST", "/api/recordings/" + other.rec.String() + "/links", `{"incident_id":"` + granted.inc.String() + `"}`, "POST /api/recordings/{id}/links"},
	}
	for _, st := range steps {
		if code := e.call(index.RoleReviewer, st.method, st.path, st.body); code != http.StatusForbidden {
			t.Fatalf("reviewer %s %s = %d, want 403", st.method, st.path, code)
		}
	}
	evs, err := e.db.AuditEvents(ctx, index.AuditFilter{RecordingID: &other.rec, Actor: "m-reviewer"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(steps) {
		t.Fatalf("audited refusals = %+v, want %d", evs, len(steps))
	}
	for i, ev := range evs {
		if ev.Action != "access.refused" || ev.ObjectType != "recording" || ev.ObjectID != other.rec.String() ||
			ev.Details["route"] != steps[i].route || ev.Details["reason"] == "" || ev.Role != index.RoleReviewer {
			t.Errorf("refusal %d = %+v, want access.refused of the recording on %s with a reason", i, ev, steps[i].route)
		}
	}
	// the recording stays out of the incident: nothing was linked
	if links, err := e.db.RecordingLinks(ctx, other.rec, false); err != nil || len(links) != 1 || links[0].IncidentID != other.inc {
		t.Fatalf("links of the refused recording = %+v %v", links, err)
	}
	// the granted one plays
	if code := e.call(index.RoleReviewer, "GET", "/api/recordings/"+granted.rec.String()+"/segments/000000.m4s", ""); code != 200 {
		t.Fatalf("granted segment = %d", code)
	}
}

// Listings are filtered by the same scope, in SQL: each role sees exactly
// the fixtures' recordings, incidents, timeline rows, exports and audit
// events of its scope; the dashboard refuses a unit not overseen.
func TestListingsAreScoped(t *testing.T) {
	e := newMatrixEnv(t)
	ids := func(role, path, field string) []string {
		t.Helper()
		req, _ := http.NewRequest("GET", e.url+path, nil)
		e.clients[role](req)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var items []map[string]any
		if err := json.NewDecoder(res.Body).Decode(&items); err != nil || res.StatusCode != 200 {
			t.Fatalf("%s as %s: %d %v", path, role, res.StatusCode, err)
		}
		var out []string
		for _, it := range items {
			if v, ok := it[field].(string); ok {
				out = append(out, v)
			}
		}
		slices.Sort(out)
		return out
	}
	want := func(res, role string, of func(matrixFixture) uuid.UUID) []string {
		var out []string
		for _, sc := range matrixInScope[res][role] {
			out = append(out, of(e.fix[sc]).String())
		}
		slices.Sort(out)
		return out
	}
	rec := func(f matrixFixture) uuid.UUID { return f.rec }
	inc := func(f matrixFixture) uuid.UUID { return f.inc }
	exp := func(f matrixFixture) uuid.UUID { return f.export }
	off := func(f matrixFixture) uuid.UUID { return f.officer }
	dev := func(f matrixFixture) uuid.UUID { return f.device }
	for _, role := range matrixRoles {
		if got, w := ids(role, "/api/recordings", "id"), want("recording", role, rec); !slices.Equal(got, w) {
			t.Errorf("GET /api/recordings as %s = %v, want %v", role, got, w)
		}
		if got, w := ids(role, "/api/incidents", "id"), want("incident", role, inc); !slices.Equal(got, w) {
			t.Errorf("GET /api/incidents as %s = %v, want %v", role, got, w)
		}
		if role != index.RoleOfficer {
			if got, w := ids(role, "/api/exports", "id"), want("export", role, exp); !slices.Equal(got, w) {
				t.Errorf("GET /api/exports as %s = %v, want %v", role, got, w)
			}
			if got, w := ids(role, "/api/officers", "id"), want("officer", role, off); !slices.Equal(got, w) {
				t.Errorf("GET /api/officers as %s = %v, want %v", role, got, w)
			}
		}
		if role == index.RoleSupervisor || role == index.RoleAdmin {
			if got, w := ids(role, "/api/live", "recording_id"), want("live", role, rec); !slices.Equal(got, w) {
				t.Errorf("GET /api/live as %s = %v, want %v", role, got, w)
			}
			if got, w := ids(role, "/api/devices", "id"), want("camera", role, dev); !slices.Equal(got, w) {
				t.Errorf("GET /api/devices as %s = %v, want %v", role, got, w)
			}
			if got, w := ids(role, "/api/checkouts?open=true", "device_id"), want("camera", role, dev); !slices.Equal(got, w) {
				t.Errorf("GET /api/checkouts as %s = %v, want %v", role, got, w)
			}
		}
	}
	// a free camera is every supervisor's, but only to check out to an
	// officer of a unit they oversee
	free, err := e.db.CreateDevice(context.Background(), index.Device{Serial: "CAM-FREE", Secret: "camera-secret-f"})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(index.RoleSupervisor, "/api/devices", "id"); !slices.Contains(got, free.ID.String()) {
		t.Errorf("a free camera is not listed for the supervisor: %v", got)
	}
	u1, err := e.db.CreateOfficer(context.Background(), index.Officer{Badge: "M-U1", Name: "Free officer", Unit: "U1"})
	if err != nil {
		t.Fatal(err)
	}
	u2, err := e.db.CreateOfficer(context.Background(), index.Officer{Badge: "M-U2", Name: "Free officer", Unit: "U2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []struct {
		officer uuid.UUID
		code    int
	}{{u2.ID, 403}, {u1.ID, 201}} {
		if got := e.call(index.RoleSupervisor, "POST", "/api/devices/CAM-FREE/checkout", `{"officer_id":"`+st.officer.String()+`"}`); got != st.code {
			t.Errorf("supervisor of U1 checks a free camera out to officer %s: %d, want %d", st.officer, got, st.code)
		}
	}
	// a supervisor opens every incident's timeline, but sees only the
	// recordings of the units they oversee on it
	for _, sc := range matrixScopes {
		f := e.fix[sc]
		req, _ := http.NewRequest("GET", e.url+"/api/incidents/"+f.inc.String()+"/timeline", nil)
		e.clients[index.RoleSupervisor](req)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var tl struct {
			Recordings []struct {
				ID string `json:"id"`
			} `json:"recordings"`
		}
		err = json.NewDecoder(res.Body).Decode(&tl)
		res.Body.Close()
		n := 0
		if slices.Contains(matrixInScope["recording"][index.RoleSupervisor], sc) {
			n = 1
		}
		if err != nil || res.StatusCode != 200 || len(tl.Recordings) != n {
			t.Errorf("timeline of %s as supervisor: %d %+v %v, want %d recordings", sc, res.StatusCode, tl, err, n)
		}
	}
	// the audit trail: a reviewer sees the events of the granted incident
	// (its grant, its recording's link), none of the others
	// one evidence.view event per recording
	for _, sc := range matrixScopes {
		f := e.fix[sc]
		if code := e.call(index.RoleAdmin, "GET", "/api/recordings/"+f.rec.String()+"/playback", ""); code != 200 {
			t.Fatalf("playback as admin: %d", code)
		}
	}
	if got, w := ids(index.RoleReviewer, "/api/audit?limit=1000", "recording_id"), want("recording", index.RoleReviewer, rec); !slices.Equal(slices.Compact(got), w) {
		t.Errorf("audit trail as reviewer names recordings %v, want only %v", got, w)
	}
	if got, w := ids(index.RoleSupervisor, "/api/audit?limit=1000", "recording_id"), want("recording", index.RoleSupervisor, rec); !slices.Equal(slices.Compact(got), w) {
		t.Errorf("audit trail as supervisor names recordings %q, want only %q", got, w)
	}
	for unit, code := range map[string]int{"U1": 200, "U2": 403} {
		if got := e.call(index.RoleSupervisor, "GET", "/api/dashboard?unit="+unit, ""); got != code {
			t.Errorf("dashboard of %s as the supervisor of U1: %d, want %d", unit, got, code)
		}
	}

	// an admin sets the units the supervisor oversees: U2 instead of their
	// own; it holds from the next request
	sup, err := e.db.UserByLogin(context.Background(), "m-supervisor")
	if err != nil {
		t.Fatal(err)
	}
	if code := e.call(index.RoleSupervisor, "PUT", "/api/users/"+sup.ID.String(), `{"unit":"U1","oversees":["U2"]}`); code != 403 {
		t.Fatalf("a supervisor setting their own scope: %d, want 403", code)
	}
	if code := e.call(index.RoleAdmin, "PUT", "/api/users/"+sup.ID.String(), `{"unit":"U1","oversees":[" U2 ","U2"]}`); code != 200 {
		t.Fatalf("PUT /api/users/{id}: %d", code)
	}
	if u, _ := e.db.UserByLogin(context.Background(), "m-supervisor"); !slices.Equal(u.Oversees, []string{"U2"}) {
		t.Fatalf("oversees = %q, want [U2]", u.Oversees)
	}
	w := []string{e.fix[scopeOther].rec.String(), e.fix[scopeGranted].rec.String()}
	slices.Sort(w)
	if got := ids(index.RoleSupervisor, "/api/recordings", "id"); !slices.Equal(got, w) {
		t.Errorf("recordings of a supervisor overseeing U2 = %v, want %v", got, w)
	}
	if code := e.call(index.RoleSupervisor, "GET", "/api/recordings/"+e.fix[scopeOwn].rec.String(), ""); code != 403 {
		t.Errorf("a U1 recording for a supervisor overseeing only U2: %d, want 403", code)
	}
	// an unbound recording (a camera nobody had checked out) is every
	// supervisor's to bind, nobody's own, and no reviewer's
	unbound, err := e.db.CreateRecording(context.Background(), index.Recording{StartedAt: time.Now().Add(-time.Minute)}, "")
	if err != nil {
		t.Fatal(err)
	}
	for role, code := range map[string]int{index.RoleOfficer: 403, index.RoleSupervisor: 200, index.RoleReviewer: 403, index.RoleAdmin: 200, "token": 403} {
		if got := e.call(role, "GET", "/api/recordings/"+unbound.ID.String(), ""); got != code {
			t.Errorf("unbound recording as %s: %d, want %d", role, got, code)
		}
	}
	if got := ids(index.RoleSupervisor, "/api/recordings?unbound=1", "id"); !slices.Equal(got, []string{unbound.ID.String()}) {
		t.Errorf("unbound recordings for the supervisor = %v", got)
	}
	// a supervisor token (a dispatch system) has no unit: unbound
	// recordings only, every incident
	madmin, err := e.db.UserByLogin(context.Background(), "m-admin")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := e.db.CreateAPIToken(context.Background(), "dispatch", index.RoleSupervisor, madmin, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.clients["supervisor token"] = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok.Token) }
	if got := ids("supervisor token", "/api/recordings", "id"); !slices.Equal(got, []string{unbound.ID.String()}) {
		t.Errorf("recordings for a supervisor token = %v, want only the unbound one", got)
	}
	if got := ids("supervisor token", "/api/incidents", "id"); len(got) != len(matrixScopes) {
		t.Errorf("incidents for a supervisor token = %v, want all %d", got, len(matrixScopes))
	}
	if code := e.call("supervisor token", "GET", "/api/recordings/"+e.fix[scopeOwn].rec.String(), ""); code != 403 {
		t.Errorf("a unit's recording for a supervisor token: %d, want 403", code)
	}
}

// TestAuthzTable walks the authorization table: every resource has a
// known scope for every role; administrators see everything; an officer
// never reaches beyond their own; a reviewer's reach is their incidents
// (or all, for officers' names); a resource missing from the table is
// nobody's.
func TestAuthzTable(t *testing.T) {
	kinds := []string{web.ScopeNone, web.ScopeOwn, web.ScopeUnits, web.ScopeIncidents, web.ScopeAll}
	seen := map[web.Resource]bool{}
	for _, res := range web.Resources {
		if seen[res] {
			t.Errorf("resource %s listed twice", res)
		}
		seen[res] = true
		for _, role := range allRoles {
			k := web.ScopeKind(res, role)
			if !slices.Contains(kinds, k) {
				t.Errorf("%s × %s: unknown scope %q", res, role, k)
			}
			var allowed []string
			switch role {
			case index.RoleAdmin:
				allowed = []string{web.ScopeAll}
			case index.RoleOfficer:
				allowed = []string{web.ScopeNone, web.ScopeOwn}
			case index.RoleSupervisor:
				allowed = []string{web.ScopeNone, web.ScopeUnits, web.ScopeAll}
			case index.RoleReviewer:
				allowed = []string{web.ScopeNone, web.ScopeIncidents}
				if res == web.ResOfficer {
					allowed = append(allowed, web.ScopeAll)
				}
			}
			if !slices.Contains(allowed, k) {
				t.Errorf("%s × %s = %s, want one of %v", res, role, k, allowed)
			}
		}
	}
	if len(web.Resources) < 8 {
		t.Fatalf("only %d resources: the walk is not seeing the table", len(web.Resources))
	}
	for _, role := range allRoles {
		if k := web.ScopeKind("no such resource", role); k != web.ScopeNone {
			t.Errorf("an unknown resource for %s = %s, want none", role, k)
		}
	}
	// the recordings a reviewer sees are those of their incidents: the two
	// rows must agree, or a reviewer could replay what they cannot open
	if web.ScopeKind(web.ResRecording, index.RoleReviewer) != web.ScopeKind(web.ResIncident, index.RoleReviewer) {
		t.Error("a reviewer's recordings and incidents have different scopes")
	}
}
