package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bwcplatform/bwc/ingest"
	"github.com/bwcplatform/bwc/ingest/upload"
	"github.com/bwcplatform/bwc/relay"
	"github.com/bwcplatform/bwc/storage/archive"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/web"
)

func newLogger(cfg Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// service is the lifecycle every component of the platform shares.
type service interface {
	Run(ctx context.Context) error
	Close() error
}

// platform is the wired set of components of `bwc serve`.
type platform struct {
	db       *index.DB
	blobs    *blob.Store
	archive  *archive.Archive
	ingest   *ingest.Server
	relay    *relay.Server
	web      *web.Server
	services []service     // run together; closed in reverse order
	ready    chan struct{} // closed by run once every service is Ready
}

// build wires the platform: it connects to PostgreSQL and MinIO (failing
// fast with a clear message when either is unreachable or misconfigured),
// applies the schema, ensures the evidence bucket and builds every server.
func build(ctx context.Context, cfg Config, log *slog.Logger) (_ *platform, err error) {
	p := &platform{ready: make(chan struct{})}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if p.db, err = index.OpenAs(ctx, cfg.DatabaseURL, cfg.DatabaseRole); err != nil {
		return nil, err
	}
	v, err := p.db.Migrate(ctx)
	if err != nil {
		return nil, err
	}
	log.Info("database ready", "schema_version", v)

	if p.blobs, err = blob.Open(blob.Config{
		Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey,
		Bucket: cfg.S3Bucket, Region: cfg.S3Region, UseTLS: cfg.S3UseTLS,
	}); err != nil {
		return nil, err
	}
	if err := p.blobs.EnsureBucket(ctx); err != nil {
		return nil, err
	}
	log.Info("evidence bucket ready", "bucket", cfg.S3Bucket, "object_lock", true)

	// archive: every live recording to the spool, then MinIO and the index
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("spool-dir: %w", err)
	}
	if p.archive, err = archive.New(archive.Config{SpoolDir: cfg.SpoolDir, SegmentDuration: cfg.SegmentDuration,
		Retention: cfg.Retention, SpoolAlarmBytes: cfg.SpoolAlarmBytes, StuckAfter: cfg.StuckAfter, LinkBuffer: cfg.LinkBuffer,
		FragmentDuration: cfg.FragmentDuration, UploadWorkers: cfg.ArchiveWorkers, RingFrames: cfg.ArchiveRingFrames,
		BackoffMin: cfg.ArchiveBackoffMin, BackoffMax: cfg.ArchiveBackoffMax, ScanInterval: cfg.ArchiveScanInterval,
		ReconcileEvery: cfg.ArchiveReconcileEvery, RetryWrite: cfg.ArchiveRetryWrite},
		p.db, p.blobs, reg, log.With("component", "archive")); err != nil {
		return nil, err
	}
	p.services = append(p.services, p.archive)

	// live ingest: cameras publish over RTSP; each new recording is archived
	if p.ingest, err = ingest.New(ingest.Config{RTSPAddr: cfg.RTSPAddr, UDPRTPAddr: cfg.RTSPUDPRTPAddr, UDPRTCPAddr: cfg.RTSPUDPRTCPAddr,
		Grace: cfg.ReconnectGrace, MediaTimeout: cfg.MediaTimeout, LinkBuffer: cfg.LinkBuffer,
		LinkInterval: cfg.LinkInterval, MaxClockSkew: cfg.MaxClockSkew, DevicesReload: cfg.DevicesReload,
		MaxConns: cfg.RTSPMaxConns, MaxConnsPerAddr: cfg.RTSPMaxConnsPerAddr, HandshakeTimeout: cfg.RTSPHandshakeTimeout,
		AuthFailuresPerAddr: cfg.RTSPAuthFailuresPerAddr, AuthFailuresPerDevice: cfg.RTSPAuthFailuresPerDevice,
		AuthFailureWindow: cfg.RTSPAuthFailureWindow, RTSPSAddr: cfg.RTSPSAddr, TLSCert: cfg.RTSPTLSCert, TLSKey: cfg.RTSPTLSKey,
		JournalDir: filepath.Join(cfg.SpoolDir, "journal"), PublicHost: cfg.CameraHost}, p.db, reg, log.With("component", "ingest")); err != nil {
		return nil, err
	}
	p.ingest.OnStream(p.archive.Attach)
	p.services = append(p.services, p.ingest)

	// evidence exports: signed packages built in the background
	key, err := export.LoadOrCreateKey(cfg.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("signing-key: %w", err)
	}
	exporter, err := export.NewExporter(export.ExporterConfig{Dir: cfg.ExportDir, Retention: cfg.Retention},
		p.db, p.blobs, key, log.With("component", "exports"))
	if err != nil {
		return nil, err
	}
	p.services = append(p.services, exporter)

	// uploads of footage recorded offline (tus, resumable)
	up, err := upload.New(upload.Config{Dir: cfg.UploadDir, MaxSize: cfg.UploadMaxSize, Retention: cfg.Retention,
		LinkBuffer: cfg.LinkBuffer, SpoolDir: cfg.SpoolDir, MinFree: cfg.UploadMinFree, StaleAfter: cfg.UploadStaleAfter,
		SweepEvery: cfg.uploadSweepEvery(), StuckAfter: cfg.UploadStuckAfter, RetryMin: cfg.UploadRetryMin, RetryMax: cfg.UploadRetryMax,
		ReconcileEvery: cfg.UploadReconcileEvery, Metrics: reg}, p.db, p.blobs, log.With("component", "uploads"))
	if err != nil {
		return nil, err
	}
	p.services = append(p.services, up)

	// live relay: supervisors watch over WebRTC (WHEP)
	if p.relay, err = relay.New(relay.Config{UDPAddr: cfg.WebRTCUDPAddr, TCPAddr: cfg.WebRTCTCPAddr,
		TCPMaxConns: cfg.WebRTCTCPMax, TCPMaxPerAddr: cfg.WebRTCTCPPerAddr, STUNTimeout: cfg.WebRTCSTUNWait,
		QueueFrames: cfg.RelayQueueFrames, MaxViewers: cfg.RelayMaxViewers,
		PublicIPs: splitList(cfg.WebRTCPublicIPs), ICEServers: splitList(cfg.WebRTCICEServers)},
		p.ingest, reg, log.With("component", "relay")); err != nil {
		return nil, err
	}
	p.services = append(p.services, p.relay)

	proxies, err := web.ParseTrustedProxies(splitList(cfg.TrustedProxies))
	if err != nil {
		return nil, fmt.Errorf("trusted-proxies: %w", err)
	}
	p.web, err = web.New(web.Options{
		Config: web.Config{Addr: cfg.HTTPAddr, ShutdownTimeout: cfg.ShutdownTimeout,
			SessionTTL: cfg.SessionTTL, CookieSecure: cfg.CookieSecure, LinkBuffer: cfg.LinkBuffer, ExportApproval: cfg.ExportApproval,
			TLSCert: cfg.TLSCert, TLSKey: cfg.TLSKey, TrustedProxies: proxies,
			ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout,
			IdleTimeout: cfg.IdleTimeout, MaxHeaderBytes: cfg.MaxHeaderBytes,
			LoginRate: cfg.LoginRate, LoginBurst: cfg.LoginBurst, UnauthRate: cfg.UnauthRate, UnauthBurst: cfg.UnauthBurst,
			HashSlots: cfg.LoginHashSlots, HashWait: cfg.LoginHashWait},
		Index:   p.db,
		Audit:   p.db,
		Ingest:  p.ingest,
		Holds:   evidence.NewHolder(p.db, p.blobs, log.With("component", "holds")),
		Relay:   p.relay,
		Objects: p.blobs,
		Exports: exporter,
		Uploads: up,
		Checks: []web.Check{{Name: "postgres", Func: p.db.Ping}, {Name: "minio", Func: p.blobs.Ping},
			{Name: "archive spool", Func: p.archive.Check}, {Name: "ingest (RTSP listeners, database queue)", Func: p.ingest.Check},
			{Name: "webrtc listeners", Func: p.relay.Check}, {Name: "uploads", Func: up.Check}},
		Metrics: reg,
		Logger:  log.With("component", "web"),
	})
	if err != nil {
		return nil, err
	}
	p.services = append(p.services, p.web)
	return p, nil
}

func (p *platform) close() {
	for i := len(p.services) - 1; i >= 0; i-- {
		p.services[i].Close()
	}
	if p.db != nil {
		p.db.Close()
	}
}

// readier is a service whose Run closes Ready once it listens.
type readier interface{ Ready() <-chan struct{} }

// run runs every service until ctx ends or one of them fails, then stops
// the others. Services start in order, each once the one before it is
// Ready (the relay reads the ingest's streams, web shows its address);
// p.ready is closed once all are.
func (p *platform) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(p.services))
	for i, s := range p.services {
		if ctx.Err() != nil {
			break // one failed before it was ready: start no more
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Run(ctx)
			cancel() // one service ending ends the platform
		}()
		if r, ok := s.(readier); ok {
			select {
			case <-r.Ready():
			case <-ctx.Done():
			}
		}
	}
	if ctx.Err() == nil && p.ready != nil {
		close(p.ready)
	}
	wg.Wait()
	p.close()
	return errors.Join(errs...)
}

func serve(ctx context.Context, cfg Config) error {
	log := newLogger(cfg)
	p, err := build(ctx, cfg, log)
	if err != nil {
		return err
	}
	if cfg.PprofAddr != "" {
		go servePprof(ctx, cfg.PprofAddr, log)
	}
	log.Info("platform running", "http", p.web.URL()+"/", "rtsp", "rtsp://"+p.ingest.Addr()+"/"+ingest.PathPrefix+"<device serial>")
	err = p.run(ctx)
	log.Info("platform stopped")
	return err
}

func servePprof(ctx context.Context, addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Info("pprof listening", "addr", addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("pprof server", "err", err)
	}
}

func migrateCmd(ctx context.Context, cfg Config) error {
	db, err := index.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("schema at version %d\n", v)
	return nil
}

// seedDemo creates, once, the demo officer, camera and incident, checks the
// camera out to the officer and assigns the officer to the incident.
func seedDemo(ctx context.Context, cfg Config) error {
	db, err := index.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return err
	}
	// two officers, each wearing a demo camera, both sent to the demo incident
	crew := []struct{ serial, badge, name string }{
		{"DEMO-CAM-01", "DEMO-001", "Li Wei"},
		{"DEMO-CAM-02", "DEMO-002", "Zhao Min"},
	}
	officers, err := db.Officers(ctx)
	if err != nil {
		return err
	}
	byBadge := map[string]index.Officer{}
	for _, o := range officers {
		byBadge[o.Badge] = o
	}
	var ids []uuid.UUID
	for _, c := range crew {
		dev, err := db.DeviceBySerial(ctx, c.serial)
		if errors.Is(err, index.ErrNotFound) {
			dev, err = db.CreateDevice(ctx, index.Device{Serial: c.serial, Model: "demo body camera", Secret: "demo-camera-secret"})
		}
		if err != nil {
			return fmt.Errorf("seed demo device: %w", err)
		}
		off, ok := byBadge[c.badge]
		if !ok {
			if off, err = db.CreateOfficer(ctx, index.Officer{Badge: c.badge, Name: c.name, Unit: "Patrol 1"}); err != nil {
				return fmt.Errorf("seed demo officer: %w", err)
			}
		}
		if _, err := db.CheckOut(ctx, dev.ID, off.ID, time.Time{}); err != nil && !errors.Is(err, index.ErrConflict) {
			return fmt.Errorf("seed demo check-out: %w", err)
		}
		ids = append(ids, off.ID)
	}
	for _, u := range demoUsers {
		user := index.User{Login: u.login, Role: u.role, Unit: "Patrol 1"}
		if u.role == index.RoleOfficer {
			user.OfficerID = &ids[0]
		}
		if _, err := db.CreateUser(ctx, user, u.password); err != nil && !errors.Is(err, index.ErrConflict) {
			return fmt.Errorf("seed demo user %s: %w", u.login, err)
		}
	}
	inc, err := db.IncidentByNumber(ctx, "DEMO-110-0001")
	if errors.Is(err, index.ErrNotFound) {
		inc, err = db.CreateIncident(ctx, index.Incident{Number: "DEMO-110-0001", Type: "disturbance", Address: "1 Demo Road"})
	}
	if err != nil {
		return fmt.Errorf("seed demo incident: %w", err)
	}
	for _, id := range ids {
		// already assigned (an earlier seed) is fine
		if _, err := db.Assign(ctx, inc.ID, id, time.Time{}); err != nil && !errors.Is(err, index.ErrConflict) {
			return fmt.Errorf("seed demo assignment: %w", err)
		}
	}
	fmt.Println("demo data ready: officers DEMO-001 and DEMO-002 wear DEMO-CAM-01 and DEMO-CAM-02, assigned to incident DEMO-110-0001")
	return nil
}

// demoUsers are the demo's accounts, one per role (printed by demo.sh).
var demoUsers = []struct{ login, role, password string }{
	{"admin", index.RoleAdmin, "demo-admin-pass"},
	{"supervisor", index.RoleSupervisor, "demo-supervisor-pass"},
	{"reviewer", index.RoleReviewer, "demo-reviewer-pass"},
	{"officer", index.RoleOfficer, "demo-officer-pass"},
}
