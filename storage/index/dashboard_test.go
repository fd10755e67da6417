package index_test

import (
	"context"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
)

// TestDashboard: incidents without footage come first (red), then those
// with footage from only some assigned officers (yellow, naming who is
// missing), then complete ones; the association rate, unbound recordings
// and cameras that dropped off during an incident are reported; a unit
// narrows it all.
func TestDashboard(t *testing.T) {
	ctx := context.Background()
	db, at, r1 := dashboardFixture(t)
	d, err := db.Dashboard(ctx, at(-60), at(400), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkDashboard(t, d, r1)
	p2, err := db.Dashboard(ctx, at(-60), at(400), []string{"P2"})
	if err != nil || len(p2.Incidents) != 1 || p2.Incidents[0].Number != "110-NONE" || len(p2.Dropoffs) != 0 || p2.AssociationRate != 0 {
		t.Fatalf("unit P2 = %+v %v", p2, err)
	}
	if both, err := db.Dashboard(ctx, at(-60), at(400), []string{"P1", "P2"}); err != nil || len(both.Incidents) != len(d.Incidents) {
		t.Fatalf("units P1, P2 = %d incidents %v, want all %d", len(both.Incidents), err, len(d.Incidents))
	}
	if none, err := db.Dashboard(ctx, at(-60), at(400), []string{"P9"}); err != nil || len(none.Incidents) != 0 || len(none.Dropoffs) != 0 {
		t.Fatalf("unit P9 = %+v %v, want nothing", none, err)
	}
	if _, err := db.Dashboard(ctx, at(10), at(0), nil); err == nil {
		t.Fatal("a period ending before it starts was accepted")
	}
}

// dashboardFixture: officers A, B (unit P1) and C (P2); an incident
// assigned to A and B that only A filmed (with a gap, ending early), one
// assigned to C without footage, one A filmed completely; and an unbound
// recording.
func dashboardFixture(t *testing.T) (*index.DB, func(int) time.Time, index.Recording) {
	ctx := context.Background()
	db := newFixture(t).db
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	mk := func(badge, name, unit string) index.Officer {
		o, err := db.CreateOfficer(ctx, index.Officer{Badge: badge, Name: name, Unit: unit})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	a, b, c := mk("5001", "A", "P1"), mk("5002", "B", "P1"), mk("5003", "C", "P2")
	dev, err := db.CreateDevice(ctx, index.Device{Serial: "CAM-DASH", Secret: "camera-secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	incident := func(n string, opened int, officers ...index.Officer) index.Incident {
		in, err := db.CreateIncident(ctx, index.Incident{Number: n, OpenedAt: at(opened)})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range officers {
			as, err := db.Assign(ctx, in.ID, o.ID, at(opened))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.ClearAssignment(ctx, in.ID, as.ID, at(opened+60)); err != nil {
				t.Fatal(err)
			}
		}
		return in
	}
	incident("110-PARTIAL", 0, a, b)
	incident("110-NONE", 10, c)
	incident("110-COMPLETE", 200, a)
	record := func(o *index.Officer, from, to int) index.Recording {
		r := index.Recording{DeviceID: dev.ID, StartedAt: at(from), EndedAt: ptr(at(to)), Status: index.RecordingEnded}
		if o != nil {
			r.OfficerID = &o.ID
		}
		rec, err := db.CreateRecording(ctx, r, "test")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.AutoLink(ctx, rec.ID, 5*time.Minute); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	r1 := record(&a, 5, 20) // ends 40 min before A cleared: a drop-off
	if err := db.AddGap(ctx, r1.ID, index.Gap{StartedAt: at(8), EndedAt: at(9)}); err != nil {
		t.Fatal(err)
	}
	record(&a, 205, 262)
	record(nil, 300, 301)
	return db, at, r1
}

// checkDashboard checks the whole-platform dashboard of the fixture.
func checkDashboard(t *testing.T, d index.Dashboard, r1 index.Recording) {
	t.Helper()
	var order []string
	for _, in := range d.Incidents {
		order = append(order, in.Number+":"+in.Coverage)
	}
	want := []string{"110-NONE:none", "110-PARTIAL:partial", "110-COMPLETE:complete"}
	if len(order) != 3 || order[0] != want[0] || order[1] != want[1] || order[2] != want[2] {
		t.Fatalf("incidents = %v, want %v", order, want)
	}
	if m := d.Incidents[1].Missing; len(m) != 1 || m[0] != "5002 B" {
		t.Fatalf("missing on the partial incident = %v", m)
	}
	if d.WithFootage != 2 || d.AssociationRate < 0.66 || d.AssociationRate > 0.67 {
		t.Fatalf("with footage %d, rate %v", d.WithFootage, d.AssociationRate)
	}
	if len(d.Unbound) != 1 {
		t.Fatalf("unbound = %d", len(d.Unbound))
	}
	kinds := map[string]int{}
	for _, x := range d.Dropoffs {
		kinds[x.Kind]++
		if x.RecordingID != r1.ID || x.IncidentNumber != "110-PARTIAL" {
			t.Fatalf("dropoff = %+v", x)
		}
	}
	if kinds["gap"] != 1 || kinds["ended"] != 1 {
		t.Fatalf("dropoffs = %+v", d.Dropoffs)
	}
}

func ptr[T any](v T) *T { return &v }
