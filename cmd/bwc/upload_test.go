package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/ingest/upload"
	"github.com/bwcplatform/bwc/storage/index"
)

// tus sends a tus request as a logged-in client of the wired platform.
// A PATCH sends 10 bytes.
func (s *session) tus(method, path string, h map[string]string) *http.Response {
	s.t.Helper()
	body := ""
	if method == http.MethodPatch {
		body = "0123456789"
	}
	hh := map[string]string{"Tus-Resumable": "1.0.0"}
	for k, v := range h {
		hh[k] = v
	}
	res, _ := s.send(method, path, strings.NewReader(body), hh)
	return res
}

// TestUploadGateThroughTheServer: through the real router and auth, an
// upload declaring more than the disk can hold above the reserve is 507; an
// officer cannot see or resume another officer's upload (403) while a
// supervisor can, nor attach one to an incident they were never assigned
// to (403); upload IDs with an encoded "/" or ".." never reach the
// upload folder (a planted upload beside it is neither read nor removed).
func TestUploadGateThroughTheServer(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.UploadDir = filepath.Join(t.TempDir(), "uploads")
	cfg.UploadMinFree = 1 // refuse only what the disk cannot hold at all
	p := startPlatform(t, cfg)
	base := "http://" + p.web.Addr()
	var officers []index.Officer
	for i, name := range []string{"Wu Gang", "He Li"} {
		o, err := p.db.CreateOfficer(ctx, index.Officer{Badge: "77" + strconv.Itoa(i), Name: name})
		if err != nil {
			t.Fatal(err)
		}
		officers = append(officers, o)
	}
	for i, u := range []index.User{{Login: "off-wu", Role: index.RoleOfficer, OfficerID: &officers[0].ID},
		{Login: "off-he", Role: index.RoleOfficer, OfficerID: &officers[1].ID}, {Login: "sup-up", Role: index.RoleSupervisor}} {
		if _, err := p.db.CreateUser(ctx, u, "long-enough-password"); err != nil {
			t.Fatal(i, err)
		}
	}
	wu, he, sup := loginAs(t, base, "off-wu", "long-enough-password"), loginAs(t, base, "off-he", "long-enough-password"),
		loginAs(t, base, "sup-up", "long-enough-password")
	md := "filename " + base64.StdEncoding.EncodeToString([]byte("a.mp4"))

	// an incident only Wu is assigned to: He may not attach to it
	inc, err := p.db.CreateIncident(ctx, index.Incident{Number: "110-WU", OpenedAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.db.Assign(ctx, inc.ID, officers[0].ID, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	withInc := md + ",incident " + base64.StdEncoding.EncodeToString([]byte(inc.Number))
	if res := he.tus("POST", "/api/uploads/", map[string]string{"Upload-Length": "1000", "Upload-Metadata": withInc}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("an officer attaching to an incident never assigned to them: %d, want 403", res.StatusCode)
	}
	if res := wu.tus("POST", "/api/uploads/", map[string]string{"Upload-Length": "1000", "Upload-Metadata": withInc}); res.StatusCode != http.StatusCreated {
		t.Fatalf("an officer attaching to their incident: %d, want 201", res.StatusCode)
	}

	if res := wu.tus("POST", "/api/uploads/", map[string]string{"Upload-Length": strconv.FormatInt(1<<60, 10), "Upload-Metadata": md}); res.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("an upload larger than the disk: %d", res.StatusCode)
	}
	res := wu.tus("POST", "/api/uploads/", map[string]string{"Upload-Length": "1000", "Upload-Metadata": md})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d", res.StatusCode)
	}
	loc := res.Header.Get("Location")
	path := loc[strings.Index(loc, "/api/uploads/"):]
	patch := map[string]string{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
	for _, c := range []struct {
		who    *session
		method string
		h      map[string]string
		want   int
	}{
		{he, "HEAD", nil, http.StatusForbidden},
		{he, "PATCH", patch, http.StatusForbidden},
		{he, "DELETE", nil, http.StatusForbidden},
		{sup, "HEAD", nil, http.StatusOK},
		{wu, "PATCH", patch, http.StatusNoContent},
	} {
		if res := c.who.tus(c.method, path, c.h); res.StatusCode != c.want {
			t.Fatalf("%s by %v: %d, want %d", c.method, c.who.cookie.Value[:4], res.StatusCode, c.want)
		}
	}
	// IDs that would climb out of the upload folder
	victim := filepath.Join(filepath.Dir(cfg.UploadDir), "victim")
	os.WriteFile(victim+".info", []byte(`{"ID":"victim","Size":10,"Offset":0,"MetaData":{"uploaded_by":"off-wu"},"Storage":{"Type":"filestore","Path":"`+victim+`","InfoPath":"`+victim+`.info"}}`), 0o600)
	os.WriteFile(victim, nil, 0o600)
	for _, id := range []string{"..%2Fvictim", "%2E%2E%2Fvictim", "x%2F..%2F..%2Fvictim"} {
		for _, m := range []string{"HEAD", "PATCH", "DELETE"} {
			res := wu.tus(m, "/api/uploads/"+id, patch)
			if res.StatusCode < 300 || res.StatusCode >= 500 {
				t.Fatalf("%s %s: %d", m, id, res.StatusCode)
			}
		}
	}
	for _, f := range []string{victim, victim + ".info"} {
		if st, err := os.Stat(f); err != nil || f == victim && st.Size() != 0 {
			t.Fatalf("%s touched: %v", f, err)
		}
	}
}

// TestUploadsRefusedAtTheReserveWhileACameraRecords: with the reserve set
// just under the disk's free space, uploads declaring more than the space
// above it are refused 507 again and again while ffmpeg publishes as a
// camera; the camera's recording is archived whole (live recording has
// priority: the spool is never refused).
func TestUploadsRefusedAtTheReserveWhileACameraRecords(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	free, err := upload.FreeSpace(cfg.UploadDir)
	if err != nil {
		t.Fatal(err)
	}
	if free < 1<<30 {
		t.Fatalf("the test needs 1 GiB free on %s, has %d bytes", cfg.UploadDir, free)
	}
	cfg.UploadMinFree = int64(free) - 64<<20 // 64 MiB above the reserve
	p := startPlatform(t, cfg)
	base := "http://" + p.web.Addr()
	dev := platformDevice(t, p, "CAM-RESERVE-1")
	off, err := p.db.CreateOfficer(ctx, index.Officer{Badge: "4101", Name: "Zhao Min"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.db.CheckOut(ctx, dev.ID, off.ID, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.db.CreateUser(ctx, index.User{Login: "off-zhao", Role: index.RoleOfficer, OfficerID: &off.ID}, "long-enough-password"); err != nil {
		t.Fatal(err)
	}
	s := loginAs(t, base, "off-zhao", "long-enough-password")
	md := "filename " + base64.StdEncoding.EncodeToString([]byte("big.mp4"))
	// an upload every second of the camera's 6 s of media, while it
	// publishes (paced by what the camera has sent, not by the clock)
	cam := platformCamera(t, p, "CAM-RESERVE-1", 3)
	refused := 0
	for k := range 5 {
		at := time.Duration(k)*time.Second + 500*time.Millisecond
		mediatest.Eventually(t, fmt.Sprintf("the camera past %v of media", at), func() bool { return cam.sentMedia() >= at })
		res := s.tus("POST", "/api/uploads/", map[string]string{"Upload-Length": strconv.Itoa(512 << 20), "Upload-Metadata": md})
		if res.StatusCode != http.StatusInsufficientStorage {
			t.Fatalf("an upload past the reserve: %d", res.StatusCode)
		}
		refused++
	}
	if err := cam.wait(); err != nil {
		t.Fatal(err)
	}
	rec := archivedRecording(t, p, dev)
	segs, err := p.db.Segments(ctx, rec.ID)
	if err != nil || len(segs) < 2 {
		t.Fatalf("segments: %d %v", len(segs), err)
	}
	var ms int64
	for _, sg := range segs {
		ms += (sg.EndDTS - sg.StartDTS).Milliseconds()
	}
	if ms < 5500 {
		t.Fatalf("archived %d ms of the camera's 6 s (%d segments)", ms, len(segs))
	}
	t.Logf("%d uploads refused 507 while the camera's %d ms were archived in %d segments", refused, ms, len(segs))
}
