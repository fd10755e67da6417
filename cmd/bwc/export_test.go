package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
)

// session is a logged-in browser-like client of the wired platform.
type session struct {
	t      *testing.T
	base   string
	cookie *http.Cookie
	csrf   string
}

func loginAs(t *testing.T, base, login, password string) *session {
	t.Helper()
	res, err := http.Post(base+"/api/login", "application/json", strings.NewReader(`{"login":"`+login+`","password":"`+password+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		CSRF string `json:"csrf_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != 200 {
		t.Fatalf("login %s: %d %v", login, res.StatusCode, err)
	}
	return &session{t: t, base: base, cookie: res.Cookies()[0], csrf: body.CSRF}
}

// send makes a request as the session (its cookie and CSRF token) to a
// path of the server or a full URL, with headers h, and returns the
// response and its body, read.
func (s *session) send(method, path string, body io.Reader, h map[string]string) (*http.Response, []byte) {
	s.t.Helper()
	if !strings.HasPrefix(path, "http") {
		path = s.base + path
	}
	req, err := http.NewRequest(method, path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	req.AddCookie(s.cookie)
	req.Header.Set("X-CSRF-Token", s.csrf)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// do sends a JSON API request and decodes a successful answer into out (a
// *[]byte gets the raw body); it returns the status code.
func (s *session) do(method, path, body string, out any) int {
	s.t.Helper()
	res, b := s.send(method, path, strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
	if w, ok := out.(*[]byte); ok {
		*w = b
	} else if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return res.StatusCode
}

// TestExportWithApproval: a reviewer of the officers' unit requests an
// incident's evidence package, a reviewer of another unit is refused, a
// supervisor cannot approve their own request; another supervisor
// approves, the package is built and downloads; it verifies offline with
// the platform's public key, and its playable MP4 plays.
func TestExportWithApproval(t *testing.T) {
	ctx := context.Background()
	p, inc, rec := exportFixture(t)
	base := "http://" + p.web.Addr()
	rev, other := loginAs(t, base, "rev-p3", "long-enough-password"), loginAs(t, base, "rev-p9", "long-enough-password")
	supA, supB := loginAs(t, base, "sup-a", "long-enough-password"), loginAs(t, base, "sup-b", "long-enough-password")

	req := `{"incident_id":"` + inc.ID.String() + `","reason":"prosecutor request, case 2026-17"}`
	if code := other.do("POST", "/api/exports", req, nil); code != 403 {
		t.Fatalf("reviewer of another unit: %d, want 403", code)
	}
	if code := rev.do("POST", "/api/exports", `{"incident_id":"`+inc.ID.String()+`"}`, nil); code != 400 {
		t.Fatalf("no reason: %d, want 400", code)
	}
	var own index.Export
	if code := supA.do("POST", "/api/exports", req, &own); code != 201 {
		t.Fatalf("supervisor request: %d", code)
	}
	if code := supA.do("POST", "/api/exports/"+own.ID.String()+"/approve", `{}`, nil); code != 403 {
		t.Fatalf("self-approval: %d, want 403 (four eyes)", code)
	}
	var e index.Export
	if code := rev.do("POST", "/api/exports", req, &e); code != 201 || e.Status != index.ExportRequested {
		t.Fatalf("request: %d %+v", code, e)
	}
	if code := rev.do("POST", "/api/exports/"+e.ID.String()+"/approve", `{}`, nil); code != 403 {
		t.Fatalf("reviewer approving: %d, want 403", code)
	}
	if code := rev.do("GET", "/api/exports/"+e.ID.String()+"/download", "", nil); code != 409 {
		t.Fatalf("download before approval: %d, want 409", code)
	}
	if code := supB.do("POST", "/api/exports/"+e.ID.String()+"/approve", `{"reason":"checked"}`, nil); code != 200 {
		t.Fatalf("approve: %d", code)
	}
	mediatest.Eventually(t, "the export built", func() bool {
		rev.do("GET", "/api/exports/"+e.ID.String(), "", &e)
		if e.Status == index.ExportFailed {
			t.Fatalf("export not built: %+v", e)
		}
		return e.Status == index.ExportReady
	})
	checkPackage(t, rev, e.ID.String(), rec.ID.String())
	events, _ := p.db.AuditEvents(ctx, index.AuditFilter{IncidentID: &inc.ID, Limit: 100})
	var actions []string
	for _, ev := range events {
		if ev.ObjectID == e.ID.String() {
			actions = append(actions, ev.Action)
		}
	}
	if got := strings.Join(actions, ","); got != "export.request,export.approve,export.download" {
		t.Fatalf("audit of the export = %s", got)
	}
}

// exportFixture is the platform with a camera checked out to an officer of
// Patrol 3 assigned to an incident, the camera's 4 s recording archived,
// reviewers of Patrol 3 and Patrol 9 and two supervisors.
func exportFixture(t *testing.T) (*platform, index.Incident, index.Recording) {
	t.Helper()
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.ExportDir = t.TempDir()
	p := startPlatform(t, cfg)
	dev := platformDevice(t, p, "CAM-EXP-1")
	off, _ := p.db.CreateOfficer(ctx, index.Officer{Badge: "7001", Name: "Sun Qi", Unit: "Patrol 3"})
	if _, err := p.db.CheckOut(ctx, dev.ID, off.ID, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	inc, _ := p.db.CreateIncident(ctx, index.Incident{Number: "110-EXP", OpenedAt: time.Now().Add(-time.Hour)})
	if _, err := p.db.Assign(ctx, inc.ID, off.ID, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, u := range []index.User{{Login: "rev-p3", Role: index.RoleReviewer, Unit: "Patrol 3"}, {Login: "rev-p9", Role: index.RoleReviewer, Unit: "Patrol 9"},
		{Login: "sup-a", Role: index.RoleSupervisor}, {Login: "sup-b", Role: index.RoleSupervisor}} {
		if _, err := p.db.CreateUser(ctx, u, "long-enough-password"); err != nil {
			t.Fatal(err)
		}
	}
	if err := platformCamera(t, p, dev.Serial, 2).wait(); err != nil {
		t.Fatal(err)
	}
	return p, inc, archivedRecording(t, p, dev)
}

// checkPackage downloads the export as the session: it verifies with the
// platform's public key, online and offline (bwc verify -package), and
// its playable copy of the recording plays for the recording's 4 s.
func checkPackage(t *testing.T, s *session, exportID, recordingID string) {
	t.Helper()
	ctx := context.Background()
	var zipBytes, pem []byte
	if code := s.do("GET", "/api/exports/"+exportID+"/download", "", &zipBytes); code != 200 {
		t.Fatalf("download: %d", code)
	}
	if code := s.do("GET", "/api/public-key", "", &pem); code != 200 {
		t.Fatalf("public key: %d", code)
	}
	pub, err := export.ParsePublicKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := export.Verify(bytes.NewReader(zipBytes), int64(len(zipBytes)), pub)
	if err != nil || !rep.OK() {
		t.Fatalf("package does not verify: %+v %v", rep, err)
	}
	// offline, as a prosecutor would: bwc verify -package
	dir := t.TempDir()
	zipPath, keyPath := filepath.Join(dir, "evidence.zip"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(zipPath, zipBytes, 0o600)
	_ = os.WriteFile(keyPath, pem, 0o600)
	var out bytes.Buffer
	if err := verify(ctx, []string{"-package", zipPath, "-public-key", keyPath}, &out); err != nil {
		t.Fatalf("bwc verify -package: %v\n%s", err, out.String())
	}
	// the playable copy plays for the recording's length
	mp4 := filepath.Join(dir, "playable.mp4")
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil {
		t.Fatal(err)
	}
	zf, err := zr.Open("recordings/" + recordingID + "/playable-0.mp4")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(zf)
	_ = os.WriteFile(mp4, b, 0o600)
	if d := ffprobeDuration(t, mp4); d < 3.5 || d > 4.5 {
		t.Fatalf("playable MP4 lasts %.2f s, want about 4", d)
	}
}
