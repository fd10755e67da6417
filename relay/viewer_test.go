package relay

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/relay/internal/udpbatch"
)

// TestSendInlineOrQueued: the feed writes a frame on its own goroutine
// only when that cannot make it wait; in every other case the frame is
// queued for the viewer's writer, behind what is already queued.
func TestSendInlineOrQueued(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frameOf := func(key bool) *frame {
		f := &frame{kind: media.Video, key: key, size: 2 * 1000}
		for i := 0; i < 2; i++ {
			f.pkts = append(f.pkts, rtp.Packet{Header: rtp.Header{Version: 2}, Payload: make([]byte, 1000)})
		}
		return f
	}
	for _, tc := range []struct {
		name    string
		tcp     bool // ICE-TCP: no UDP address
		queued  bool // a frame is already waiting
		writing bool // the writer goroutine is writing
		tokens  float64
		waitKey bool
		key     bool
		failed  bool
		inline  bool
		n       int // queued after
	}{
		{name: "udp, idle", tokens: paceBurst, inline: true},
		{name: "ice-tcp", tcp: true, tokens: paceBurst, n: 1},
		{name: "behind a queued frame", queued: true, tokens: paceBurst, n: 2},
		{name: "writer busy", writing: true, tokens: paceBurst, n: 1},
		{name: "pacing bucket short", tokens: -1, n: 1},
		{name: "waiting for a keyframe, delta dropped", waitKey: true, tokens: paceBurst, n: 0},
		{name: "waiting for a keyframe, key queued", waitKey: true, key: true, tokens: paceBurst, n: 1},
		{name: "after a failed write", failed: true, tokens: paceBurst, n: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{met: newMetrics(nil), batch: udpbatch.New(c)}
			v := newViewer(s, uuid.New(), Viewer{Name: "t"}, 8)
			tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, "video", "t")
			if err != nil {
				t.Fatal(err)
			}
			v.video = tr
			if !tc.tcp {
				a := netip.MustParseAddrPort("127.0.0.1:9")
				v.remote.Store(&a)
			}
			if tc.queued {
				v.push(frameOf(true))
			}
			if tc.failed {
				v.fail(net.ErrClosed)
			}
			v.waitKey = tc.waitKey
			if tc.writing {
				v.wmu.Lock()
				defer v.wmu.Unlock()
			}
			v.tokens = tc.tokens
			if tc.tokens < 0 { // and no refill before the frame is due (whatever the machine's speed)
				v.last = time.Now().Add(time.Hour)
			}
			before := v.sentPackets.Load()
			v.send(frameOf(tc.key))
			if got := v.sentPackets.Load() - before; (got == 2) != tc.inline || v.n != tc.n {
				t.Fatalf("written inline %d packets, queued %d; want inline %v, queued %d", got, v.n, tc.inline, tc.n)
			}
		})
	}
}
