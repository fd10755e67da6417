package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

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
		{"bind to unknown officer", sup, "POST", base + "/officer", `{"officer_id":"` + inc1.ID.String() + `","reason":"x"}`, 404},
		{"bind without reason", sup, "POST", base + "/officer", `{"officer_id":"` + o.ID.String() + `"}`, 400},
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

// TestRebindNeedsAnAdminAndAReason: binding an unbound recording is a
// supervisor's call, with a reason; re-binding one bound to another officer
// is refused to a supervisor (403, nothing changed) and done by an admin
// with a reason, audited with the previous officer; binding to the officer
// it has changes nothing (200, no history, no event).
func TestRebindNeedsAnAdminAndAReason(t *testing.T) {
	admin, db := newAPI(t)
	ctx := context.Background()
	sup := admin.loginAs(db, index.RoleSupervisor)
	var offs [2]index.Officer
	for i := range offs {
		var err error
		if offs[i], err = db.CreateOfficer(ctx, index.Officer{Badge: fmt.Sprint("41", i), Name: fmt.Sprint("Officer ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	dev, err := db.CreateDevice(ctx, index.Device{Serial: "CAM-REBIND", Secret: "camera-secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := db.CreateRecording(ctx, index.Recording{DeviceID: dev.ID, StartedAt: time.Now().Add(-time.Minute)}, "")
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/recordings/" + rec.ID.String() + "/officer"
	bind := func(o index.Officer, reason string) string {
		return fmt.Sprintf(`{"officer_id":%q,"reason":%q}`, o.ID, reason)
	}
	steps := []struct {
		name   string
		client apiClient
		body   string
		code   int
		holder index.Officer // who the recording is bound to afterwards
		errHas string
	}{
		{"bind without reason", sup, bind(offs[0], " "), 400, index.Officer{}, "reason"},
		{"supervisor binds the unbound", sup, bind(offs[0], "no check-out at shift start"), 200, offs[0], ""},
		{"supervisor re-binds", sup, bind(offs[1], "wrong officer"), 403, offs[0], "only an admin"},
		{"admin re-binds without reason", admin, bind(offs[1], ""), 400, offs[0], "reason"},
		{"admin re-binds", admin, bind(offs[1], "camera swapped between officers"), 200, offs[1], ""},
		{"supervisor binds to the officer it has: nothing changes", sup, bind(offs[1], "again"), 200, offs[1], ""},
	}
	for _, st := range steps {
		code, body, _ := st.client.do("POST", path, st.body)
		if code != st.code || !strings.Contains(fmt.Sprint(body["error"]), st.errHas) {
			t.Fatalf("%s: %d %v, want %d with %q", st.name, code, body, st.code, st.errHas)
		}
		got, err := db.Recording(ctx, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if (st.holder.ID == uuid.Nil) != (got.OfficerID == nil) || got.OfficerID != nil && *got.OfficerID != st.holder.ID {
			t.Fatalf("%s: bound to %v, want %v", st.name, got.OfficerID, st.holder.ID)
		}
	}
	events, err := db.AuditEvents(ctx, index.AuditFilter{RecordingID: &rec.ID})
	if err != nil {
		t.Fatal(err)
	}
	var binds []map[string]any
	for _, e := range events {
		if e.Action == "recording.bind" {
			binds = append(binds, e.Details)
		}
	}
	if hist, err := db.Bindings(ctx, rec.ID); err != nil || len(hist) != 2 {
		t.Fatalf("binding history = %+v %v", hist, err)
	}
	if len(binds) != 2 || binds[0]["previous_officer"] != "" || binds[1]["previous_officer"] != offs[0].ID.String() ||
		binds[1]["officer"] != offs[1].ID.String() || binds[1]["reason"] != "camera swapped between officers" {
		t.Fatalf("recording.bind events = %v", binds)
	}
}
