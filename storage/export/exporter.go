package export

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
)

// ErrTampered: an archived object no longer hashes to its index entry; the
// export is refused rather than package altered evidence.
var ErrTampered = errors.New("archived object does not match its SHA-256")

// Exporter builds approved evidence exports, one at a time, in the
// background: the original init and media segments of every recording
// linked to the incident (in the asked range), a playable MP4 per recording,
// the export's audit events, and a manifest signed with the platform's key;
// the package goes to the evidence bucket under exports/.
//
// Every node runs one; an export is built by the node that claims it in
// PostgreSQL (index.ClaimExport), under a lease it renews while building:
// a package is never built by two nodes at once, and the export of a node
// that died mid-build is taken over by another once the lease has expired.
type Exporter struct {
	cfg   ExporterConfig
	db    *index.DB
	blobs *blob.Store
	key   ed25519.PrivateKey
	log   *slog.Logger

	queue   chan uuid.UUID
	mu      sync.Mutex
	pending map[uuid.UUID]bool // in queue
	ready   chan struct{}      // closed by Run once pending exports are queued
	wg      sync.WaitGroup
}

// ExporterConfig of the Exporter. Every field is required: no defaults are
// substituted (cmd/bwc/config.go holds them).
type ExporterConfig struct {
	Dir       string        // where packages are assembled before they go to the bucket
	Retention time.Duration // object-lock retention (GOVERNANCE) of every package
	Node      string        // the node's name, held in the claims of the exports it builds
	Lease     time.Duration // a claim's lease, renewed every third of it while building; unclaimed exports are looked for this often
}

// ErrConfig: a configuration field is invalid; the error names it.
var ErrConfig = errors.New("invalid exporter configuration")

// NewExporter validates the configuration and the signing key and makes
// the exporter; a nil log discards.
func NewExporter(cfg ExporterConfig, db *index.DB, blobs *blob.Store, key ed25519.PrivateKey, log *slog.Logger) (*Exporter, error) {
	var errs []error
	if cfg.Dir == "" {
		errs = append(errs, fmt.Errorf("%w: Dir is empty", ErrConfig))
	}
	if cfg.Retention <= 0 {
		errs = append(errs, fmt.Errorf("%w: Retention is %v, must be positive", ErrConfig, cfg.Retention))
	}
	if cfg.Node == "" {
		errs = append(errs, fmt.Errorf("%w: Node is empty", ErrConfig))
	}
	if cfg.Lease < 3*time.Millisecond {
		errs = append(errs, fmt.Errorf("%w: Lease is %v, must be at least 3ms", ErrConfig, cfg.Lease))
	}
	if len(key) != ed25519.PrivateKeySize {
		errs = append(errs, fmt.Errorf("%w: signing key has %d bytes, want %d", ErrConfig, len(key), ed25519.PrivateKeySize))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Exporter{cfg: cfg, db: db, blobs: blobs, key: key, log: log,
		queue: make(chan uuid.UUID, 64), pending: map[uuid.UUID]bool{}, ready: make(chan struct{})}, nil
}

// PublicKey is the key packages are verified with.
func (x *Exporter) PublicKey() ed25519.PublicKey { return x.key.Public().(ed25519.PublicKey) }

// Enqueue schedules an approved export's build (never blocks; a full queue
// is picked up by the next look for unclaimed exports).
func (x *Exporter) Enqueue(id uuid.UUID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.pending[id] {
		return
	}
	select {
	case x.queue <- id:
		x.pending[id] = true
	default:
		x.log.Warn("export queue full: the export is built later", "export", id)
	}
}

// Ready is closed once Run has taken up the exports no node holds.
func (x *Exporter) Ready() <-chan struct{} { return x.ready }

// Run builds queued exports, one at a time, until ctx ends. At start and
// every Lease it queues the approved exports no node holds: never claimed
// (a previous run did not build them, or the node that approved them
// stopped) or whose claim expired (its node died mid-build).
func (x *Exporter) Run(ctx context.Context) error {
	x.takeUp(ctx)
	close(x.ready)
	t := time.NewTicker(x.cfg.Lease)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			x.takeUp(ctx)
		case id := <-x.queue:
			x.mu.Lock()
			delete(x.pending, id)
			x.mu.Unlock()
			x.wg.Add(1)
			err := x.Build(ctx, id)
			x.wg.Done()
			switch {
			case errors.Is(err, index.ErrClaimed):
				x.log.Debug("export not built here: another node holds it or it is done", "export", id)
			case err != nil && ctx.Err() == nil:
				x.log.Error("export failed", "export", id, "err", err)
			}
		}
	}
}

// takeUp queues the approved exports no node holds.
func (x *Exporter) takeUp(ctx context.Context) {
	ids, err := x.db.ClaimableExports(ctx)
	if err != nil {
		if ctx.Err() == nil {
			x.log.Warn("exports: cannot look for unclaimed exports", "err", err)
		}
		return
	}
	for _, id := range ids {
		x.Enqueue(id)
	}
}

// Close waits for a build in progress. Builds run on Run's goroutine (or
// the caller's), each with one goroutine renewing its claim that it waits
// for.
func (x *Exporter) Close() error {
	x.wg.Wait()
	return nil
}

// Build claims an approved export for this node (index.ErrClaimed when
// another node holds it or it is no longer approved) and builds it,
// renewing the claim every third of the lease; a claim lost (another node
// took it over after the lease expired) stops the build. A build stopped
// by ctx gives the claim up, so that another node takes the export at once.
func (x *Exporter) Build(ctx context.Context, id uuid.UUID) error {
	if err := x.db.ClaimExport(ctx, id, x.cfg.Node, x.cfg.Lease); err != nil {
		return err
	}
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(x.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-bctx.Done():
				return
			case <-t.C:
			}
			err := x.db.RenewExportClaim(bctx, id, x.cfg.Node, x.cfg.Lease)
			if errors.Is(err, index.ErrClaimed) {
				cancel(err)
				return
			}
			if err != nil && bctx.Err() == nil {
				x.log.Warn("export: cannot renew the claim: another node takes the export over if this lasts past the lease", "export", id, "err", err)
			}
		}
	}()
	err := x.build(bctx, id)
	cancel(nil)
	<-renewed
	if cause := context.Cause(bctx); errors.Is(cause, index.ErrClaimed) && ctx.Err() == nil {
		return fmt.Errorf("export %s: build stopped, the claim was lost: %w", id, cause)
	}
	if err != nil && ctx.Err() != nil {
		if rerr := x.db.ReleaseExportClaim(context.WithoutCancel(ctx), id, x.cfg.Node); rerr != nil {
			x.log.Warn("export: cannot give the claim up: another node takes the export over after the lease", "export", id, "err", rerr)
		}
	}
	return err
}

// build assembles, signs and stores one approved export this node claimed.
func (x *Exporter) build(ctx context.Context, id uuid.UUID) (err error) {
	e, err := x.db.Export(ctx, id)
	if err != nil {
		return err
	}
	if e.Status != index.ExportApproved {
		return fmt.Errorf("export %s is %s, not approved", id, e.Status)
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			_ = x.db.ExportBuilt(context.WithoutCancel(ctx), id, "", "", nil, 0, err)
		}
	}()
	f, err := os.CreateTemp(x.cfg.Dir, "export-*.zip")
	if err != nil {
		return fmt.Errorf("export %s: %w", id, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	sum := sha256.New()
	w := NewWriter(io.MultiWriter(f, sum), id.String(), e.RequestedBy, time.Now())
	meta, err := x.fill(ctx, w, e)
	if err != nil {
		return fmt.Errorf("export %s: %w", id, err)
	}
	if _, err := w.Close(meta, x.key); err != nil {
		return fmt.Errorf("export %s: %w", id, err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	held, err := x.db.IncidentHeld(ctx, e.IncidentID)
	if err != nil {
		return fmt.Errorf("export %s: %w", id, err)
	}
	st, err := x.store(ctx, id, f, size, sum.Sum(nil), held)
	if err != nil {
		return fmt.Errorf("export %s: store package: %w", id, err)
	}
	x.log.Info("export ready", "export", id, "incident", e.IncidentID, "bytes", st.Size)
	if err := x.db.ExportBuilt(ctx, id, exportKey(id), st.VersionID, st.SHA256, st.Size, nil); err != nil {
		return err
	}
	return x.holdAfterIndex(ctx, e.IncidentID, exportKey(id), st.VersionID, held)
}

// holdAfterIndex closes the race with a legal hold placed on a recording
// of the incident while the package was stored without one (before its
// row listed it among the recording's objects).
func (x *Exporter) holdAfterIndex(ctx context.Context, incident uuid.UUID, key, version string, heldBefore bool) error {
	if heldBefore {
		return nil
	}
	held, err := x.db.IncidentHeld(ctx, incident)
	if err != nil || !held {
		return err
	}
	return x.blobs.SetLegalHold(ctx, key, version, true)
}

func exportKey(id uuid.UUID) string { return "exports/" + id.String() + ".zip" }

// store writes the package through the one evidence writer. A package
// already stored under the export's key by an earlier build whose result
// was never recorded (a crash before ExportBuilt) is complete and signed:
// it is the one recorded, as evidence is never overwritten. A package of an
// incident with a held recording is stored under legal hold.
func (x *Exporter) store(ctx context.Context, id uuid.UUID, f io.Reader, size int64, digest []byte, held bool) (blob.Stored, error) {
	key := exportKey(id)
	st, err := x.blobs.PutEvidence(ctx, blob.Evidence{Key: key, Body: f, Size: size, SHA256: digest, ContentType: "application/zip",
		Metadata: map[string]string{"sha256": hex.EncodeToString(digest)}, RetainUntil: time.Now().Add(x.cfg.Retention), LegalHold: held})
	if errors.Is(err, blob.ErrConflict) {
		x.log.Warn("export package of an earlier build kept", "export", id, "key", key)
		old, err := x.blobs.Stat(ctx, key)
		if err == nil && held {
			err = x.blobs.SetLegalHold(ctx, key, old.VersionID, true)
		}
		return old, err
	}
	return st, err
}

// recordingMeta is what the package's metadata says of one recording.
type recordingMeta struct {
	index.Recording
	Gaps     []index.Gap `json:"gaps"`
	Segments int         `json:"segments"`
	Playable []string    `json:"playable"`
}

// fill adds every file of the package and returns its metadata.
func (x *Exporter) fill(ctx context.Context, w *Writer, e index.Export) (map[string]any, error) {
	inc, err := x.db.Incident(ctx, e.IncidentID)
	if err != nil {
		return nil, err
	}
	recs, links, err := x.db.IncidentRecordings(ctx, e.IncidentID)
	if err != nil {
		return nil, err
	}
	var out []recordingMeta
	for _, r := range recs {
		m, ok, err := x.addRecording(ctx, w, e, r)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, m)
		}
	}
	if err := x.addAudit(ctx, w, e); err != nil {
		return nil, err
	}
	return map[string]any{"incident": inc, "export": e, "recordings": out, "links": links}, nil
}

// segments lists a recording's segments in the export's range.
func (x *Exporter) segments(ctx context.Context, e index.Export, r index.Recording) ([]index.Segment, error) {
	if e.From == nil && e.To == nil {
		return x.db.Segments(ctx, r.ID)
	}
	from, to := time.Time{}, time.Now().Add(24*time.Hour)
	if e.From != nil {
		from = *e.From
	}
	if e.To != nil {
		to = *e.To
	}
	return x.db.SegmentsInRange(ctx, r.ID, from, to)
}

// addRecording adds one recording's files: an uploaded file as it is, or
// the original init and media segments with a playable MP4 per init
// segment. ok is false when the recording has nothing in the range.
func (x *Exporter) addRecording(ctx context.Context, w *Writer, e index.Export, r index.Recording) (m recordingMeta, ok bool, err error) {
	segs, err := x.segments(ctx, e, r)
	if err != nil {
		return m, false, err
	}
	if r.Source == index.SourceUpload {
		// an uploaded file: the original, byte for byte
		u, err := x.db.UploadOfRecording(ctx, r.ID)
		if err != nil {
			return m, false, err
		}
		name := fmt.Sprintf("uploads/%s/%s", u.ID, u.Filename)
		if err := x.addObject(ctx, w, File{Name: name, Kind: "upload", Recording: r.ID.String()}, u.Key, u.VersionID, u.SHA256, io.Discard); err != nil {
			return m, false, err
		}
		return recordingMeta{Recording: r, Playable: []string{name}}, true, nil
	}
	if len(segs) == 0 {
		return m, false, nil
	}
	m = recordingMeta{Recording: r, Segments: len(segs)}
	if m.Gaps, err = x.db.Gaps(ctx, r.ID); err != nil {
		return m, false, err
	}
	// runs of segments that share an init segment
	for start := 0; start < len(segs); {
		end := start + 1
		for end < len(segs) && segs[end].InitN == segs[start].InitN {
			end++
		}
		name, err := x.addRun(ctx, w, r, segs[start:end])
		if err != nil {
			return m, false, err
		}
		m.Playable = append(m.Playable, name)
		start = end
	}
	return m, true, nil
}

// addRun adds the originals of one init segment and the media segments
// that follow it, and the playable MP4 assembled from the same bytes as
// they go by (no second read); it returns the playable file's name.
func (x *Exporter) addRun(ctx context.Context, w *Writer, r index.Recording, run []index.Segment) (string, error) {
	initN := run[0].InitN
	in, err := x.db.InitSegment(ctx, r.ID, initN)
	if err != nil {
		return "", err
	}
	playable, err := os.CreateTemp(x.cfg.Dir, "playable-*.mp4")
	if err != nil {
		return "", err
	}
	defer os.Remove(playable.Name())
	defer playable.Close()
	rec := r.ID.String()
	if err := x.addObject(ctx, w, File{Name: fmt.Sprintf("recordings/%s/init-%d.mp4", r.ID, initN), Kind: "init", Recording: rec},
		in.Key, in.VersionID, in.SHA256, playable); err != nil {
		return "", err
	}
	for _, s := range run {
		seq := s.Seq
		if err := x.addObject(ctx, w, File{Name: fmt.Sprintf("recordings/%s/%06d.m4s", r.ID, s.Seq), Kind: "segment", Recording: rec,
			Seq: &seq, Chain: hex.EncodeToString(s.Chain), PrevChain: hex.EncodeToString(s.PrevChain)}, s.Key, s.VersionID, s.SHA256, playable); err != nil {
			return "", err
		}
	}
	name := fmt.Sprintf("recordings/%s/playable-%d.mp4", r.ID, initN)
	if _, err := playable.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	return name, w.Add(File{Name: name, Kind: "mp4", Recording: rec}, playable)
}

// addAudit adds the export's own audit trail so far (request, approval).
func (x *Exporter) addAudit(ctx context.Context, w *Writer, e index.Export) error {
	events, err := x.db.AuditEvents(ctx, index.AuditFilter{IncidentID: &e.IncidentID, Limit: 1000})
	if err != nil {
		return err
	}
	var mine []index.AuditEvent
	for _, ev := range events {
		if ev.ObjectType == "export" && ev.ObjectID == e.ID.String() {
			mine = append(mine, ev)
		}
	}
	auditJSON, err := jsonBytes(mine)
	if err != nil {
		return err
	}
	return w.Add(File{Name: "audit.json", Kind: "audit"}, bytes.NewReader(auditJSON))
}

// addObject copies the indexed version of an archived object into the
// package (and into the playable copy) and refuses it if it no longer
// hashes to its index entry.
func (x *Exporter) addObject(ctx context.Context, w *Writer, f File, key, version string, want []byte, also io.Writer) error {
	o, err := x.blobs.OpenVersion(ctx, key, version)
	if err != nil {
		return err
	}
	defer o.Close()
	h := sha256.New()
	if err := w.Add(f, io.TeeReader(io.TeeReader(o, h), also)); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return fmt.Errorf("%s: %w", key, ErrTampered)
	}
	return nil
}

func jsonBytes(v any) ([]byte, error) {
	return json.MarshalIndent(v, "", "  ")
}
