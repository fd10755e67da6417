package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
)

// Service is the lifecycle every component of the platform shares.
type Service interface {
	Run(ctx context.Context) error
	Close() error
}

// Run runs svc until the test ends, then closes it. When svc has Ready,
// Run returns once it is closed (failing the test if Run fails before).
func Run(tb testing.TB, svc Service) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	stopped := false
	tb.Cleanup(func() {
		cancel()
		if !stopped {
			if err := <-done; err != nil {
				tb.Errorf("run: %v", err)
			}
		}
		svc.Close()
	})
	r, ok := svc.(interface{ Ready() <-chan struct{} })
	if !ok {
		return
	}
	select {
	case <-r.Ready():
	case err := <-done:
		stopped = true
		tb.Fatalf("run ended before ready: %v", err)
	}
}

// NewRecording registers a device and a recording of the sample starting
// at start and returns the stream's description.
func NewRecording(tb testing.TB, db *index.DB, s *mediatest.Sample, start time.Time) media.Info {
	tb.Helper()
	ctx := context.Background()
	serial := "CAM-" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
	dev, err := db.CreateDevice(ctx, index.Device{Serial: serial, Secret: "camera-secret-1"})
	if err != nil {
		tb.Fatal(err)
	}
	id := uuid.Must(uuid.NewV7())
	if _, err := db.Pool().Exec(ctx, `INSERT INTO recordings (id, device_id, started_at, video_codec, audio_codec, width, height)
		VALUES ($1, $2, $3, 'H264', 'AAC', $4, $5)`, id, dev.ID, start, s.Video.Width, s.Video.Height); err != nil {
		tb.Fatal(err)
	}
	return media.Info{RecordingID: id, DeviceID: dev.ID, DeviceSerial: serial, StartedAt: start, Tracks: []*media.Track{s.Video, s.Audio}}
}

// Feed writes frames to the stream as fast as it takes them.
func Feed(st *media.Stream, frames []*media.Frame) {
	for _, f := range frames {
		st.Write(f)
	}
}

// WaitSpoolEmpty waits until the archive has moved a recording out of its
// spool (everything stored and indexed).
func WaitSpoolEmpty(tb testing.TB, spoolDir string, rec uuid.UUID) {
	tb.Helper()
	mediatest.Eventually(tb, "recording "+rec.String()+" out of the spool", func() bool {
		_, err := os.Stat(filepath.Join(spoolDir, rec.String()))
		return errors.Is(err, os.ErrNotExist)
	})
}

// Download concatenates the init segment and every media segment of a
// recording as stored in the bucket.
func Download(tb testing.TB, db *index.DB, store *blob.Store, rec uuid.UUID) []byte {
	tb.Helper()
	ctx := context.Background()
	inits, err := db.InitSegments(ctx, rec)
	if err != nil || len(inits) != 1 {
		tb.Fatalf("init segments %v: %v", inits, err)
	}
	segs, err := db.Segments(ctx, rec)
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	for _, k := range append([]string{inits[0].Key}, Keys(segs)...) {
		o, err := store.Client().GetObject(ctx, store.Bucket(), k, minio.GetObjectOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		_, err = io.Copy(&buf, o)
		o.Close()
		if err != nil {
			tb.Fatalf("get %s: %v", k, err)
		}
	}
	return buf.Bytes()
}

// Keys lists the object keys of segments.
func Keys(segs []index.Segment) []string {
	var out []string
	for _, s := range segs {
		out = append(out, s.Key)
	}
	return out
}
