package relay

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/bwcplatform/bwc/ingest/media"
)

// BenchmarkFanout: one 2 Mbit/s video frame (8 packets) to 20 viewers:
// the feed's push to each queue and each viewer's header rewrite and
// write. Reported per frame; the relay allocates nothing per packet.
func BenchmarkFanout(b *testing.B) {
	const viewers = 20
	s := &Server{met: newMetrics(nil)}
	vs := make([]*viewer, viewers)
	for i := range vs {
		v := newViewer(s, uuid.New(), Viewer{Name: "bench"}, 256)
		t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, "video", "bench")
		if err != nil {
			b.Fatal(err)
		}
		v.video = t
		vs[i] = v
	}
	payload := make([]byte, maxPayload)
	f := &frame{kind: media.Video, key: true, at: time.Now()}
	for i := 0; i < 8; i++ {
		f.pkts = append(f.pkts, rtp.Packet{Header: rtp.Header{Version: 2, Marker: i == 7}, Payload: payload})
	}
	b.ReportAllocs()
	b.SetBytes(int64(8 * maxPayload * viewers))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, v := range vs {
			v.push(f)
		}
		for _, v := range vs {
			v.tokens = paceBurst // measure the path, not the pacing
			if err := v.flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*8*viewers), "ns/packet")
}
