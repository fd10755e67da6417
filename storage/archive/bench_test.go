package archive

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/internal/spool"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// BenchmarkArchivePath measures what the archive spends per camera: the
// committed capture (720p H.264 at 2 Mbit/s, a keyframe every second, with
// AAC) written frame by frame through the recorder, the segmenter and the
// spool writer into fsynced fragment files on the local disk, with the
// segment and fragment lengths `bwc serve` uses. One op is one pass of the
// capture (2 s of media); cpu-ns/video-s is the process CPU per second of
// video, i.e. the cores one camera costs times 1e9 (upload not included:
// no MinIO here).
func BenchmarkArchivePath(b *testing.B) {
	s := mediatest.Load(b)
	cfg := testConfig(b)
	cfg.SegmentDuration, cfg.FragmentDuration = 4*time.Second, time.Second // cmd/bwc/config.go's defaults
	a, err := New(cfg, nil, nil, sealKey, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	info := media.Info{RecordingID: uuid.New(), DeviceSerial: "bench", StartedAt: start, Tracks: []*media.Track{s.Video, s.Audio}}
	w, err := spool.Open(cfg.SpoolDir, spool.RecMeta{Recording: info.RecordingID, StartedAt: start, DeviceSerial: info.DeviceSerial}, a.kickDir)
	if err != nil {
		b.Fatal(err)
	}
	rc := a.newRecorder(info, w, testLogger(b))
	replay := storagetest.NewReplay(s.Frames, s.Duration, start)
	b.ReportAllocs()
	b.SetBytes(int64(replay.Bytes()))
	cpu := storagetest.CPUTime(b)
	b.ResetTimer()
	for i := range b.N {
		replay.Pass(i, rc.write)
	}
	b.StopTimer()
	storagetest.ReportPerVideoSecond(b, cpu, time.Duration(b.N)*s.Duration)
	if !rc.failing.IsZero() {
		b.Fatal("spool writes failed during the benchmark")
	}
	rc.finish()
}

// BenchmarkUploaderEvent measures what one uploader event (a sealed
// segment) costs the uploader's loop before a worker takes it, with a spool
// of n live recordings of which one has a segment to upload. "kicked" is
// the loop's path (it looks at the kicked directory); "rescan" is the
// whole-spool scan, which the loop does at start and every ReconcileEvery
// and which, before, it did on every event: the ratio is what an event
// saved, and it grows with the recordings.
func BenchmarkUploaderEvent(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		cfg := testConfig(b)
		a, err := New(cfg, nil, nil, sealKey, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.MkdirAll(cfg.SpoolDir, 0o750); err != nil {
			b.Fatal(err)
		}
		var sealed string
		for i := range n {
			dir := filepath.Join(cfg.SpoolDir, uuid.NewString())
			names := []string{"rec.json", "state.json", "init-0.mp4", "000007.open.json", "000007.m4s"}
			if i == n/2 {
				names, sealed = append(names, "000006.json", "000006.m4s"), dir
			}
			if err := os.Mkdir(dir, 0o750); err != nil {
				b.Fatal(err)
			}
			for _, name := range names {
				if err := os.WriteFile(filepath.Join(dir, name), []byte("{}"), 0o640); err != nil {
					b.Fatal(err)
				}
			}
		}
		for _, path := range []string{"kicked", "rescan"} {
			b.Run(fmt.Sprintf("%s/recordings=%d", path, n), func(b *testing.B) {
				work := make(chan string, 1)
				b.ReportAllocs()
				for b.Loop() {
					todo := map[string]bool{}
					if path == "kicked" {
						a.kickDir(sealed)
						for dir := range a.takeKicked() {
							todo[dir] = true
						}
					} else {
						a.listSpool(todo)
					}
					a.dispatch(work, todo, map[string]bool{}, nil)
					if got := <-work; got != sealed {
						b.Fatalf("dispatched %s, want %s", got, sealed)
					}
				}
			})
		}
	}
}
