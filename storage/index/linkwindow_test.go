package index_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
)

// TestZeroLinkBufferLinksExactlyTheAssignmentWindow: an officer assigned to
// an incident from T1 to T2 recorded just before T1, inside the window and
// just after T2. With a link buffer of 0 only the recording inside is
// linked; with the default 5 minutes the near ones are linked too. Both
// public paths are checked: AutoLink (a recording ends or is uploaded) and
// AutoLinkOfficer (an assignment is made after the recordings).
func TestZeroLinkBufferLinksExactlyTheAssignmentWindow(t *testing.T) {
	t1 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	t2 := t1.Add(30 * time.Minute)
	spans := []struct {
		name     string
		from, to time.Time
	}{
		{"just before T1", t1.Add(-10 * time.Minute), t1.Add(-time.Second)},
		{"inside", t1.Add(10 * time.Minute), t1.Add(20 * time.Minute)},
		{"just after T2", t2.Add(time.Second), t2.Add(10 * time.Minute)},
	}
	for _, tc := range []struct {
		buffer time.Duration
		want   map[string]bool
	}{
		{0, map[string]bool{"just before T1": false, "inside": true, "just after T2": false}},
		{5 * time.Minute, map[string]bool{"just before T1": true, "inside": true, "just after T2": true}},
	} {
		for _, path := range []string{"AutoLink", "AutoLinkOfficer"} {
			t.Run(path+" buffer "+tc.buffer.String(), func(t *testing.T) {
				ctx := context.Background()
				f := newFixture(t)
				officer := f.officers[0]
				inc, err := f.db.CreateIncident(ctx, index.Incident{Number: "110-" + uuid.NewString()[:8], OpenedAt: t1.Add(-time.Hour)})
				if err != nil {
					t.Fatal(err)
				}
				recs := map[uuid.UUID]string{}
				for _, s := range spans {
					to := s.to
					rec, err := f.db.CreateRecording(ctx, index.Recording{DeviceID: f.devices[0].ID, OfficerID: &officer.ID,
						StartedAt: s.from, EndedAt: &to, Status: index.RecordingEnded}, "checkout")
					if err != nil {
						t.Fatal(err)
					}
					recs[rec.ID] = s.name
				}
				a, err := f.db.Assign(ctx, inc.ID, officer.ID, t1)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.db.ClearAssignment(ctx, inc.ID, a.ID, t2); err != nil {
					t.Fatal(err)
				}
				var links []index.IncidentLink
				if path == "AutoLinkOfficer" {
					links, err = f.db.AutoLinkOfficer(ctx, officer.ID, tc.buffer)
				} else {
					for id := range recs {
						l, lerr := f.db.AutoLink(ctx, id, tc.buffer)
						links, err = append(links, l...), lerr
						if err != nil {
							break
						}
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]bool{}
				for _, l := range links {
					if l.IncidentID != inc.ID || l.Method != index.LinkAuto || l.LinkedBy != index.AutoLinkRule(tc.buffer) {
						t.Errorf("link %+v: want an automatic link to %s by rule %q", l, inc.Number, index.AutoLinkRule(tc.buffer))
					}
					got[recs[l.RecordingID]] = true
				}
				for _, s := range spans {
					if got[s.name] != tc.want[s.name] {
						t.Errorf("buffer %v: recording %s linked = %v, want %v", tc.buffer, s.name, got[s.name], tc.want[s.name])
					}
				}
			})
		}
	}
}
