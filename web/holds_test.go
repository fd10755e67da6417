package web_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestLegalHoldAPI: a reviewer marks a recording of an incident granted
// to them as evidence for a case (not before the grant: 403, audited);
// a second hold is a conflict; only an administrator releases it, with a
// reason; both are in the audit trail and the hold history.
func TestLegalHoldAPI(t *testing.T) {
	ctx := context.Background()
	db := storagetest.NewDB(t)
	opts := testOptions(db)
	opts.Holds = evidence.NewHolder(db, storagetest.NewStore(t), nil)
	s := newServer(t, opts)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	anon := apiClient{t: t, url: ts.URL}
	rev, admin := anon.loginAs(db, index.RoleReviewer), anon.loginAs(db, index.RoleAdmin)
	dev, err := db.CreateDevice(ctx, index.Device{Serial: "CAM-HOLD", Secret: "camera-secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := db.CreateRecording(ctx, index.Recording{DeviceID: dev.ID, StartedAt: time.Now()}, "")
	if err != nil {
		t.Fatal(err)
	}
	base := "/api/recordings/" + rec.ID.String()
	if code, body, _ := rev.do("POST", base+"/hold", `{"case_ref":"C-0"}`); code != 403 {
		t.Fatalf("hold on a recording of no incident granted: %d %v, want 403", code, body)
	}
	inc, err := db.CreateIncident(ctx, index.Incident{Number: "110-HOLD", OpenedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.LinkIncident(ctx, rec.ID, inc.ID, "test", "fixture"); err != nil {
		t.Fatal(err)
	}
	if err := db.GrantIncident(ctx, inc.ID, rev.login(), "test"); err != nil {
		t.Fatal(err)
	}
	for _, st := range []struct {
		name   string
		c      apiClient
		method string
		path   string
		body   string
		code   int
	}{
		{"hold without case or reason", rev, "POST", base + "/hold", `{}`, 400},
		{"hold unknown recording", rev, "POST", "/api/recordings/" + dev.ID.String() + "/hold", `{"case_ref":"C-1"}`, 404},
		{"hold", rev, "POST", base + "/hold", `{"case_ref":"CASE-2026-17","reason":"assault"}`, 201},
		{"hold again", rev, "POST", base + "/hold", `{"case_ref":"CASE-2026-17"}`, 409},
		{"release without reason", admin, "DELETE", base + "/hold", ``, 400},
		{"release", admin, "DELETE", base + "/hold?reason=case+closed", ``, 200},
		{"release again", admin, "DELETE", base + "/hold?reason=again", ``, 404},
	} {
		if code, body, _ := st.c.do(st.method, st.path, st.body); code != st.code {
			t.Fatalf("%s: %d %v, want %d", st.name, code, body, st.code)
		}
	}
	if _, _, hist := rev.do("GET", base+"/holds", ""); len(hist) != 1 || hist[0].(map[string]any)["released_by"] == nil {
		t.Fatalf("hold history = %v", hist)
	}
	events, err := db.AuditEvents(ctx, index.AuditFilter{RecordingID: &rec.ID})
	if err != nil || len(events) != 3 || events[0].Action != "access.refused" || events[1].Action != "evidence.hold" || events[2].Action != "evidence.release" {
		t.Fatalf("audit = %+v %v", events, err)
	}
}
