package upload

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
)

// TestOfficerAttachesOnlyToTheirIncidents: an officer attaches an upload
// to an incident they are assigned to, or were (cleared long ago), and is
// refused (403, nothing created, audited upload.refused with the incident
// and why) for any other; supervisors and admins attach to any.
func TestOfficerAttachesOnlyToTheirIncidents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	past, err := e.db.CreateIncident(ctx, index.Incident{Number: "110-PAST", OpenedAt: time.Now().Add(-72 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.db.Assign(ctx, past.ID, e.officer.ID, time.Now().Add(-71*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ClearAssignment(ctx, past.ID, a.ID, time.Now().Add(-70*time.Hour)); err != nil {
		t.Fatal(err)
	}
	foreign, err := e.db.CreateIncident(ctx, index.Incident{Number: "110-FOREIGN", OpenedAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Assign(ctx, foreign.ID, e.other.ID, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	wu := e.as
	sup := Uploader{Login: "boss", Role: index.RoleSupervisor}
	admin := Uploader{Login: "root", Role: index.RoleAdmin}
	cases := []struct {
		name     string
		as       Uploader
		incident string
		want     int
	}{
		{"officer, assigned now, by number", wu, e.inc.Number, http.StatusCreated},
		{"officer, assigned now, by ID", wu, e.inc.ID.String(), http.StatusCreated},
		{"officer, assignment cleared days ago", wu, past.Number, http.StatusCreated},
		{"officer, no incident named", wu, "", http.StatusCreated},
		{"officer, another officer's incident", wu, foreign.Number, http.StatusForbidden},
		{"officer, another officer's incident by ID", wu, foreign.ID.String(), http.StatusForbidden},
		{"supervisor, any incident", sup, foreign.Number, http.StatusCreated},
		{"admin, any incident", admin, foreign.ID.String(), http.StatusCreated},
	}
	refusals := 0
	for _, c := range cases {
		e.set(&c.as, nil)
		md := []string{"filename", "a.mp4"}
		if c.incident != "" {
			md = append(md, "incident", c.incident)
		}
		msg, code := create(t, e, 1000, meta(md...))
		if code != c.want {
			t.Fatalf("%s: %d %s, want %d", c.name, code, msg, c.want)
		}
		if code == http.StatusForbidden {
			refusals++
			if !strings.Contains(msg, "only to incidents you are or were assigned to") || !strings.Contains(msg, foreign.Number) {
				t.Fatalf("%s: refusal says %q", c.name, msg)
			}
		}
	}
	events, err := e.db.AuditEvents(ctx, index.AuditFilter{IncidentID: &foreign.ID})
	if err != nil {
		t.Fatal(err)
	}
	var refused []index.AuditEvent
	for _, ev := range events {
		if ev.Action == "upload.refused" {
			refused = append(refused, ev)
		}
	}
	if len(refused) != refusals {
		t.Fatalf("%d upload.refused events for %d refusals: %+v", len(refused), refusals, events)
	}
	for _, ev := range refused {
		if ev.Actor != wu.Login || ev.Details["incident"] != foreign.Number || !strings.Contains(ev.Details["reason"].(string), "never assigned") {
			t.Fatalf("refusal event = %+v", ev)
		}
	}
}
