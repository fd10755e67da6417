package storagetest

import (
	"syscall"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/media"
)

// CPUTime is the CPU time (user + system, every thread) the process has
// used so far.
func CPUTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportPerVideoSecond reports a media benchmark's cost per second of
// video processed: the process CPU time spent since cpuStart (which, for
// one camera, is the cores that camera costs) as cpu-ns/video-s, and the
// wall time (fsync waits included) as wall-ns/video-s. video is the media
// duration the benchmark processed in all b.N iterations.
func ReportPerVideoSecond(b *testing.B, cpuStart time.Duration, video time.Duration) {
	b.Helper()
	if video <= 0 {
		return
	}
	cpu := CPUTime(b) - cpuStart
	b.ReportMetric(float64(cpu)/video.Seconds(), "cpu-ns/video-s")
	b.ReportMetric(float64(b.Elapsed())/video.Seconds(), "wall-ns/video-s")
}

// Replay plays frames (a capture of length dur) again and again as one
// endless recording starting at start: pass i has every timestamp shifted
// by i capture lengths. Two slices of frame values are reused in turn (a
// consumer holds on to at most the previous pass's last frames), so that
// a benchmark allocates nothing per frame.
type Replay struct {
	src    []*media.Frame
	dur    time.Duration
	start  time.Time
	passes [2][]media.Frame
}

// NewReplay prepares the passes of frames.
func NewReplay(frames []*media.Frame, dur time.Duration, start time.Time) *Replay {
	return &Replay{src: frames, dur: dur, start: start,
		passes: [2][]media.Frame{make([]media.Frame, len(frames)), make([]media.Frame, len(frames))}}
}

// Pass hands pass i's frames to write in order.
func (r *Replay) Pass(i int, write func(*media.Frame)) {
	buf := r.passes[i%2]
	off := time.Duration(i) * r.dur
	for j, f := range r.src {
		buf[j] = *f
		buf[j].PTS += off
		buf[j].DTS += off
		buf[j].Wall = r.start.Add(buf[j].PTS)
		write(&buf[j])
	}
}

// Bytes is the media one pass carries.
func (r *Replay) Bytes() int {
	n := 0
	for _, f := range r.src {
		n += f.Size()
	}
	return n
}
