package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/bwcplatform/bwc/storage/index"
)

// getJSON makes a GET request as a role and decodes a 200 answer into v;
// the status.
func (e *matrixEnv) getJSON(role, path string, v any) int {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.clients[role](req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			e.t.Fatalf("%s as %s: %v", path, role, err)
		}
	}
	return res.StatusCode
}

// GET /api/session names the units a supervisor oversees (the setting;
// empty: their own unit), for the pages.
func TestSessionNamesUnitsOverseen(t *testing.T) {
	e := newMatrixEnv(t)
	sup, err := e.db.UserByLogin(context.Background(), "m-supervisor")
	if err != nil {
		t.Fatal(err)
	}
	type session struct {
		Unit     string   `json:"unit"`
		Oversees []string `json:"oversees"`
	}
	check := func(role, unit string, want []string) {
		t.Helper()
		var s session
		if code := e.getJSON(role, "/api/session", &s); code != 200 || s.Unit != unit || s.Oversees == nil || !slices.Equal(s.Oversees, want) {
			t.Errorf("session of %s: %d %+v, want unit %q oversees %q", role, code, s, unit, want)
		}
	}
	check(index.RoleSupervisor, "U1", []string{})
	check(index.RoleOfficer, "U1", []string{})
	check("token", "", []string{})
	if _, err := e.db.SetUserScope(context.Background(), sup.ID, "U1", []string{"U2", "U3"}); err != nil {
		t.Fatal(err)
	}
	check(index.RoleSupervisor, "U1", []string{"U2", "U3"})
}
