package web_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
)

// TestRecordingBindingAndLinks: a supervisor binds an unbound recording to
// an officer (which links it to the officer's incident by the rule),
// unlinks it with a reason, links it to another incident by hand; the
// history keeps who did what, the audit trail has each change, and an
// officer sees only their own recordings.
func TestRecordingBindingAndLinks(t *testing.T) {
	admin, db := newAPI(t)
	ctx := context.Background()
	sup := admin.loginAs(db, index.RoleSupervisor)
	off := admin.loginAs(db, index.RoleOfficer)
	o, err := db.CreateOfficer(ctx, index.Officer{Badge: "3001", Name: "Wang Wu"})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := db.CreateDevice(ctx, index.Device{Serial: "CAM-REC-1", Secret: "camera-secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	inc1, _ := db.CreateIncident(ctx, index.Incident{Number: "110-A", OpenedAt: now.Add(-time.Hour)})
	inc2, _ := db.CreateIncident(ctx, index.Incident{Number: "110-B", OpenedAt: now.Add(-time.Hour)})
	if _, err := db.Assign(ctx, inc1.ID, o.ID, now.Add(-20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	rec, err := db.CreateRecording(ctx, index.Recording{DeviceID: dev.ID, StartedAt: now.Add(-10 * time.Minute)}, "")
	if err != nil {
		t.Fatal(err)
	}
	base := "/api/recordings/" + rec.ID.String()
	steps := []struct {
		name   string
		client apiClient
		method string
		path   string
		body   string
		code   int
	}{
		{"unbound listed", sup, "GET", "/api/recordings?unbound=1", "", 200},
		{"bind to unknown officer", sup, "POST", base + "/officer", `{"officer_id":"` + inc1.ID.String() + `"}`, 404},
		{"bind", sup, "POST", base + "/officer", `{"officer_id":"` + o.ID.String() + `","reason":"forgot check-out"}`, 200},
		{"unlink without reason", sup, "DELETE", base + "/links/" + inc1.ID.String(), "", 400},
		{"unlink", sup, "DELETE", base + "/links/" + inc1.ID.String() + "?reason=wrong+incident", "", 200},
		{"link by number", sup, "POST", base + "/links", `{"incident_number":"110-B","reason":"seen on footage"}`, 201},
		{"link twice", sup, "POST", base + "/links", `{"incident_id":"` + inc2.ID.String() + `"}`, 409},
		{"link unknown number", sup, "POST", base + "/links", `{"incident_number":"110-ZZZ"}`, 400},
		{"officer cannot see another's recording (403, audited)", off, "GET", base, "", 403},
	}
	for _, st := range steps {
		if code, body, _ := st.client.do(st.method, st.path, st.body); code != st.code {
			t.Fatalf("%s: %s %s = %d %v, want %d", st.name, st.method, st.path, code, body, st.code)
		}
	}
	code, d, _ := sup.do("GET", base, "")
	if code != 200 {
		t.Fatalf("detail = %d", code)
	}
	links := d["links"].([]any)
	if len(links) != 2 {
		t.Fatalf("links = %v", links)
	}
	first, second := links[0].(map[string]any), links[1].(map[string]any)
	if first["method"] != "auto" || first["unlinked_at"] == nil || second["method"] != "manual" || second["incident_number"] != "110-B" {
		t.Fatalf("link history = %v", links)
	}
	if b := d["bindings"].([]any); len(b) != 1 {
		t.Fatalf("bindings = %v", b)
	}
	events, err := db.AuditEvents(ctx, index.AuditFilter{RecordingID: &rec.ID})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
	}
	if got := fmt.Sprint(actions); got != "[recording.bind recording.unlink recording.link access.refused]" {
		t.Fatalf("audit actions = %s", got)
	}
	if _, _, list := off.do("GET", "/api/recordings", ""); len(list) != 0 {
		t.Fatalf("officer sees %d recordings of others", len(list))
	}
}
