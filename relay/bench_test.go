package relay

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/relay/internal/udpbatch"
)

// BenchmarkFanout: one 2 Mbit/s video frame (8 packets) to 20 viewers:
// "queued", the feed's push to each queue and each viewer's header
// rewrite and write from its writer; "inline", the feed writing each UDP
// viewer's packets itself (viewer.send). Reported per packet per viewer;
// the relay allocates nothing per packet. The tracks are not bound to a
// peer connection: what is measured is the relay's own path, not pion's
// (BenchmarkSRTPProfiles) or the system call (udpbatch's BenchmarkBurst).
func BenchmarkFanout(b *testing.B) {
	for _, inline := range []bool{false, true} {
		name := "queued"
		if inline {
			name = "inline"
		}
		b.Run(name, func(b *testing.B) {
			const viewers = 20
			s := &Server{met: newMetrics(nil)}
			if inline {
				c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				s.batch = udpbatch.New(c)
			}
			vs := make([]*viewer, viewers)
			for i := range vs {
				v := newViewer(s, uuid.New(), Viewer{Name: "bench"}, 256)
				t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, "video", "bench")
				if err != nil {
					b.Fatal(err)
				}
				v.video = t
				addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(20000+i))
				v.remote.Store(&addr)
				vs[i] = v
			}
			payload := make([]byte, maxPayload)
			f := &frame{kind: media.Video, key: true, at: time.Now(), size: 8 * maxPayload}
			for i := 0; i < 8; i++ {
				f.pkts = append(f.pkts, rtp.Packet{Header: rtp.Header{Version: 2, Marker: i == 7}, Payload: payload})
			}
			b.ReportAllocs()
			b.SetBytes(int64(8 * maxPayload * viewers))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, v := range vs {
					v.tokens = paceBurst // measure the path, not the pacing
					v.send(f)
				}
				if inline {
					continue
				}
				for _, v := range vs {
					if err := v.flush(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*8*viewers), "ns/packet")
		})
	}
}

// BenchmarkSRTPProfiles: what protecting one full-size video packet costs
// with each profile a browser may agree to. The relay prefers AES-128-GCM
// (relay.go, listen): one AEAD pass instead of AES-CM plus HMAC-SHA1.
func BenchmarkSRTPProfiles(b *testing.B) {
	for _, p := range []struct {
		name    string
		profile srtp.ProtectionProfile
	}{
		{"AES128-CM-HMAC-SHA1-80", srtp.ProtectionProfileAes128CmHmacSha1_80},
		{"AEAD-AES-256-GCM", srtp.ProtectionProfileAeadAes256Gcm},
		{"AEAD-AES-128-GCM", srtp.ProtectionProfileAeadAes128Gcm},
	} {
		b.Run(p.name, func(b *testing.B) {
			kl, _ := p.profile.KeyLen()
			sl, _ := p.profile.SaltLen()
			ctx, err := srtp.CreateContext(make([]byte, kl), make([]byte, sl), p.profile)
			if err != nil {
				b.Fatal(err)
			}
			h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 1}
			payload := make([]byte, maxPayload)
			plain := make([]byte, 0, 1500)
			dst := make([]byte, 0, 1500)
			b.ReportAllocs()
			b.SetBytes(maxPayload)
			for i := 0; i < b.N; i++ {
				h.SequenceNumber = uint16(i)
				n, _ := h.MarshalTo(plain[:h.MarshalSize()])
				plain = append(plain[:n], payload...)
				if dst, err = ctx.EncryptRTP(dst[:0], plain, &h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
