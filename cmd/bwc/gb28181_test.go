package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/gb28181/gbtest"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
)

// TestGB28181DeviceToArchive: the wired platform with GB/T 28181 on. A
// simulated body camera registers over TCP with digest, keeps alive,
// answers the Catalog query and the INVITE, and sends gbtest.Seconds of
// H.264 + G.711 in a PS stream over TCP (passive); the recording (source
// gb28181) is bound to the officer wearing the camera, archived (the init
// and media segments decode for the stream's duration) and bwc verify
// finds it intact.
func TestGB28181DeviceToArchive(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.GBSIPAddr, cfg.GBMediaAddr = "127.0.0.1:0", "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p := startPlatform(t, cfg)
	const gbID = "34020000001320000101"
	dev, err := p.db.CreateDevice(ctx, index.Device{Serial: "GB-E2E-1", Secret: cameraSecret, GBID: gbID})
	if err != nil {
		t.Fatal(err)
	}
	off, err := p.db.CreateOfficer(ctx, index.Officer{Badge: "4101", Name: "Wu Gang"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.db.CheckOut(ctx, dev.ID, off.ID, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	inc, err := p.db.CreateIncident(ctx, index.Incident{Number: "110-GB-E2E", OpenedAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.db.Assign(ctx, inc.ID, off.ID, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}

	cam := gbtest.NewDevice(t, p.gb.SIPAddr(), cfg.GBID, cfg.GBDomain, gbID, cameraSecret, "TCP")
	if code, err := cam.Register(3600); err != nil || code != 200 {
		t.Fatalf("register: %d %v", code, err)
	}
	cam.KeepAlive(time.Second)
	// the stream ends after gbtest.Seconds: the recording waits for the
	// camera; unregistered, it is not INVITEd again and the recording ends
	mediatest.EventuallyWithin(t, (gbtest.Seconds+30)*time.Second, "the stream sent and ended", func() bool {
		l := p.ingest.Live()
		return len(l) == 1 && l[0].Status == index.RecordingReconnecting
	})
	if code, err := cam.Register(0); err != nil || code != 200 {
		t.Fatalf("unregister: %d %v", code, err)
	}
	rec := archivedRecording(t, p, dev)
	if rec.Source != index.SourceGB || rec.OfficerID == nil || *rec.OfficerID != off.ID || rec.VideoCodec != "H264" || rec.AudioCodec != "PCMA" {
		t.Fatalf("recording: source %s officer %v video %s audio %s", rec.Source, rec.OfficerID, rec.VideoCodec, rec.AudioCodec)
	}

	links, err := p.db.RecordingLinks(ctx, rec.ID, false)
	if err != nil || len(links) != 1 || links[0].IncidentID != inc.ID {
		t.Fatalf("links of the GB/T 28181 recording = %+v %v, want the officer's incident", links, err)
	}

	whole := archivedMedia(t, p, rec.ID, 1)
	want := time.Duration(gbtest.Seconds) * time.Second
	dur := mediatest.DecodeDuration(t, whole.Bytes())
	if dur < want-time.Second || dur > want+500*time.Millisecond {
		t.Fatalf("archived duration = %v, want about %v", dur, want)
	}
	t.Logf("archived: ffprobe decodes %v of %v sent", dur, want)

	var report bytes.Buffer
	args := []string{"-database-url", cfg.DatabaseURL, "-s3-endpoint", cfg.S3Endpoint, "-s3-access-key", cfg.S3AccessKey,
		"-s3-secret-key", cfg.S3SecretKey, "-s3-bucket", cfg.S3Bucket, "-recording", rec.ID.String(), "-signing-key", cfg.SigningKey}
	if err := verify(ctx, args, &report); err != nil || !strings.Contains(report.String(), "OK") {
		t.Fatalf("bwc verify: %v\n%s", err, report.String())
	}
}
