package web_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/bwcplatform/bwc/storage/index"
)

func TestPagesAreRoleChecked(t *testing.T) {
	admin, db := newAPI(t)
	anon := apiClient{t: t, url: admin.url}
	officer := anon.loginAs(db, index.RoleOfficer)
	sup := anon.loginAs(db, index.RoleSupervisor)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(c apiClient, path string) (int, string, string) {
		req, _ := http.NewRequest("GET", c.url+path, nil)
		if c.cookie != nil {
			req.AddCookie(c.cookie)
		}
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Location"), string(body)
	}
	cases := []struct {
		name     string
		c        apiClient
		path     string
		code     int
		location string
	}{
		{"wall without session", anon, "/wall", 303, "/?next=%2Fwall"},
		{"wall as officer", officer, "/wall", 403, ""},
		{"wall as supervisor", sup, "/wall", 200, ""},
		{"map as supervisor", sup, "/map", 200, ""},
		{"map as officer", officer, "/map", 403, ""},
		{"wall as admin", admin, "/wall", 200, ""},
		{"admin as supervisor", sup, "/admin", 403, ""},
		{"admin as admin", admin, "/admin", 200, ""},
		{"login page", anon, "/", 200, ""},
		{"logged-in supervisor lands on the wall", sup, "/", 303, "/wall"},
		{"officer lands on the upload page", officer, "/", 303, "/upload"},
		{"account as officer", officer, "/account", 200, ""},
	}
	for _, tc := range cases {
		code, loc, _ := get(tc.c, tc.path)
		if code != tc.code || (tc.location != "" && loc != tc.location) {
			t.Errorf("%s: GET %s = %d %q, want %d %q", tc.name, tc.path, code, loc, tc.code, tc.location)
		}
	}
	// every script and stylesheet a page refers to is served
	ref := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`)
	for _, page := range []string{"/", "/wall", "/map", "/admin", "/account", "/dashboard", "/incidents", "/incident", "/upload"} {
		_, _, body := get(admin, page+"?next=x")
		for _, m := range ref.FindAllStringSubmatch(body, -1) {
			if code, _, _ := get(anon, m[1]); code != 200 {
				t.Errorf("%s refers to %s, which answers %d", page, m[1], code)
			}
		}
	}
	for _, js := range []string{"app.js", "wall.js", "whep.js", "admin.js", "login.js", "map.js", "mappage.js", "leaflet/leaflet.js", "i18n/en.json", "i18n/zh.json"} {
		if code, _, body := get(anon, "/assets/"+js); code != 200 || strings.TrimSpace(body) == "" {
			t.Errorf("/assets/%s = %d", js, code)
		}
	}
}
