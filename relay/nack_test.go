package relay

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
)

// lossyConn loses a share of the RTP packets it receives (never STUN,
// DTLS or RTCP): a viewer on a bad network.
type lossyConn struct {
	net.PacketConn
	share   float64
	rnd     *rand.Rand
	mu      sync.Mutex
	dropped atomic.Int64
}

func (c *lossyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || n < 2 || b[0]>>6 != 2 || b[1]&0x7f < 96 { // not RTP
			return n, addr, err
		}
		c.mu.Lock()
		lose := c.rnd.Float64() < c.share
		c.mu.Unlock()
		if !lose {
			return n, addr, err
		}
		c.dropped.Add(1)
	}
}

// TestLossyViewerRecoversByNACK: a viewer losing 2 % of the video packets
// on its way asks for them again (pion's NACK generator, as browsers do)
// and gets them from the feed's shared history: at the end nearly every
// sequence number has arrived, and the relay counts what it resent.
func TestLossyViewerRecoversByNACK(t *testing.T) {
	src := &streams{m: map[uuid.UUID]*media.Stream{}}
	r := newRelay(t, src)
	id, st := liveSample(t, src)
	awaitVideo(t, st, 8)

	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lossy := &lossyConn{PacketConn: udp, share: 0.02, rnd: rand.New(rand.NewPCG(1, 2))}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: lossy, Logger: lf.NewLogger("mux")})
	t.Cleanup(func() { mux.Close() })
	se := webrtc.SettingEngine{LoggerFactory: lf}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEUDPMux(mux)
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(me, ir); err != nil { // the browser's side: NACKs what it misses
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir)).
		NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[uint16]bool{}
	var first, last uint16
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			mu.Lock()
			if len(got) == 0 {
				first = p.SequenceNumber
			}
			if int16(p.SequenceNumber-last) > 0 || len(got) == 0 {
				last = p.SequenceNumber
			}
			got[p.SequenceNumber] = true
			mu.Unlock()
		}
	})
	a, err := r.Offer(context.Background(), id, Viewer{Name: "lossy", Owner: "user:1"}, completeOffer(t, pc))
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP}); err != nil {
		t.Fatal(err)
	}
	// enough packets that 2 % is dozens lost
	mediatest.Eventually(t, "1500 video packets received", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 1500
	})
	// what was lost more than a second ago has had its NACK answered (or
	// its NACK's retransmission lost and asked again)
	mu.Lock()
	upTo := last
	mu.Unlock()
	time.Sleep(time.Second)
	mu.Lock()
	missing := 0
	for s := first; s != upTo; s++ {
		if !got[s] {
			missing++
		}
	}
	total := int(upTo - first)
	mu.Unlock()
	dropped := lossy.dropped.Load()
	resent := testutil.ToFloat64(r.met.resent)
	t.Logf("%d video packets, %d lost on the way (%.1f %%), %d still missing, %.0f resent", total, dropped, 100*float64(dropped)/float64(total), missing, resent)
	if dropped < 10 {
		t.Fatalf("only %d packets were lost: the loss was not induced", dropped)
	}
	if resent < float64(dropped)/2 {
		t.Fatalf("%.0f packets resent for %d lost", resent, dropped)
	}
	// a retransmission is lost too at 2 %: asked again, resent again; a
	// handful may still be in flight
	if missing > int(dropped)/10 {
		t.Fatalf("%d of %d lost packets never recovered", missing, dropped)
	}
	var st2 ViewerStats
	for _, s := range r.Stats() {
		st2 = s
	}
	if st2.Resent == 0 || st2.NACKs < st2.Resent {
		t.Fatalf("viewer stats: %d NACKed, %d resent", st2.NACKs, st2.Resent)
	}
}

// TestNACKAnswers: which packets a NACK gets back, table-driven over the
// feed's history and the viewer's window.
func TestNACKAnswers(t *testing.T) {
	h := newHistory()
	frames := make([]*frame, 300) // 300 frames × 4 packets: the history (1024) holds the last 256
	for i := range frames {
		fr := &frame{kind: media.Video, ts: uint32(i * 3600)}
		for j := 0; j < 4; j++ {
			fr.pkts = append(fr.pkts, rtp.Packet{Header: rtp.Header{Version: 2, Marker: j == 3}, Payload: []byte{byte(i), byte(j)}})
		}
		h.add(fr)
		frames[i] = fr
	}
	var sent sentMap
	// the viewer saw every frame from sequence number 65000 on (it wraps):
	// its window (1024) holds its last 1024 packets, frame 44's first on
	seq := uint16(65000)
	viewerSeq := map[[2]int]uint16{}
	for i := 0; i < 300; i++ {
		for j := range frames[i].pkts {
			sent.put(seq, frames[i].seq0+uint64(j))
			viewerSeq[[2]int{i, j}] = seq
			seq++
		}
	}
	tests := []struct {
		name     string
		seq      uint16
		ok       bool
		frame, i int
	}{
		{"latest", viewerSeq[[2]int{299, 3}], true, 299, 3},
		{"after the wrap", viewerSeq[[2]int{200, 1}], true, 200, 1},
		{"oldest in the window", viewerSeq[[2]int{44, 0}], true, 44, 0},
		{"overwritten in the viewer's window", viewerSeq[[2]int{43, 3}], false, 0, 0},
		{"never sent", seq + 5, false, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fseq, ok := sent.feedSeq(tc.seq)
			if ok {
				var fr *frame
				var i int
				fr, i, ok = h.get(fseq)
				if ok && (fr != frames[tc.frame] || i != tc.i) {
					t.Fatalf("seq %d: got packet %d of frame ts %d", tc.seq, i, fr.ts)
				}
			}
			if ok != tc.ok {
				t.Fatalf("seq %d answered = %v, want %v", tc.seq, ok, tc.ok)
			}
		})
	}
	if _, _, ok := h.get(frames[10].seq0); ok {
		t.Fatal("a packet gone from the history is answered")
	}
}

// BenchmarkNACKLookup: one lost packet looked up in the viewer's window
// and the feed's history, and its header rebuilt (the write excluded).
func BenchmarkNACKLookup(b *testing.B) {
	h := newHistory()
	var sent sentMap
	seq := uint16(0)
	for i := 0; i < 200; i++ {
		fr := &frame{kind: media.Video}
		for j := 0; j < 8; j++ {
			fr.pkts = append(fr.pkts, rtp.Packet{Header: rtp.Header{Version: 2}, Payload: make([]byte, maxPayload)})
		}
		h.add(fr)
		for j := range fr.pkts {
			sent.put(seq, fr.seq0+uint64(j))
			seq++
		}
	}
	nack := rtcp.NackPairsFromSequenceNumbers([]uint16{seq - 500})
	var pkt rtp.Packet
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, pair := range nack {
			pair.Range(func(s uint16) bool {
				fseq, ok := sent.feedSeq(s)
				if !ok {
					b.Fatal("not in the window")
				}
				fr, j, ok := h.get(fseq)
				if !ok {
					b.Fatal("not in the history")
				}
				pkt.Header = fr.pkts[j].Header
				pkt.Payload = fr.pkts[j].Payload
				pkt.SequenceNumber = s
				return true
			})
		}
	}
}
