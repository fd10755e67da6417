// Package ingest takes in live video from body cameras: an RTSP server the
// cameras publish to (ANNOUNCE/RECORD, TCP-interleaved or UDP), device
// authentication against each camera's secret, and the hub of live
// recordings: each publish becomes a recording bound to the officer
// wearing the camera and to their incidents, continued across 4G drops
// within a grace window, and fanned out (media.Stream) to the archive and
// the live relay.
//
// The camera never waits for the database: recordings and their changes
// are written through an ordered, retrying queue, so that a PostgreSQL
// outage delays the index, never the evidence.
package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/storage/index"
)

// Config of the ingest.
type Config struct {
	RTSPAddr      string        // TCP address cameras connect to
	PublicHost    string        // host[:port] cameras use to reach RTSPAddr (CameraURL); empty: the bound address
	UDPRTPAddr    string        // UDP transport (RTP); empty with UDPRTCPAddr: TCP only
	UDPRTCPAddr   string        // UDP transport (RTCP)
	Grace         time.Duration // a camera that comes back within it continues the same recording
	MediaTimeout  time.Duration // a publisher sending no media for this long is closed
	LinkBuffer    time.Duration // assignment windows are widened by this on each side (0: the window exactly)
	LinkInterval  time.Duration // live recordings are re-linked this often (new assignments)
	MaxClockSkew  time.Duration // a camera clock further off than this is not trusted
	DevicesReload time.Duration // device secrets cache refresh (auth works while PostgreSQL is down)

	// limits (see limits.go); all positive
	MaxConns              int            // RTSP(S) connections at once, over all addresses
	MaxConnsPerAddr       int            // connections not yet publishing, per remote address
	HandshakeTimeout      time.Duration  // a connection that has not reached RECORD within it is closed
	AuthFailuresPerAddr   int            // failed authentications per window before an address is throttled
	AuthFailuresPerDevice int            // failed authentications per window before a device serial is throttled
	AuthFailureWindow     time.Duration  // the throttling window
	ProxyProtocolFrom     []netip.Prefix // TCP balancers whose connections open with a PROXY protocol header naming the camera's address; empty: none

	// RTSPS (RTSP over TLS); empty RTSPSAddr: off
	RTSPSAddr  string
	TLSCert    string // PEM certificate chain file
	TLSKey     string // PEM private key file
	JournalDir string // durable journal of the database writes (replayed at start); empty: memory only

	// several nodes on one database
	Node         string        // this node's name: the recordings it starts carry it, and at start it ends only its own left open
	ClaimTimeout time.Duration // a new recording's row is written at once within it (one live recording per device, over the nodes); past it the camera is admitted and the row queued
}

// ErrConfig: an invalid field of Config (each named).
var ErrConfig = errors.New("invalid ingest configuration")

// validate reports every invalid field. The platform's defaults are set in
// cmd/bwc; 0 is taken literally where it means something (LinkBuffer: the
// assignment window exactly).
func (c Config) validate() error {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("%w: %s %s", ErrConfig, field, why)) }
	if c.RTSPAddr == "" {
		bad("RTSPAddr", "is empty")
	}
	if c.Node == "" {
		bad("Node", "is empty")
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"Grace", c.Grace}, {"MediaTimeout", c.MediaTimeout}, {"LinkInterval", c.LinkInterval},
		{"MaxClockSkew", c.MaxClockSkew}, {"DevicesReload", c.DevicesReload},
		{"HandshakeTimeout", c.HandshakeTimeout}, {"AuthFailureWindow", c.AuthFailureWindow}, {"ClaimTimeout", c.ClaimTimeout}} {
		if f.v <= 0 {
			bad(f.name, fmt.Sprintf("is %v, must be positive", f.v))
		}
	}
	if c.LinkBuffer < 0 {
		bad("LinkBuffer", fmt.Sprintf("is %v, must not be negative", c.LinkBuffer))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"MaxConns", c.MaxConns}, {"MaxConnsPerAddr", c.MaxConnsPerAddr},
		{"AuthFailuresPerAddr", c.AuthFailuresPerAddr}, {"AuthFailuresPerDevice", c.AuthFailuresPerDevice}} {
		if f.v <= 0 {
			bad(f.name, fmt.Sprintf("is %d, must be positive", f.v))
		}
	}
	return errors.Join(errs...)
}

// store is what the ingest needs of the index.
type store interface {
	Devices(ctx context.Context) ([]index.Device, error)
	DeviceBySerial(ctx context.Context, serial string) (index.Device, error)
	WearerAt(ctx context.Context, deviceID uuid.UUID, at time.Time) (index.Checkout, error)
	CreateRecording(ctx context.Context, r index.Recording, by string) (index.Recording, error)
	Recording(ctx context.Context, id uuid.UUID) (index.Recording, error)
	SetHeldStatus(ctx context.Context, id uuid.UUID, node, status, remoteAddr string, graceUntil time.Time) error
	TakeOverRecording(ctx context.Context, t index.TakeOver) (index.Continued, error)
	SetRecordingMedia(ctx context.Context, id uuid.UUID, videoCodec, audioCodec string, width, height int) error
	SetClockOffset(ctx context.Context, id uuid.UUID, offset time.Duration) error
	AddGap(ctx context.Context, id uuid.UUID, g index.Gap) error
	EndHeld(ctx context.Context, id uuid.UUID, node string, at time.Time) error
	EndNodeRecordings(ctx context.Context, node, source string) (int64, error)
	AutoLink(ctx context.Context, recordingID uuid.UUID, buffer time.Duration) ([]index.IncidentLink, error)
	RecordingLinks(ctx context.Context, recordingID uuid.UUID, history bool) ([]index.IncidentLink, error)
	Audit(ctx context.Context, e index.AuditEvent) (index.AuditEvent, error)
}

var _ store = (*index.DB)(nil)

// Server is the ingest: the RTSP server and the hub of live recordings.
type Server struct {
	cfg Config
	db  store
	log *slog.Logger
	met *metrics
	now func() time.Time

	rtsp    *gortsplib.Server
	rtsps   *gortsplib.Server // nil without RTSPSAddr
	handler *rtspHandler
	limits  *connLimiter
	auth    *authThrottle
	logs    *rareLog
	misses  *missReloader

	// listeners, once started: "RTSP listener", "RTSPS listener"
	lns     map[string]*guardedListener
	life    sync.Mutex     // held while Run binds and while Close stops what it bound
	started bool           // the RTSP servers were started; guarded by life
	ready   chan struct{}  // closed once Run listens
	stopped chan struct{}  // closed when an RTSP server stopped by itself
	stopErr error          // why; guarded by mu
	bg      sync.WaitGroup // the RTSP servers' watchdogs
	writes  *writer
	devices *deviceCache

	mu       sync.Mutex
	byDevice map[string]*recording // device serial -> its current recording
	byID     map[uuid.UUID]*recording
	claiming map[string]bool // device serials whose new recording is being claimed in the database
	onStream []func(*media.Stream)
	watchers map[chan struct{}]struct{}
	closed   bool
}

// New makes the ingest. It does not listen until Run.
func New(cfg Config, db store, reg prometheus.Registerer, log *slog.Logger) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, db: db, log: log, met: newMetrics(reg), now: time.Now,
		byDevice: map[string]*recording{}, byID: map[uuid.UUID]*recording{}, claiming: map[string]bool{}, watchers: map[chan struct{}]struct{}{}}
	jr, err := openJournal(cfg.JournalDir, log)
	if err != nil {
		return nil, err
	}
	s.writes = newWriter(log, s.met, newJournalMetrics(reg), 100000, jr, s.apply)
	s.devices = newDeviceCache(db, log)
	s.handler = &rtspHandler{s: s}
	s.logs = newRareLog(log, 10*time.Second)
	s.auth = newAuthThrottle(cfg.AuthFailuresPerAddr, cfg.AuthFailuresPerDevice, cfg.AuthFailureWindow)
	s.limits = newConnLimiter(cfg.MaxConns, cfg.MaxConnsPerAddr, cfg.HandshakeTimeout, s.auth, s.met, s.logs)
	s.misses = &missReloader{every: time.Second}
	s.lns = map[string]*guardedListener{}
	s.stopped = make(chan struct{})
	s.ready = make(chan struct{})
	s.rtsp = s.newRTSPServer(listenerRTSP, cfg.RTSPAddr, nil)
	s.rtsp.UDPRTPAddress, s.rtsp.UDPRTCPAddress = cfg.UDPRTPAddr, cfg.UDPRTCPAddr
	if cfg.RTSPSAddr != "" || cfg.TLSCert != "" || cfg.TLSKey != "" {
		tc, err := newTLSConfig(cfg.TLSCert, cfg.TLSKey, log)
		if err != nil {
			return nil, fmt.Errorf("ingest: RTSPS: %w", err)
		}
		if cfg.RTSPSAddr == "" {
			return nil, errors.New("ingest: RTSPS: a certificate without an RTSPS address")
		}
		s.rtsps = s.newRTSPServer(listenerRTSPS, cfg.RTSPSAddr, tc)
	}
	return s, nil
}

// Listener names, as Check and the metrics name them.
const (
	listenerRTSP  = "RTSP listener"
	listenerRTSPS = "RTSPS listener"
)

// newRTSPServer makes one gortsplib server (one per TLS setting) on the
// shared handler and hub; its listener goes through the limits.
func (s *Server) newRTSPServer(name, addr string, tc *tls.Config) *gortsplib.Server {
	return &gortsplib.Server{
		Handler:      s.handler,
		RTSPAddress:  addr,
		TLSConfig:    tc,
		ReadTimeout:  2 * s.cfg.MediaTimeout, // the hub's own check (media, not keep-alives) comes first
		WriteTimeout: 10 * time.Second,
		// digest only: gortsplib would also offer Basic (the secret in clear)
		AuthMethods: []auth.VerifyMethod{auth.VerifyMethodDigestMD5},
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := newGuardedListener(name, network, address, net.Listen, s.limits, s.log, s.logs, s.met)
			if err == nil {
				ln.proxies = s.cfg.ProxyProtocolFrom
				s.mu.Lock()
				s.lns[name] = ln
				s.mu.Unlock()
			}
			return ln, err
		},
	}
}

// watch reports an RTSP server that stops by itself (it must not: its
// listener never fails Accept) so that Check fails and Run returns.
func (s *Server) watch(name string, srv *gortsplib.Server) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		err := srv.Wait()
		s.mu.Lock()
		closing := s.closed
		if !closing && s.stopErr == nil {
			s.stopErr = fmt.Errorf("%s: RTSP server stopped: %w", name, err)
			close(s.stopped)
		}
		s.mu.Unlock()
		if !closing {
			s.log.Error("RTSP server stopped by itself: cameras cannot connect", "listener", name, "err", err)
		}
	}()
}

// OnStream registers a function called with every new live recording's
// stream (the archive attaches there). Register before Run.
func (s *Server) OnStream(f func(*media.Stream)) {
	s.mu.Lock()
	s.onStream = append(s.onStream, f)
	s.mu.Unlock()
}

// Ready is closed once Run listens: Addr, RTSPSAddr and CameraURL give the
// bound addresses from then on. It is never closed when Run fails first.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// recover loads the device secrets, replays the journal and ends the
// recordings a crashed run of this node left open (never another node's:
// those are ended by Node once that node's heartbeat expired).
func (s *Server) recover(ctx context.Context) error {
	if err := s.devices.reload(ctx); err != nil {
		return fmt.Errorf("ingest: load devices: %w", err)
	}
	if err := s.replayJournal(ctx); err != nil {
		return err
	}
	for _, source := range []string{index.SourceRTSP, index.SourceGB} {
		if n, err := s.db.EndNodeRecordings(ctx, s.cfg.Node, source); err != nil {
			return fmt.Errorf("ingest: end recordings left open: %w", err)
		} else if n > 0 {
			s.log.Warn("ended recordings left open by an earlier run of this node", "node", s.cfg.Node, "source", source, "count", n)
		}
	}
	return nil
}

// listen starts the RTSP (and RTSPS) servers and their watchdogs. It holds
// s.life so that Close, run at the same time, closes what it started.
func (s *Server) listen() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.isClosed() {
		return errClosed
	}
	if err := s.rtsp.Start(); err != nil {
		return fmt.Errorf("ingest: listen on %s: %w", s.cfg.RTSPAddr, err)
	}
	if s.rtsps != nil {
		if err := s.rtsps.Start(); err != nil {
			s.rtsp.Close()
			return fmt.Errorf("ingest: RTSPS: listen on %s: %w", s.cfg.RTSPSAddr, err)
		}
	}
	s.started = true
	s.watch(listenerRTSP, s.rtsp)
	if s.rtsps != nil {
		s.watch(listenerRTSPS, s.rtsps)
		s.log.Info("RTSPS ingest listening", "addr", s.RTSPSAddr())
	}
	s.log.Info("RTSP ingest listening", "addr", s.Addr(), "udp", s.cfg.UDPRTPAddr != "",
		"max_conns", s.cfg.MaxConns, "max_conns_per_addr", s.cfg.MaxConnsPerAddr, "handshake_timeout", s.cfg.HandshakeTimeout)
	return nil
}

// errClosed: Run after Close.
var errClosed = errors.New("ingest closed")

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) listenerAddr(name, configured string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.lns[name]; l != nil {
		return l.addr
	}
	return configured
}

// Addr returns the address the RTSP server listens on.
func (s *Server) Addr() string { return s.listenerAddr(listenerRTSP, s.cfg.RTSPAddr) }

// CameraURL returns the URL prefix cameras publish to,
// rtsp://<PublicHost or the bound RTSP address>/live/ (the device serial
// follows). Like Addr, it is the bound address once the server listens.
func (s *Server) CameraURL() string {
	host := s.cfg.PublicHost
	if host == "" {
		host = s.Addr()
	}
	return "rtsp://" + host + "/" + PathPrefix
}

// RTSPSAddr returns the address the RTSPS server listens on ("" when off).
func (s *Server) RTSPSAddr() string { return s.listenerAddr(listenerRTSPS, s.cfg.RTSPSAddr) }

// Run recovers what an earlier run left (device secrets, the journal,
// recordings left open), listens, closes Ready, then serves cameras until
// ctx ends or an RTSP server stops by itself.
func (s *Server) Run(ctx context.Context) error {
	if err := s.recover(ctx); err != nil {
		return err
	}
	if err := s.listen(); errors.Is(err, errClosed) {
		return nil // closed before it listened
	} else if err != nil {
		return err
	}
	close(s.ready)
	ctx, cancelRun := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancelRun(); wg.Wait() }()
	wg.Add(2)
	go func() { defer wg.Done(); s.writes.run(ctx) }()
	go func() { defer wg.Done(); s.devices.run(ctx, s.cfg.DevicesReload) }()
	return s.serve(ctx)
}

// serve does the periodic work (timeouts, grace windows, re-linking) until
// ctx ends or an RTSP server stops by itself.
func (s *Server) serve(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastLink := s.now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.stopped:
			s.mu.Lock()
			err := s.stopErr
			s.mu.Unlock()
			return fmt.Errorf("ingest: %w", err)
		case <-tick.C:
			now := s.now()
			s.housekeep(now)
			if now.Sub(lastLink) >= s.cfg.LinkInterval {
				lastLink = now
				s.relinkLive()
			}
		}
	}
}

// Close disconnects the cameras, ends their recordings and writes what the
// database still lacks (with a deadline). It waits for the goroutines Run
// started; it may be called without Run.
func (s *Server) Close() error {
	s.life.Lock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.life.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.started {
		s.rtsp.Close()
		if s.rtsps != nil {
			s.rtsps.Close()
		}
	}
	s.life.Unlock()
	s.bg.Wait()
	s.mu.Lock()
	recs := make([]*recording, 0, len(s.byID))
	for _, r := range s.byID {
		recs = append(recs, r)
	}
	s.mu.Unlock()
	for _, r := range recs {
		s.end(r, "server shutdown")
	}
	s.writes.drain(5 * time.Second)
	s.writes.closeJournal()
	return nil
}

// Stream returns the fan-out of a live recording.
func (s *Server) Stream(id uuid.UUID) (*media.Stream, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byID[id]
	if !ok {
		return nil, false
	}
	return r.stream, true
}

// Watch returns a channel that receives (coalesced) when the set of live
// recordings or one's state changes, and a function to stop watching.
func (s *Server) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.watchers[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.watchers, ch)
		s.mu.Unlock()
	}
}

// notifyLocked wakes the watchers. Called with s.mu held.
func (s *Server) notifyLocked() {
	for ch := range s.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Check reports the ingest's health for /readyz: an RTSP (RTSPS) listener
// down (named), an RTSP server stopped, PostgreSQL writes backing up.
func (s *Server) Check(context.Context) error {
	var errs []error
	s.mu.Lock()
	lns := make([]*guardedListener, 0, len(s.lns))
	for _, name := range []string{listenerRTSP, listenerRTSPS} {
		if l := s.lns[name]; l != nil {
			lns = append(lns, l)
		}
	}
	if s.stopErr != nil {
		errs = append(errs, s.stopErr)
	}
	s.mu.Unlock()
	for _, l := range lns {
		if err := l.check(); err != nil {
			errs = append(errs, err)
		}
	}
	if n := s.writes.pending(); n > 1000 {
		errs = append(errs, fmt.Errorf("%d recording updates waiting for the database", n))
	}
	if err := s.writes.journalErr(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
