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

// A recording's detail and an incident's timeline name only the links to
// incidents in the caller's incident scope (with history: an ended link
// to an incident out of scope is not named either).
func TestRecordingLinksAreScoped(t *testing.T) {
	e := newMatrixEnv(t)
	ctx := context.Background()
	own, unit, other, granted := e.fix[scopeOwn], e.fix[scopeUnit], e.fix[scopeOther], e.fix[scopeGranted]
	// the granted recording is linked to the other unit's incident too; the
	// officer's own recording was linked to the same unit's incident (the
	// officer is not assigned to it), then unlinked
	if _, err := e.db.LinkIncident(ctx, granted.rec, other.inc, "fixture", "scope"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.LinkIncident(ctx, own.rec, unit.inc, "fixture", "scope"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.UnlinkIncident(ctx, own.rec, unit.inc, "fixture", "scope"); err != nil {
		t.Fatal(err)
	}
	type detail struct {
		Links []index.IncidentLink `json:"links"`
	}
	incidents := func(links []index.IncidentLink) []string {
		out := []string{}
		for _, l := range links {
			out = append(out, l.IncidentID.String())
		}
		slices.Sort(out)
		return out
	}
	sorted := func(ids ...uuid.UUID) []string {
		out := []string{}
		for _, id := range ids {
			out = append(out, id.String())
		}
		slices.Sort(out)
		return out
	}
	cases := []struct {
		role string
		rec  uuid.UUID
		want []string
	}{
		{index.RoleReviewer, granted.rec, sorted(granted.inc)},
		{"token", granted.rec, sorted(granted.inc)},
		{index.RoleAdmin, granted.rec, sorted(granted.inc, other.inc)},
		{index.RoleSupervisor, own.rec, sorted(own.inc, unit.inc)}, // every incident (they assign officers)
		{index.RoleAdmin, own.rec, sorted(own.inc, unit.inc)},
		{index.RoleOfficer, own.rec, sorted(own.inc)}, // not the ended link to an incident they were never assigned to
	}
	for _, c := range cases {
		var d detail
		if code := e.getJSON(c.role, "/api/recordings/"+c.rec.String(), &d); code != 200 || !slices.Equal(incidents(d.Links), c.want) {
			t.Errorf("links of recording %s as %s: %d %v, want %v", c.rec, c.role, code, incidents(d.Links), c.want)
		}
	}
	// the reviewer's timeline of the granted incident: its recording's
	// links name the granted incident only
	var tl struct {
		Recordings []struct {
			ID    uuid.UUID            `json:"id"`
			Links []index.IncidentLink `json:"links"`
		} `json:"recordings"`
	}
	if code := e.getJSON(index.RoleReviewer, "/api/incidents/"+granted.inc.String()+"/timeline", &tl); code != 200 || len(tl.Recordings) != 1 {
		t.Fatalf("timeline as reviewer: %d %+v", code, tl)
	}
	if got := incidents(tl.Recordings[0].Links); !slices.Equal(got, sorted(granted.inc)) {
		t.Errorf("timeline links as reviewer = %v, want only the granted incident", got)
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
