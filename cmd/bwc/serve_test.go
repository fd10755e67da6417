package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// testConfig is the platform on the test services: a fresh database and
// bucket, everything on free loopback ports, a private spool.
func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := defaultConfig()
	cfg.DatabaseURL = storagetest.DatabaseURL(t)
	b := storagetest.BlobConfig(t)
	cfg.S3Endpoint, cfg.S3AccessKey, cfg.S3SecretKey, cfg.S3Bucket = b.Endpoint, b.AccessKey, b.SecretKey, b.Bucket
	cfg.HTTPAddr, cfg.RTSPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.WebRTCUDPAddr, cfg.WebRTCTCPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SpoolDir = t.TempDir()
	cfg.UploadDir = t.TempDir()
	cfg.SigningKey = filepath.Join(t.TempDir(), "key.pem")
	cfg.ReconnectGrace = time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startPlatform runs the wired platform until the test ends.
func startPlatform(t *testing.T, cfg Config) *platform {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := build(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("platform: %v", err)
		}
	})
	return p
}

// camPublish runs ffmpeg as a camera: passes of the sample in real time.
func camPublish(t *testing.T, p *platform, serial string, passes int) error {
	t.Helper()
	url := "rtsp://" + serial + ":camera-secret-1@" + p.ingest.Addr() + "/live/" + serial
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", strconv.Itoa(passes-1), "-i", mediatest.Path(),
		"-c:v", "copy", "-c:a", "aac", "-f", "rtsp", "-rtsp_transport", "tcp", url).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ffmpeg: %v\n%s", err, out)
	}
	return nil
}

// archivedRecording waits until the device's recording has ended and is
// entirely in the archive.
func archivedRecording(t *testing.T, p *platform, dev index.Device) index.Recording {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		recs, err := p.db.Recordings(ctx, index.RecordingFilter{DeviceID: &dev.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 1 && recs[0].Status == index.RecordingEnded && p.archive.SpoolBytes() == 0 {
			return recs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording not archived: %+v, spool %d bytes", recs, p.archive.SpoolBytes())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCameraToArchive: the wired platform, with ffmpeg as the camera. The
// recording lands in MinIO and the index, bound to the officer and linked
// to the incident; its init segment and media segments, concatenated,
// decode for the full duration; bwc verify finds it intact.
func TestCameraToArchive(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	p := startPlatform(t, cfg)

	dev, err := p.db.CreateDevice(ctx, index.Device{Serial: "CAM-E2E-1", Secret: "camera-secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	off, err := p.db.CreateOfficer(ctx, index.Officer{Badge: "4001", Name: "Chen Liu"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.db.CheckOut(ctx, dev.ID, off.ID, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	inc, err := p.db.CreateIncident(ctx, index.Incident{Number: "110-E2E", OpenedAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.db.Assign(ctx, inc.ID, off.ID, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}

	// 3 passes of the 2 s sample, in real time, as a camera sends
	if err := camPublish(t, p, "CAM-E2E-1", 3); err != nil {
		t.Fatal(err)
	}
	rec := archivedRecording(t, p, dev)
	if rec.OfficerID == nil || *rec.OfficerID != off.ID {
		t.Fatalf("recording not bound to the officer: %+v", rec)
	}
	links, err := p.db.RecordingLinks(ctx, rec.ID, false)
	if err != nil || len(links) != 1 || links[0].IncidentID != inc.ID {
		t.Fatalf("links = %+v %v", links, err)
	}

	// init + segments, concatenated, decode for the whole duration
	inits, err := p.db.InitSegments(ctx, rec.ID)
	if err != nil || len(inits) != 1 {
		t.Fatalf("init segments: %d %v", len(inits), err)
	}
	segs, err := p.db.Segments(ctx, rec.ID)
	if err != nil || len(segs) < 2 {
		t.Fatalf("segments: %d %v", len(segs), err)
	}
	var whole bytes.Buffer
	keys := []string{inits[0].Key}
	for _, s := range segs {
		keys = append(keys, s.Key)
	}
	for _, k := range keys {
		o, err := p.blobs.Client().GetObject(ctx, p.blobs.Bucket(), k, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(&whole, o); err != nil {
			t.Fatalf("read %s: %v", k, err)
		}
		o.Close()
	}
	file := filepath.Join(t.TempDir(), "recording.mp4")
	if err := os.WriteFile(file, whole.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", file, "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("decoding the archived recording: %v\n%s", err, out)
	}
	out, err = exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatal(err)
	}
	dur, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || dur < 5.5 || dur > 6.5 {
		t.Fatalf("archived duration = %q, want about 6 s", out)
	}

	// bwc verify finds it intact
	var report bytes.Buffer
	args := []string{"-database-url", cfg.DatabaseURL, "-s3-endpoint", cfg.S3Endpoint, "-s3-access-key", cfg.S3AccessKey,
		"-s3-secret-key", cfg.S3SecretKey, "-s3-bucket", cfg.S3Bucket, "-recording", rec.ID.String()}
	if err := verify(ctx, args, &report); err != nil || !strings.Contains(report.String(), "OK") {
		t.Fatalf("bwc verify: %v\n%s", err, report.String())
	}
}
