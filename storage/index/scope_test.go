package index_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
)

// TestScopes: each scope kind selects the same recordings and incidents
// for one object (RecordingInScope, IncidentInScope) as for a listing
// (Recordings with a scope, IncidentsInScope): officer P1-A's recording,
// P2-B's recording, an unbound one; incident 1 with A assigned, incident 2
// with B assigned and granted to "rev"; recording B linked to incident 2.
func TestScopes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	db := f.db
	a, err := db.CreateOfficer(ctx, index.Officer{Badge: "S-A", Name: "A", Unit: "P1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.CreateOfficer(ctx, index.Officer{Badge: "S-B", Name: "B", Unit: "P2"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	rec := func(off *uuid.UUID) uuid.UUID {
		r, err := db.CreateRecording(ctx, index.Recording{DeviceID: f.devices[0].ID, OfficerID: off, StartedAt: now.Add(-time.Minute)}, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := db.EndRecording(ctx, r.ID, now); err != nil { // one live recording per device
			t.Fatal(err)
		}
		return r.ID
	}
	recA, recB, recUnbound := rec(&a.ID), rec(&b.ID), rec(nil)
	inc1, _ := db.CreateIncident(ctx, index.Incident{Number: "110-S1", OpenedAt: now.Add(-time.Hour)})
	inc2, _ := db.CreateIncident(ctx, index.Incident{Number: "110-S2", OpenedAt: now.Add(-time.Hour)})
	for _, as := range []struct{ inc, off uuid.UUID }{{inc1.ID, a.ID}, {inc2.ID, b.ID}} {
		if _, err := db.Assign(ctx, as.inc, as.off, now.Add(-30*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.LinkIncident(ctx, recB, inc2.ID, "test", "scope"); err != nil {
		t.Fatal(err)
	}
	if err := db.GrantIncident(ctx, inc2.ID, "rev", "test"); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name       string
		scope      index.Scope
		recordings []uuid.UUID
		incidents  []uuid.UUID
	}{
		{"zero value is none", index.Scope{}, nil, nil},
		{"none", index.Scope{Kind: index.ScopeNone}, nil, nil},
		{"all", index.Scope{Kind: index.ScopeAll}, []uuid.UUID{recA, recB, recUnbound}, []uuid.UUID{inc1.ID, inc2.ID}},
		{"own", index.Scope{Kind: index.ScopeOwn, OfficerID: &a.ID}, []uuid.UUID{recA}, []uuid.UUID{inc1.ID}},
		{"own without an officer", index.Scope{Kind: index.ScopeOwn}, nil, nil},
		{"unit P1 (and unbound)", index.Scope{Kind: index.ScopeUnits, Units: []string{"P1"}}, []uuid.UUID{recA, recUnbound}, []uuid.UUID{inc1.ID}},
		{"units P1, P2", index.Scope{Kind: index.ScopeUnits, Units: []string{"P1", "P2"}}, []uuid.UUID{recA, recB, recUnbound}, []uuid.UUID{inc1.ID, inc2.ID}},
		{"no units: unbound only", index.Scope{Kind: index.ScopeUnits}, []uuid.UUID{recUnbound}, nil},
		{"granted", index.Scope{Kind: index.ScopeIncidents, Login: "rev"}, []uuid.UUID{recB}, []uuid.UUID{inc2.ID}},
		{"not granted, no unit", index.Scope{Kind: index.ScopeIncidents, Login: "other"}, nil, nil},
		{"unit P1's incidents: none linked", index.Scope{Kind: index.ScopeIncidents, Login: "other", Unit: "P1"}, nil, []uuid.UUID{inc1.ID}},
	}
	sorted := func(ids []uuid.UUID) []uuid.UUID {
		ids = slices.Clone(ids)
		slices.SortFunc(ids, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
		return ids
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, id := range []uuid.UUID{recA, recB, recUnbound} {
				in, err := db.RecordingInScope(ctx, id, tc.scope)
				if err != nil || in != slices.Contains(tc.recordings, id) {
					t.Errorf("RecordingInScope(%s) = %v %v", id, in, err)
				}
			}
			for _, id := range []uuid.UUID{inc1.ID, inc2.ID} {
				in, err := db.IncidentInScope(ctx, id, tc.scope)
				if err != nil || in != slices.Contains(tc.incidents, id) {
					t.Errorf("IncidentInScope(%s) = %v %v", id, in, err)
				}
			}
			s := tc.scope
			recs, err := db.Recordings(ctx, index.RecordingFilter{Scope: &s})
			if err != nil {
				t.Fatal(err)
			}
			var got []uuid.UUID
			for _, r := range recs {
				got = append(got, r.ID)
			}
			if !slices.Equal(sorted(got), sorted(tc.recordings)) {
				t.Errorf("Recordings = %v, want %v", got, tc.recordings)
			}
			incs, err := db.IncidentsInScope(ctx, tc.scope)
			if err != nil {
				t.Fatal(err)
			}
			got = nil
			for _, in := range incs {
				got = append(got, in.ID)
			}
			if !slices.Equal(sorted(got), sorted(tc.incidents)) {
				t.Errorf("IncidentsInScope = %v, want %v", got, tc.incidents)
			}
		})
	}
	if _, err := db.RecordingInScope(ctx, uuid.New(), index.Scope{Kind: index.ScopeAll}); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("unknown recording: %v, want ErrNotFound", err)
	}
}

// TestScopedUploadsAndLinks: the uploads listing and a recording's links
// are filtered by the same scopes. Officer P1-A's upload, P2-B's upload
// (linked to incident 2, granted to "rev", and to incident 1, A's), an
// unbound upload; B's upload was also linked to incident 3 (nobody's),
// then unlinked.
func TestScopedUploadsAndLinks(t *testing.T) {
	ctx := context.Background()
	db := newFixture(t).db
	a, err := db.CreateOfficer(ctx, index.Officer{Badge: "U-A", Name: "A", Unit: "P1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.CreateOfficer(ctx, index.Officer{Badge: "U-B", Name: "B", Unit: "P2"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	upload := func(off *uuid.UUID, name string) index.Upload {
		sum := sha256.Sum256([]byte(name))
		u, err := db.CreateUpload(ctx, index.Recording{OfficerID: off}, index.Upload{TusID: name, UploadedBy: "someone", Filename: name + ".mp4",
			Size: 1, SHA256: sum[:], Key: "uploads/" + name, Container: "mp4", RecordedAt: now.Add(-time.Hour), RecordedAtSource: "upload"}, "someone")
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	upA, upB, upUnbound := upload(&a.ID, "a"), upload(&b.ID, "b"), upload(nil, "unbound")
	var inc [3]uuid.UUID
	for i := range inc {
		in, err := db.CreateIncident(ctx, index.Incident{Number: fmt.Sprint("110-U", i+1), OpenedAt: now.Add(-2 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		inc[i] = in.ID
	}
	for _, as := range []struct{ inc, off uuid.UUID }{{inc[0], a.ID}, {inc[1], b.ID}} {
		if _, err := db.Assign(ctx, as.inc, as.off, now.Add(-90*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{1, 0, 2} {
		if _, err := db.LinkIncident(ctx, upB.RecordingID, inc[i], "test", "scope"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.UnlinkIncident(ctx, upB.RecordingID, inc[2], "test", "scope"); err != nil {
		t.Fatal(err)
	}
	if err := db.GrantIncident(ctx, inc[1], "rev", "test"); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		scope   index.Scope
		uploads []uuid.UUID
		links   []uuid.UUID // incidents named among upload B's links, with history
	}{
		{"none", index.Scope{}, nil, nil},
		{"all", index.Scope{Kind: index.ScopeAll}, []uuid.UUID{upA.ID, upB.ID, upUnbound.ID}, []uuid.UUID{inc[1], inc[0], inc[2]}},
		{"own A", index.Scope{Kind: index.ScopeOwn, OfficerID: &a.ID}, []uuid.UUID{upA.ID}, []uuid.UUID{inc[0]}},
		{"own without an officer", index.Scope{Kind: index.ScopeOwn}, nil, nil},
		{"unit P1 (and unbound)", index.Scope{Kind: index.ScopeUnits, Units: []string{"P1"}}, []uuid.UUID{upA.ID, upUnbound.ID}, []uuid.UUID{inc[0]}},
		{"unit P2 (and unbound)", index.Scope{Kind: index.ScopeUnits, Units: []string{"P2"}}, []uuid.UUID{upB.ID, upUnbound.ID}, []uuid.UUID{inc[1]}},
		{"granted incident 2", index.Scope{Kind: index.ScopeIncidents, Login: "rev"}, []uuid.UUID{upB.ID}, []uuid.UUID{inc[1]}},
		{"unit P1's incidents", index.Scope{Kind: index.ScopeIncidents, Login: "other", Unit: "P1"}, []uuid.UUID{upB.ID}, []uuid.UUID{inc[0]}},
		{"not granted, no unit", index.Scope{Kind: index.ScopeIncidents, Login: "other"}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ups, err := db.UploadsInScope(ctx, tc.scope)
			if err != nil {
				t.Fatal(err)
			}
			var got []uuid.UUID
			for _, u := range ups {
				got = append(got, u.ID)
			}
			slices.SortFunc(got, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
			want := slices.Clone(tc.uploads)
			slices.SortFunc(want, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
			if !slices.Equal(got, want) {
				t.Errorf("UploadsInScope = %v, want %v", got, want)
			}
			links, err := db.RecordingLinksInScope(ctx, upB.RecordingID, true, tc.scope)
			if err != nil {
				t.Fatal(err)
			}
			got = nil
			for _, l := range links {
				got = append(got, l.IncidentID)
			}
			if !slices.Equal(got, tc.links) { // in the order they were linked
				t.Errorf("RecordingLinksInScope = %v, want %v", got, tc.links)
			}
			current, err := db.RecordingLinksInScope(ctx, upB.RecordingID, false, tc.scope)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range current {
				if l.IncidentID == inc[2] {
					t.Errorf("without history: the ended link to incident 3 is named: %+v", l)
				}
			}
		})
	}
}
