// Package gb28181 takes in body cameras that speak GB/T 28181 (2016 and the
// 2022 revision), the protocol of Chinese 4G body cameras and platforms: a
// SIP server (UDP and TCP) where devices REGISTER with digest
// authentication (user = the 20-digit device ID, password = the device's
// secret) and keep their registration alive with MESSAGE keepalives; the
// platform asks each registered device for its Catalog and INVITEs its
// channel, the device sends RTP carrying an MPEG program stream (PS) over
// TCP (passive: the device connects to the platform's media port, the case
// behind a carrier's NAT) or UDP, and the PS is demultiplexed into frames
// for the ingest's hub (ingest.Server.OpenFeed): one more recording, source
// gb28181, bound, archived and relayed like an RTSP camera's.
//
// It is a sibling of the RTSP server (ingest/rtsp.go) with the same life:
// New validates and allocates, Run serves until its context ends, Close
// waits for every goroutine.
package gb28181

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/ingest"
	"github.com/bwcplatform/bwc/storage/index"
)

// Config of the GB/T 28181 server. The platform's defaults are in cmd/bwc.
type Config struct {
	ID        string // the platform's 20-digit SIP server ID (what the camera calls "server ID")
	Domain    string // the SIP domain and digest realm (usually the ID's first 10 digits)
	SIPAddr   string // host:port of the SIP listeners, UDP and TCP
	MediaAddr string // host:port of the media listeners (RTP/PS), TCP and UDP; one port, streams told apart by SSRC
	// PublicHost is the address devices reach the media port at, put in
	// the SDP offer; empty: the media listener's host.
	PublicHost       string
	KeepaliveTimeout time.Duration // a device neither keeping alive nor re-registering for this long is offline
	InviteTimeout    time.Duration // an INVITE (or Catalog query) unanswered this long failed
	MediaWait        time.Duration // a device that does not connect to the media port, or sends no video, within it: the session fails and is retried
	RetryInterval    time.Duration // an online device without media is INVITEd again this often
	// PositionInterval is the MobilePosition interval the platform
	// SUBSCRIBEs to after a device's Catalog (whole seconds, at least 1);
	// 0: no subscription (positions a device MESSAGEs are still stored).
	PositionInterval time.Duration
}

// ErrConfig: an invalid Config field (each named).
var ErrConfig = errors.New("invalid GB/T 28181 configuration")

func (c Config) validate() error {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("%w: %s %s", ErrConfig, field, why)) }
	if !index.ValidGBID(c.ID) {
		bad("ID", "is not 20 digits")
	}
	if c.Domain == "" {
		bad("Domain", "is empty")
	}
	for name, a := range map[string]string{"SIPAddr": c.SIPAddr, "MediaAddr": c.MediaAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad(name, "is not host:port: "+err.Error())
		}
	}
	for name, d := range map[string]time.Duration{"KeepaliveTimeout": c.KeepaliveTimeout, "InviteTimeout": c.InviteTimeout,
		"MediaWait": c.MediaWait, "RetryInterval": c.RetryInterval} {
		if d <= 0 {
			bad(name, "must be positive")
		}
	}
	if c.PositionInterval < 0 {
		bad("PositionInterval", "must not be negative")
	}
	return errors.Join(errs...)
}

// devices is what the server needs of the device registry.
type devices interface {
	// DeviceByGBID returns the device registered with a GB/T 28181 ID
	// (index.ErrNotFound when none).
	DeviceByGBID(ctx context.Context, gbID string) (index.Device, error)
}

// hub is what the server needs of the ingest: a device's stream becomes
// one more live recording.
type hub interface {
	OpenFeed(spec ingest.FeedSpec) (*ingest.Feed, error)
}

// positionStore keeps the positions devices report (MobilePosition):
// index.AddPosition, the one store and validation of every source's fixes;
// nil: positions are parsed and dropped.
type positionStore interface {
	AddPosition(ctx context.Context, p index.Position) error
}

// Server is the GB/T 28181 device access server.
type Server struct {
	cfg       Config
	db        devices
	hub       hub
	positions positionStore
	log       *slog.Logger
	met       *metrics
	nonceKey  []byte
	now       func() time.Time

	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client

	sipUDP   net.PacketConn
	sipTCP   net.Listener
	mediaTCP net.Listener
	mediaUDP net.PacketConn

	mu      sync.Mutex
	devs    map[string]*device  // by GB device ID
	bySSRC  map[uint32]*session // media sessions awaiting or receiving media
	ssrcSeq uint32
	closed  bool
	ctx     context.Context // Run's; cancelled by Close
	cancel  context.CancelFunc
	ready   chan struct{} // closed once Run serves
	wg      sync.WaitGroup
}

// New validates the configuration and binds the listeners (so that the
// caller knows the addresses before Run: SIPAddr and MediaAddr may give
// port 0).
func New(cfg Config, db devices, h hub, positions positionStore, reg prometheus.Registerer, log *slog.Logger) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if db == nil || h == nil {
		return nil, fmt.Errorf("%w: no device registry or hub", ErrConfig)
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, db: db, hub: h, positions: positions, log: log, met: newMetrics(reg), now: time.Now,
		devs: map[string]*device{}, bySSRC: map[uint32]*session{}, ready: make(chan struct{})}
	s.nonceKey = make([]byte, 32)
	_, _ = rand.Read(s.nonceKey)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	var err error
	if s.ua, err = sipgo.NewUA(sipgo.WithUserAgent(cfg.ID)); err != nil {
		return nil, fmt.Errorf("gb28181: SIP user agent: %w", err)
	}
	if s.srv, err = sipgo.NewServer(s.ua, sipgo.WithServerLogger(log.With("part", "sip"))); err != nil {
		_ = s.ua.Close()
		return nil, fmt.Errorf("gb28181: SIP server: %w", err)
	}
	host, _, _ := net.SplitHostPort(cfg.SIPAddr)
	if s.client, err = sipgo.NewClient(s.ua, sipgo.WithClientHostname(hostOr(host, "127.0.0.1")), sipgo.WithClientLogger(log.With("part", "sip"))); err != nil {
		_ = s.ua.Close()
		return nil, fmt.Errorf("gb28181: SIP client: %w", err)
	}
	if err := s.bind(); err != nil {
		s.closeListeners()
		_ = s.ua.Close()
		return nil, err
	}
	s.srv.OnRegister(s.onRegister)
	s.srv.OnMessage(s.onMessage)
	s.srv.OnBye(s.onBye)
	s.srv.OnNotify(s.onNotify)
	s.srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	s.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusMethodNotAllowed, "Method Not Allowed", nil))
	})
	return s, nil
}

func hostOr(h, def string) string {
	if h == "" || h == "0.0.0.0" || h == "::" {
		return def
	}
	return h
}

func (s *Server) bind() error {
	var err error
	// SIP: TCP on the port UDP got; media: UDP on the port TCP got
	if s.sipUDP, s.sipTCP, err = listenPair(s.cfg.SIPAddr, true); err != nil {
		return fmt.Errorf("gb28181: SIP %w", err)
	}
	if s.mediaUDP, s.mediaTCP, err = listenPair(s.cfg.MediaAddr, false); err != nil {
		return fmt.Errorf("gb28181: media %w", err)
	}
	return nil
}

// listenPair listens on addr over UDP and TCP with one port number: the
// first protocol (UDP when udpFirst) picks it, the second takes the same.
// With port 0 (any) the second protocol's port of that number may be
// taken: then another number is tried.
func listenPair(addr string, udpFirst bool) (net.PacketConn, net.Listener, error) {
	lc := net.ListenConfig{}
	ctx := context.Background()
	host, _, _ := net.SplitHostPort(addr)
	for try := 0; ; try++ {
		var (
			pc  net.PacketConn
			ln  net.Listener
			err error
		)
		if udpFirst {
			if pc, err = lc.ListenPacket(ctx, "udp", addr); err != nil {
				return nil, nil, fmt.Errorf("UDP listen on %s: %w", addr, err)
			}
			same := net.JoinHostPort(host, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
			if ln, err = lc.Listen(ctx, "tcp", same); err == nil {
				return pc, ln, nil
			}
			_ = pc.Close()
			err = fmt.Errorf("TCP listen on %s: %w", addr, err)
		} else {
			if ln, err = lc.Listen(ctx, "tcp", addr); err != nil {
				return nil, nil, fmt.Errorf("TCP listen on %s: %w", addr, err)
			}
			same := net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
			if pc, err = lc.ListenPacket(ctx, "udp", same); err == nil {
				return pc, ln, nil
			}
			_ = ln.Close()
			err = fmt.Errorf("UDP listen on %s: %w", addr, err)
		}
		if !retryPair(addr, err, try) {
			return nil, nil, err
		}
	}
}

// retryPair: a second protocol's bind failed on the number the first got;
// another try is worth it only for port 0 and a number in use, a few times.
func retryPair(addr string, err error, try int) bool {
	_, port, _ := net.SplitHostPort(addr)
	return port == "0" && errors.Is(err, syscall.EADDRINUSE) && try < 20
}

func (s *Server) closeListeners() {
	for _, c := range []interface{ Close() error }{s.sipUDP, s.sipTCP, s.mediaTCP, s.mediaUDP} {
		if c != nil {
			_ = c.Close()
		}
	}
}

// SIPAddr is the bound SIP address (UDP and TCP).
func (s *Server) SIPAddr() string { return s.sipTCP.Addr().String() }

// MediaAddr is the bound media address (TCP and UDP).
func (s *Server) MediaAddr() string { return s.mediaTCP.Addr().String() }

// Ready is closed once Run serves (the listeners are bound by New).
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run serves until ctx ends (or Close).
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("gb28181: closed")
	}
	s.wg.Add(5)
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, s.cancel)
	defer stop()
	go func() { defer s.wg.Done(); _ = s.srv.ServeUDP(s.sipUDP) }()
	go func() { defer s.wg.Done(); _ = s.srv.ServeTCP(s.sipTCP) }()
	go func() { defer s.wg.Done(); s.acceptMedia() }()
	go func() { defer s.wg.Done(); s.readMediaUDP() }()
	go func() { defer s.wg.Done(); s.housekeeping() }()
	s.log.Info("GB/T 28181 server listening", "sip", s.SIPAddr(), "media", s.MediaAddr(), "id", s.cfg.ID, "domain", s.cfg.Domain)
	close(s.ready)
	<-s.ctx.Done()
	return nil
}

// Close ends every media session (the hub keeps their recordings for the
// grace window), closes the listeners and waits for every goroutine.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var sessions []*session
	for _, d := range s.devs {
		if d.sess != nil {
			sessions = append(sessions, d.sess)
		}
	}
	s.mu.Unlock()
	s.cancel()
	var stops sync.WaitGroup
	for _, ss := range sessions {
		stops.Go(func() { ss.stop(errors.New("server closing")) }) // BYEs in parallel
	}
	stops.Wait()
	s.closeListeners()
	err := s.ua.Close()
	s.wg.Wait()
	return err
}

// goTracked runs f on a goroutine Close waits for (not once closed).
func (s *Server) goTracked(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); f() }()
	return true
}

// nonce makes a digest nonce that proves, without server state, when and
// by this process it was made.
func (s *Server) nonce() string {
	ts := strconv.FormatInt(s.now().Unix(), 16)
	m := hmac.New(sha256.New, s.nonceKey)
	m.Write([]byte(ts))
	return ts + "." + fmt.Sprintf("%x", m.Sum(nil)[:12])
}

// nonceFresh checks a nonce this server made in the last 5 minutes.
func (s *Server) nonceFresh(n string) bool {
	for i := 0; i < len(n); i++ {
		if n[i] == '.' {
			ts, mac := n[:i], n[i+1:]
			m := hmac.New(sha256.New, s.nonceKey)
			m.Write([]byte(ts))
			if !hmac.Equal([]byte(mac), fmt.Appendf(nil, "%x", m.Sum(nil)[:12])) {
				return false
			}
			at, err := strconv.ParseInt(ts, 16, 64)
			if err != nil {
				return false
			}
			age := s.now().Unix() - at
			return age >= -5 && age <= 300
		}
	}
	return false
}

// housekeeping ends registrations that expired or stopped keeping alive,
// and INVITEs online devices without media.
func (s *Server) housekeeping() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.sweep(s.now())
		}
	}
}
