package relay

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
)

func TestRTPTime(t *testing.T) {
	for _, tc := range []struct {
		pts   time.Duration
		clock int64
		want  uint32
	}{
		{0, 90000, 0},
		{time.Second, 90000, 90000},
		{1500 * time.Millisecond, 48000, 72000},
		{time.Second / 3, 8000, 2666},
		// 30 hours: the product in nanoseconds would overflow int64 (at about 28 h for 90 kHz)
		{30 * time.Hour, 90000, uint32(uint64(30*3600*90000) % (1 << 32))},
		{30*time.Hour + time.Second/2, 90000, uint32(uint64(30*3600*90000+45000) % (1 << 32))},
	} {
		if got := rtpTime(tc.pts, tc.clock); got != tc.want {
			t.Errorf("rtpTime(%v, %d) = %d, want %d", tc.pts, tc.clock, got, tc.want)
		}
	}
}

func TestNTPTime(t *testing.T) {
	for _, tc := range []struct {
		at   time.Time
		want uint64
	}{
		{time.Unix(0, 0), 2208988800 << 32},
		{time.Unix(1, 500_000_000), (2208988801 << 32) | 1<<31},
		{time.Unix(1_764_547_200, 250_000_000), (1_764_547_200+2208988800)<<32 | 1<<30},
	} {
		if got := ntpTime(tc.at); got != tc.want {
			t.Errorf("ntpTime(%v) = %#x, want %#x", tc.at, got, tc.want)
		}
	}
}

// TestSenderReports: the relay sends the browser RTCP sender reports for
// the video track, about once a second, with the track's SSRC, counts
// that grow, the wall-clock time, and an RTP time on the packets'
// timeline.
func TestSenderReports(t *testing.T) {
	src := &streams{m: map[uuid.UUID]*media.Stream{}}
	r := newRelay(t, src)
	id, st := liveSample(t, src)
	awaitVideo(t, st, 5)
	b, _ := watch(t, r, id)
	reports := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.video.reports)
	}
	mediatest.Eventually(t, "three sender reports", func() bool { return reports() >= 3 })
	b.mu.Lock()
	defer b.mu.Unlock()
	srs, ssrc, ts := b.video.reports, b.video.ssrc, b.video.ts
	now := time.Now()
	for i, sr := range srs {
		if sr.SSRC != ssrc || sr.PacketCount == 0 || sr.OctetCount < sr.PacketCount {
			t.Fatalf("report %d: %+v (video SSRC %d)", i, sr, ssrc)
		}
		if i > 0 && (sr.PacketCount <= srs[i-1].PacketCount || sr.NTPTime <= srs[i-1].NTPTime) {
			t.Fatalf("report %d does not follow %d: %+v after %+v", i, i-1, sr, srs[i-1])
		}
	}
	last := srs[len(srs)-1]
	if d := time.Duration(int64(ntpTime(now)-last.NTPTime) >> 32 * int64(time.Second)); d < 0 || d > 5*time.Second {
		t.Fatalf("last report's NTP time is %v before now", d)
	}
	// the report's RTP time is on the video's 90 kHz timeline, near the
	// latest packet's (its wall-clock mapping is set by the first frame the
	// feed sent, which may be up to a GOP older than real time)
	if d := int32(last.RTPTime - ts); d < -90000/2 || d > 5*90000 {
		t.Fatalf("report's RTP time %d vs latest packet's %d: %d ticks apart", last.RTPTime, ts, d)
	}
	// and it spans the wall-clock time between reports at 90 kHz
	first := srs[0]
	wall := float64(last.NTPTime-first.NTPTime) / (1 << 32)
	if ticks := float64(last.RTPTime - first.RTPTime); ticks < wall*90000*0.95 || ticks > wall*90000*1.05 {
		t.Fatalf("RTP time advanced %.0f ticks in %.2f s between reports", ticks, wall)
	}
}
