package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/gb28181/gbtest"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
)

// TestGB28181DeviceLiveView: the live view of a GB/T 28181 camera through
// the wired platform. A simulated body camera registers over TCP and sends
// H.264 + G.711 in a PS stream; a supervisor of the officer's unit signs in
// and a WebRTC viewer (the load command's pion WHEP viewer, what the wall's
// tiles do in the browser) receives the recording's video packets. The
// device is INVITEd again soon after its short stream ends, and the grace
// window is long, so the recording stays live while the viewer connects.
func TestGB28181DeviceLiveView(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.GBSIPAddr, cfg.GBMediaAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.ReconnectGrace, cfg.GBRetryInterval = 30*time.Second, time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p := startPlatform(t, cfg)
	const gbID = "34020000001320000102"
	dev, err := p.db.CreateDevice(ctx, index.Device{Serial: "GB-LIVE-1", Secret: cameraSecret, GBID: gbID})
	if err != nil {
		t.Fatal(err)
	}
	off, err := p.db.CreateOfficer(ctx, index.Officer{Badge: "4102", Name: "Zhao Lei", Unit: "Patrol 7"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.db.CheckOut(ctx, dev.ID, off.ID, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.db.CreateUser(ctx, index.User{Login: "sup-gb", Role: index.RoleSupervisor, Unit: "Patrol 7"}, "long-enough-password"); err != nil {
		t.Fatal(err)
	}

	cam := gbtest.NewDevice(t, p.gb.SIPAddr(), cfg.GBID, cfg.GBDomain, gbID, cameraSecret, "TCP")
	if code, err := cam.Register(3600); err != nil || code != 200 {
		t.Fatalf("register: %d %v", code, err)
	}
	cam.KeepAlive(time.Second)
	mediatest.Eventually(t, "the camera's recording live", func() bool {
		l := p.ingest.Live()
		return len(l) == 1 && l[0].Status == index.RecordingLive
	})
	rec := p.ingest.Live()[0].RecordingID

	ws, err := webLogin("http://"+p.web.Addr(), "sup-gb", "long-enough-password")
	if err != nil {
		t.Fatal(err)
	}
	var got, lost atomic.Uint64
	pc, err := whepViewer(ctx, ws, rec, &got, &lost)
	if err != nil {
		t.Fatalf("WHEP offer: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	mediatest.Eventually(t, "the viewer receives the GB/T 28181 camera's video", func() bool { return got.Load() >= 50 })
	t.Logf("viewer: %d video packets, %d lost", got.Load(), lost.Load())
}
