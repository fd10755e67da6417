// Package web is the platform's HTTP face: the JSON API, the pages, health
// and readiness probes and Prometheus metrics. It is the only package that
// chooses HTTP status codes; everything it needs from the rest of the
// platform comes in through small interfaces declared here, one set per
// handler group (accounts, roster, incidents, recordings, holds, replay,
// live, exports, uploads, audit, health). Each group is a small struct
// built with exactly the dependencies it needs and registers its own
// routes; the request plumbing they share (authentication and roles,
// JSON errors and status mapping, the audit helper) is in auth.go and
// plumbing.go.
package web

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/storage/replay"
)

//go:embed static
var staticFiles embed.FS

// Index is what web needs of the platform's database: one value (the
// index) serves every handler group's store.
type Index interface {
	Sessions
	Accounts
	RosterStore
	IncidentStore
	Dashboards
	TimelineStore
	RecordingStore
	AutoLinker
	ReplayStore
	ExportStore
	UploadStore
	ScopeStore
	ScopedStore
	UserScopes
	SecondFactors
	OIDCStore
	PositionStore
}

// Ingest is what web needs of the live ingest: the live list, and the
// URL cameras publish to.
type Ingest interface {
	LiveSource
	CameraEndpoint
}

// Options are the parts of the platform the server exposes. Every one is
// required but Checks and GB.
type Options struct {
	Config  Config
	Index   Index         // the database
	Audit   AuditLog      // the audit trail: every view and change is written to it
	Ingest  Ingest        // the live ingest
	Cluster LiveCluster   // the live view over every node (nil: this node's only)
	Peers   PeerLink      // serves this node's live streams to the other nodes (nil: none)
	Relay   LiveRelay     // the WebRTC relay for live views
	Holds   EvidenceHolds // legal holds (the archive)
	Objects ObjectStore   // archived objects, for replay and export downloads
	Exports ExportBuilder // builds approved evidence exports
	Uploads UploadService // resumable uploads (tus)
	GB      GBRegistry    // GB/T 28181 registrations; nil: off
	Checks  []Check       // readiness checks
	// Audio converts audio browsers cannot play for the replay player
	// (nil: such recordings replay without sound)
	Audio   replay.AudioEncoder
	Metrics *prometheus.Registry
	Logger  *slog.Logger
}

// validate names every missing dependency and invalid setting.
func (o Options) validate() error {
	errs := []error{o.Config.validate()}
	for _, d := range []struct {
		name    string
		missing bool
	}{
		{"Index", o.Index == nil}, {"Audit", o.Audit == nil}, {"Ingest", o.Ingest == nil}, {"Relay", o.Relay == nil},
		{"Holds", o.Holds == nil}, {"Objects", o.Objects == nil}, {"Exports", o.Exports == nil}, {"Uploads", o.Uploads == nil},
		{"Metrics", o.Metrics == nil}, {"Logger", o.Logger == nil},
	} {
		if d.missing {
			errs = append(errs, fmt.Errorf("web: Options.%s is required", d.name))
		}
	}
	for i, c := range o.Checks {
		if c.Func == nil {
			errs = append(errs, fmt.Errorf("web: Options.Checks[%d] (%q) has no Func", i, c.Name))
		}
	}
	return errors.Join(errs...)
}

// Server is the HTTP server: it owns the listener and the lifecycle; the
// handler groups answer the requests.
type Server struct {
	cfg     Config
	log     *slog.Logger
	srv     *http.Server
	tls     bool // serving HTTPS
	handler http.Handler
	routes  []Route
	health  *health
	ready   chan struct{} // closed once the listener is bound
	closing chan struct{} // closed when the server stops: long-lived responses end

	stopOnce sync.Once
	mu       sync.Mutex
	ln       net.Listener // set by Run
	closed   bool
	inFlight sync.WaitGroup // handlers running; Close waits for them

	audits *auditAggregator // reads and refusals: its owner goroutine runs from Run to Close
}

// New validates the options and builds the handler groups and the router.
// It binds nothing: Run does.
func New(o Options) (*Server, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: o.Config, log: o.Logger, ready: make(chan struct{}), closing: make(chan struct{})}
	var tlsConfig *tls.Config
	if s.cfg.TLSCert != "" {
		certs, err := newCertReloader(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			return nil, err
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
		s.tls = true
	}
	s.handler = s.track(s.build(o))
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

// build makes the handler groups, each with the dependencies it needs,
// and registers their routes.
func (s *Server) build(o Options) http.Handler {
	cfg, db, log := o.Config, o.Index, o.Logger
	k := newKit(o.Audit, cfg.AuditReadPeriod, o.Metrics, log)
	s.audits = k.reads
	e := newEdge(cfg, o.Metrics)
	mfa := &secondFactor{db: db, required: cfg.MFARequiredRoles, kit: k}
	r := &router{mux: http.NewServeMux(), sessions: db, kit: k, edge: e, mfa: mfa}
	s.health = newHealth(o.Checks, o.Metrics)
	s.health.routes(r)
	refresh := liveRefresher{live: o.Ingest, log: log}
	finder := incidentFinder{db}
	az := &authz{db: db, kit: k}
	acc := newAccounts(cfg, db, k, e, o.Metrics)
	acc.mfa = mfa
	for _, g := range []interface{ routes(*router) }{
		acc, mfa,
		newSingleSignOn(cfg.OIDC, db, acc, k),
		&userScopes{db: db, kit: k},
		&auditTrail{log: o.Audit, az: az, kit: k},
		&positions{db: db, az: az, kit: k, now: time.Now},
		&roster{db: db, scoped: db, camera: o.Ingest, gb: o.GB, az: az, kit: k},
		&incidents{db: db, linker: db, dashboards: db, timeline: db, scoped: db, refresh: refresh, linkBuffer: cfg.LinkBuffer, az: az, kit: k},
		&recordings{db: db, officers: db, incidents: finder, refresh: refresh, linkBuffer: cfg.LinkBuffer, az: az, kit: k},
		&holds{holds: o.Holds, az: az, kit: k},
		newLive(o.Ingest, o.Cluster, o.Peers, o.Relay, s.closing, az, k).withPositions(db),
		newReplays(db, o.Objects, o.Audio, az, k),
		&exports{db: db, scoped: db, builder: o.Exports, incidents: finder, files: objectFiles{o.Objects, k}, approval: cfg.ExportApproval, az: az, kit: k},
		&uploads{service: o.Uploads, db: db, az: az, kit: k},
	} {
		g.routes(r)
	}
	r.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no such API endpoint: " + r.Method + " " + r.URL.Path})
	})
	pageRoutes(r, cfg.MapTiles)
	s.routes = r.table
	return e.wrap(instrument(o.Metrics, r.mux))
}

// track counts the handlers running, for Close to wait for.
func (s *Server) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		tracked := !s.closed
		if tracked {
			s.inFlight.Add(1)
		}
		s.mu.Unlock()
		if tracked {
			defer s.inFlight.Done()
		}
		next.ServeHTTP(w, r)
	})
}

// Ready is closed once Run has bound the listener.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on (valid once Ready is closed).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return s.cfg.Addr
	}
	return s.ln.Addr().String()
}

// URL is the server's base URL (https:// when TLS is on).
func (s *Server) URL() string {
	if s.tls {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// Handler is the server's router, for tests.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes lists every route registered with a role check.
func (s *Server) Routes() []Route { return slices.Clone(s.routes) }

// Pages lists the role-checked pages, for tests.
func (s *Server) Pages() []Page { return slices.Clone(pages) }

// listen binds the listener, unless the server is already closed.
func (s *Server) listen() (net.Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("web: listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	return ln, nil
}

// Run binds the listener (a port in use is an error at once), closes
// Ready, and serves until ctx is cancelled, then shuts down gracefully. A
// listener that stops by itself ends Run with an error. Run after Close
// returns nil at once.
func (s *Server) Run(ctx context.Context) error {
	ln, err := s.listen()
	if err != nil || ln == nil {
		return err
	}
	close(s.ready)
	s.audits.start()
	errc := make(chan error, 1)
	go func() {
		if s.tls {
			errc <- s.srv.ServeTLS(ln, "", "")
		} else {
			errc <- s.srv.Serve(ln)
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
		s.health.listenerFailed(err)
		s.log.Error("http listener stopped", "addr", s.Addr(), "err", err)
		s.stopStreams()
		return err
	case <-ctx.Done():
	}
	s.stopStreams()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err = s.srv.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("web: shutdown: %w", err)
	}
	return nil
}

// Close stops the server at once and waits for the handlers still
// running (their requests' contexts end with their connections), then
// writes the aggregated audit events pending and stops their goroutine.
func (s *Server) Close() error {
	s.stopStreams()
	s.mu.Lock()
	s.closed = true
	ln := s.ln
	s.mu.Unlock()
	err := s.srv.Close()
	if ln != nil {
		ln.Close() // when Serve had not taken it yet
	}
	s.inFlight.Wait()
	s.audits.close()
	return err
}

// stopStreams ends long-lived responses (server-sent events), which a
// graceful shutdown would otherwise wait for.
func (s *Server) stopStreams() {
	s.stopOnce.Do(func() { close(s.closing) })
}
