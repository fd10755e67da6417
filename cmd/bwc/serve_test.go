package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
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
	owner := storagetest.DatabaseURL(t)
	// the server's login; the schema owner migrates at start
	cfg.DatabaseURL, cfg.MigrateURL = storagetest.AppURL(t, owner), owner
	// created as the administrator; the platform works as the tests' least-privilege identity
	b := storagetest.NewBucket(t)
	cfg.S3Endpoint, cfg.S3AccessKey, cfg.S3SecretKey, cfg.S3Bucket = b.Endpoint, b.AccessKey, b.SecretKey, b.Bucket
	cfg.RetentionMode = "governance" // test buckets: the administrator can clean up
	cfg.HTTPAddr, cfg.RTSPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.WebRTCUDPAddr, cfg.WebRTCTCPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SpoolDir = t.TempDir()
	cfg.UploadDir = t.TempDir()
	cfg.SigningKey = filepath.Join(t.TempDir(), "key.pem")
	cfg.ReconnectGrace = time.Second
	cfg.MFARequiredRoles = "" // the tests log in as admins and supervisors with a password alone, unless a test is about the second factor
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
	select {
	case <-p.ready: // every service listens (addresses known)
	case err := <-done:
		cancel()
		t.Fatalf("platform: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("platform: %v", err)
		}
	})
	return p
}

// platformCamera starts ffmpeg as the device serial's camera (secret
// camera-secret-1) publishing passes of the sample to the platform.
func platformCamera(t *testing.T, p *platform, serial string, passes int) *camera {
	t.Helper()
	return startCamera(t, p.ingest.Addr(), serial, cameraSecret, passes)
}

// cameraSecret is the digest secret of the tests' devices.
const cameraSecret = "camera-secret-1"

// platformDevice registers a camera with the platform's database, with
// cameraSecret, for platformCamera to publish as.
func platformDevice(t *testing.T, p *platform, serial string) index.Device {
	t.Helper()
	dev, err := p.db.CreateDevice(context.Background(), index.Device{Serial: serial, Secret: cameraSecret})
	if err != nil {
		t.Fatal(err)
	}
	return dev
}

// archivedRecording waits until the device's recording has ended and is
// entirely in the archive.
func archivedRecording(t *testing.T, p *platform, dev index.Device) index.Recording {
	t.Helper()
	ctx := context.Background()
	var recs []index.Recording
	defer func() {
		if t.Failed() {
			t.Logf("recordings %+v, spool %d bytes", recs, p.archive.SpoolBytes())
		}
	}()
	mediatest.Eventually(t, "the recording ended and archived", func() bool {
		var err error
		if recs, err = p.db.Recordings(ctx, index.RecordingFilter{DeviceID: &dev.ID}); err != nil {
			t.Fatal(err)
		}
		return len(recs) == 1 && recs[0].Status == index.RecordingEnded && p.archive.SpoolBytes() == 0
	})
	return recs[0]
}

// TestCameraToArchive: the wired platform, with ffmpeg as the camera. The
// recording lands in MinIO and the index, bound to the officer and linked
// to the incident; its init segment and media segments, concatenated,
// decode for the full duration; bwc verify finds it intact.
func TestCameraToArchive(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	p := startPlatform(t, cfg)

	dev := platformDevice(t, p, "CAM-E2E-1")
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
	if err := platformCamera(t, p, "CAM-E2E-1", 3).wait(); err != nil {
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
	whole := archivedMedia(t, p, rec.ID, 2)
	if dur := mediatest.DecodeDuration(t, whole.Bytes()); dur < 5500*time.Millisecond || dur > 6500*time.Millisecond {
		t.Fatalf("archived duration = %v, want about 6 s", dur)
	}

	// bwc verify finds it intact
	var report bytes.Buffer
	args := []string{"-database-url", cfg.DatabaseURL, "-s3-endpoint", cfg.S3Endpoint, "-s3-access-key", cfg.S3AccessKey,
		"-s3-secret-key", cfg.S3SecretKey, "-s3-bucket", cfg.S3Bucket, "-recording", rec.ID.String(), "-signing-key", cfg.SigningKey}
	if err := verify(ctx, args, &report); err != nil || !strings.Contains(report.String(), "OK") {
		t.Fatalf("bwc verify: %v\n%s", err, report.String())
	}
}

// archivedMedia is a recording's init segment and media segments (at least
// minSegs) read back from the bucket and concatenated: what a player gets.
func archivedMedia(t *testing.T, p *platform, rec uuid.UUID, minSegs int) *bytes.Buffer {
	t.Helper()
	ctx := context.Background()
	inits, err := p.db.InitSegments(ctx, rec)
	if err != nil || len(inits) != 1 {
		t.Fatalf("init segments: %d %v", len(inits), err)
	}
	segs, err := p.db.Segments(ctx, rec)
	if err != nil || len(segs) < minSegs {
		t.Fatalf("segments: %d %v, want at least %d", len(segs), err, minSegs)
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
	return &whole
}
