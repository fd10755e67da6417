package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/google/uuid"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// streams is a frame source: live recordings by ID.
type streams struct {
	mu sync.Mutex
	m  map[uuid.UUID]*media.Stream
}

func (s *streams) Stream(id uuid.UUID) (*media.Stream, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.m[id]
	return st, ok
}

// awaitVideo waits until the camera has written n more video frames to st.
func awaitVideo(t *testing.T, st *media.Stream, n int) {
	t.Helper()
	rd := st.Subscribe(media.ReaderOptions{Name: "test", Size: 4096})
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for n > 0 {
		f, err := rd.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %d more video frames: %v", n, err)
		}
		if f.Track.Kind == media.Video {
			n--
		}
	}
}

// liveSample starts a recording that plays the sample in real time until
// the test ends, with G.711 audio replaced by the sample's AAC when aac.
func liveSample(t *testing.T, src *streams) (uuid.UUID, *media.Stream) {
	t.Helper()
	s := mediatest.Load(t)
	id := uuid.New()
	st := media.NewStream(media.Info{RecordingID: id, StartedAt: time.Now(), Tracks: []*media.Track{s.Video, s.Audio}})
	src.mu.Lock()
	src.m[id] = st
	src.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer st.Close()
		_ = s.Play(ctx, 1, 0, func(f *media.Frame) error { st.Write(f); return nil })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return id, st
}

func newRelay(t *testing.T, src source) *Server {
	t.Helper()
	s, err := New(Config{UDPAddr: "127.0.0.1:0", QueueFrames: 64, MaxViewers: 500}, src, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	runRelay(t, s)
	return s
}

// runRelay runs s until the test ends (then closes it); it returns once s
// listens, with a channel that receives what Run returns.
func runRelay(t *testing.T, s *Server) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done, exited := make(chan error, 1), make(chan struct{})
	go func() { defer close(exited); done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); s.Close(); <-exited })
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("relay run: %v", err)
	}
	return done
}

// browser is a pion peer connection standing in for a supervisor's
// browser: it offers to receive video and audio and collects the H.264
// access units it gets.
type browser struct {
	pc    *webrtc.PeerConnection
	mu    sync.Mutex
	aus   [][][]byte
	hurt  []bool // the access unit followed lost packets (loopback UDP on a busy machine)
	gaps  []int
	stuck bool // never reads: a browser that froze
	audio struct {
		mime    string
		packets int
		reports []rtcp.SenderReport
	}
	gotAny chan struct{}
	once   sync.Once
	video  struct { // the video track's SSRC, its latest RTP timestamp and the sender reports received
		ssrc    uint32
		ts      uint32
		reports []rtcp.SenderReport
	}
}

func newBrowser(t *testing.T) (*browser, string) {
	t.Helper()
	se := webrtc.SettingEngine{}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	se.LoggerFactory = lf
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{pc: pc, gotAny: make(chan struct{})}
	t.Cleanup(func() { pc.Close() })
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		if tr.Kind() == webrtc.RTPCodecTypeAudio {
			go b.readReports(r, &b.audio.reports)
			b.readAudio(tr)
			return
		}
		if tr.Kind() != webrtc.RTPCodecTypeVideo || b.stalled() {
			return
		}
		go b.readReports(r, &b.video.reports)
		dec := &rtph264.Decoder{}
		if err := dec.Init(); err != nil {
			return
		}
		var last uint16
		first, damaged := true, false
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if d := int16(pkt.SequenceNumber - last - 1); !first && d != 0 {
				damaged = true
				b.mu.Lock()
				b.gaps = append(b.gaps, int(d))
				b.mu.Unlock()
			}
			first, last = false, pkt.SequenceNumber
			b.mu.Lock()
			b.video.ssrc, b.video.ts = pkt.SSRC, pkt.Timestamp
			b.mu.Unlock()
			au, err := dec.Decode(pkt)
			if err != nil {
				continue
			}
			b.mu.Lock()
			b.aus = append(b.aus, au)
			b.hurt = append(b.hurt, damaged)
			b.mu.Unlock()
			damaged = false
			b.once.Do(func() { close(b.gotAny) })
		}
	})
	return b, completeOffer(t, pc)
}

// readReports keeps the sender reports the relay sends for one track in
// into (under b.mu), until the connection closes.
func (b *browser) readReports(r *webrtc.RTPReceiver, into *[]rtcp.SenderReport) {
	for {
		pkts, _, err := r.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				b.mu.Lock()
				*into = append(*into, *sr)
				b.mu.Unlock()
			}
		}
	}
}

// watch opens a viewing session of recording id as supervisor sup1 with
// a new browser, which accepts the answer.
func watch(t *testing.T, r *Server, id uuid.UUID) (*browser, Answer) {
	t.Helper()
	b, offer := newBrowser(t)
	a, err := r.Offer(context.Background(), id, Viewer{Name: "sup1", Owner: "user:sup1"}, offer)
	if err != nil {
		t.Fatal(err)
	}
	b.accept(t, a)
	return b, a
}

// completeOffer makes pc's offer with every ICE candidate in it (no
// trickle), as the relay's callers send it.
func completeOffer(t *testing.T, pc *webrtc.PeerConnection) string {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}

func (b *browser) stall() { b.mu.Lock(); b.stuck = true; b.mu.Unlock() }
func (b *browser) stalled() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stuck
}

func (b *browser) accept(t *testing.T, a Answer) {
	t.Helper()
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP}); err != nil {
		t.Fatal(err)
	}
}

func (b *browser) received() [][][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][][]byte(nil), b.aus...)
}

// intact reports whether access unit i arrived without packet loss.
func (b *browser) intact(i int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.hurt[i]
}

// TestViewerGetsTheCameraStreamFromAKeyframe: a viewer's first access unit
// is a keyframe with its parameter sets (from the GOP cache: no wait for
// the camera's next keyframe), and what it receives is the camera's H.264
// byte for byte; AAC is not offered without a transcoder and the answer says why.
func TestViewerGetsTheCameraStreamFromAKeyframe(t *testing.T) {
	src := &streams{m: map[uuid.UUID]*media.Stream{}}
	r := newRelay(t, src)
	id, st := liveSample(t, src)
	awaitVideo(t, st, 15) // join mid-GOP
	b, offer := newBrowser(t)
	a, err := r.Offer(context.Background(), id, Viewer{Name: "sup1", Owner: "user:sup1"}, offer)
	if err != nil {
		t.Fatal(err)
	}
	if a.AudioNote == "" || r.Viewers(id) != 1 {
		t.Fatalf("audio note %q, viewers %d", a.AudioNote, r.Viewers(id))
	}
	// the relay is the DTLS server: its SRTP preference (AES-128-GCM) decides
	if !strings.Contains(a.SDP, "a=setup:passive") {
		t.Fatalf("answer does not take the DTLS server role:\n%s", a.SDP)
	}
	b.accept(t, a)
	mediatest.Eventually(t, "30 access units", func() bool { return len(b.received()) >= 30 })
	// over UDP each frame's packets left in few system calls (GSO)
	if sends, packets, _ := r.batch.Stats(); r.batch.GSO() && (sends == 0 || packets < 2*sends) {
		t.Fatalf("%d packets in %d GSO sends", packets, sends)
	}
	got := b.received()
	if b.intact(0) && (!h264.IsRandomAccess(got[0]) || h264.NALUType(got[0][0][0]&0x1f) != h264.NALUTypeSPS) {
		t.Fatalf("first access unit is not SPS+PPS+IDR: types %v", naluTypes(got[0]))
	}
	// every received AU is one of the camera's, unchanged
	sample := mediatest.Load(t)
	known := map[string]bool{}
	for _, f := range sample.Frames {
		if f.Track.Kind == media.Video {
			known[string(bytes.Join(f.AU, []byte{0, 0, 0, 1}))] = true
		}
	}
	intact := 0
	for i, au := range got {
		if !b.intact(i) {
			continue // packets were lost on the way: not a check of the relay
		}
		intact++
		if !known[string(bytes.Join(au, []byte{0, 0, 0, 1}))] {
			t.Fatalf("access unit %d (types %v) is not one the camera sent (sequence gaps %v)", i, naluTypes(au), b.gaps)
		}
	}
	if intact < len(got)*8/10 {
		t.Fatalf("only %d of %d access units arrived intact (gaps %v)", intact, len(got), b.gaps)
	}
	vs := r.Stats()
	if len(vs) != 1 || vs[0].Packets == 0 || vs[0].Viewer != "sup1" || vs[0].Ref != SessionRef(a.Session) {
		t.Fatalf("stats = %+v", vs)
	}
	if rec, owner, ok := r.Session(a.Session); !ok || rec != id || owner != "user:sup1" {
		t.Fatalf("Session = %v %q %v", rec, owner, ok)
	}
}

func naluTypes(au [][]byte) []h264.NALUType {
	var out []h264.NALUType
	for _, n := range au {
		out = append(out, h264.NALUType(n[0]&0x1f))
	}
	return out
}

// TestSessionsEndAndErrors: unknown recordings and bad offers are refused
// by their sentinel; Delete ends a session; the end of the recording ends
// its viewers.
func TestSessionsEndAndErrors(t *testing.T) {
	src := &streams{m: map[uuid.UUID]*media.Stream{}}
	r := newRelay(t, src)
	ended := make(chan string, 4)
	r.OnViewerEnd(func(_ ViewerStats, why string) { ended <- why })
	if _, err := r.Offer(context.Background(), uuid.New(), Viewer{Name: "sup1", Owner: "user:sup1"}, "v=0"); !errors.Is(err, media.ErrNotLive) {
		t.Fatalf("unknown recording: %v", err)
	}
	id, st := liveSample(t, src)
	mediatest.Eventually(t, "video track", func() bool { return st.Info().Video() != nil })
	if _, err := r.Offer(context.Background(), id, Viewer{Name: "sup1", Owner: "user:sup1"}, "this is not SDP"); !errors.Is(err, ErrBadOffer) {
		t.Fatalf("bad offer: %v", err)
	}
	if n := r.Viewers(id); n != 0 {
		t.Fatalf("viewers after a bad offer = %d", n)
	}
	_, a := watch(t, r, id)
	if err := r.Delete(a.Session); err != nil {
		t.Fatal(err)
	}
	if why := <-ended; why != "viewer left" {
		t.Fatalf("ended because %q", why)
	}
	if err := r.Delete(a.Session); !errors.Is(err, ErrNoSession) {
		t.Fatalf("second delete: %v", err)
	}
	b2, offer2 := newBrowser(t)
	a2, err := r.Offer(context.Background(), id, Viewer{Name: "sup2", Owner: "user:sup2"}, offer2)
	if err != nil {
		t.Fatal(err)
	}
	b2.accept(t, a2)
	<-b2.gotAny
	st.Close() // the camera's recording ends
	if why := <-ended; why != "recording ended" {
		t.Fatalf("ended because %q", why)
	}
	mediatest.Eventually(t, "no viewers", func() bool { return r.Viewers(id) == 0 })
}

// TestSlowViewerSkipsToKeyframe: a viewer whose queue overflows loses it,
// counts the loss and resumes at the next keyframe; pushing never blocks.
func TestSlowViewerSkipsToKeyframe(t *testing.T) {
	r := &Server{met: newMetrics(nil)}
	v := newViewer(r, uuid.New(), Viewer{Name: "slow"}, 4)
	key := &frame{kind: media.Video, key: true}
	delta := &frame{kind: media.Video}
	audio := &frame{kind: media.Audio}
	v.push(key)
	for i := 0; i < 3; i++ {
		v.push(delta)
	}
	v.push(delta) // the fifth: the queue of 4 overflows
	if v.n != 0 || !v.waitKey || v.dropped.Load() != 5 {
		t.Fatalf("after overflow: queued %d, waitKey %v, dropped %d", v.n, v.waitKey, v.dropped.Load())
	}
	v.push(delta)
	v.push(audio)
	if v.n != 0 || v.dropped.Load() != 7 {
		t.Fatalf("before the keyframe: queued %d, dropped %d", v.n, v.dropped.Load())
	}
	v.push(key)
	v.push(audio)
	if v.n != 2 || v.waitKey || v.pop() != key {
		t.Fatalf("after the keyframe: queued %d, waitKey %v", v.n, v.waitKey)
	}
}

// TestICEServerParsing: STUN and TURN URLs with credentials.
func TestICEServerParsing(t *testing.T) {
	for _, tc := range []struct {
		in         string
		url, user  string
		shouldFail bool
	}{
		{"stun:stun.example.org:3478", "stun:stun.example.org:3478", "", false},
		{"turn:bwc:secret@turn.example.org:3478", "turn:turn.example.org:3478", "bwc", false},
		{"http://x", "", "", true},
		{"stun:", "", "", true},
	} {
		s, err := parseICEServer(tc.in)
		if (err != nil) != tc.shouldFail {
			t.Fatalf("%s: err %v", tc.in, err)
		}
		if err == nil && (s.URLs[0] != tc.url || s.Username != tc.user) {
			t.Fatalf("%s: %+v", tc.in, s)
		}
	}
}

// FuzzCandidates: any trickle-ICE fragment gives candidate lines only.
func FuzzCandidates(f *testing.F) {
	f.Add("a=ice-ufrag:abc\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n")
	f.Fuzz(func(t *testing.T, frag string) {
		for _, c := range candidates(frag) {
			if len(c) <= len("candidate:") || c[:10] != "candidate:" {
				t.Fatalf("bad candidate %q", c)
			}
		}
	})
}

// TestTwentyViewersOneStalled: 20 viewers on one recording; one stops
// reading; the 19 others all receive the stream and keep receiving it.
func TestTwentyViewersOneStalled(t *testing.T) {
	src := &streams{m: map[uuid.UUID]*media.Stream{}}
	r := newRelay(t, src)
	id, st := liveSample(t, src)
	awaitVideo(t, st, 8) // a GOP begun in the cache
	var bs []*browser
	for i := 0; i < 20; i++ {
		b, offer := newBrowser(t)
		if i == 0 {
			b.stall()
		}
		a, err := r.Offer(context.Background(), id, Viewer{Name: fmt.Sprintf("sup%d", i), Owner: fmt.Sprintf("user:%d", i)}, offer)
		if err != nil {
			t.Fatal(err)
		}
		b.accept(t, a)
		bs = append(bs, b)
	}
	for i, b := range bs[1:] {
		select {
		case <-b.gotAny:
		case <-time.After(2 * time.Minute):
			t.Fatalf("viewer %d never received video", i+1)
		}
	}
	// the 19 keep receiving while the frozen viewer's queue overflows: the
	// relay sends each of them at least 50 more packets and each decodes at
	// least 10 more access units; a relay held up by the frozen viewer would
	// deliver next to none. (Counted at the relay as well as in the test's
	// browsers: on a loaded machine loopback UDP drops packets, and a damaged
	// access unit is not counted, which says nothing about the relay.)
	sent := func() map[string]uint64 {
		m := map[string]uint64{}
		for _, st := range r.Stats() {
			m[st.Viewer] = st.Packets
		}
		return m
	}
	sentBefore := sent()
	before := make([]int, len(bs))
	for i, b := range bs {
		before[i] = len(b.received())
	}
	deadline := time.Now().Add(2 * time.Minute)
	for i, b := range bs[1:] {
		name := fmt.Sprintf("sup%d", i+1)
		for sent()[name] < sentBefore[name]+50 || len(b.received()) < before[i+1]+10 {
			if time.Now().After(deadline) {
				t.Fatalf("viewer %d: relay sent %d more packets, browser decoded %d more access units",
					i+1, sent()[name]-sentBefore[name], len(b.received())-before[i+1])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if n := r.Viewers(id); n != 20 {
		t.Fatalf("viewers = %d", n)
	}
}

// TestPublicIPsAnnounced: with NAT 1:1 public addresses, the answer's host
// candidates carry the public address.
func TestPublicIPsAnnounced(t *testing.T) {
	src := &streams{m: map[uuid.UUID]*media.Stream{}}
	r, err := New(Config{UDPAddr: "127.0.0.1:0", QueueFrames: 64, MaxViewers: 5, PublicIPs: []string{"203.0.113.7"}}, src, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	runRelay(t, r)
	id, st := liveSample(t, src)
	mediatest.Eventually(t, "video track", func() bool { return st.Info().Video() != nil })
	_, offer := newBrowser(t)
	a, err := r.Offer(context.Background(), id, Viewer{Name: "sup1", Owner: "user:sup1"}, offer)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.SDP, " 203.0.113.7 ") || strings.Contains(a.SDP, " 127.0.0.1 ") {
		t.Fatalf("answer candidates do not announce the public address:\n%s", a.SDP)
	}
}

// TestSessionRef: the reference shown for a session is view- and 12 hex
// digits of its ID's SHA-256: stable, distinct per session, and not the ID
// nor any part of it.
func TestSessionRef(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := uuid.NewString()
		ref := SessionRef(id)
		if len(ref) != len("view-")+12 || !strings.HasPrefix(ref, "view-") || strings.Trim(ref[5:], "0123456789abcdef") != "" {
			t.Fatalf("SessionRef(%s) = %q", id, ref)
		}
		if ref != SessionRef(id) || seen[ref] {
			t.Fatalf("SessionRef(%s) = %q: unstable or shared", id, ref)
		}
		seen[ref] = true
		for _, part := range strings.Split(id, "-") {
			if len(part) >= 8 && strings.Contains(ref, part) {
				t.Fatalf("SessionRef(%s) = %q shows part of the ID", id, ref)
			}
		}
	}
	// the first 12 hex digits of SHA-256("0190c1c2-0000-7000-8000-000000000000")
	if got := SessionRef("0190c1c2-0000-7000-8000-000000000000"); got != "view-b08cb7e151c6" {
		t.Fatalf("SessionRef = %q, want view-b08cb7e151c6", got)
	}
}

// puller stands in for the inter-node link: the recordings of another
// node, counted per pull.
type puller struct {
	other *streams
	mu    sync.Mutex
	pulls int
}

func (p *puller) Pull(_ context.Context, id uuid.UUID) (*media.Stream, error) {
	p.mu.Lock()
	p.pulls++
	p.mu.Unlock()
	if st, ok := p.other.Stream(id); ok {
		return st, nil
	}
	return nil, fmt.Errorf("pull %s: %w", id, media.ErrNotLive)
}

// TestPulledRecording: a recording this node does not hold is pulled (the
// relay's source first, then the puller) and viewed like a local one; a
// failed offer leaves no feed reading the pulled stream; a recording live
// nowhere is ErrNotLive.
func TestPulledRecording(t *testing.T) {
	other := &streams{m: map[uuid.UUID]*media.Stream{}}
	p := &puller{other: other}
	r, err := New(Config{UDPAddr: "127.0.0.1:0", QueueFrames: 64, MaxViewers: 500}, &streams{m: map[uuid.UUID]*media.Stream{}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.PullFrom(p)
	runRelay(t, r)
	id, st := liveSample(t, other)
	mediatest.Eventually(t, "video track", func() bool { return st.Info().Video() != nil })

	if _, err := r.Offer(context.Background(), id, Viewer{Name: "sup1", Owner: "user:sup1"}, "this is not SDP"); !errors.Is(err, ErrBadOffer) {
		t.Fatalf("bad offer: %v", err)
	}
	mediatest.Eventually(t, "no feed left reading the pulled stream", func() bool { return st.Readers() == 0 })

	b, offer := newBrowser(t)
	a, err := r.Offer(context.Background(), id, Viewer{Name: "sup1", Owner: "user:sup1"}, offer)
	if err != nil {
		t.Fatal(err)
	}
	b.accept(t, a)
	mediatest.Eventually(t, "10 access units of the pulled recording", func() bool { return len(b.received()) >= 10 })
	if st.Readers() != 1 {
		t.Fatalf("readers of the pulled stream = %d, want the one feed", st.Readers())
	}
	if _, err := r.Offer(context.Background(), uuid.New(), Viewer{Name: "sup1", Owner: "user:sup1"}, offer); !errors.Is(err, media.ErrNotLive) {
		t.Fatalf("recording live nowhere: %v", err)
	}
	if err := r.Delete(a.Session); err != nil {
		t.Fatal(err)
	}
	mediatest.Eventually(t, "the feed stops with its last viewer", func() bool { return st.Readers() == 0 })
}
