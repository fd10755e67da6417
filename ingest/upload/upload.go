// Package upload takes footage recorded offline (a docked camera, an
// officer's phone) over the tus resumable-upload protocol (tusd as a
// library): an upload interrupted at any byte resumes where it stopped. The
// SHA-256 is computed as bytes arrive; on completion the declared hash is
// checked, a file already stored is recognised, the MP4/MOV is probed, the
// original goes byte for byte to the evidence bucket under object lock, and
// it becomes a recording bound to its officer and linked to incidents by
// the same rule as live footage.
package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tus/tusd/v2/pkg/filestore"
	tusd "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
)

// Config of the upload service. Every value is the caller's (the platform's
// defaults are set in cmd/bwc); New substitutes none and refuses invalid
// ones, naming the field.
type Config struct {
	Dir        string        // where partial uploads wait (durable disk), apart from the spool
	MaxSize    int64         // bytes; positive
	Retention  time.Duration // object-lock retention of originals; positive
	LinkBuffer time.Duration // incident association rule; 0: exactly the assignment window

	// Disk: below MinFree bytes free on the upload folder's file system or
	// the spool's (SpoolDir, live recording has priority), new uploads and
	// PATCHes are refused (ErrInsufficientStorage). 0: no reserve.
	SpoolDir  string
	MinFree   int64
	FreeSpace func(dir string) (uint64, error) // nil: statfs (FreeSpace); tests simulate a full disk
	// StaleAfter: partial uploads with no byte for this long are removed
	// (audited upload.expired) by a sweep every SweepEvery (positive).
	// 0: never.
	StaleAfter time.Duration
	SweepEvery time.Duration

	// Completion: a finished upload is stored in the background until its
	// object and row exist; StuckAfter (while PostgreSQL and MinIO answer)
	// fails Check. RetryMin/RetryMax bound the backoff (durable.Backoff).
	StuckAfter         time.Duration
	RetryMin, RetryMax time.Duration
	ReconcileEvery     time.Duration // objects without a row are looked for this often

	Metrics prometheus.Registerer // nil: not registered
}

// BasePath is the URL path the tus handler is mounted at (the web layer's
// /api/uploads/ routes).
const BasePath = "/api/uploads/"

// ErrConfig: a Config value is invalid (the error names the field).
var ErrConfig = errors.New("invalid upload config")

// validate names every invalid field.
func (c Config) validate() error {
	var errs []error
	bad := func(ok bool, field, problem string) {
		if !ok {
			errs = append(errs, fmt.Errorf("%w: %s %s", ErrConfig, field, problem))
		}
	}
	bad(c.Dir != "", "Dir", "is required")
	bad(c.SpoolDir == "" || filepath.Clean(c.SpoolDir) != filepath.Clean(c.Dir), "Dir", "must not be the spool")
	bad(c.MaxSize > 0, "MaxSize", "must be positive")
	bad(c.Retention > 0, "Retention", "must be positive")
	bad(c.LinkBuffer >= 0, "LinkBuffer", "must not be negative")
	bad(c.MinFree >= 0, "MinFree", "must not be negative")
	bad(c.StaleAfter >= 0, "StaleAfter", "must not be negative")
	bad(c.SweepEvery > 0, "SweepEvery", "must be positive")
	bad(c.StuckAfter > 0, "StuckAfter", "must be positive")
	bad(c.RetryMin > 0, "RetryMin", "must be positive")
	bad(c.RetryMax >= c.RetryMin, "RetryMax", "must be at least RetryMin")
	bad(c.ReconcileEvery > 0, "ReconcileEvery", "must be positive")
	return errors.Join(errs...)
}

// Uploader is who uploads, set on the request's context by the web layer
// after authentication.
type Uploader struct {
	Login     string
	Role      string
	OfficerID *uuid.UUID
}

type uploaderKey struct{}

// WithUploader marks a request's context with its authenticated uploader.
func WithUploader(ctx context.Context, u Uploader) context.Context {
	return context.WithValue(ctx, uploaderKey{}, u)
}

func uploaderFrom(ctx context.Context) (Uploader, bool) {
	u, ok := ctx.Value(uploaderKey{}).(Uploader)
	return u, ok && u.Login != ""
}

// Service is the upload endpoint.
type Service struct {
	cfg         Config
	db          *index.DB
	blobs       *blob.Store
	store       hashingStore
	locker      *memorylocker.MemoryLocker
	handler     *tusd.Handler
	log         *slog.Logger
	metrics     *metrics
	spoolShared bool          // spool and uploads on one file system (set by Run)
	ready       chan struct{} // closed by Run once the folder is recovered

	mu        sync.Mutex
	lowLogged time.Time           // last low-space error logged
	pending   map[string]*pending // finished uploads not stored yet, by tus ID
	outage    time.Time           // last time PostgreSQL or MinIO did not answer
	wake      chan struct{}       // a completion to retry now
	wg        sync.WaitGroup

	fault func(step string) error // tests: a fault injected before a step of the completion
}

// New validates cfg and prepares the tus handler over a hashing file store
// in cfg.Dir; it touches no file (Run makes the folder and resumes what it
// holds).
func New(cfg Config, db *index.DB, blobs *blob.Store, log *slog.Logger) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.FreeSpace == nil {
		cfg.FreeSpace = FreeSpace
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, db: db, blobs: blobs, log: log, store: hashingStore{FileStore: filestore.New(cfg.Dir), dir: cfg.Dir},
		locker: memorylocker.New(), metrics: m, pending: map[string]*pending{}, wake: make(chan struct{}, 1), ready: make(chan struct{})}
	composer := tusd.NewStoreComposer()
	composer.UseCore(s.store)
	composer.UseTerminater(s.store)
	composer.UseLocker(s.locker)
	h, err := tusd.NewHandler(tusd.Config{
		BasePath:                  BasePath,
		StoreComposer:             composer,
		MaxSize:                   cfg.MaxSize,
		DisableDownload:           true, // originals are read through replay, audited
		PreUploadCreateCallback:   s.beforeCreate,
		PreFinishResponseCallback: s.finish,
		NetworkTimeout:            60 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("tus handler: %w", err)
	}
	s.handler = h
	return s, nil
}

// Handler is the tus endpoint (mount it at BasePath; it strips it).
// Every request passes Admit first (ID form, owner, free space).
func (s *Service) Handler() http.Handler {
	return http.StripPrefix(BasePath, http.HandlerFunc(s.serve))
}

// Run makes the upload folder and finds the finished uploads a previous
// run left on disk, closes Ready, then stores finished uploads (retrying
// with backoff), sweeps stale partial uploads and reconciles the bucket
// with the index until ctx ends. A folder that cannot be made or read is
// returned at once (Ready is then never closed).
func (s *Service) Run(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("upload dir %s: %w", s.cfg.Dir, err)
	}
	if s.cfg.SpoolDir != "" {
		s.spoolShared = sameFS(s.cfg.Dir, s.cfg.SpoolDir)
	}
	if err := s.resume(); err != nil {
		return fmt.Errorf("upload dir %s: %w", s.cfg.Dir, err)
	}
	close(s.ready)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.completer(ctx)
	}()
	sweep := time.NewTicker(s.cfg.SweepEvery)
	defer sweep.Stop()
	reconcile := time.NewTimer(10 * time.Second) // first pass soon after start-up
	defer reconcile.Stop()
	for {
		select {
		case <-ctx.Done():
			s.wg.Wait()
			return nil
		case <-sweep.C:
			if _, err := s.Sweep(ctx); err != nil {
				s.log.Error("sweep of stale uploads failed", "err", err)
			}
		case <-reconcile.C:
			if _, err := s.Reconcile(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("upload reconciliation incomplete", "err", err)
			}
			reconcile.Reset(s.cfg.ReconcileEvery)
		}
	}
}

// Ready is closed once Run has made the folder and found the finished
// uploads on disk: the handler may serve from then on.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Close waits for the goroutines Run started; partial and finished
// uploads stay on disk to resume.
func (s *Service) Close() error {
	s.wg.Wait()
	return nil
}

// Check fails, by name, while a watched file system is below the reserve
// or an upload has been waiting to be stored longer than StuckAfter while
// PostgreSQL and MinIO answer.
func (s *Service) Check(ctx context.Context) error {
	if err := s.checkSpace(); err != nil {
		return err
	}
	return s.checkStuck()
}

func refuse(code, msg string, status int) error { return tusd.NewError(code, msg, status) }

var hexSum = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// beforeCreate checks the request before any byte is stored: who uploads,
// for which officer, the incident, the declared hash; and records it all in
// the upload's metadata.
func (s *Service) beforeCreate(ev tusd.HookEvent) (tusd.HTTPResponse, tusd.FileInfoChanges, error) {
	u, ok := uploaderFrom(ev.Context)
	if !ok {
		return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, refuse("ERR_UNAUTHENTICATED", "log in to upload", http.StatusUnauthorized)
	}
	md := ev.Upload.MetaData
	if ev.Upload.SizeIsDeferred || ev.Upload.Size <= 0 {
		return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, refuse("ERR_SIZE", "Upload-Length is required and must be positive", http.StatusBadRequest)
	}
	// the name is cleaned here, once: every later use (index, package,
	// download) takes "filename"; the name as given is kept for the record
	out := tusd.MetaData{"filename": SanitizeName(md["filename"]), "original_name": storable(md["filename"], maxOriginalBytes),
		"uploaded_by": u.Login, "notes": storable(md["notes"], maxNotesBytes), "recorded_at": md["recorded_at"]}
	if v := md["sha256"]; v != "" {
		if !hexSum.MatchString(v) {
			return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, refuse("ERR_SHA256", "metadata sha256 must be 64 hex digits", http.StatusBadRequest)
		}
		out["sha256"] = strings.ToLower(v)
	}
	if v := md["recorded_at"]; v != "" {
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, refuse("ERR_RECORDED_AT", "metadata recorded_at must be an RFC 3339 time", http.StatusBadRequest)
		}
	}
	if err := s.checkRefs(ev.Context, u, md, out); err != nil {
		return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, err
	}
	s.audit(ev.Context, u.Login, "upload.start", "", map[string]any{"filename": out["filename"], "original_name": out["original_name"],
		"size": ev.Upload.Size})
	return tusd.HTTPResponse{}, tusd.FileInfoChanges{MetaData: out}, nil
}

// checkRefs checks the officer, incident and device an upload names and
// records them in out. An officer uploads as themselves only.
func (s *Service) checkRefs(ctx context.Context, u Uploader, md, out tusd.MetaData) error {
	officer := md["officer"]
	switch u.Role {
	case index.RoleOfficer:
		if u.OfficerID == nil {
			return refuse("ERR_OFFICER", "your account is not linked to an officer", http.StatusForbidden)
		}
		if officer != "" && officer != u.OfficerID.String() {
			return refuse("ERR_OFFICER", "officers may only upload their own footage", http.StatusForbidden)
		}
		officer = u.OfficerID.String()
	default:
		if officer != "" {
			id, err := uuid.Parse(officer)
			if err == nil {
				_, err = s.db.Officer(ctx, id)
			}
			if err != nil {
				return refuse("ERR_OFFICER", "no officer "+officer, http.StatusBadRequest)
			}
		}
	}
	out["officer"] = officer
	if v := strings.TrimSpace(md["incident"]); v != "" {
		inc, err := s.incident(ctx, v)
		if err != nil {
			return refuse("ERR_INCIDENT", "no incident "+v, http.StatusBadRequest)
		}
		if u.Role == index.RoleOfficer {
			if err := s.mayAttach(ctx, u, inc); err != nil {
				return err
			}
		}
		out["incident"] = inc.ID.String()
	}
	if v := strings.TrimSpace(md["device"]); v != "" {
		if _, err := s.db.DeviceBySerial(ctx, v); err != nil {
			return refuse("ERR_DEVICE", "no device "+v, http.StatusBadRequest)
		}
		out["device"] = v
	}
	return nil
}

// mayAttach: an officer attaches uploads only to incidents they are or
// were assigned to (any time range); a refusal is audited (upload.refused,
// with the incident and why). Supervisors and admins attach to any.
func (s *Service) mayAttach(ctx context.Context, u Uploader, inc index.Incident) error {
	ok, err := s.db.EverAssigned(ctx, inc.ID, *u.OfficerID)
	if err != nil {
		s.log.Error("upload refused: assignments unreadable", "officer", u.OfficerID, "incident", inc.ID, "err", err)
		return refuse("ERR_UNAVAILABLE", "the incident's assignments cannot be read now; try again", http.StatusServiceUnavailable)
	}
	if ok {
		return nil
	}
	why := "officer " + u.OfficerID.String() + " was never assigned to incident " + inc.Number
	e := index.AuditEvent{Actor: u.Login, Role: u.Role, Action: "upload.refused", ObjectType: "incident", ObjectID: inc.ID.String(),
		IncidentID: &inc.ID, Details: map[string]any{"incident": inc.Number, "reason": why}}
	if _, err := s.db.Audit(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("audit trail write failed", "action", e.Action, "incident", inc.ID, "err", err)
	}
	s.log.Warn("upload refused", "officer", u.OfficerID, "incident", inc.ID, "reason", why)
	return refuse("ERR_INCIDENT_NOT_ASSIGNED", "you may attach uploads only to incidents you are or were assigned to; you were never assigned to incident "+
		inc.Number, http.StatusForbidden)
}

func (s *Service) incident(ctx context.Context, ref string) (index.Incident, error) {
	if id, err := uuid.Parse(ref); err == nil {
		return s.db.Incident(ctx, id)
	}
	return s.db.IncidentByNumber(ctx, ref)
}

func jsonResponse(status int, v any, headers map[string]string) tusd.HTTPResponse {
	b, _ := json.Marshal(v)
	h := tusd.HTTPHeader{"Content-Type": "application/json"}
	for k, v := range headers {
		h[k] = v
	}
	return tusd.HTTPResponse{StatusCode: status, Body: string(b), Header: h}
}

var unsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(n string) string {
	n = unsafe.ReplaceAllString(filepath.Base(n), "_")
	if n == "" || n == "." || n == ".." {
		return "upload.mp4"
	}
	return n
}

// audit writes an event of the upload (the web layer cannot see inside
// the tus handler).
func (s *Service) audit(ctx context.Context, actor, action, recording string, details map[string]any) {
	e := index.AuditEvent{Actor: actor, Action: action, ObjectType: "upload", ObjectID: recording, Details: details}
	if id, err := uuid.Parse(recording); err == nil {
		e.RecordingID = &id
	}
	if _, err := s.db.Audit(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("audit trail write failed", "action", action, "err", err)
	}
}
