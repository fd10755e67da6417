package upload

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"
	tusd "github.com/tus/tusd/v2/pkg/handler"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/durable"
	"github.com/bwcplatform/bwc/storage/index"
)

// Completion of an upload is durable: when the last byte is in, the file
// is fsynced, checked (hash, probe) and a marker (<id>.done: the hash, the
// probe's findings, the object key) is fsynced beside it; only then is the
// client answered. The file stays until its object is in the bucket AND its
// row in the index. Storing is tried at once and, when PostgreSQL or MinIO
// fail, again in the background with backoff, also after a restart (Run
// finds finished uploads on disk). Every step is idempotent by upload ID
// and SHA-256: the object key is fixed by the upload ID and an existing
// object with the same hash is not written again (no second version); a
// row already written for the upload ID or the hash ends the completion.

// marker is what a finished upload's completion needs, fsynced before the
// client is told its upload was received.
type marker struct {
	SHA256     string            `json:"sha256"`
	Key        string            `json:"key"`
	Size       int64             `json:"size"`
	Info       fileInfo          `json:"info"`
	RecordedAt time.Time         `json:"recorded_at"`
	Source     string            `json:"recorded_at_source"`
	Meta       map[string]string `json:"meta"`
	ReceivedAt time.Time         `json:"received_at"`
}

// pending is a finished upload not stored yet.
type pending struct {
	since    time.Time
	attempts int
	retry    durable.Backoff // the wait before the next attempt
	next     time.Time
	busy     bool
	err      error
	alarmed  bool
}

// newPending is a finished upload received at since, to be stored from
// next on.
func (s *Service) newPending(since, next time.Time) *pending {
	return &pending{since: since, next: next, retry: durable.Backoff{Min: s.cfg.RetryMin, Max: s.cfg.RetryMax}}
}

// result of a completion.
type result struct {
	dup    bool
	upload index.Upload
}

var errBusy = errors.New("completion in progress")

// Status is "storing" while a finished upload waits for its object and
// row; "" otherwise (not finished, stored, or unknown). HEAD answers it in
// X-BWC-Upload-Status.
func (s *Service) Status(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[id]; ok {
		return "storing"
	}
	return ""
}

func (s *Service) markerPath(id string) string { return filepath.Join(s.cfg.Dir, id+".done") }
func (s *Service) binPath(id string) string    { return filepath.Join(s.cfg.Dir, id) }

// resume finds finished uploads not stored (a crash, an outage): complete
// tus uploads and markers.
func (s *Service) resume() error {
	infos, err := filepath.Glob(filepath.Join(s.cfg.Dir, "*.info"))
	if err != nil {
		return err
	}
	markers, _ := filepath.Glob(filepath.Join(s.cfg.Dir, "*.done"))
	ctx := context.Background()
	now := time.Now()
	for _, name := range append(infos, markers...) {
		id := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(name), ".info"), ".done")
		if !ValidID(id) || s.pending[id] != nil {
			continue
		}
		if strings.HasSuffix(name, ".info") {
			up, err := s.store.FileStore.GetUpload(ctx, id)
			if err != nil {
				continue
			}
			info, err := up.GetInfo(ctx)
			if err != nil || info.Size <= 0 || info.Offset < info.Size {
				continue // partial: the client resumes it, or the sweep expires it
			}
		}
		since := now
		if m, err := s.readMarker(id); err == nil {
			since = m.ReceivedAt
		}
		s.pending[id] = s.newPending(since, now)
		s.log.Info("finished upload found on disk: storing it", "upload", id)
	}
	s.metrics.storing.Set(float64(len(s.pending)))
	return nil
}

// finish runs when the last byte is in, before the client is answered
// (under tusd's lock of the upload). A refusal (hash, probe) removes the
// upload and is the answer; otherwise the upload was received: stored now,
// or being stored (202, X-BWC-Upload-Status: storing).
func (s *Service) finish(ev tusd.HookEvent) (tusd.HTTPResponse, error) {
	id := ev.Upload.ID
	s.mu.Lock()
	p := s.pending[id]
	if p == nil {
		p = s.newPending(time.Now(), time.Time{})
		s.pending[id] = p
	}
	p.busy = true
	s.metrics.storing.Set(float64(len(s.pending)))
	s.mu.Unlock()
	res, err := s.complete(ev.Context, id)
	s.release(id, err)
	var refusal tusd.Error
	switch {
	case errors.As(err, &refusal):
		return tusd.HTTPResponse{}, err
	case err != nil:
		s.log.Warn("upload received, not stored yet: retrying in the background", "upload", id, "err", err)
		return jsonResponse(http.StatusAccepted, map[string]any{"status": "storing", "upload": id},
			map[string]string{"X-BWC-Upload-Status": "storing"}), nil
	case res.dup:
		return jsonResponse(http.StatusOK, map[string]any{"duplicate": true, "status": "stored", "upload": res.upload},
			map[string]string{"X-BWC-Duplicate-Of": res.upload.ID.String(), "X-BWC-Upload-Status": "stored"}), nil
	}
	return jsonResponse(http.StatusOK, map[string]any{"duplicate": false, "status": "stored", "upload": res.upload},
		map[string]string{"X-BWC-Upload": res.upload.ID.String(), "X-BWC-Upload-Status": "stored"}), nil
}

// release ends an attempt: done (or refused) leaves the pending set, a
// failure is retried after a backoff.
func (s *Service) release(id string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[id]
	if p == nil {
		return
	}
	var refusal tusd.Error
	if err == nil || errors.As(err, &refusal) {
		delete(s.pending, id)
		s.metrics.storing.Set(float64(len(s.pending)))
		return
	}
	p.busy, p.err = false, err
	p.attempts++
	p.next = time.Now().Add(p.retry.Next())
	s.metrics.retries.Inc()
}

// attempt completes a pending upload now, under tusd's lock of it.
func (s *Service) attempt(ctx context.Context, id string) error {
	s.mu.Lock()
	p := s.pending[id]
	if p == nil || p.busy {
		s.mu.Unlock()
		return errBusy
	}
	p.busy = true
	s.mu.Unlock()
	lock, err := s.locker.NewLock(id)
	if err == nil {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = lock.Lock(lctx, func() {})
		cancel()
	}
	if err != nil {
		s.release(id, fmt.Errorf("lock upload %s: %w", id, err))
		return err
	}
	_, err = s.complete(ctx, id)
	lock.Unlock()
	s.release(id, err)
	if err != nil {
		s.log.Warn("upload not stored yet", "upload", id, "err", err)
	}
	return err
}

// completer retries pending completions when due, watches whether
// PostgreSQL and MinIO answer (the stuck alarm counts only time they
// do), and raises the alarm.
func (s *Service) completer(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
		now := time.Now()
		var due []string
		s.mu.Lock()
		n := len(s.pending)
		for id, p := range s.pending {
			if !p.busy && !p.next.After(now) {
				due = append(due, id)
			}
		}
		s.mu.Unlock()
		if n > 0 {
			s.watchStores(ctx)
		}
		sort.Strings(due)
		for _, id := range due {
			if ctx.Err() != nil {
				return
			}
			_ = s.attempt(ctx, id)
		}
		_ = s.checkStuck()
		t.Reset(s.untilNext())
	}
}

// untilNext is the wait until the next retry is due (at most a second, so
// that the alarm is evaluated).
func (s *Service) untilNext() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	wait := time.Second
	for _, p := range s.pending {
		if !p.busy {
			wait = min(wait, max(time.Until(p.next), 10*time.Millisecond))
		}
	}
	return wait
}

func (s *Service) watchStores(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := s.db.Ping(pctx)
	if err == nil {
		err = s.blobs.Ping(pctx)
	}
	if err != nil && ctx.Err() == nil {
		s.mu.Lock()
		s.outage = time.Now()
		s.mu.Unlock()
	}
}

// checkStuck fails, naming each upload and why, when an upload has waited
// to be stored longer than StuckAfter counted from when PostgreSQL and
// MinIO last both answered; each is logged at error level once.
func (s *Service) checkStuck() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var stuck []string
	for id, p := range s.pending {
		start := p.since
		if s.outage.After(start) {
			start = s.outage
		}
		if now.Sub(start) <= s.cfg.StuckAfter {
			continue
		}
		reason := "not tried yet"
		if p.err != nil {
			reason = p.err.Error()
		}
		stuck = append(stuck, fmt.Sprintf("upload %s (%s)", id, reason))
		if !p.alarmed {
			p.alarmed = true
			s.log.Error("upload stuck: received but not stored", "upload", id, "since", p.since, "attempts", p.attempts, "reason", reason)
		}
	}
	s.metrics.stuck.Set(float64(len(stuck)))
	if len(stuck) == 0 {
		return nil
	}
	sort.Strings(stuck)
	return fmt.Errorf("received uploads not stored for over %v: %s", s.cfg.StuckAfter, strings.Join(stuck, "; "))
}

func (s *Service) inject(step string) error {
	if s.fault != nil {
		return s.fault(step)
	}
	return nil
}

// complete takes a finished upload as far as it goes: checked and marked
// (prepare), then stored (store).
func (s *Service) complete(ctx context.Context, id string) (result, error) {
	m, err := s.readMarker(id)
	if errors.Is(err, fs.ErrNotExist) {
		m, err = s.prepare(ctx, id)
	}
	if err != nil {
		return result{}, err
	}
	return s.storeUpload(ctx, id, m)
}

func (s *Service) readMarker(id string) (marker, error) {
	var m marker
	b, err := os.ReadFile(s.markerPath(id))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("completion marker of %s: %w", id, err)
	}
	return m, nil
}

// writeMarker writes the marker durably: temporary file fsynced, renamed,
// folder fsynced.
func (s *Service) writeMarker(id string, m marker) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return durable.WriteAtomic(s.cfg.Dir, filepath.Base(s.markerPath(id)), b, 0o600)
}

// prepare checks a finished upload (declared hash, probe) and marks it:
// a refusal removes it (nothing kept) and is a tusd.Error for the client.
func (s *Service) prepare(ctx context.Context, id string) (marker, error) {
	up, err := s.store.GetUpload(ctx, id)
	if err != nil {
		return marker{}, err
	}
	info, err := up.GetInfo(ctx)
	if err != nil {
		return marker{}, err
	}
	if info.Size <= 0 || info.Offset < info.Size {
		return marker{}, fmt.Errorf("upload %s is not complete (%d of %d bytes)", id, info.Offset, info.Size)
	}
	md := info.MetaData
	by := md["uploaded_by"]
	got, err := s.checkSum(ctx, id, up, info)
	if err != nil {
		return marker{}, err
	}
	f, err := os.Open(s.binPath(id))
	if err != nil {
		return marker{}, err
	}
	defer f.Close()
	if err := f.Sync(); err != nil { // what the client is told was received is on disk
		return marker{}, fmt.Errorf("fsync upload %s: %w", id, err)
	}
	fi, err := probe(f, info.Size)
	if err != nil {
		s.audit(ctx, by, "upload.rejected", "", map[string]any{"filename": md["filename"], "why": err.Error()})
		s.terminate(ctx, id)
		return marker{}, refuse("ERR_NOT_VIDEO", err.Error()+": nothing was kept", http.StatusUnprocessableEntity)
	}
	recordedAt, source := recordedTime(md, fi)
	m := marker{SHA256: got, Size: info.Size, Info: fi, RecordedAt: recordedAt.UTC(), Source: source, Meta: md, ReceivedAt: time.Now().UTC(),
		Key: fmt.Sprintf("uploads/%s/%s/%s", recordedAt.UTC().Format("2006/01/02"), id, safeName(md["filename"]))}
	if err := s.writeMarker(id, m); err != nil {
		return marker{}, fmt.Errorf("completion marker of %s: %w", id, err)
	}
	return m, nil
}

// checkSum is the received file's SHA-256 (hex); a file that is not the
// one declared is removed and refused.
func (s *Service) checkSum(ctx context.Context, id string, up tusd.Upload, info tusd.FileInfo) (string, error) {
	hu, ok := up.(*hashingUpload)
	if !ok {
		return "", errNotHashing
	}
	sum, err := hu.Sum(info.Size)
	if err != nil {
		return "", err
	}
	md := info.MetaData
	got := hex.EncodeToString(sum)
	if want := md["sha256"]; want != "" && want != got {
		s.audit(ctx, md["uploaded_by"], "upload.rejected", "", map[string]any{"filename": md["filename"], "why": "sha256 mismatch", "declared": want, "received": got})
		s.terminate(ctx, id)
		return "", refuse("ERR_CHECKSUM_MISMATCH",
			fmt.Sprintf("the file received has SHA-256 %s, not the declared %s: nothing was kept; upload it again", got, want), 460)
	}
	return got, nil
}

// recordedTime is when the footage was recorded, and how that is known:
// the file's own creation time when plausible, else what the uploader
// declared, else now.
func recordedTime(md tusd.MetaData, fi fileInfo) (time.Time, string) {
	recordedAt, source := time.Now().UTC(), "upload"
	if v := md["recorded_at"]; v != "" {
		recordedAt, _ = time.Parse(time.RFC3339, v)
		source = "declared"
	}
	if !fi.Created.IsZero() && fi.Created.After(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) && fi.Created.Before(time.Now().Add(time.Hour)) {
		recordedAt, source = fi.Created, "file"
	}
	return recordedAt, source
}

// storeUpload puts the original in the bucket once and writes its row once.
func (s *Service) storeUpload(ctx context.Context, id string, m marker) (result, error) {
	by := m.Meta["uploaded_by"]
	sum, err := hex.DecodeString(m.SHA256)
	if err != nil || len(sum) != 32 {
		return result{}, fmt.Errorf("completion marker of %s: bad sha256", id)
	}
	if err := s.inject("db"); err != nil {
		return result{}, err
	}
	if r, done, err := s.alreadyStored(ctx, id, sum, by, m); done || err != nil {
		return r, err
	}
	// the object, once: a retry after a PutObject that succeeded finds it
	if err := s.inject("put"); err != nil {
		return result{}, err
	}
	version, err := s.putOnce(ctx, id, m, sum)
	if err != nil {
		return result{}, err
	}
	if err := s.inject("row"); err != nil {
		return result{}, err
	}
	saved, err := s.createRow(ctx, id, sum, version, m)
	if errors.Is(err, index.ErrConflict) { // written meanwhile (same upload, or the same file)
		if r, done, err := s.alreadyStored(ctx, id, sum, by, m); done || err != nil {
			return r, err
		}
	}
	if err != nil {
		return result{}, fmt.Errorf("index upload %s: %w", m.Key, err)
	}
	s.link(ctx, saved.RecordingID, m.Meta["incident"], by)
	s.audit(ctx, by, "upload.complete", saved.RecordingID.String(), map[string]any{"upload": saved.ID, "filename": saved.Filename,
		"sha256": m.SHA256, "size": saved.Size})
	s.log.Info("upload stored", "recording", saved.RecordingID, "file", saved.Filename, "bytes", saved.Size, "sha256", m.SHA256)
	s.done(ctx, id)
	return result{upload: saved}, nil
}

// createRow writes the upload's recording and upload rows (one
// transaction), bound to its officer and device when known, with the
// original's version ID in the bucket.
func (s *Service) createRow(ctx context.Context, id string, sum []byte, version string, m marker) (index.Upload, error) {
	rec := index.Recording{VideoCodec: m.Info.Video, AudioCodec: m.Info.Audio, Width: m.Info.Width, Height: m.Info.Height}
	if v := m.Meta["officer"]; v != "" {
		if oid, err := uuid.Parse(v); err == nil {
			rec.OfficerID = &oid
		}
	}
	if v := m.Meta["device"]; v != "" {
		if d, err := s.db.DeviceBySerial(ctx, v); err == nil {
			rec.DeviceID = d.ID
		}
	}
	by := m.Meta["uploaded_by"]
	name, original := m.Meta["filename"], m.Meta["original_name"]
	if _, ok := m.Meta["original_name"]; !ok { // received before names were sanitised on arrival
		name, original = SanitizeName(name), storable(name, maxOriginalBytes)
	}
	return s.db.CreateUpload(ctx, rec, index.Upload{TusID: id, UploadedBy: by, Filename: name, OriginalName: original, Size: m.Size,
		SHA256: sum, Key: m.Key, Container: m.Info.Container, VideoCodec: m.Info.Video, AudioCodec: m.Info.Audio, Width: m.Info.Width,
		Height: m.Info.Height, DurationMS: m.Info.Duration.Milliseconds(), RecordedAt: m.RecordedAt, RecordedAtSource: m.Source,
		Fragmented: m.Info.Fragmented, Notes: storable(m.Meta["notes"], maxNotesBytes), VersionID: version}, by)
}

// link associates a stored upload with incidents: by the assignment rule,
// and with the incident chosen at upload (incident: its ID, or empty).
// Failures are logged: the footage is stored, a supervisor can link it.
func (s *Service) link(ctx context.Context, recording uuid.UUID, incident, by string) {
	if _, err := s.db.AutoLink(ctx, recording, s.cfg.LinkBuffer); err != nil {
		s.log.Error("upload not linked by the rule", "recording", recording, "err", err)
	}
	if incident == "" {
		return
	}
	if inc, err := uuid.Parse(incident); err == nil {
		if _, err := s.db.LinkIncident(ctx, recording, inc, by, "chosen at upload"); err != nil && !errors.Is(err, index.ErrConflict) {
			s.log.Error("upload not linked to its incident", "recording", recording, "err", err)
		}
	}
}

// alreadyStored ends a completion whose row exists: for this upload (a
// retry after the row was written), or for the same file (a duplicate).
func (s *Service) alreadyStored(ctx context.Context, id string, sum []byte, by string, m marker) (result, bool, error) {
	if u, err := s.db.UploadByTusID(ctx, id); err == nil {
		s.done(ctx, id)
		return result{upload: u}, true, nil
	} else if !errors.Is(err, index.ErrNotFound) {
		return result{}, false, err
	}
	if dup, err := s.db.UploadBySHA256(ctx, sum); err == nil {
		s.audit(ctx, by, "upload.duplicate", dup.RecordingID.String(), map[string]any{"filename": m.Meta["filename"], "same_as": dup.ID})
		s.done(ctx, id)
		return result{dup: true, upload: dup}, true, nil
	} else if !errors.Is(err, index.ErrNotFound) {
		return result{}, false, err
	}
	return result{}, false, nil
}

// putOnce writes the original through the one evidence writer (S3
// SHA-256 checksum, retention) unless the object is already there with the
// same hash (a retry after a crash between the object and its row adopts
// it). It returns the object's version ID; another object under the key is
// blob.ErrConflict.
func (s *Service) putOnce(ctx context.Context, id string, m marker, sum []byte) (string, error) {
	f, err := os.Open(s.binPath(id))
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := s.blobs.PutEvidence(ctx, blob.Evidence{Key: m.Key, Body: f, Size: m.Size, SHA256: sum, ContentType: "video/mp4",
		Metadata: map[string]string{"sha256": m.SHA256}, RetainUntil: time.Now().Add(s.cfg.Retention)})
	if err != nil {
		return "", fmt.Errorf("store upload %s: %w", m.Key, err)
	}
	return st.VersionID, nil
}

// done removes a stored upload from the folder: the marker first (an
// upload found without it is checked again and found stored).
func (s *Service) done(ctx context.Context, id string) {
	if err := os.Remove(s.markerPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("completion marker not removed", "upload", id, "err", err)
	}
	_ = os.Remove(s.markerPath(id) + ".tmp") // left by a crash while it was written
	s.terminate(ctx, id)
}

func (s *Service) terminate(ctx context.Context, id string) {
	up, err := s.store.GetUpload(ctx, id)
	if err != nil {
		return
	}
	if err := s.store.AsTerminatableUpload(up).Terminate(context.WithoutCancel(ctx)); err != nil {
		s.log.Warn("upload file not removed", "upload", id, "err", err)
	}
}

// Reconciliation is what Reconcile found: objects under uploads/ without
// a row, adopted (the file on disk matches: row written) or orphaned
// (reported).
type Reconciliation struct {
	Objects int      // objects under uploads/
	Adopted []string // keys given their row
	Orphans []string // keys with no row and nothing on disk to make it from
}

// Reconcile compares the bucket's uploads/ prefix with the index. An
// object without a row whose upload is still on disk with the same hash
// (a crash between PutObject and the row) is adopted: its row is written
// now. Any other object without a row is reported (logged at error level,
// returned). Run calls it soon after start-up and every ReconcileEvery.
func (s *Service) Reconcile(ctx context.Context) (Reconciliation, error) {
	var r Reconciliation
	c, bucket := s.blobs.Client(), s.blobs.Bucket()
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "uploads/", Recursive: true}) {
		if o.Err != nil {
			return r, fmt.Errorf("list uploads/: %w", o.Err)
		}
		r.Objects++
		if _, err := s.db.UploadByKey(ctx, o.Key); err == nil {
			continue
		} else if !errors.Is(err, index.ErrNotFound) {
			return r, err
		}
		parts := strings.Split(o.Key, "/") // uploads/YYYY/MM/DD/<id>/<file>
		if len(parts) == 6 && ValidID(parts[4]) {
			id := parts[4]
			if m, err := s.readMarker(id); err == nil && m.Key == o.Key {
				s.mu.Lock()
				if s.pending[id] == nil {
					s.pending[id] = s.newPending(m.ReceivedAt, time.Time{})
				}
				s.mu.Unlock()
				err := s.attempt(ctx, id)
				if errors.Is(err, errBusy) {
					continue // being completed right now
				}
				if err == nil {
					r.Adopted = append(r.Adopted, o.Key)
					s.log.Info("upload object without a row adopted", "upload", id, "key", o.Key)
					continue
				}
				return r, err
			}
		}
		r.Orphans = append(r.Orphans, o.Key)
		s.log.Error("object under uploads/ with no upload row and no file to rebuild it from", "key", o.Key, "size", o.Size)
	}
	s.metrics.orphans.Set(float64(len(r.Orphans)))
	return r, nil
}

type metrics struct {
	refused *prometheus.CounterVec
	expired prometheus.Counter
	storing prometheus.Gauge
	stuck   prometheus.Gauge
	retries prometheus.Counter
	orphans prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bwc_upload_refused_total",
			Help: "Upload requests refused by the gate, by reason (insufficient_storage)."}, []string{"reason"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_upload_expired_total",
			Help: "Stale partial uploads removed by the sweep."}),
		storing: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_upload_storing",
			Help: "Finished uploads received and waiting for their object and row."}),
		stuck: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_upload_stuck",
			Help: "Finished uploads waiting longer than the stuck alarm while PostgreSQL and MinIO answer."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_upload_store_retries_total",
			Help: "Failed attempts to store a finished upload (retried with backoff)."}),
		orphans: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_upload_orphan_objects",
			Help: "Objects under uploads/ with no row, found by the last reconciliation."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.refused, m.expired, m.storing, m.stuck, m.retries, m.orphans} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("upload metrics: %w", err)
			}
		}
	}
	return m, nil
}
