package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/bwcplatform/bwc/storage/index"
)

// With the default -mfa-required-roles, the wired platform holds an admin
// and a supervisor without a second factor to enrolment; a reviewer is
// not held. The admin enrols (the secret sealed with the key build derives
// from the signing key) and then logs in only with a code.
func TestSecondFactorRequiredByDefault(t *testing.T) {
	cfg := testConfig(t)
	cfg.MFARequiredRoles = defaultConfig().MFARequiredRoles
	p := startPlatform(t, cfg)
	base := "http://" + p.web.Addr()
	ctx := context.Background()
	var admin *session
	for _, tc := range []struct {
		role string
		held bool
	}{{index.RoleAdmin, true}, {index.RoleSupervisor, true}, {index.RoleReviewer, false}} {
		login := "mfa-" + tc.role
		if _, err := p.db.CreateUser(ctx, index.User{Login: login, Role: tc.role}, "long-enough-password"); err != nil {
			t.Fatal(err)
		}
		res, err := http.Post(base+"/api/login", "application/json", strings.NewReader(`{"login":"`+login+`","password":"long-enough-password"}`))
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			CSRF    string `json:"csrf_token"`
			MustEnr bool   `json:"mfa_enrolment_required"`
		}
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 || body.MustEnr != tc.held {
			t.Fatalf("%s: login %d %v, mfa_enrolment_required %v, want %v", tc.role, res.StatusCode, err, body.MustEnr, tc.held)
		}
		s := &session{t: t, base: base, cookie: res.Cookies()[0], csrf: body.CSRF}
		want := map[bool]int{true: 403, false: 200}[tc.held]
		if got, _ := s.send("GET", "/api/incidents", nil, nil); got.StatusCode != want {
			t.Errorf("%s: GET /api/incidents = %d, want %d", tc.role, got.StatusCode, want)
		}
		if got, _ := s.send("GET", "/api/mfa/totp", nil, nil); got.StatusCode != 200 {
			t.Errorf("%s: GET /api/mfa/totp = %d, want 200", tc.role, got.StatusCode)
		}
		if tc.role == index.RoleAdmin {
			admin = s
		}
	}

	res, raw := admin.send("POST", "/api/mfa/totp", nil, nil)
	var enr struct {
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(raw, &enr); err != nil || res.StatusCode != 200 {
		t.Fatalf("start enrolment: %d %s", res.StatusCode, raw)
	}
	prev, _ := totp.GenerateCode(enr.Secret, time.Now().Add(-30*time.Second))
	if res, raw := admin.send("POST", "/api/mfa/totp/confirm", strings.NewReader(`{"code":"`+prev+`"}`), nil); res.StatusCode != 200 {
		t.Fatalf("confirm: %d %s", res.StatusCode, raw)
	}
	now, _ := totp.GenerateCode(enr.Secret, time.Now())
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"login":"mfa-admin","password":"long-enough-password"}`, 401},
		{`{"login":"mfa-admin","password":"long-enough-password","code":"` + now + `"}`, 200},
	} {
		res, err := http.Post(base+"/api/login", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("login %s: %d, want %d", tc.body, res.StatusCode, tc.want)
		}
	}
}
