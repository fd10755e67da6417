package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// mfaServer serves a fresh database with the default rule: admins and
// supervisors must have a second factor.
func mfaServer(t *testing.T) (string, *index.DB) {
	t.Helper()
	db := storagetest.NewDB(t)
	opts := testOptions(db)
	opts.Config.MFARequiredRoles = []string{index.RoleAdmin, index.RoleSupervisor}
	ts := httptest.NewServer(newServer(t, opts).Handler())
	t.Cleanup(ts.Close)
	return ts.URL, db
}

// loginResult is the answer to POST /api/login.
type loginResult struct {
	code   int
	body   map[string]any
	client apiClient // with the session, when one was made
}

// postLogin logs in with a JSON body, keeping the session cookie if one
// is set.
func postLogin(t *testing.T, base, body string) loginResult {
	t.Helper()
	res, err := http.Post(base+"/api/login", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := loginResult{code: res.StatusCode, client: apiClient{t: t, url: base}}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		t.Fatalf("login answer %s: %v", raw, err)
	}
	for _, ck := range res.Cookies() {
		if ck.Name == "bwc_session" && ck.Value != "" {
			out.client.cookie = ck
		}
	}
	if csrf, ok := out.body["csrf_token"].(string); ok {
		out.client.csrf = csrf
	}
	return out
}

// codeAt is the TOTP code of secret at now+offset.
func codeAt(t *testing.T, secret string, offset time.Duration) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, time.Now().Add(offset))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrolThroughAPI enrols the session's user: start (secret, URL, QR
// code), a wrong code refused, the code of the previous time step
// confirming (the current one stays free for a login). It returns the
// secret and the recovery codes.
func enrolThroughAPI(t *testing.T, c apiClient) (string, []string) {
	t.Helper()
	code, started, _ := c.do("POST", "/api/mfa/totp", "")
	if code != 200 {
		t.Fatalf("start enrolment: %d %v", code, started)
	}
	secret, _ := started["secret"].(string)
	url, _ := started["otpauth_url"].(string)
	qr, _ := started["qr_png"].(string)
	if secret == "" || !strings.HasPrefix(url, "otpauth://totp/") || !strings.Contains(url, "secret="+secret) {
		t.Fatalf("enrolment: secret %q, URL %q", secret, url)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(qr, "data:image/png;base64,"))
	if err != nil || !strings.HasPrefix(qr, "data:image/png;base64,") {
		t.Fatalf("QR code %.40q: %v", qr, err)
	}
	if img, err := png.Decode(bytes.NewReader(raw)); err != nil || img.Bounds().Dx() < 100 {
		t.Fatalf("QR code is not a PNG image: %v", err)
	}
	if code, body, _ := c.do("POST", "/api/mfa/totp/confirm", `{"code":"000000"}`); code != 400 || body["field"] != "code" {
		if codeAt(t, secret, -30*time.Second) != "000000" && codeAt(t, secret, 0) != "000000" {
			t.Fatalf("confirm with a wrong code: %d %v, want 400 naming code", code, body)
		}
	}
	code, confirmed, _ := c.do("POST", "/api/mfa/totp/confirm", `{"code":"`+codeAt(t, secret, -30*time.Second)+`"}`)
	if code != 200 {
		t.Fatalf("confirm: %d %v", code, confirmed)
	}
	list, _ := confirmed["recovery_codes"].([]any)
	var recovery []string
	for _, x := range list {
		recovery = append(recovery, x.(string))
	}
	if len(recovery) != index.RecoveryCodes {
		t.Fatalf("confirm gave %d recovery codes, want %d", len(recovery), index.RecoveryCodes)
	}
	return secret, recovery
}

// TestRequiredSecondFactor: an admin without a second factor logs in with
// the password to a session that may only enrol (API 403, pages sent to
// /mfa); once enrolled, the same session reaches everything. A reviewer
// (not a required role) is not held.
func TestRequiredSecondFactor(t *testing.T) {
	base, db := mfaServer(t)
	ctx := context.Background()
	for _, u := range []index.User{{Login: "chief", Role: index.RoleAdmin}, {Login: "rev", Role: index.RoleReviewer}} {
		if _, err := db.CreateUser(ctx, u, "correct horse battery"); err != nil {
			t.Fatal(err)
		}
	}
	admin := postLogin(t, base, `{"login":"chief","password":"correct horse battery"}`)
	if admin.code != 200 || admin.body["mfa_enrolment_required"] != true || admin.client.cookie == nil {
		t.Fatalf("admin's password login: %d %v, want a session that must enrol", admin.code, admin.body)
	}
	rev := postLogin(t, base, `{"login":"rev","password":"correct horse battery"}`)
	if rev.code != 200 || rev.body["mfa_enrolment_required"] != false {
		t.Fatalf("reviewer's login: %d %v", rev.code, rev.body)
	}
	c := admin.client
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.AddCookie(c.cookie)
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode, res.Header.Get("Location")
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/users", 403},
		{"GET", "/api/incidents", 403},
		{"POST", "/api/officers", 403},
		{"GET", "/api/session", 200},
		{"GET", "/api/mfa/totp", 200},
	} {
		code, body, _ := c.do(tc.method, tc.path, `{}`)
		if code != tc.want || (tc.want == 403 && body["mfa_enrolment_required"] != true) {
			t.Errorf("before enrolment: %s %s = %d %v, want %d", tc.method, tc.path, code, body, tc.want)
		}
	}
	events, err := db.AuditEvents(ctx, index.AuditFilter{Actor: "chief", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	refusals := 0
	for _, e := range events {
		if e.Action == "access.refused" && e.Details["reason"] == "second factor enrolment required" {
			refusals++
		}
	}
	if refusals != 3 {
		t.Errorf("audit: %d access.refused for the missing second factor, want 3 (one per route)", refusals)
	}
	if code, loc := page("/admin"); code != 303 || loc != "/mfa" {
		t.Errorf("before enrolment: GET /admin = %d %q, want 303 to /mfa", code, loc)
	}
	if code, _ := page("/mfa"); code != 200 {
		t.Errorf("GET /mfa = %d, want 200", code)
	}
	if code, body, _ := rev.client.do("GET", "/api/incidents", ""); code != 200 {
		t.Errorf("reviewer without a second factor: GET /api/incidents = %d %v, want 200", code, body)
	}
	_, st, _ := c.do("GET", "/api/mfa/totp", "")
	if st["required"] != true || st["enrolled"] != false {
		t.Errorf("status before enrolment: %v", st)
	}

	enrolThroughAPI(t, c)
	if code, body, _ := c.do("GET", "/api/users", ""); code != 200 {
		t.Errorf("after enrolment: GET /api/users = %d %v, want 200", code, body)
	}
	if code, _ := page("/admin"); code != 200 {
		t.Errorf("after enrolment: GET /admin = %d, want 200", code)
	}
	if code, body, _ := c.do("POST", "/api/mfa/totp", ""); code != 409 {
		t.Errorf("start again while enrolled: %d %v, want 409", code, body)
	}
}

// TestSecondFactorLogin: with TOTP enrolled, a login needs the code; each
// answer in turn, with the failed-login count it leaves.
func TestSecondFactorLogin(t *testing.T) {
	base, db := mfaServer(t)
	ctx := context.Background()
	if _, err := db.CreateUser(ctx, index.User{Login: "sv", Role: index.RoleSupervisor}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	first := postLogin(t, base, `{"login":"sv","password":"correct horse battery"}`)
	secret, recovery := enrolThroughAPI(t, first.client)
	now := codeAt(t, secret, 0)
	wrong := "123456"
	if wrong == now || wrong == codeAt(t, secret, 30*time.Second) || wrong == codeAt(t, secret, -30*time.Second) {
		wrong = "654321"
	}
	login := func(password, code string) string {
		return `{"login":"sv","password":"` + password + `","code":"` + code + `"}`
	}
	for _, tc := range []struct {
		name     string
		body     string
		want     int
		session  bool
		mfa      bool // the answer says a second factor is needed
		failures int
	}{
		{"password without code", `{"login":"sv","password":"correct horse battery"}`, 401, false, true, 0},
		{"wrong password with the right code", login("wrong password!", now), 401, false, false, 1},
		{"wrong code", login("correct horse battery", wrong), 401, false, true, 2},
		{"right code", login("correct horse battery", now), 200, true, false, 0},
		{"the same code again (replay)", login("correct horse battery", now), 401, false, true, 1},
		{"recovery code", login("correct horse battery", recovery[0]), 200, true, false, 0},
		{"the same recovery code again", login("correct horse battery", recovery[0]), 401, false, true, 1},
		{"the next time step's code", login("correct horse battery", codeAt(t, secret, 30*time.Second)), 200, true, false, 0},
	} {
		res := postLogin(t, base, tc.body)
		if res.code != tc.want || (res.client.cookie != nil) != tc.session || (res.body["mfa_required"] == true) != tc.mfa {
			t.Errorf("%s: %d %v (session %v), want %d (session %v, mfa_required %v)", tc.name, res.code, res.body, res.client.cookie != nil, tc.want, tc.session, tc.mfa)
		}
		if n, _, _ := db.FailedLogins(ctx, "sv"); n != tc.failures {
			t.Errorf("%s: failed_logins %d, want %d", tc.name, n, tc.failures)
		}
	}
	// wrong codes lock the account like wrong passwords: then even the
	// password and a fresh code get 429
	for i := range 5 {
		if res := postLogin(t, base, login("correct horse battery", "abcde-fghjk")); res.code != 401 {
			t.Fatalf("wrong recovery code %d: %d %v", i, res.code, res.body)
		}
	}
	if res := postLogin(t, base, login("correct horse battery", recovery[1])); res.code != 429 || res.client.cookie != nil {
		t.Fatalf("right password and code after 5 wrong codes: %d %v, want 429 without a session", res.code, res.body)
	}

	events, err := db.AuditEvents(ctx, index.AuditFilter{Actor: "sv", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range events {
		counts[e.Action]++
	}
	for action, want := range map[string]int{"auth.login.mfa_required": 1, "auth.login.mfa_failed": 8, "auth.login.recovery_code": 1,
		"auth.mfa.enrolled": 1, "auth.login.locked": 1} {
		if counts[action] != want {
			t.Errorf("audit: %d %s, want %d (all: %v)", counts[action], action, want, counts)
		}
	}
}

// TestSecondFactorDisableAndReset: one's own second factor is removed with
// the password and a code; an administrator resets another user's, with a
// reason, audited, ending that user's sessions.
func TestSecondFactorDisableAndReset(t *testing.T) {
	base, db := mfaServer(t)
	ctx := context.Background()
	for _, u := range []index.User{{Login: "a1", Role: index.RoleAdmin}, {Login: "a2", Role: index.RoleAdmin}} {
		if _, err := db.CreateUser(ctx, u, "correct horse battery"); err != nil {
			t.Fatal(err)
		}
	}
	a1 := postLogin(t, base, `{"login":"a1","password":"correct horse battery"}`).client
	_, rec1 := enrolThroughAPI(t, a1)
	a2 := postLogin(t, base, `{"login":"a2","password":"correct horse battery"}`).client
	enrolThroughAPI(t, a2)
	a2user, _ := db.UserByLogin(ctx, "a2")

	for _, tc := range []struct {
		name   string
		c      apiClient
		method string
		path   string
		body   string
		want   int
	}{
		{"disable without a code", a1, "DELETE", "/api/mfa/totp", `{"password":"correct horse battery"}`, 400},
		{"disable with a wrong password", a1, "DELETE", "/api/mfa/totp", `{"password":"wrong password!","code":"` + rec1[0] + `"}`, 403},
		{"disable with a wrong code", a1, "DELETE", "/api/mfa/totp", `{"password":"correct horse battery","code":"abcde-abcde"}`, 403},
		{"disable", a1, "DELETE", "/api/mfa/totp", `{"password":"correct horse battery","code":"` + rec1[0] + `"}`, 200},
		{"held again: a1 must enrol", a1, "GET", "/api/users", ``, 403},
		{"disable again: held, as only enrolment is open", a1, "DELETE", "/api/mfa/totp", `{"password":"correct horse battery","code":"` + rec1[1] + `"}`, 403},
		{"reset without a reason", a1, "DELETE", "/api/users/" + a2user.ID.String() + "/mfa", ``, 403}, // a1 is held until it enrols
	} {
		if code, body, _ := tc.c.do(tc.method, tc.path, tc.body); code != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.name, code, body, tc.want)
		}
	}
	enrolThroughAPI(t, a1)
	for _, tc := range []struct {
		name, path string
		want       int
	}{
		{"reset without a reason", "/api/users/" + a2user.ID.String() + "/mfa", 400},
		{"reset", "/api/users/" + a2user.ID.String() + "/mfa?reason=lost+phone", 200},
		{"reset again", "/api/users/" + a2user.ID.String() + "/mfa?reason=lost+phone", 409},
	} {
		if code, body, _ := a1.do("DELETE", tc.path, ""); code != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.name, code, body, tc.want)
		}
	}
	if code := rawStatus(t, base, "GET", "/api/session", &a2); code != 401 {
		t.Errorf("a2's session after the reset: %d, want 401 (ended)", code)
	}
	if res := postLogin(t, base, `{"login":"a2","password":"correct horse battery"}`); res.code != 200 || res.body["mfa_enrolment_required"] != true {
		t.Errorf("a2 after the reset: %d %v, want a password login that must enrol", res.code, res.body)
	}
	events, err := db.AuditEvents(ctx, index.AuditFilter{Actor: "a1", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var reset, failed int
	for _, e := range events {
		switch e.Action {
		case "auth.mfa.reset":
			reset++
			if e.ObjectID != "a2" || e.Details["reason"] != "lost phone" {
				t.Errorf("reset event %+v", e)
			}
		case "auth.mfa.disable_failed":
			failed++
		}
	}
	if reset != 1 || failed != 2 {
		t.Errorf("audit: %d auth.mfa.reset, %d auth.mfa.disable_failed; want 1 and 2", reset, failed)
	}
}

// TestSecondFactorTokensAndUnenrolled: an admin API token has no user, so
// it has no second factor and is not held; turning off a second factor
// one does not have is 409.
func TestSecondFactorTokensAndUnenrolled(t *testing.T) {
	base, db := mfaServer(t)
	ctx := context.Background()
	boss, err := db.CreateUser(ctx, index.User{Login: "boss", Role: index.RoleAdmin}, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := db.CreateAPIToken(ctx, "dispatch", index.RoleAdmin, boss, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(method, path string) int {
		req, _ := http.NewRequest(method, base+path, strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/users", 200},
		{"POST", "/api/mfa/totp", 403},
		{"GET", "/api/mfa/totp", 403},
	} {
		if code := bearer(tc.method, tc.path); code != tc.want {
			t.Errorf("admin token: %s %s = %d, want %d", tc.method, tc.path, code, tc.want)
		}
	}
	if _, err := db.CreateUser(ctx, index.User{Login: "rev", Role: index.RoleReviewer}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	rev := postLogin(t, base, `{"login":"rev","password":"correct horse battery"}`).client
	if code, body, _ := rev.do("DELETE", "/api/mfa/totp", `{"password":"correct horse battery","code":"123456"}`); code != 409 {
		t.Errorf("turn off a second factor never enrolled: %d %v, want 409", code, body)
	}
}

// TestPasswordResetThenEnrolment: an admin whose password an administrator
// reset, and who has no second factor, changes the password first (the
// enrolment gate lets the change through) and then enrols; neither gate
// locks the other out.
func TestPasswordResetThenEnrolment(t *testing.T) {
	base, db := mfaServer(t)
	ctx := context.Background()
	u, err := db.CreateUser(ctx, index.User{Login: "newadmin", Role: index.RoleAdmin}, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ResetPassword(ctx, u.ID, "temporary horse battery"); err != nil {
		t.Fatal(err)
	}
	res := postLogin(t, base, `{"login":"newadmin","password":"temporary horse battery"}`)
	user, _ := res.body["user"].(map[string]any)
	if res.code != 200 || res.body["mfa_enrolment_required"] != true || user["must_change_password"] != true {
		t.Fatalf("login: %d %v, want a session that must change the password and enrol", res.code, res.body)
	}
	c := res.client
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", base+"/mfa", nil)
	req.AddCookie(c.cookie)
	page, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	if page.StatusCode != 303 || page.Header.Get("Location") != "/account" {
		t.Errorf("GET /mfa before the password change: %d %q, want 303 to /account", page.StatusCode, page.Header.Get("Location"))
	}
	if code, body, _ := c.do("POST", "/api/password", `{"current":"temporary horse battery","new":"a brand new horse battery"}`); code != 200 {
		t.Fatalf("password change before enrolment: %d %v", code, body)
	}
	if code, body, _ := c.do("GET", "/api/incidents", ""); code != 403 || body["mfa_enrolment_required"] != true {
		t.Fatalf("after the password change, before enrolment: %d %v, want 403 enrolment required", code, body)
	}
	enrolThroughAPI(t, c)
	if code, body, _ := c.do("GET", "/api/incidents", ""); code != 200 {
		t.Fatalf("after both: %d %v", code, body)
	}
}
