// Package relay shows live body-camera video to supervisors over WebRTC,
// with WHEP (WebRTC-HTTP Egress Protocol) signalling: the camera's H.264 or
// H.265 is forwarded as it is, never transcoded; G.711 and Opus audio too;
// AAC, which browsers cannot play over WebRTC, is converted to Opus while
// watched (Config.Transcoder, relay/feed.go), or left out (and said so).
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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/transcode"
	"github.com/bwcplatform/bwc/relay/internal/udpbatch"
)

// Errors callers branch on (and media.ErrNotLive).
var (
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
	QueueFrames int      // per-viewer queue; a viewer this far behind skips to a keyframe (positive)
	MaxViewers  int      // in total (positive)

	// ICE-TCP connections: beyond these caps a connection is closed at
	// once; one that sends no STUN binding within STUNTimeout is closed.
	TCPMaxConns   int
	TCPMaxPerAddr int
	STUNTimeout   time.Duration

	// Transcoder converts an AAC camera's audio to Opus while it is
	// watched (relay/feed.go); nil: AAC cameras are watched without sound.
	Transcoder *transcode.FFmpeg
}

// ErrConfig: an invalid field of Config (each named).
var ErrConfig = errors.New("invalid relay configuration")

// validate reports every invalid field (the platform's defaults are set in
// cmd/bwc).
func (c Config) validate() error {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("%w: %s %s", ErrConfig, field, why)) }
	if c.UDPAddr == "" && c.TCPAddr == "" {
		bad("UDPAddr", "and TCPAddr are empty: viewers could not connect")
	}
	if c.QueueFrames <= 0 {
		bad("QueueFrames", fmt.Sprintf("is %d, must be positive", c.QueueFrames))
	}
	if c.MaxViewers <= 0 {
		bad("MaxViewers", fmt.Sprintf("is %d, must be positive", c.MaxViewers))
	}
	if c.TCPAddr != "" {
		if c.TCPMaxConns <= 0 {
			bad("TCPMaxConns", fmt.Sprintf("is %d, must be positive with ICE-TCP", c.TCPMaxConns))
		}
		if c.TCPMaxPerAddr <= 0 {
			bad("TCPMaxPerAddr", fmt.Sprintf("is %d, must be positive with ICE-TCP", c.TCPMaxPerAddr))
		}
		if c.STUNTimeout <= 0 {
			bad("STUNTimeout", fmt.Sprintf("is %v, must be positive with ICE-TCP", c.STUNTimeout))
		}
	}
	for _, u := range c.ICEServers {
		if _, err := parseICEServer(u); err != nil {
			errs = append(errs, fmt.Errorf("%w: ICEServers %w", ErrConfig, err))
		}
	}
	return errors.Join(errs...)
}

// source is what the relay needs of the ingest: a live recording's stream.
type source interface {
	Stream(id uuid.UUID) (*media.Stream, bool)
}

// Puller brings a recording held by another node of the cluster here
// (peer.Link): one local stream per recording however many viewers, which
// it stops once no feed has read it for a while. media.ErrNotLive when the
// recording is not live elsewhere either.
type Puller interface {
	Pull(ctx context.Context, id uuid.UUID) (*media.Stream, error)
}

// Server is the WHEP relay.
type Server struct {
	cfg    Config
	src    source
	log    *slog.Logger
	met    *metrics
	lf     *logging.DefaultLoggerFactory
	ice    []webrtc.ICEServer
	closed chan struct{}
	ready  chan struct{} // closed once Run listens

	// set by Run before ready is closed, read after
	se    webrtc.SettingEngine
	udp   *ice.UDPMuxDefault
	batch *udpbatch.Conn // the UDP mux's socket
	tcp   ice.TCPMux
	tcpLn *tcpGuard

	life    sync.Mutex     // held while Run binds and while Close releases what it bound
	workers sync.WaitGroup // feeds, viewer writers, RTCP readers: Close waits for them

	mu       sync.Mutex
	feeds    map[uuid.UUID]*feed
	retired  []*feed // replaced in feeds by a newer stream's, still running
	sessions map[string]*viewer
	offering map[uuid.UUID]int // offers between feedFor and register, per recording
	onEnd    func(ViewerStats, string)
	puller   Puller // nil: this node's recordings only
}

// New checks the configuration and makes the relay. It opens no port
// until Run.
func New(cfg Config, src source, reg prometheus.Registerer, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, src: src, log: log, met: newMetrics(reg), closed: make(chan struct{}), ready: make(chan struct{}),
		feeds: map[uuid.UUID]*feed{}, sessions: map[string]*viewer{}, offering: map[uuid.UUID]int{}}
	for _, u := range cfg.ICEServers {
		ice, _ := parseICEServer(u) // checked by validate
		s.ice = append(s.ice, ice)
	}
	if reg != nil {
		batched := func(pick func(sends, packets, refused uint64) uint64) func() float64 {
			return func() float64 {
				if !s.listening() || s.batch == nil {
					return 0
				}
				return float64(pick(s.batch.Stats()))
			}
		}
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "bwc_relay_udp_batch_sends_total",
				Help: "System calls that sent several packets of a viewer at once (UDP GSO)."}, batched(func(s, _, _ uint64) uint64 { return s })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "bwc_relay_udp_batched_packets_total",
				Help: "Packets sent by those system calls."}, batched(func(_, p, _ uint64) uint64 { return p })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "bwc_relay_udp_gso_refused_total",
				Help: "GSO sends the kernel refused (the relay then sends packets one by one)."}, batched(func(_, _, r uint64) uint64 { return r })))
	}
	s.lf = logging.NewDefaultLoggerFactory()
	s.lf.DefaultLogLevel = logging.LogLevelError
	return s, nil
}

// listen opens the UDP port (ICE UDP mux) and the ICE-TCP port and builds
// the setting engine every peer connection uses. It holds s.life so that
// Close, run at the same time, releases what it opened.
func (s *Server) listen() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.isClosed() {
		return errClosed
	}
	s.se.LoggerFactory = s.lf
	s.se.SetIncludeLoopbackCandidate(true)
	// no multicast DNS: pion would open an mDNS socket pair and reader per
	// peer connection to resolve a browser's ".local" candidates; a browser
	// reaches the relay's own candidates and is learned from its checks
	// (peer-reflexive), as with any media server
	s.se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// A full ICE agent, not ICE-lite: lite saves the relay's own checks and
	// keep-alives (0.80x a viewer's cores at 10x5, within the machine's
	// noise), but a lite agent waits for the browser's nomination instead
	// of checking back, and the first keyframe took twice as long (p50
	// 187 -> 396 ms, p95 329 -> 525 ms; bwc viewerload 10x5, 2 rounds).

	// SRTP: AES-128-GCM when the browser offers it (BenchmarkSRTPProfiles:
	// about 6x cheaper a packet than AES-CM with HMAC-SHA1, 10 % cheaper
	// than AES-256-GCM). The DTLS server's preference decides, so the
	// relay answers as the DTLS server (a=setup:passive); browsers offer
	// actpass.
	s.se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AEAD_AES_256_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	if err := s.se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		return fmt.Errorf("relay: DTLS role: %w", err)
	}
	types := []webrtc.NetworkType{}
	if s.cfg.UDPAddr != "" {
		ua, err := net.ResolveUDPAddr("udp", s.cfg.UDPAddr)
		if err != nil {
			return fmt.Errorf("relay: UDP %s: %w", s.cfg.UDPAddr, err)
		}
		udp, err := net.ListenUDP("udp", ua)
		if err != nil {
			return fmt.Errorf("relay: UDP %s: %w", s.cfg.UDPAddr, err)
		}
		// a viewer's frame leaves in one system call (udpbatch, GSO)
		s.batch = udpbatch.New(udp)
		s.udp = ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: s.lf.NewLogger("ice-udp"), UDPConn: s.batch})
		s.se.SetICEUDPMux(s.udp)
		types = append(types, webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6)
	}
	if s.cfg.TCPAddr != "" {
		tcp, err := net.Listen("tcp", s.cfg.TCPAddr)
		if err != nil {
			s.closePorts()
			return fmt.Errorf("relay: ICE-TCP %s: %w", s.cfg.TCPAddr, err)
		}
		s.tcpLn = newTCPGuard(tcp, s.cfg.TCPMaxConns, s.cfg.TCPMaxPerAddr, s.log, s.met.tcpRefused.Inc)
		s.tcp = ice.NewTCPMuxDefault(ice.TCPMuxParams{Listener: s.tcpLn, Logger: s.lf.NewLogger("ice-tcp"),
			ReadBufferSize: 8, FirstStunBindTimeout: s.cfg.STUNTimeout})
		s.se.SetICETCPMux(s.tcp)
		types = append(types, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	s.se.SetNetworkTypes(types)
	if ips := s.cfg.PublicIPs; len(ips) > 0 {
		// NAT 1:1: the host candidates announce these addresses instead
		err := s.se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{External: ips,
			AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace})
		if err != nil {
			s.closePorts()
			return fmt.Errorf("relay: public IPs %v: %w", ips, err)
		}
	}
	return nil
}

// closePorts closes what listen opened (with s.life held).
func (s *Server) closePorts() {
	if s.udp != nil {
		s.udp.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
}

// errClosed: Run after Close.
var errClosed = errors.New("relay closed")

// listening reports whether Run has opened the ports (s.se, s.udp, s.tcp
// and s.tcpLn may be read once it has).
func (s *Server) listening() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// Ready is closed once Run has opened the ports; never when Run fails first.
func (s *Server) Ready() <-chan struct{} { return s.ready }

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

// PullFrom makes the relay serve recordings held by other nodes too,
// pulled through p when this node's source does not hold them. Register
// before use.
func (s *Server) PullFrom(p Puller) { s.puller = p }

// OnViewerEnd registers a function called when a viewing session ends, with
// its figures and why (audit, logs). Register before use.
func (s *Server) OnViewerEnd(f func(ViewerStats, string)) { s.onEnd = f }

// Run opens the ports, closes Ready, then serves until ctx ends. A port
// that stops serving (the UDP socket closed under the relay, ICE-TCP
// accepting failing for good) ends Run with an error naming it, which
// stops the process so that its supervisor restarts it; until then Check
// fails by name.
func (s *Server) Run(ctx context.Context) error {
	if err := s.listen(); errors.Is(err, errClosed) {
		return nil // closed before it ran
	} else if err != nil {
		return err
	}
	close(s.ready)
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
	if !s.listening() || s.udp == nil || !s.udp.IsClosed() {
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
	if !s.listening() {
		return errors.New("relay: not listening yet")
	}
	if s.tcpLn != nil {
		if err := s.tcpLn.err(); err != nil {
			return err
		}
	}
	return s.udpDown()
}

// Close ends every session, closes the ports and waits for the relay's
// goroutines (feeds, viewer writers, RTCP readers). It may be called
// without Run.
func (s *Server) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
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
	feeds := s.retired
	for _, f := range s.feeds {
		feeds = append(feeds, f)
	}
	s.feeds, s.retired = map[uuid.UUID]*feed{}, nil
	s.mu.Unlock()
	for _, f := range feeds {
		f.close()
	}
	s.closePorts()
	s.workers.Wait()
	return nil
}

// goWorker runs f on a goroutine Close waits for. Call it with s.mu held,
// either with the relay open or from Close itself (a session it ends), so
// that no worker starts once Close waits.
func (s *Server) goWorker(f func()) {
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		f()
	}()
}

// Viewer is who opens a viewing session: Name for the logs and the audit
// trail (a login), Owner the identity the session belongs to (the web
// layer's user or token ID), which PATCH and DELETE are checked against.
type Viewer struct {
	Name  string
	Owner string
}

// SessionRef is the reference of a viewing session wherever it is shown
// to anyone but its opener (audit details, logs, stats listings):
// "view-" and the first 12 hex digits of the SHA-256 of its ID. It tells
// sessions apart and cannot be turned back into the ID, which only the
// opener holds (the Location of their WHEP answer).
func SessionRef(session string) string {
	sum := sha256.Sum256([]byte(session))
	return "view-" + hex.EncodeToString(sum[:6])
}

// Answer is the result of a WHEP offer.
type Answer struct {
	SDP       string
	Session   string // the session's ID: for its opener only (SessionRef elsewhere)
	AudioNote string // why audio is not sent, when it is not
}

// Offer starts a viewing session of a live recording: it answers the
// browser's SDP offer (ICE candidates gathered, no trickle needed).
func (s *Server) Offer(ctx context.Context, rec uuid.UUID, who Viewer, offer string) (_ Answer, err error) {
	if !s.listening() {
		return Answer{}, fmt.Errorf("view %s: relay not running: %w", rec, media.ErrNotLive)
	}
	st, ok := s.src.Stream(rec)
	if !ok && s.puller == nil {
		return Answer{}, fmt.Errorf("view %s: %w", rec, media.ErrNotLive)
	}
	if !ok {
		// held by another node: pulled once, shared by this node's viewers
		if st, err = s.puller.Pull(ctx, rec); err != nil {
			return Answer{}, fmt.Errorf("view %s: %w", rec, err)
		}
	}
	f, err := s.feedFor(rec, st)
	if err != nil {
		return Answer{}, err
	}
	defer s.offered(rec, f, &err)
	video, audio, note := f.tracks()
	if video == nil {
		return Answer{}, fmt.Errorf("view %s: no video yet: %w", rec, media.ErrNotLive)
	}
	v := newViewer(s, rec, who, s.cfg.QueueFrames)
	pc, err := s.peerConnection(video, audio)
	if err != nil {
		return Answer{}, fmt.Errorf("view %s: %w", rec, err)
	}
	v.pc = pc
	if err := s.addTracks(v, video, audio); err != nil {
		pc.Close()
		return Answer{}, fmt.Errorf("view %s: %w", rec, err)
	}
	watchRemote(pc, v)
	if err := negotiate(ctx, rec, pc, offer); err != nil {
		return Answer{}, err
	}
	joinOnConnect(pc, f, v)
	if err := s.register(v); err != nil {
		pc.Close()
		return Answer{}, fmt.Errorf("view %s: %w", rec, err)
	}
	s.met.viewers.Inc()
	s.log.Info("live view started", "recording", rec, "viewer", who.Name, "session", v.ref, "audio", audio != nil)
	return Answer{SDP: pc.LocalDescription().SDP, Session: v.id, AudioNote: note}, nil
}

// feedFor returns the recording's feed, replacing one left from an earlier
// stream of the same recording, unless the relay is closed or full.
func (s *Server) feedFor(rec uuid.UUID, st *media.Stream) (*feed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isClosed() {
		return nil, fmt.Errorf("view %s: relay closed: %w", rec, media.ErrNotLive)
	}
	if len(s.sessions) >= s.cfg.MaxViewers {
		return nil, fmt.Errorf("view %s: %d viewers: %w", rec, len(s.sessions), ErrTooMany)
	}
	s.offering[rec]++ // until offered
	f := s.feeds[rec]
	if f == nil || f.stream != st {
		if f != nil {
			s.retire(f)
		}
		f = newFeed(s, rec, st)
		s.feeds[rec] = f
	}
	return f, nil
}

// offered ends an offer begun by feedFor. A feed left without a session
// (the offer failed, and no other is under way) is stopped: it would read
// its stream for nothing, and keep a pulled stream from another node
// running.
func (s *Server) offered(rec uuid.UUID, f *feed, err *error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.offering[rec]--; s.offering[rec] <= 0 {
		delete(s.offering, rec)
	}
	if *err == nil || s.offering[rec] > 0 || s.feeds[rec] != f || s.isClosed() {
		return
	}
	for _, v := range s.sessions {
		if v.recording == rec {
			return
		}
	}
	delete(s.feeds, rec)
	s.goWorker(f.close)
}

// negotiate answers the browser's offer and waits (5 s at most) for the
// ICE candidates to be gathered; on an error it closes pc.
func negotiate(ctx context.Context, rec uuid.UUID, pc *webrtc.PeerConnection, offer string) error {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		pc.Close()
		return fmt.Errorf("view %s: %w: %v", rec, ErrBadOffer, err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		pc.Close()
		return fmt.Errorf("view %s: %w: %v", rec, ErrBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		pc.Close()
		return fmt.Errorf("view %s: %w: %v", rec, ErrBadOffer, err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		pc.Close()
		return ctx.Err()
	case <-time.After(5 * time.Second):
		// answer with what was gathered; late candidates could come by trickle
	}
	return nil
}

// watchRemote keeps v.remote, the browser's UDP address, up to date with
// ICE's selected pair: the address whose writes v corks (udpbatch).
func watchRemote(pc *webrtc.PeerConnection, v *viewer) {
	pc.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(func(p *webrtc.ICECandidatePair) {
		if p == nil || p.Remote == nil || p.Remote.Protocol != webrtc.ICEProtocolUDP {
			v.remote.Store(nil)
			return
		}
		ip, err := netip.ParseAddr(p.Remote.Address)
		if err != nil {
			v.remote.Store(nil)
			return
		}
		ap := netip.AddrPortFrom(ip, p.Remote.Port)
		if old := v.remote.Swap(&ap); old != nil && *old != ap && v.s.batch != nil {
			v.s.batch.Forget(*old)
		}
	})
}

// joinOnConnect adds the viewer to the feed once the browser is connected:
// the first frame is the cached keyframe, so the picture appears one round
// trip after connecting. A failed or closed connection closes the viewer.
func joinOnConnect(pc *webrtc.PeerConnection, f *feed, v *viewer) {
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
}

// register adds a session and starts its writer and RTCP readers, unless
// the relay closed meanwhile.
func (s *Server) register(v *viewer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isClosed() {
		return fmt.Errorf("relay closed: %w", media.ErrNotLive)
	}
	s.sessions[v.id] = v
	s.goWorker(v.write)
	for _, sender := range v.senders {
		s.goWorker(func() { v.readRTCP(sender) })
	}
	return nil
}

func (s *Server) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// retire keeps a feed replaced by a newer stream's for Close, and forgets
// the retired feeds that have ended (with s.mu held).
func (s *Server) retire(f *feed) {
	s.retired = slices.DeleteFunc(s.retired, (*feed).finished)
	s.retired = append(s.retired, f)
}

// peerConnection builds a peer connection whose codecs are the camera's
// (with its H.264 profile first), sized for a viewer that only receives:
// no interceptor. The NACKs are answered from the feed's shared history
// (nack.go) instead of pion's responder and its copy of every packet per
// viewer, the sender reports are written by the relay (report.go), and
// nothing is received but RTCP, so no NACK generator, no receiver reports.
func (s *Server) peerConnection(video, audio *media.Track) (*webrtc.PeerConnection, error) {
	me := &webrtc.MediaEngine{}
	for _, c := range codecs(video, audio) {
		if err := me.RegisterCodec(c.params, c.kind); err != nil {
			return nil, err
		}
	}
	// an empty registry: without one, pion registers its default interceptors
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(&interceptor.Registry{}), webrtc.WithSettingEngine(s.se))
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
	v.vsr.ssrc, v.vsr.clock = ssrcOf(sender), int64(vc.ClockRate)
	v.senders = append(v.senders, sender)
	if audio == nil {
		return nil
	}
	cs := codecs(video, audio)
	ac := cs[len(cs)-1].params.RTPCodecCapability
	at, err := webrtc.NewTrackLocalStaticRTP(ac, "audio", "bwc-"+v.recording.String())
	if err != nil {
		return err
	}
	asender, err := v.pc.AddTrack(at)
	if err != nil {
		return err
	}
	v.audio = at
	v.asr.ssrc, v.asr.clock = ssrcOf(asender), int64(ac.ClockRate)
	v.senders = append(v.senders, asender)
	return nil
}

// ssrcOf is the SSRC a sender's packets carry (its one encoding's).
func ssrcOf(s *webrtc.RTPSender) uint32 {
	if e := s.GetParameters().Encodings; len(e) > 0 {
		return uint32(e[0].SSRC)
	}
	return 0
}

// Patch adds trickled ICE candidates (an SDP fragment) to a session.
func (s *Server) Patch(session, frag string) error {
	s.mu.Lock()
	v := s.sessions[session]
	s.mu.Unlock()
	if v == nil {
		return fmt.Errorf("patch %s: %w", SessionRef(session), ErrNoSession)
	}
	for _, c := range candidates(frag) {
		if err := v.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c}); err != nil {
			return fmt.Errorf("patch %s: %w: %v", SessionRef(session), ErrBadOffer, err)
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
		return fmt.Errorf("delete %s: %w", SessionRef(session), ErrNoSession)
	}
	v.close("viewer left")
	return nil
}

// Session returns the recording a session views and the owner it belongs
// to (for the authorization of PATCH/DELETE).
func (s *Server) Session(session string) (rec uuid.UUID, owner string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.sessions[session]
	if v == nil {
		return uuid.Nil, "", false
	}
	return v.recording, v.owner, true
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
	if f != nil && f.remove(v) {
		delete(s.feeds, v.recording)
		s.goWorker(f.close) // not from the feed's own goroutine
	}
	s.mu.Unlock()
	s.met.viewers.Dec()
	st := v.stats()
	s.log.Info("live view ended", "recording", v.recording, "viewer", v.name, "session", v.ref, "why", why,
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

// Stats lists every viewing session, each by its reference (SessionRef),
// never its ID.
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
