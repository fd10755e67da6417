package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

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

// upload stores an upload (and its recording, source upload) bound to the
// officer (nil: unbound), as the upload service does.
func (e *matrixEnv) upload(officer *uuid.UUID, by string) index.Upload {
	e.t.Helper()
	name := uuid.NewString()
	sum := sha256.Sum256([]byte(name))
	u, err := e.db.CreateUpload(context.Background(), index.Recording{OfficerID: officer}, index.Upload{TusID: name, UploadedBy: by,
		Filename: "clip.mp4", Size: 1, SHA256: sum[:], Key: "uploads/" + name, Container: "mp4",
		RecordedAt: time.Now().Add(-time.Hour), RecordedAtSource: "upload"}, by)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// The uploads listing is filtered by the recording rule (an upload is a
// recording with source upload): an officer lists the uploads bound to
// them, a supervisor those of officers of the units they oversee and the
// unbound ones, an admin all; reviewers and tokens do not upload (role).
func TestUploadsAreScoped(t *testing.T) {
	e := newMatrixEnv(t)
	ups := map[string]uuid.UUID{}
	for _, sc := range matrixScopes {
		off := e.fix[sc].officer
		by := "m-supervisor"
		if sc == scopeOwn {
			by = "m-officer"
		}
		ups[sc] = e.upload(&off, by).ID
	}
	unbound := e.upload(nil, "m-admin").ID
	list := func(role string) (int, []string) {
		t.Helper()
		var items []index.Upload
		code := e.getJSON(role, "/api/uploads", &items)
		var out []string
		for _, u := range items {
			out = append(out, u.ID.String())
		}
		slices.Sort(out)
		return code, out
	}
	for _, role := range matrixRoles {
		var want []string
		for _, sc := range matrixInScope["recording"][role] {
			want = append(want, ups[sc].String())
		}
		if role == index.RoleSupervisor || role == index.RoleAdmin {
			want = append(want, unbound.String()) // unbound: every supervisor's, like its recording
		}
		slices.Sort(want)
		code, got := list(role)
		switch role {
		case index.RoleReviewer, "token":
			if code != http.StatusForbidden {
				t.Errorf("GET /api/uploads as %s: %d, want 403 (role)", role, code)
			}
		default:
			if code != 200 || !slices.Equal(got, want) {
				t.Errorf("GET /api/uploads as %s: %d %v, want %v", role, code, got, want)
			}
		}
	}
	// the supervisor of U1 does not list U2's uploads (even the one they
	// uploaded for an officer of U2); overseeing U2 instead, they do
	_, got := list(index.RoleSupervisor)
	for _, sc := range []string{scopeOther, scopeGranted} {
		if slices.Contains(got, ups[sc].String()) {
			t.Errorf("the supervisor of U1 lists the upload of %s (U2): %v", sc, got)
		}
	}
	sup, err := e.db.UserByLogin(context.Background(), "m-supervisor")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.SetUserScope(context.Background(), sup.ID, "U1", []string{"U2"}); err != nil {
		t.Fatal(err)
	}
	want := []string{ups[scopeOther].String(), ups[scopeGranted].String(), unbound.String()}
	slices.Sort(want)
	if _, got := list(index.RoleSupervisor); !slices.Equal(got, want) {
		t.Errorf("uploads of a supervisor overseeing U2 = %v, want %v", got, want)
	}
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
