package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bwcplatform/bwc/ingest"
	"github.com/bwcplatform/bwc/ingest/gb28181"
	"github.com/bwcplatform/bwc/ingest/media/transcode"
	"github.com/bwcplatform/bwc/ingest/peer"
	"github.com/bwcplatform/bwc/ingest/upload"
	"github.com/bwcplatform/bwc/relay"
	"github.com/bwcplatform/bwc/storage/archive"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/replay"
	"github.com/bwcplatform/bwc/storage/seal"
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

// service is the lifecycle every component of the platform shares: New
// (validate, allocate), Run (bind or recover, close Ready, serve until ctx
// ends), Close (wait for every goroutine started).
type service interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
	Close() error
}

// platform is the wired set of components of `bwc serve`.
type platform struct {
	db       *index.DB
	blobs    *blob.Store
	archive  *archive.Archive
	node     *ingest.Node
	ingest   *ingest.Server
	gb       *gb28181.Server // nil: GB/T 28181 off
	relay    *relay.Server
	link     *peer.Link
	scrub    *evidence.Scrubber
	web      *web.Server
	services []service         // run together; closed in reverse order
	audio    *transcode.FFmpeg // nil: no audio conversion
	ready    chan struct{}     // closed by run once every service is Ready
	onReady  func()            // called by run once every service is Ready
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
	if err := p.openStores(ctx, cfg, log); err != nil {
		return nil, err
	}
	// this process among the nodes sharing the database: first to run, so
	// that a second process with the same -node stops before anything else
	if p.node, err = ingest.NewNode(cfg.nodeConfig(), p.db, log.With("component", "node")); err != nil {
		return nil, err
	}
	p.services = append(p.services, p.node)
	// the platform's key (one for every node, registered in the
	// database): signs evidence packages, seals and checkpoints
	key, err := platformKey(ctx, cfg, p.db)
	if err != nil {
		return nil, err
	}
	log.Info("signing key", "fingerprint", export.Fingerprint(key.Public().(ed25519.PublicKey)))
	if err := p.db.SetSecretsKey(secretsKey(key)); err != nil {
		return nil, err
	}
	if err := p.buildMedia(cfg, key, reg, log); err != nil {
		return nil, err
	}
	// signed checkpoints of the live recordings and the audit head
	cp, err := seal.NewCheckpointer(cfg.checkpointConfig(), p.db, p.blobs, key, log.With("component", "checkpoints"))
	if err != nil {
		return nil, err
	}
	p.services = append(p.services, cp)
	// background verification of stored evidence (-verify-bytes-per-hour)
	p.scrub, err = evidence.NewScrubber(cfg.scrubConfig(), p.db, p.blobs, key.Public().(ed25519.PublicKey), reg, log.With("component", "verification"))
	if err != nil {
		return nil, err
	}
	p.services = append(p.services, p.scrub)
	// evidence exports: signed packages built in the background
	exporter, err := export.NewExporter(cfg.exporterConfig(), p.db, p.blobs, key, log.With("component", "exports"))
	if err != nil {
		return nil, err
	}
	p.services = append(p.services, exporter)

	// uploads of footage recorded offline (tus, resumable)
	up, err := upload.New(cfg.uploadConfig(reg), p.db, p.blobs, log.With("component", "uploads"))
	if err != nil {
		return nil, err
	}
	p.services = append(p.services, up)

	// audio conversion for browsers (replay, live AAC): ffmpeg if it is there
	p.audio = audioConverter(ctx, cfg, log)

	// live relay: supervisors watch over WebRTC (WHEP)
	rcfg := cfg.relayConfig()
	rcfg.Transcoder = p.audio // AAC cameras heard as Opus while watched
	if p.relay, err = relay.New(rcfg, p.ingest, reg, log.With("component", "relay")); err != nil {
		return nil, err
	}
	p.services = append(p.services, p.relay)
	// live views across nodes: this node's cameras served to the others,
	// theirs pulled once for this node's viewers; the cluster's live list
	p.link, err = peer.New(cfg.peerConfig(linkKey(key), func() string { return p.web.Addr() }), p.db, p.ingest, reg,
		log.With("component", "peer"))
	if err != nil {
		return nil, err
	}
	p.relay.PullFrom(p.link)
	if err := p.buildWeb(cfg, exporter, up, reg, log); err != nil {
		return nil, err
	}
	p.services = append(p.services, p.link) // after web: it advertises the bound address
	return p, nil
}

// openStores connects to PostgreSQL (as the application's login, the
// schema checked; see openDatabase) and MinIO (checking the evidence
// bucket).
func (p *platform) openStores(ctx context.Context, cfg Config, log *slog.Logger) (err error) {
	var v int32
	if p.db, v, err = openDatabase(ctx, cfg); err != nil {
		return err
	}
	log.Info("database ready", "schema_version", v)
	if p.blobs, err = blob.Open(cfg.blobConfig()); err != nil {
		return err
	}
	if err := p.blobs.EnsureBucket(ctx); err != nil {
		return err
	}
	log.Info("evidence bucket ready", "bucket", cfg.S3Bucket, "object_lock", true)
	return nil
}

// buildMedia builds the archive and the live ingest: cameras publish over
// RTSP; every new recording goes to the spool, then MinIO and the index.
func (p *platform) buildMedia(cfg Config, key ed25519.PrivateKey, reg *prometheus.Registry, log *slog.Logger) (err error) {
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("spool-dir: %w", err)
	}
	if p.archive, err = archive.New(cfg.archiveConfig(), p.db, p.blobs, key, reg, log.With("component", "archive")); err != nil {
		return err
	}
	p.services = append(p.services, p.archive)
	if p.ingest, err = ingest.New(cfg.ingestConfig(), p.db, reg, log.With("component", "ingest")); err != nil {
		return err
	}
	p.ingest.OnStream(p.archive.Attach)
	p.services = append(p.services, p.ingest)
	if cfg.GBSIPAddr != "" {
		// GB/T 28181 devices feed the same hub; positions: no sink yet
		if p.gb, err = gb28181.New(cfg.gbConfig(), p.db, p.ingest, p.db, reg, log.With("component", "gb28181")); err != nil {
			return err
		}
		p.services = append(p.services, p.gb) // closed before the ingest
	}
	return nil
}

// audioConverter is -ffmpeg when it runs and has the encoders; otherwise
// nil (logged): recordings and views whose audio browsers cannot play are
// seen without sound, never refused.
func audioConverter(ctx context.Context, cfg Config, log *slog.Logger) *transcode.FFmpeg {
	if cfg.FFmpeg == "" {
		return nil
	}
	ff := &transcode.FFmpeg{Path: cfg.FFmpeg}
	if err := ff.Check(ctx); err != nil {
		log.Error("audio conversion off: G.711 recordings replay and AAC cameras are watched without sound", "err", err)
		return nil
	}
	return ff
}

// replayAudio is the replay's encoder: a nil interface, never a nil pointer.
func replayAudio(ff *transcode.FFmpeg) replay.AudioEncoder {
	if ff == nil {
		return nil
	}
	return ff
}

// buildWeb builds the HTTP server over the other components.
func (p *platform) buildWeb(cfg Config, exporter *export.Exporter, up *upload.Service, reg *prometheus.Registry, log *slog.Logger) error {
	wcfg, err := cfg.webConfig()
	if err != nil {
		return fmt.Errorf("trusted-proxies: %w", err)
	}
	var gb web.GBRegistry // nil interface when GB/T 28181 is off
	if p.gb != nil {
		gb = p.gb
	}
	p.web, err = web.New(web.Options{
		GB:      gb,
		Config:  wcfg,
		Index:   p.db,
		Audit:   p.db,
		Ingest:  p.ingest,
		Cluster: p.link,
		Peers:   p.link,
		Holds:   evidence.NewHolder(p.db, p.blobs, log.With("component", "holds")),
		Relay:   p.relay,
		Objects: p.blobs,
		Exports: exporter,
		Uploads: up,
		Checks: []web.Check{{Name: "postgres", Func: p.db.Ping}, {Name: "minio", Func: p.blobs.Ping},
			{Name: "archive spool", Func: p.archive.Check}, {Name: "ingest (RTSP listeners, database queue)", Func: p.ingest.Check},
			{Name: "webrtc listeners", Func: p.relay.Check}, {Name: "uploads", Func: up.Check},
			{Name: "node heartbeat", Func: p.node.Check},
			{Name: "evidence verification", Func: p.scrub.Check, Alarm: true}}, // shown, never unready: the bucket is every node's
		Audio:   replayAudio(p.audio),
		Metrics: reg,
		Logger:  log.With("component", "web"),
	})
	if err != nil {
		return err
	}
	p.services = append(p.services, p.web)
	return nil
}

func (p *platform) close() {
	for i := len(p.services) - 1; i >= 0; i-- {
		p.services[i].Close()
	}
	if p.db != nil {
		p.db.Close()
	}
}

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
		select {
		case <-s.Ready():
		case <-ctx.Done():
		}
	}
	if ctx.Err() == nil && p.ready != nil {
		close(p.ready)
		if p.onReady != nil {
			p.onReady()
		}
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
	// the addresses are the bound ones (a port may be :0) once all listen
	p.onReady = func() {
		log.Info("platform running", "http", p.web.URL()+"/", "rtsp", p.ingest.CameraURL()+"<device serial>")
	}
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

// migrateCmd is `bwc migrate`: the schema owner (-migrate-database-url,
// else -database-url) applies the migrations.
func migrateCmd(ctx context.Context, cfg Config) error {
	url := cfg.MigrateURL
	if url == "" {
		url = cfg.DatabaseURL
	}
	v, err := migrateDatabase(ctx, url)
	if err != nil {
		return err
	}
	fmt.Printf("schema at version %d\n", v)
	return nil
}

// seedDemo creates, once, the demo officer, camera and incident, checks the
// camera out to the officer and assigns the officer to the incident.
func seedDemo(ctx context.Context, cfg Config) error {
	db, _, err := openDatabase(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
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
		if _, err := db.CreateDemoUser(ctx, user, u.password); err != nil && !errors.Is(err, index.ErrConflict) {
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
