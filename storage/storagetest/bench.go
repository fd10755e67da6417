package storagetest

import (
	"syscall"
	"testing"
	"time"
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
