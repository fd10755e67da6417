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
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/tus/tusd/v2/pkg/filestore"
	tusd "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
)

// Config of the upload service.
type Config struct {
	Dir        string        // where partial uploads wait (durable disk)
	BasePath   string        // URL path the tus handler is mounted at
	MaxSize    int64         // bytes
	Retention  time.Duration // object-lock retention of originals
	LinkBuffer time.Duration // incident association rule
}

// Defaults.
const (
	DefaultMaxSize  = 4 << 30
	DefaultBasePath = "/api/uploads/"
)

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
	cfg     Config
	db      *index.DB
	blobs   *blob.Store
	store   hashingStore
	handler *tusd.Handler
	log     *slog.Logger
}

// New prepares the tus handler over a hashing file store in cfg.Dir.
func New(cfg Config, db *index.DB, blobs *blob.Store, log *slog.Logger) (*Service, error) {
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.BasePath == "" {
		cfg.BasePath = DefaultBasePath
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 183 * 24 * time.Hour
	}
	if cfg.LinkBuffer <= 0 {
		cfg.LinkBuffer = 5 * time.Minute
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("upload dir %s: %w", cfg.Dir, err)
	}
	s := &Service{cfg: cfg, db: db, blobs: blobs, log: log, store: hashingStore{FileStore: filestore.New(cfg.Dir), dir: cfg.Dir}}
	composer := tusd.NewStoreComposer()
	composer.UseCore(s.store)
	composer.UseTerminater(s.store)
	composer.UseLocker(memorylocker.New())
	h, err := tusd.NewHandler(tusd.Config{
		BasePath:                  cfg.BasePath,
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

// Handler is the tus endpoint (mount it at Config.BasePath; it strips it).
func (s *Service) Handler() http.Handler { return http.StripPrefix(s.cfg.BasePath, s.handler) }

// Run serves until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Close releases nothing yet: partial uploads stay on disk to resume.
func (s *Service) Close() error { return nil }

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
	name := strings.TrimSpace(md["filename"])
	if name == "" {
		name = "upload.mp4"
	}
	out := tusd.MetaData{"filename": filepath.Base(name), "uploaded_by": u.Login, "notes": md["notes"], "recorded_at": md["recorded_at"]}
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
	// the officer: an officer uploads as themselves only
	officer := md["officer"]
	switch u.Role {
	case index.RoleOfficer:
		if u.OfficerID == nil {
			return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, refuse("ERR_OFFICER", "your account is not linked to an officer", http.StatusForbidden)
		}
		if officer != "" && officer != u.OfficerID.String() {
			return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, refuse("ERR_OFFICER", "officers may only upload their own footage", http.StatusForbidden)
		}
		officer = u.OfficerID.String()
	default:
		if officer != "" {
			id, err := uuid.Parse(officer)
			if err == nil {
				_, err = s.db.Officer(ev.Context, id)
			}
			if err != nil {
				return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, refuse("ERR_OFFICER", "no officer "+officer, http.StatusBadRequest)
			}
		}
	}
	out["officer"] = officer
	if v := strings.TrimSpace(md["incident"]); v != "" {
		inc, err := s.incident(ev.Context, v)
		if err != nil {
			return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, refuse("ERR_INCIDENT", "no incident "+v, http.StatusBadRequest)
		}
		out["incident"] = inc.ID.String()
	}
	if v := strings.TrimSpace(md["device"]); v != "" {
		if _, err := s.db.DeviceBySerial(ev.Context, v); err != nil {
			return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, refuse("ERR_DEVICE", "no device "+v, http.StatusBadRequest)
		}
		out["device"] = v
	}
	s.audit(ev.Context, u.Login, "upload.start", "", map[string]any{"filename": out["filename"], "size": ev.Upload.Size})
	return tusd.HTTPResponse{}, tusd.FileInfoChanges{MetaData: out}, nil
}

func (s *Service) incident(ctx context.Context, ref string) (index.Incident, error) {
	if id, err := uuid.Parse(ref); err == nil {
		return s.db.Incident(ctx, id)
	}
	return s.db.IncidentByNumber(ctx, ref)
}

// finish runs when the last byte is in, before the client is answered:
// check, deduplicate, probe, store under object lock, index, link. The
// partial file is removed whatever the outcome; nothing half-made stays.
func (s *Service) finish(ev tusd.HookEvent) (tusd.HTTPResponse, error) {
	ctx := ev.Context
	info := ev.Upload
	md := info.MetaData
	up, err := s.store.GetUpload(ctx, info.ID)
	if err != nil {
		return tusd.HTTPResponse{}, err
	}
	defer func() { _ = s.store.AsTerminatableUpload(up).Terminate(context.WithoutCancel(ctx)) }()
	hu, ok := up.(*hashingUpload)
	if !ok {
		return tusd.HTTPResponse{}, errNotHashing
	}
	sum, err := hu.Sum(info.Size)
	if err != nil {
		return tusd.HTTPResponse{}, err
	}
	by := md["uploaded_by"]
	got := hex.EncodeToString(sum)
	if want := md["sha256"]; want != "" && want != got {
		s.audit(ctx, by, "upload.rejected", "", map[string]any{"filename": md["filename"], "why": "sha256 mismatch", "declared": want, "received": got})
		return tusd.HTTPResponse{}, refuse("ERR_CHECKSUM_MISMATCH",
			fmt.Sprintf("the file received has SHA-256 %s, not the declared %s: nothing was kept; upload it again", got, want), 460)
	}
	if dup, err := s.db.UploadBySHA256(ctx, sum); err == nil {
		s.audit(ctx, by, "upload.duplicate", dup.RecordingID.String(), map[string]any{"filename": md["filename"], "same_as": dup.ID})
		return jsonResponse(http.StatusOK, map[string]any{"duplicate": true, "upload": dup},
			map[string]string{"X-BWC-Duplicate-Of": dup.ID.String()}), nil
	} else if !errors.Is(err, index.ErrNotFound) {
		return tusd.HTTPResponse{}, err
	}
	f, err := os.Open(filepath.Join(s.cfg.Dir, info.ID))
	if err != nil {
		return tusd.HTTPResponse{}, err
	}
	defer f.Close()
	fi, err := probe(f, info.Size)
	if err != nil {
		s.audit(ctx, by, "upload.rejected", "", map[string]any{"filename": md["filename"], "why": err.Error()})
		return tusd.HTTPResponse{}, refuse("ERR_NOT_VIDEO", err.Error()+": nothing was kept", http.StatusUnprocessableEntity)
	}
	// when: the file's own creation time when plausible, else what the
	// uploader declared, else now
	recordedAt, source := time.Now().UTC(), "upload"
	if v := md["recorded_at"]; v != "" {
		recordedAt, _ = time.Parse(time.RFC3339, v)
		source = "declared"
	}
	if !fi.Created.IsZero() && fi.Created.After(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) && fi.Created.Before(time.Now().Add(time.Hour)) {
		recordedAt, source = fi.Created, "file"
	}
	id := uuid.Must(uuid.NewV7())
	key := fmt.Sprintf("uploads/%s/%s/%s", recordedAt.UTC().Format("2006/01/02"), id, safeName(md["filename"]))
	if _, err := f.Seek(0, 0); err != nil {
		return tusd.HTTPResponse{}, err
	}
	if _, err := s.blobs.Client().PutObject(ctx, s.blobs.Bucket(), key, f, info.Size, minio.PutObjectOptions{
		ContentType: "video/mp4", Mode: minio.Governance, RetainUntilDate: time.Now().Add(s.cfg.Retention).UTC(),
		UserMetadata: map[string]string{"sha256": got}, Checksum: minio.ChecksumSHA256,
	}); err != nil {
		return tusd.HTTPResponse{}, fmt.Errorf("store upload %s: %w", key, err)
	}
	rec := index.Recording{VideoCodec: fi.Video, AudioCodec: fi.Audio, Width: fi.Width, Height: fi.Height}
	if v := md["officer"]; v != "" {
		oid := uuid.MustParse(v)
		rec.OfficerID = &oid
	}
	if v := md["device"]; v != "" {
		if d, err := s.db.DeviceBySerial(ctx, v); err == nil {
			rec.DeviceID = d.ID
		}
	}
	saved, err := s.db.CreateUpload(ctx, rec, index.Upload{TusID: info.ID, UploadedBy: by, Filename: md["filename"], Size: info.Size,
		SHA256: sum, Key: key, Container: fi.Container, VideoCodec: fi.Video, AudioCodec: fi.Audio, Width: fi.Width, Height: fi.Height,
		DurationMS: fi.Duration.Milliseconds(), RecordedAt: recordedAt, RecordedAtSource: source, Fragmented: fi.Fragmented, Notes: md["notes"]}, by)
	if err != nil {
		return tusd.HTTPResponse{}, fmt.Errorf("index upload %s: %w", key, err)
	}
	if _, err := s.db.AutoLink(ctx, saved.RecordingID, s.cfg.LinkBuffer); err != nil {
		s.log.Error("upload not linked by the rule", "recording", saved.RecordingID, "err", err)
	}
	if v := md["incident"]; v != "" {
		if _, err := s.db.LinkIncident(ctx, saved.RecordingID, uuid.MustParse(v), by, "chosen at upload"); err != nil && !errors.Is(err, index.ErrConflict) {
			s.log.Error("upload not linked to its incident", "recording", saved.RecordingID, "err", err)
		}
	}
	s.audit(ctx, by, "upload.complete", saved.RecordingID.String(), map[string]any{"upload": saved.ID, "filename": saved.Filename,
		"sha256": got, "size": saved.Size})
	s.log.Info("upload stored", "recording", saved.RecordingID, "file", saved.Filename, "bytes", saved.Size, "sha256", got)
	return jsonResponse(http.StatusOK, map[string]any{"duplicate": false, "upload": saved}, map[string]string{"X-BWC-Upload": saved.ID.String()}), nil
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
