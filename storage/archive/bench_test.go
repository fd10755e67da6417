package archive

import (
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
	w, err := spool.Open(cfg.SpoolDir, spool.RecMeta{Recording: info.RecordingID, StartedAt: start, DeviceSerial: info.DeviceSerial}, a.kickUploader)
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
