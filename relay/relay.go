// Package relay shows live body-camera video to supervisors over WebRTC,
// with WHEP (WebRTC-HTTP Egress Protocol) signalling: the camera's H.264 or
// H.265 is forwarded as it is, never transcoded; G.711 and Opus audio too;
// AAC, which browsers cannot play over WebRTC, is left out (and said so).
//
// One feed per live recording reads its stream once, packetizes each
// access unit once and keeps the current GOP; each viewer has a bounded
// queue and its own writer, starts at the last keyframe, and falls back to
// the next keyframe when it falls behind, without touching the camera or
// the other viewers. All viewers share one UDP port (ICE UDP mux) with
// ICE-TCP on one TCP port as the fallback for networks that block UDP.
package relay

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/ingest/media"
)

// Errors callers branch on.
var (
	ErrNotLive   = errors.New("recording is not live")
	ErrNoSession = errors.New("no such viewing session")
	ErrBadOffer  = errors.New("bad SDP offer")
	ErrTooMany   = errors.New("too many viewers")
)

// Config of the relay.
type Config struct {
	UDPAddr     string   // one UDP port for every viewer (ICE UDP mux); empty: no UDP
	TCPAddr     string   // ICE-TCP fallback on one TCP port; empty: none
	PublicIPs   []string // NAT 1:1: addresses announced instead of the host's
	ICEServers  []string // STUN/TURN URLs handed to browsers (turn:user:pass@host:port)
	QueueFrames int      // per-viewer queue; a viewer this far behind skips to a keyframe
	MaxViewers  int      // in total

	// ICE-TCP connections: beyond these caps a connection is closed at
	// once; one that sends no STUN binding within STUNTimeout is closed.
	TCPMaxConns   int
	TCPMaxPerAddr int
	STUNTimeout   time.Duration
}

// Defaults.
const (
	DefaultUDPAddr     = "127.0.0.1:8189"
	DefaultQueueFrames = 256
	DefaultMaxViewers  = 500
)

// source is what the relay needs of the ingest: a live recording's stream.
type source interface {
	Stream(id uuid.UUID) (*media.Stream, bool)
}

// Server is the WHEP relay.
type Server struct {
	cfg    Config
	src    source
	log    *slog.Logger
	met    *metrics
	se     webrtc.SettingEngine
	udp    *ice.UDPMuxDefault
	tcp    ice.TCPMux
	tcpLn  *tcpGuard
	ice    []webrtc.ICEServer
	closed chan struct{}

	mu       sync.Mutex
	feeds    map[uuid.UUID]*feed
	sessions map[string]*viewer
	onEnd    func(ViewerStats, string)
}

// New opens the relay's ports.
func New(cfg Config, src source, reg prometheus.Registerer, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.QueueFrames <= 0 {
		cfg.QueueFrames = DefaultQueueFrames
	}
	if cfg.MaxViewers <= 0 {
		cfg.MaxViewers = DefaultMaxViewers
	}
	s := &Server{cfg: cfg, src: src, log: log, met: newMetrics(reg), closed: make(chan struct{}),
		feeds: map[uuid.UUID]*feed{}, sessions: map[string]*viewer{}}
	for _, u := range cfg.ICEServers {
		ice, err := parseICEServer(u)
		if err != nil {
			return nil, err
		}
		s.ice = append(s.ice, ice)
	}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	s.se.LoggerFactory = lf
	s.se.SetIncludeLoopbackCandidate(true)
	types := []webrtc.NetworkType{}
	if cfg.UDPAddr != "" {
		udp, err := net.ListenPacket("udp", cfg.UDPAddr)
		if err != nil {
			return nil, fmt.Errorf("relay: UDP %s: %w", cfg.UDPAddr, err)
		}
		s.udp = ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: lf.NewLogger("ice-udp"), UDPConn: udp})
		s.se.SetICEUDPMux(s.udp)
		types = append(types, webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6)
	}
	if cfg.TCPAddr != "" {
		tcp, err := net.Listen("tcp", cfg.TCPAddr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("relay: ICE-TCP %s: %w", cfg.TCPAddr, err)
		}
		if cfg.TCPMaxConns <= 0 || cfg.TCPMaxPerAddr <= 0 || cfg.STUNTimeout <= 0 {
			_ = tcp.Close()
			s.Close()
			return nil, errors.New("relay: ICE-TCP needs a connection cap, a per-address cap and a STUN timeout")
		}
		s.tcpLn = newTCPGuard(tcp, cfg.TCPMaxConns, cfg.TCPMaxPerAddr, log, s.met.tcpRefused.Inc)
		s.tcp = ice.NewTCPMuxDefault(ice.TCPMuxParams{Listener: s.tcpLn, Logger: lf.NewLogger("ice-tcp"),
			ReadBufferSize: 8, FirstStunBindTimeout: cfg.STUNTimeout})
		s.se.SetICETCPMux(s.tcp)
		types = append(types, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	if len(types) == 0 {
		return nil, errors.New("relay: neither a UDP nor a TCP address: viewers could not connect")
	}
	s.se.SetNetworkTypes(types)
	if ips := cfg.PublicIPs; len(ips) > 0 {
		s.se.SetNAT1To1IPs(ips, webrtc.ICECandidateTypeHost)
	}
	return s, nil
}

// parseICEServer reads stun:host:port or turn:user:pass@host:port.
func parseICEServer(u string) (webrtc.ICEServer, error) {
	scheme, rest, ok := strings.Cut(u, ":")
	if !ok || (scheme != "stun" && scheme != "turn" && scheme != "turns") || rest == "" {
		return webrtc.ICEServer{}, fmt.Errorf("relay: ICE server %q: want stun:host:port or turn:user:pass@host:port", u)
	}
	if cred, host, ok := strings.Cut(rest, "@"); ok {
		user, pass, _ := strings.Cut(cred, ":")
		return webrtc.ICEServer{URLs: []string{scheme + ":" + host}, Username: user, Credential: pass}, nil
	}
	return webrtc.ICEServer{URLs: []string{u}}, nil
}

// ICEServers are the STUN/TURN servers for browsers (WHEP Link headers).
func (s *Server) ICEServers() []webrtc.ICEServer { return s.ice }

// OnViewerEnd registers a function called when a viewing session ends, with
// its figures and why (audit, logs). Register before use.
func (s *Server) OnViewerEnd(f func(ViewerStats, string)) { s.onEnd = f }

// Run serves until ctx ends. A port that stops serving (the UDP socket
// closed under the relay, ICE-TCP accepting failing for good) ends Run with
// an error naming it, which stops the process so that its supervisor
// restarts it; until then Check fails by name.
func (s *Server) Run(ctx context.Context) error {
	var tcpDown <-chan struct{}
	if s.tcpLn != nil {
		tcpDown = s.tcpLn.down
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closed:
			return nil
		case <-tcpDown:
			return s.tcpLn.err()
		case <-tick.C:
			if err := s.udpDown(); err != nil {
				s.log.Error("relay: listener stopped: live viewing over UDP is down", "err", err)
				return err
			}
		}
	}
}

// udpDown reports the UDP mux closed while the relay is open.
func (s *Server) udpDown() error {
	if s.udp == nil || !s.udp.IsClosed() {
		return nil
	}
	select {
	case <-s.closed:
		return nil
	default:
	}
	return fmt.Errorf("%w: UDP %s closed", ErrListenerDown, s.udp.LocalAddr())
}

// Check fails, naming the port, when a listener stopped (for /readyz).
func (s *Server) Check(context.Context) error {
	if s.tcpLn != nil {
		if err := s.tcpLn.err(); err != nil {
			return err
		}
	}
	return s.udpDown()
}

// Close ends every session and closes the ports.
func (s *Server) Close() error {
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		return nil
	default:
		close(s.closed)
	}
	vs := make([]*viewer, 0, len(s.sessions))
	for _, v := range s.sessions {
		vs = append(vs, v)
	}
	s.mu.Unlock()
	for _, v := range vs {
		v.close("relay closed")
	}
	s.mu.Lock()
	feeds := make([]*feed, 0, len(s.feeds))
	for _, f := range s.feeds {
		feeds = append(feeds, f)
	}
	s.feeds = map[uuid.UUID]*feed{}
	s.mu.Unlock()
	for _, f := range feeds {
		f.close()
	}
	if s.udp != nil {
		s.udp.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
	return nil
}

// Answer is the result of a WHEP offer.
type Answer struct {
	SDP       string
	Session   string
	AudioNote string // why audio is not sent, when it is not
}

// Offer starts a viewing session of a live recording: it answers the
// browser's SDP offer (ICE candidates gathered, no trickle needed).
func (s *Server) Offer(ctx context.Context, rec uuid.UUID, viewerName, offer string) (Answer, error) {
	st, ok := s.src.Stream(rec)
	if !ok {
		return Answer{}, fmt.Errorf("view %s: %w", rec, ErrNotLive)
	}
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		return Answer{}, fmt.Errorf("view %s: relay closed: %w", rec, ErrNotLive)
	default:
	}
	if len(s.sessions) >= s.cfg.MaxViewers {
		s.mu.Unlock()
		return Answer{}, fmt.Errorf("view %s: %d viewers: %w", rec, len(s.sessions), ErrTooMany)
	}
	f := s.feeds[rec]
	if f == nil || f.stream != st {
		f = newFeed(s, rec, st)
		s.feeds[rec] = f
	}
	s.mu.Unlock()

	video, audio, note := f.tracks()
	if video == nil {
		return Answer{}, fmt.Errorf("view %s: no video yet: %w", rec, ErrNotLive)
	}
	v := newViewer(s, rec, viewerName, s.cfg.QueueFrames)
	pc, err := s.peerConnection(video, audio)
	if err != nil {
		return Answer{}, fmt.Errorf("view %s: %w", rec, err)
	}
	v.pc = pc
	if err := s.addTracks(v, video, audio); err != nil {
		pc.Close()
		return Answer{}, fmt.Errorf("view %s: %w", rec, err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		pc.Close()
		return Answer{}, fmt.Errorf("view %s: %w: %v", rec, ErrBadOffer, err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		pc.Close()
		return Answer{}, fmt.Errorf("view %s: %w: %v", rec, ErrBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		pc.Close()
		return Answer{}, fmt.Errorf("view %s: %w: %v", rec, ErrBadOffer, err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		pc.Close()
		return Answer{}, ctx.Err()
	case <-time.After(5 * time.Second):
		// answer with what was gathered; late candidates could come by trickle
	}
	// frames flow once the browser is connected: the first is the cached
	// keyframe, so the picture appears one round trip after connecting
	var joined sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			joined.Do(func() {
				if err := f.add(v); err != nil {
					v.close("recording ended")
				}
			})
		case webrtc.PeerConnectionStateFailed:
			v.close("connection failed")
		case webrtc.PeerConnectionStateClosed:
			v.close("connection closed")
		}
	})
	s.mu.Lock()
	s.sessions[v.id] = v
	s.mu.Unlock()
	go v.write()
	s.met.viewers.Inc()
	s.log.Info("live view started", "recording", rec, "viewer", viewerName, "session", v.id, "audio", audio != nil)
	return Answer{SDP: pc.LocalDescription().SDP, Session: v.id, AudioNote: note}, nil
}

// peerConnection builds a peer connection whose codecs are the camera's
// (with its H.264 profile first), with NACK responses and RTCP reports.
func (s *Server) peerConnection(video, audio *media.Track) (*webrtc.PeerConnection, error) {
	me := &webrtc.MediaEngine{}
	for _, c := range codecs(video, audio) {
		if err := me.RegisterCodec(c.params, c.kind); err != nil {
			return nil, err
		}
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(me, ir); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(s.se))
	return api.NewPeerConnection(webrtc.Configuration{ICEServers: s.ice, BundlePolicy: webrtc.BundlePolicyMaxBundle})
}

type codec struct {
	params webrtc.RTPCodecParameters
	kind   webrtc.RTPCodecType
}

// codecs lists what the answer may use. For H.264 the camera's own
// profile-level-id comes first, then the common ones, so that the browser's
// offer matches; the stream is the camera's whatever is negotiated.
func codecs(video, audio *media.Track) []codec {
	var out []codec
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	pt := webrtc.PayloadType(96)
	add := func(mime string, clock uint32, ch uint16, fmtp string, kind webrtc.RTPCodecType) {
		c := webrtc.RTPCodecCapability{MimeType: mime, ClockRate: clock, Channels: ch, SDPFmtpLine: fmtp}
		if kind == webrtc.RTPCodecTypeVideo {
			c.RTCPFeedback = fb
		}
		out = append(out, codec{webrtc.RTPCodecParameters{RTPCodecCapability: c, PayloadType: pt}, kind})
		pt++
	}
	switch video.Codec {
	case media.H264:
		profiles := []string{"42e01f", "42001f", "4d001f", "640c1f", "640032"}
		if len(video.SPS) >= 4 {
			own := hex.EncodeToString(video.SPS[1:4])
			profiles = append([]string{own}, profiles...)
		}
		seen := map[string]bool{}
		for _, p := range profiles {
			if seen[p] {
				continue
			}
			seen[p] = true
			add(webrtc.MimeTypeH264, 90000, 0, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id="+p, webrtc.RTPCodecTypeVideo)
		}
	case media.H265:
		add(webrtc.MimeTypeH265, 90000, 0, "", webrtc.RTPCodecTypeVideo)
	}
	if audio != nil {
		switch audio.Codec {
		case media.PCMA:
			out = append(out, codec{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}, PayloadType: 8}, webrtc.RTPCodecTypeAudio})
		case media.PCMU:
			out = append(out, codec{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0}, webrtc.RTPCodecTypeAudio})
		case media.Opus:
			add(webrtc.MimeTypeOpus, 48000, 2, "minptime=10;useinbandfec=1", webrtc.RTPCodecTypeAudio)
		}
	}
	return out
}

// addTracks adds the video (and audio) track and a reader of the
// browser's RTCP for each.
func (s *Server) addTracks(v *viewer, video, audio *media.Track) error {
	vc := codecs(video, nil)[0].params.RTPCodecCapability
	vt, err := webrtc.NewTrackLocalStaticRTP(vc, "video", "bwc-"+v.recording.String())
	if err != nil {
		return err
	}
	sender, err := v.pc.AddTrack(vt)
	if err != nil {
		return err
	}
	v.video = vt
	go v.readRTCP(sender)
	if audio == nil {
		return nil
	}
	cs := codecs(video, audio)
	at, err := webrtc.NewTrackLocalStaticRTP(cs[len(cs)-1].params.RTPCodecCapability, "audio", "bwc-"+v.recording.String())
	if err != nil {
		return err
	}
	asender, err := v.pc.AddTrack(at)
	if err != nil {
		return err
	}
	v.audio = at
	go v.readRTCP(asender)
	return nil
}

// Patch adds trickled ICE candidates (an SDP fragment) to a session.
func (s *Server) Patch(session, frag string) error {
	s.mu.Lock()
	v := s.sessions[session]
	s.mu.Unlock()
	if v == nil {
		return fmt.Errorf("patch %s: %w", session, ErrNoSession)
	}
	for _, c := range candidates(frag) {
		if err := v.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c}); err != nil {
			return fmt.Errorf("patch %s: %w: %v", session, ErrBadOffer, err)
		}
	}
	return nil
}

// candidates extracts a=candidate lines from a trickle-ice-sdpfrag.
func candidates(frag string) []string {
	var out []string
	for _, line := range strings.Split(frag, "\n") {
		line = strings.TrimSpace(line)
		if c, ok := strings.CutPrefix(line, "a=candidate:"); ok && c != "" {
			out = append(out, "candidate:"+c)
		}
	}
	return out
}

// Delete ends a viewing session.
func (s *Server) Delete(session string) error {
	s.mu.Lock()
	v := s.sessions[session]
	s.mu.Unlock()
	if v == nil {
		return fmt.Errorf("delete %s: %w", session, ErrNoSession)
	}
	v.close("viewer left")
	return nil
}

// Session returns the recording a session views (for authorization of
// PATCH/DELETE).
func (s *Server) Session(session string) (uuid.UUID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.sessions[session]
	if v == nil {
		return uuid.Nil, false
	}
	return v.recording, true
}

// viewerClosed forgets a session; the last viewer of a feed stops it.
func (s *Server) viewerClosed(v *viewer, why string) {
	s.mu.Lock()
	if _, ok := s.sessions[v.id]; !ok {
		s.mu.Unlock()
		return
	}
	delete(s.sessions, v.id)
	f := s.feeds[v.recording]
	var stop *feed
	if f != nil && f.remove(v) {
		delete(s.feeds, v.recording)
		stop = f
	}
	s.mu.Unlock()
	if stop != nil {
		go stop.close() // not from the feed's own goroutine
	}
	s.met.viewers.Dec()
	st := v.stats()
	s.log.Info("live view ended", "recording", v.recording, "viewer", v.name, "session", v.id, "why", why,
		"packets", st.Packets, "dropped_frames", st.Dropped)
	if s.onEnd != nil {
		s.onEnd(st, why)
	}
}

// Viewers counts a recording's viewing sessions (connecting or connected).
func (s *Server) Viewers(rec uuid.UUID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.sessions {
		if v.recording == rec {
			n++
		}
	}
	return n
}

// Stats lists every viewing session.
func (s *Server) Stats() []ViewerStats {
	s.mu.Lock()
	vs := make([]*viewer, 0, len(s.sessions))
	for _, v := range s.sessions {
		vs = append(vs, v)
	}
	s.mu.Unlock()
	out := make([]ViewerStats, len(vs))
	for i, v := range vs {
		out[i] = v.stats()
	}
	return out
}

// LinkHeaders are the WHEP answer's Link headers announcing the STUN/TURN
// servers to the browser (RFC 8288, WHEP section 4.4).
func (s *Server) LinkHeaders() []string {
	var out []string
	for _, i := range s.ice {
		for _, u := range i.URLs {
			h := "<" + u + `>; rel="ice-server"`
			if i.Username != "" {
				h += fmt.Sprintf(`; username=%q; credential=%q; credential-type="password"`, i.Username, i.Credential)
			}
			out = append(out, h)
		}
	}
	return out
}
