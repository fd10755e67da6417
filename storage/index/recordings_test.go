package index_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
)

// TestAutoLinkRule: a recording is associated with an incident when the
// officer's assignment window widened by the buffer overlaps it.
func TestAutoLinkRule(t *testing.T) {
	const live = 1 << 20
	ctx := context.Background()
	f := newFixture(t)
	db := f.db
	buffer := 5 * time.Minute
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	ptr := func(t time.Time) *time.Time { return &t }
	for _, tc := range []struct {
		name               string
		recFrom, recTo     int // minutes from dispatch; recTo == live: still recording
		assigned, cleared  int // cleared < 0: still assigned
		wantLinked         bool
		otherOfficerAssign bool
	}{
		{"inside the assignment", 10, 20, 0, 30, true, false},
		{"started 4 min before dispatch", -4, 2, 0, 30, true, false},
		{"ended 6 min before dispatch", -20, -6, 0, 30, false, false},
		{"started 4 min after clearing", 34, 40, 0, 30, true, false},
		{"started 6 min after clearing", 36, 40, 0, 30, false, false},
		{"live recording, assignment open", 10, live, 5, -1, true, false},
		{"another officer's assignment", 10, 20, 0, 30, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			officer := f.officers[0]
			if tc.otherOfficerAssign {
				officer = f.officers[1]
			}
			inc, err := db.CreateIncident(ctx, index.Incident{Number: "110-" + uuid.NewString()[:8], Type: "theft", OpenedAt: at(-60)})
			if err != nil {
				t.Fatal(err)
			}
			a, err := db.Assign(ctx, inc.ID, officer.ID, at(tc.assigned))
			if err != nil {
				t.Fatal(err)
			}
			if tc.cleared >= 0 {
				if _, err := db.ClearAssignment(ctx, inc.ID, a.ID, at(tc.cleared)); err != nil {
					t.Fatal(err)
				}
			}
			r := index.Recording{DeviceID: f.devices[0].ID, OfficerID: &f.officers[0].ID, StartedAt: at(tc.recFrom)}
			if tc.recTo != live {
				r.EndedAt, r.Status = ptr(at(tc.recTo)), index.RecordingEnded
			}
			rec, err := db.CreateRecording(ctx, r, "checkout")
			if err != nil {
				t.Fatal(err)
			}
			links, err := db.AutoLink(ctx, rec.ID, buffer)
			if err != nil {
				t.Fatal(err)
			}
			// earlier cases' incidents share the officer and the clock: look at this one's
			linked := false
			for _, l := range links {
				linked = linked || (l.IncidentID == inc.ID && l.Method == index.LinkAuto)
			}
			if linked != tc.wantLinked {
				t.Fatalf("links = %+v, want linked = %v", links, tc.wantLinked)
			}
			again, err := db.AutoLink(ctx, rec.ID, buffer)
			if err != nil || len(again) != 0 {
				t.Fatalf("second AutoLink made %d links (%v), want none", len(again), err)
			}
			// clear the slate for the next case: the officer's open assignment
			if tc.cleared < 0 {
				if _, err := db.ClearAssignment(ctx, inc.ID, a.ID, at(100)); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestManualLinksAndBinding: a supervisor's unlink is kept as history and
// automatic linking does not undo it; an unbound recording can be bound
// later, and the binding history says by whom.
func TestManualLinksAndBinding(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	db := f.db
	now := time.Now().UTC()
	inc, err := db.CreateIncident(ctx, index.Incident{Number: "110-0001", OpenedAt: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	other, err := db.CreateIncident(ctx, index.Incident{Number: "110-0002", OpenedAt: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Assign(ctx, inc.ID, f.officers[0].ID, now.Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	rec, err := db.CreateRecording(ctx, index.Recording{DeviceID: f.devices[0].ID, StartedAt: now.Add(-time.Minute)}, "")
	if err != nil {
		t.Fatal(err)
	}
	if rec.OfficerID != nil || rec.Status != index.RecordingLive || rec.DeviceSerial != "CAM-A" {
		t.Fatalf("new unbound recording = %+v", rec)
	}
	if links, _ := db.AutoLink(ctx, rec.ID, 5*time.Minute); len(links) != 0 {
		t.Fatalf("unbound recording auto-linked: %+v", links)
	}
	rec, err = db.BindOfficerFrom(ctx, rec.ID, nil, f.officers[0].ID, "sup1", "camera not checked out at shift start")
	if err != nil || rec.OfficerID == nil || *rec.OfficerID != f.officers[0].ID {
		t.Fatalf("bind: %+v %v", rec, err)
	}
	if links, _ := db.AutoLink(ctx, rec.ID, 5*time.Minute); len(links) != 1 || links[0].IncidentNumber != "110-0001" {
		t.Fatalf("after binding, auto links = %+v", links)
	}
	if _, err := db.UnlinkIncident(ctx, rec.ID, inc.ID, "sup1", ""); !errors.Is(err, index.ErrInvalid) {
		t.Fatalf("unlink without reason: %v, want ErrInvalid", err)
	}
	if _, err := db.UnlinkIncident(ctx, rec.ID, inc.ID, "sup1", "wrong incident"); err != nil {
		t.Fatal(err)
	}
	if links, _ := db.AutoLink(ctx, rec.ID, 5*time.Minute); len(links) != 0 {
		t.Fatalf("auto-link undid a supervisor's unlink: %+v", links)
	}
	l, err := db.LinkIncident(ctx, rec.ID, other.ID, "sup1", "seen on the footage")
	if err != nil || l.Method != index.LinkManual || l.LinkedBy != "sup1" {
		t.Fatalf("manual link: %+v %v", l, err)
	}
	if _, err := db.LinkIncident(ctx, rec.ID, other.ID, "sup2", "again"); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("second manual link: %v, want ErrConflict", err)
	}
	if _, err := db.LinkIncident(ctx, rec.ID, uuid.New(), "sup1", ""); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("link to unknown incident: %v, want ErrNotFound", err)
	}
	hist, err := db.RecordingLinks(ctx, rec.ID, true)
	if err != nil || len(hist) != 2 || hist[0].UnlinkedAt == nil || *hist[0].UnlinkedBy != "sup1" || hist[1].UnlinkedAt != nil {
		t.Fatalf("link history = %+v %v", hist, err)
	}
	recs, links, err := db.IncidentRecordings(ctx, other.ID)
	if err != nil || len(recs) != 1 || recs[0].ID != rec.ID || len(links) != 1 {
		t.Fatalf("incident recordings = %+v %+v %v", recs, links, err)
	}
	b, err := db.Bindings(ctx, rec.ID)
	if err != nil || len(b) != 1 || b[0].ChangedBy != "sup1" {
		t.Fatalf("bindings = %+v %v", b, err)
	}
}

// TestRecordingLifecycle: status changes, gaps, clock offset, ending, and
// orphans of a crashed process.
func TestRecordingLifecycle(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	db := f.db
	start := time.Now().UTC().Add(-time.Minute)
	rec, err := db.CreateRecording(ctx, index.Recording{DeviceID: f.devices[1].ID, OfficerID: &f.officers[1].ID, StartedAt: start}, "checkout")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetRecordingStatus(ctx, rec.ID, index.RecordingReconnecting, ""); err != nil {
		t.Fatal(err)
	}
	if err := db.SetRecordingStatus(ctx, rec.ID, "ended", ""); !errors.Is(err, index.ErrInvalid) {
		t.Fatalf("status ended through SetRecordingStatus: %v", err)
	}
	if err := db.AddGap(ctx, rec.ID, index.Gap{StartedAt: start.Add(10 * time.Second), EndedAt: start.Add(17 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetClockOffset(ctx, rec.ID, 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := db.SetRecordingMedia(ctx, rec.ID, "H264", "AAC", 1280, 720); err != nil {
		t.Fatal(err)
	}
	live, err := db.Recordings(ctx, index.RecordingFilter{Status: "active"})
	if err != nil || len(live) != 1 || live[0].Status != index.RecordingReconnecting || *live[0].ClockOffsetMS != 1500 || live[0].Width != 1280 {
		t.Fatalf("active recordings = %+v %v", live, err)
	}
	n, err := db.EndNodeRecordings(ctx, "node-a", index.SourceRTSP) // the row has no node: written before nodes
	if err != nil || n != 1 {
		t.Fatalf("orphans ended: %d %v", n, err)
	}
	got, _ := db.Recording(ctx, rec.ID)
	if got.Status != index.RecordingEnded || got.EndedAt == nil || !got.EndedAt.Equal(got.StartedAt) {
		t.Fatalf("orphan = %+v", got)
	}
	if err := db.EndRecording(ctx, rec.ID, time.Now()); err != nil {
		t.Fatalf("ending an ended recording: %v", err)
	}
	if err := db.EndRecording(ctx, uuid.New(), time.Now()); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("ending an unknown recording: %v", err)
	}
	gaps, err := db.Gaps(ctx, rec.ID)
	if err != nil || len(gaps) != 1 || gaps[0].EndedAt.Sub(gaps[0].StartedAt) != 7*time.Second {
		t.Fatalf("gaps = %+v %v", gaps, err)
	}
}

// TestBindOfficerFromIsCompareAndSet: a binding needs a reason and
// changes the officer only while it is still the one the caller saw; a
// stale view of it is ErrBindingChanged (an ErrConflict), leaving the
// binding and its history as they were.
func TestBindOfficerFromIsCompareAndSet(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	db := f.db
	rec, err := db.CreateRecording(ctx, index.Recording{DeviceID: f.devices[0].ID, StartedAt: time.Now().Add(-time.Minute)}, "")
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.officers[0].ID, f.officers[1].ID
	unknown := uuid.Must(uuid.NewV7())
	steps := []struct {
		name     string
		rec      uuid.UUID
		previous *uuid.UUID
		officer  uuid.UUID
		reason   string
		want     error // nil: bound
		sentinel error // a second error the answer must be too
	}{
		{"no reason", rec.ID, nil, a, "  ", index.ErrInvalid, nil},
		{"unknown recording", unknown, nil, a, "why", index.ErrNotFound, nil},
		{"unknown officer", rec.ID, nil, unknown, "why", index.ErrNotFound, nil},
		{"stale: says bound, is unbound", rec.ID, &b, a, "why", index.ErrBindingChanged, index.ErrConflict},
		{"bind the unbound", rec.ID, nil, a, "no check-out", nil, nil},
		{"stale: says unbound, is bound", rec.ID, nil, b, "why", index.ErrBindingChanged, index.ErrConflict},
		{"stale: says bound to another", rec.ID, &b, b, "why", index.ErrConflict, nil},
		{"to the same officer", rec.ID, &a, a, "why", index.ErrConflict, nil},
		{"re-bind from the officer it has", rec.ID, &a, b, "wrong officer", nil, nil},
	}
	for _, st := range steps {
		got, err := db.BindOfficerFrom(ctx, st.rec, st.previous, st.officer, "sup1", st.reason)
		switch {
		case st.want == nil && (err != nil || got.OfficerID == nil || *got.OfficerID != st.officer):
			t.Fatalf("%s: %+v %v", st.name, got, err)
		case st.want != nil && !errors.Is(err, st.want):
			t.Fatalf("%s: %v, want %v", st.name, err, st.want)
		case st.sentinel != nil && !errors.Is(err, st.sentinel):
			t.Fatalf("%s: %v, want it to be %v too", st.name, err, st.sentinel)
		}
	}
	now, err := db.Recording(ctx, rec.ID)
	if err != nil || now.OfficerID == nil || *now.OfficerID != b {
		t.Fatalf("recording after the steps = %+v %v", now, err)
	}
	hist, err := db.Bindings(ctx, rec.ID)
	if err != nil || len(hist) != 2 || *hist[0].OfficerID != a || *hist[1].OfficerID != b || hist[1].Reason != "wrong officer" {
		t.Fatalf("binding history = %+v %v", hist, err)
	}
}

// TestBindOfficerFromRace: re-binds racing from the same officer: exactly
// one wins, every other is ErrBindingChanged, one history row is added.
func TestBindOfficerFromRace(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	db := f.db
	a, b := f.officers[0].ID, f.officers[1].ID
	rec, err := db.CreateRecording(ctx, index.Recording{DeviceID: f.devices[0].ID, OfficerID: &a, StartedAt: time.Now().Add(-time.Minute)}, "check-out")
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := db.BindOfficerFrom(ctx, rec.ID, &a, b, fmt.Sprint("admin", i), "camera swapped")
			errs <- err
		}()
	}
	won := 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			won++
		case !errors.Is(err, index.ErrBindingChanged):
			t.Fatalf("a losing re-bind: %v, want ErrBindingChanged", err)
		}
	}
	if hist, err := db.Bindings(ctx, rec.ID); won != 1 || err != nil || len(hist) != 2 {
		t.Fatalf("%d re-binds won; history %+v %v", won, hist, err)
	}
}
