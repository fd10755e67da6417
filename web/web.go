// Package web is the platform's HTTP face: the JSON API, the pages, health
// and readiness probes and Prometheus metrics. It is the only package that
// chooses HTTP status codes; everything it needs from the rest of the
// platform comes in through small interfaces declared here.
package web

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed static
var staticFiles embed.FS

// Check is one readiness check: a dependency the platform cannot work
// without (PostgreSQL, MinIO, ...).
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// Config of the HTTP server.
type Config struct {
	Addr            string
	ShutdownTimeout time.Duration
	SessionTTL      time.Duration // how long a login lasts (12h when 0)
	CookieSecure    bool          // mark the session cookie Secure even on plain HTTP (behind a TLS proxy)
	CameraURL       string        // base URL cameras publish to, e.g. rtsp://host:8554/live (shown to admins)
	LinkBuffer      time.Duration // incident association rule's widening (5m when 0)
	ExportApproval  bool          // exports need a supervisor's approval

	// HTTPS: both files, or neither (plain HTTP).
	TLSCert, TLSKey string
	// TrustedProxies: the client address is read from X-Forwarded-For only
	// when the direct peer is in one of these.
	TrustedProxies []netip.Prefix

	// Server limits (zero: no limit, except ReadHeaderTimeout: 10s).
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration // reading a request's body
	WriteTimeout      time.Duration // each write of a response
	IdleTimeout       time.Duration
	MaxHeaderBytes    int

	// Per-address rate limits (requests per second and burst; 0: none):
	// login attempts, and requests without a session or token.
	LoginRate, UnauthRate   float64
	LoginBurst, UnauthBurst int
	// HashSlots bounds concurrent password checks (argon2id, 19 MiB each;
	// 0: 2 x GOMAXPROCS, negative: unbounded, for benchmarks); a login
	// waits at most HashWait (0: 2s) for a slot, then gets 503.
	HashSlots int
	HashWait  time.Duration
}

// Options are the parts of the platform the server exposes.
type Options struct {
	Config  Config
	Domain  domainStore
	Auth    authStore
	Audit   auditLog
	Checks  []Check
	Metrics *prometheus.Registry
	Logger  *slog.Logger

	// Recordings is the index of recordings; Domain's database when nil
	// and Domain is one.
	Recordings recordingStore
	// Ingest is the live ingest (nil: no live list).
	Ingest liveSource
	// Viewers counts a live recording's viewers (nil: none counted).
	Viewers func(uuid.UUID) int
	// Holds places and releases legal holds (the archive; nil: 503).
	Holds evidenceHolds
	// Relay serves live views over WebRTC (nil: 503).
	Relay liveRelay
	// Objects opens archived objects for replay (nil: 503); the index for
	// replay is Domain's database.
	Objects objectStore
	// Exports builds approved evidence exports (nil: 503).
	Exports exportBuilder
	// Uploads takes resumable uploads (nil: 503).
	Uploads uploads
}

// Server is the HTTP server.
type Server struct {
	cfg     Config
	domain  domainStore
	auth    authStore
	auditor auditLog
	checks  []Check

	recordings recordingStore
	ingest     liveSource
	viewers    func(uuid.UUID) int
	holds      evidenceHolds
	relay      liveRelay
	replay     replayStore
	objects    objectStore
	views      viewAudit
	exports    exportStore
	builder    exportBuilder
	uploads    uploads
	closing    chan struct{} // closed when the server stops: long-lived responses end

	auditFailures prometheus.Counter
	log           *slog.Logger
	ln            net.Listener
	srv           *http.Server
	handler       http.Handler

	routeTable  []Route
	closeOnce   sync.Once
	streamsOnce sync.Once

	loginLimit, anonLimit *addrLimiter
	unknownLocks          *unknownLocks
	hashSlots             chan struct{}
	hashWaiting           prometheus.Gauge
	hashBusy              prometheus.Counter
	rateLimited           *prometheus.CounterVec
	listenerErr           atomic.Pointer[error] // set when the listener stopped by itself

	readyMu   sync.Mutex // one round of readiness checks at a time, shared for a second
	readyAt   time.Time
	readyCode int
	readyBody map[string]any
	tls       bool // serving HTTPS
}

// New binds the listening socket (so that a port in use fails at once) and
// builds the router.
func New(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	if o.Config.ShutdownTimeout == 0 {
		o.Config.ShutdownTimeout = 10 * time.Second
	}
	if o.Config.SessionTTL == 0 {
		o.Config.SessionTTL = 12 * time.Hour
	}
	if o.Config.LinkBuffer == 0 {
		o.Config.LinkBuffer = 5 * time.Minute
	}
	if o.Viewers == nil && o.Relay != nil {
		o.Viewers = o.Relay.Viewers
	}
	if o.Recordings == nil {
		if rs, ok := o.Domain.(recordingStore); ok {
			o.Recordings = rs
		}
	}
	s := &Server{cfg: o.Config, domain: o.Domain, auth: o.Auth, auditor: o.Audit, checks: o.Checks, log: o.Logger,
		recordings: o.Recordings, ingest: o.Ingest, viewers: o.Viewers, holds: o.Holds, relay: o.Relay, objects: o.Objects, builder: o.Exports, uploads: o.Uploads, closing: make(chan struct{})}
	s.auditFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bwc_audit_write_failures_total", Help: "Audit events that could not be written (alarm).",
	})
	o.Metrics.MustRegister(s.auditFailures)
	if s.cfg.ReadHeaderTimeout == 0 {
		s.cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if s.cfg.HashWait == 0 {
		s.cfg.HashWait = 2 * time.Second
	}
	switch {
	case s.cfg.HashSlots == 0:
		s.hashSlots = make(chan struct{}, 2*runtime.GOMAXPROCS(0))
	case s.cfg.HashSlots > 0:
		s.hashSlots = make(chan struct{}, s.cfg.HashSlots)
	}
	s.loginLimit = newAddrLimiter(s.cfg.LoginRate, s.cfg.LoginBurst, maxLimitedAddrs)
	s.anonLimit = newAddrLimiter(s.cfg.UnauthRate, s.cfg.UnauthBurst, maxLimitedAddrs)
	s.unknownLocks = newUnknownLocks(maxLimitedAddrs)
	s.hashWaiting = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "bwc_login_hash_waiting", Help: "Logins waiting for a password-hashing slot.",
	})
	s.hashBusy = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bwc_login_hash_busy_total", Help: "Logins answered 503: no password-hashing slot in time.",
	})
	s.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bwc_http_rate_limited_total", Help: "Requests answered 429 by a per-address limit.",
	}, []string{"limit"})
	o.Metrics.MustRegister(s.hashWaiting, s.hashBusy, s.rateLimited)
	var tlsConfig *tls.Config
	if (s.cfg.TLSCert == "") != (s.cfg.TLSKey == "") {
		return nil, errors.New("web: TLS needs both a certificate and a key file")
	}
	if s.cfg.TLSCert != "" {
		certs, err := newCertReloader(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			return nil, err
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
		s.tls = true
	}
	if rs, ok := o.Domain.(replayStore); ok {
		s.replay = rs
	}
	if es, ok := o.Domain.(exportStore); ok {
		s.exports = es
	}
	s.handler = s.routes(o.Metrics)
	ln, err := net.Listen("tcp", o.Config.Addr)
	if err != nil {
		return nil, fmt.Errorf("web: listen on %s: %w", o.Config.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.handler,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL (https:// when TLS is on).
func (s *Server) URL() string {
	if s.tls {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// Handler is the server's router, for tests.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves until ctx is cancelled, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		if s.tls {
			errc <- s.srv.ServeTLS(s.ln, "", "")
		} else {
			errc <- s.srv.Serve(s.ln)
		}
	}()
	s.log.Info("http server listening", "addr", s.Addr(), "tls", s.tls)
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		// never a silent half-alive server: the error ends Run, which ends
		// the platform (bwc serve exits non-zero for its supervisor to
		// restart it); /readyz names it meanwhile
		err = fmt.Errorf("web: http listener on %s stopped: %w", s.Addr(), err)
		s.listenerErr.Store(&err)
		s.log.Error("http listener stopped", "addr", s.Addr(), "err", err)
		s.stopStreams()
		return err
	case <-ctx.Done():
	}
	s.stopStreams()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("web: shutdown: %w", err)
	}
	return nil
}

// Close stops the server at once.
func (s *Server) Close() error {
	var err error
	s.stopStreams()
	s.closeOnce.Do(func() {
		err = s.srv.Close()
		s.ln.Close()
	})
	return err
}

func (s *Server) routes(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s.authRoutes(mux)
	s.auditRoutes(mux)
	s.apiRoutes(mux)
	s.recordingRoutes(mux)
	s.holdRoutes(mux)
	s.dashboardRoutes(mux)
	s.whepRoutes(mux)
	s.replayRoutes(mux)
	s.exportRoutes(mux)
	s.uploadRoutes(mux)

	static, _ := fs.Sub(staticFiles, "static")
	s.pageRoutes(mux, static)
	assets, _ := fs.Sub(static, "assets")
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))

	return s.edge(instrument(reg, mux))
}

// readyz answers 200 when every dependency answers, 503 naming each that
// does not.
//
// Probes are exempt from the per-address limit (a load balancer shares its
// address with everyone behind it), so the answer is computed at most once
// a second and shared: a flood of probes costs one round of checks.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.readyMu.Lock()
	if time.Since(s.readyAt) >= time.Second {
		s.readyCode, s.readyBody = s.checkReady(r.Context())
		s.readyAt = time.Now()
	}
	code, body := s.readyCode, s.readyBody
	s.readyMu.Unlock()
	writeJSON(w, code, body)
}

func (s *Server) checkReady(ctx context.Context) (int, map[string]any) {
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(s.checks))
	for _, c := range s.checks {
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			defer cancel()
			results <- result{c.Name, c.Func(ctx)}
		}()
	}
	status := map[string]string{}
	ready := true
	if err := s.listenerErr.Load(); err != nil {
		ready = false
		status["http listener"] = (*err).Error()
	}
	for range s.checks {
		res := <-results
		if res.err != nil {
			ready = false
			status[res.name] = res.err.Error()
		} else {
			status[res.name] = "ok"
		}
	}
	code, word := http.StatusOK, "ready"
	if !ready {
		code, word = http.StatusServiceUnavailable, "not ready"
	}
	return code, map[string]any{"status": word, "checks": status}
}

// instrument counts requests and their latency per route pattern.
func instrument(reg *prometheus.Registry, next http.Handler) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bwc_http_requests_total", Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "bwc_http_request_seconds", Help: "HTTP request latency by route.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
	}, []string{"route"})
	reg.MustRegister(requests, latency)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		requests.WithLabelValues(route, fmt.Sprint(sw.code)).Inc()
		latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush for server-sent events.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// stopStreams ends long-lived responses (server-sent events), which a
// graceful shutdown would otherwise wait for.
func (s *Server) stopStreams() {
	s.streamsOnce.Do(func() { close(s.closing) })
}
