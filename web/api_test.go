package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
	"github.com/bwcplatform/bwc/web"
)

type apiClient struct {
	t      *testing.T
	url    string
	cookie *http.Cookie
	csrf   string
}

func (c apiClient) do(method, path, body string) (int, map[string]any, []any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		c.t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, raw)
	}
	var obj map[string]any
	var arr []any
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		if err := json.Unmarshal(raw, &arr); err != nil {
			c.t.Fatalf("%s %s: body %s: %v", method, path, raw, err)
		}
	} else if err := json.Unmarshal(raw, &obj); err != nil {
		c.t.Fatalf("%s %s: body %s: %v", method, path, raw, err)
	}
	return res.StatusCode, obj, arr
}

// newAPI serves the API on a fresh database and returns a client logged in
// as an admin.
func newAPI(t *testing.T) (apiClient, *index.DB) {
	t.Helper()
	db := storagetest.NewDB(t)
	s := newServer(t, testOptions(db))
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	anon := apiClient{t: t, url: ts.URL}
	return anon.loginAs(db, index.RoleAdmin), db
}

// login is the client's login (GET /api/session).
func (c apiClient) login() string {
	c.t.Helper()
	code, s, _ := c.do("GET", "/api/session", "")
	if code != 200 {
		c.t.Fatalf("session: %d", code)
	}
	return s["login"].(string)
}

// loginAs creates a user with the role (and an officer for the officer
// role) and logs in.
func (c apiClient) loginAs(db *index.DB, role string) apiClient {
	c.t.Helper()
	ctx := context.Background()
	login := role + "-" + uuid.NewString()[:8]
	u := index.User{Login: login, Role: role}
	if role == index.RoleOfficer {
		o, err := db.CreateOfficer(ctx, index.Officer{Badge: login, Name: "Officer " + login})
		if err != nil {
			c.t.Fatal(err)
		}
		u.OfficerID = &o.ID
	}
	if _, err := db.CreateUser(ctx, u, "correct horse battery"); err != nil {
		c.t.Fatal(err)
	}
	return c.logIn(login, "correct horse battery")
}

// logIn logs in as an existing user.
func (c apiClient) logIn(login, password string) apiClient {
	c.t.Helper()
	res, err := http.Post(c.url+"/api/login", "application/json",
		strings.NewReader(`{"login":"`+login+`","password":"`+password+`"}`))
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		CSRF string `json:"csrf_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != 200 {
		c.t.Fatalf("login as %s: %d %v", login, res.StatusCode, err)
	}
	for _, ck := range res.Cookies() {
		if ck.Name == "bwc_session" {
			c.cookie = ck
		}
	}
	if c.cookie == nil || !c.cookie.HttpOnly || c.cookie.SameSite != http.SameSiteStrictMode {
		c.t.Fatalf("login cookie %+v: want an HttpOnly, SameSite=Strict bwc_session", c.cookie)
	}
	c.csrf = body.CSRF
	return c
}

func TestAdminAPI(t *testing.T) {
	c, _ := newAPI(t)

	code, off, _ := c.do("POST", "/api/officers", `{"badge":"2001","name":"Wang Fang","unit":"Patrol 2"}`)
	if code != 201 || off["id"] == nil {
		t.Fatalf("create officer: %d %v", code, off)
	}
	offID := off["id"].(string)
	code, dev, _ := c.do("POST", "/api/devices", `{"serial":"BWC-0001","model":"X1","secret":"device-secret-1"}`)
	if code != 201 {
		t.Fatalf("create device: %d %v", code, dev)
	}
	code, inc, _ := c.do("POST", "/api/incidents", `{"number":"110-0001","type":"traffic","lat":31.2,"lon":121.5}`)
	if code != 201 {
		t.Fatalf("create incident: %d %v", code, inc)
	}
	incID := inc["id"].(string)

	steps := []struct {
		name, method, path, body string
		code                     int
		field                    string // the field the error must name
	}{
		{"get officer", "GET", "/api/officers/" + offID, "", 200, ""},
		{"get device by serial", "GET", "/api/devices/BWC-0001", "", 200, ""},
		{"get device by id", "GET", "/api/devices/" + dev["id"].(string), "", 200, ""},
		{"list officers", "GET", "/api/officers", "", 200, ""},
		{"check out", "POST", "/api/devices/BWC-0001/checkout", `{"officer_id":"` + offID + `"}`, 201, ""},
		{"check out again", "POST", "/api/devices/BWC-0001/checkout", `{"officer_id":"` + offID + `"}`, 409, ""},
		{"open check-outs", "GET", "/api/checkouts?open=true", "", 200, ""},
		{"check in", "POST", "/api/devices/BWC-0001/checkin", ``, 200, ""},
		{"check in again", "POST", "/api/devices/BWC-0001/checkin", `{}`, 409, ""},
		{"assign", "POST", "/api/incidents/" + incID + "/assignments", `{"officer_id":"` + offID + `"}`, 201, ""},
		{"assign again", "POST", "/api/incidents/" + incID + "/assignments", `{"officer_id":"` + offID + `"}`, 409, ""},
		{"list assignments", "GET", "/api/incidents/" + incID + "/assignments", "", 200, ""},

		{"officer missing badge", "POST", "/api/officers", `{"name":"x"}`, 400, "badge"},
		{"duplicate badge", "POST", "/api/officers", `{"badge":"2001","name":"x"}`, 409, ""},
		{"device bad serial", "POST", "/api/devices", `{"serial":"../etc","secret":"long-enough"}`, 400, "serial"},
		{"device wrong type", "POST", "/api/devices", `{"serial":5}`, 400, "serial"},
		{"unknown field", "POST", "/api/officers", `{"badge":"1","name":"x","rank":"high"}`, 400, "rank"},
		{"broken JSON", "POST", "/api/officers", `{"badge":`, 400, ""},
		{"trailing JSON", "POST", "/api/officers", `{"badge":"1","name":"x"} {}`, 400, ""},
		{"bad time", "POST", "/api/incidents", `{"number":"7","opened_at":"yesterday"}`, 400, ""},
		{"lat out of range", "POST", "/api/incidents", `{"number":"8","lat":95,"lon":1}`, 400, "lat"},
		{"officer id not a uuid", "GET", "/api/officers/42", "", 400, "id"},
		{"unknown officer", "GET", "/api/officers/" + uuid.NewString(), "", 404, ""},
		{"unknown device", "GET", "/api/devices/NO-SUCH-CAM", "", 404, ""},
		{"unknown incident", "GET", "/api/incidents/" + uuid.NewString(), "", 404, ""},
		{"assign to unknown incident", "POST", "/api/incidents/" + uuid.NewString() + "/assignments", `{"officer_id":"` + offID + `"}`, 404, ""},
		{"assign unknown officer", "POST", "/api/incidents/" + incID + "/assignments", `{"officer_id":"` + uuid.NewString() + `"}`, 404, ""},
		{"check out with bad officer id", "POST", "/api/devices/BWC-0001/checkout", `{"officer_id":"nope"}`, 400, "officer_id"},
		{"check out to unknown officer", "POST", "/api/devices/BWC-0001/checkout", `{"officer_id":"` + uuid.NewString() + `"}`, 404, ""},
		{"bad open filter", "GET", "/api/checkouts?open=maybe", "", 400, "open"},
		{"no such endpoint", "GET", "/api/nothing", "", 404, ""},
		{"bad status", "POST", "/api/devices/BWC-0001/status", `{"status":"melted"}`, 400, "status"},
		{"disable", "POST", "/api/devices/BWC-0001/status", `{"status":"disabled"}`, 200, ""},
		{"check out disabled", "POST", "/api/devices/BWC-0001/checkout", `{"officer_id":"` + offID + `"}`, 409, ""},
		{"GB/T 28181 device", "POST", "/api/devices", `{"serial":"GB-0001","secret":"long-enough","gb_id":"34020000001320000001","gb_transport":"udp"}`, 201, ""},
		{"GB/T 28181 ID taken", "POST", "/api/devices", `{"serial":"GB-0002","secret":"long-enough","gb_id":"34020000001320000001"}`, 409, ""},
		{"GB/T 28181 ID not 20 digits", "POST", "/api/devices", `{"serial":"GB-0003","secret":"long-enough","gb_id":"3402000000132000000"}`, 400, "gb_id"},
		{"GB/T 28181 bad transport", "POST", "/api/devices", `{"serial":"GB-0004","secret":"long-enough","gb_id":"34020000001320000004","gb_transport":"sctp"}`, 400, "gb_transport"},
		{"set GB/T 28181 ID", "POST", "/api/devices/BWC-0001/gb28181", `{"gb_id":"34020000001320000009","gb_transport":"tcp"}`, 200, ""},
		{"set GB/T 28181 ID taken", "POST", "/api/devices/BWC-0001/gb28181", `{"gb_id":"34020000001320000001"}`, 409, ""},
		{"set GB/T 28181 ID bad", "POST", "/api/devices/BWC-0001/gb28181", `{"gb_id":"abc"}`, 400, "gb_id"},
	}
	for _, st := range steps {
		code, body, _ := c.do(st.method, st.path, st.body)
		if code != st.code {
			t.Errorf("%s: %s %s = %d %v, want %d", st.name, st.method, st.path, code, body, st.code)
			continue
		}
		if code >= 400 {
			if msg, _ := body["error"].(string); msg == "" {
				t.Errorf("%s: error body %v has no message", st.name, body)
			}
			if st.field != "" && body["field"] != st.field {
				t.Errorf("%s: error body %v should name field %q", st.name, body, st.field)
			}
		}
	}
}

func TestReadyz(t *testing.T) {
	db := storagetest.NewDB(t)
	store := storagetest.NewStore(t)
	down := errors.New("connection refused")
	cases := []struct {
		name   string
		checks []web.Check
		code   int
		reason string
	}{
		{"both up", []web.Check{{Name: "postgres", Func: db.Ping}, {Name: "minio", Func: store.Ping}}, 200, ""},
		{"minio down", []web.Check{{Name: "postgres", Func: db.Ping}, {Name: "minio", Func: func(context.Context) error { return down }}}, 503, "minio"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(db)
			opts.Checks = tc.checks
			s := newServer(t, opts)
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if rec.Code != tc.code {
				t.Fatalf("readyz = %d %s, want %d", rec.Code, rec.Body, tc.code)
			}
			var body struct {
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if tc.reason != "" && !strings.Contains(body.Checks[tc.reason], "refused") {
				t.Fatalf("readyz body %s should give the reason for %s", rec.Body, tc.reason)
			}
		})
	}
}

func TestRunServesAndShutsDown(t *testing.T) {
	s := newServer(t, testOptions(storagetest.NewDB(t)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitReady(t, s, done)
	res, err := http.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("healthz = %d", res.StatusCode)
	}
	res, err = http.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(metrics), `bwc_http_requests_total{code="200",route="GET /healthz"} 1`) {
		t.Fatalf("metrics do not count the healthz request:\n%s", metrics)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
}
