// Package archive is the platform's live archive: every live recording
// becomes SHA-256-chained fragmented-MP4 segments in the evidence bucket
// (MinIO, object lock) with an index in PostgreSQL, and nothing is lost when
// either is down or the process crashes. It also reconciles spool, index and
// bucket, and raises the archive's alarms and metrics.
//
// Pipeline, per recording: media.Stream reader (large ring, drop alarm) ->
// segmenter (fMP4, ~1 s fragments, segments cut at keyframes) -> spool
// (each fragment fsynced on local disk, a sealed segment's metadata with its
// SHA-256 and chain value) -> uploader (PutObject with the SHA-256 as S3
// checksum, retention and legal hold; then the index row; then removal from
// the spool), with exponential backoff while MinIO or PostgreSQL is down.
package archive

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/internal/segmenter"
	"github.com/bwcplatform/bwc/storage/internal/spool"
)

// ErrSpoolAlarm: the spool holds more than the configured alarm size
// (uploads are failing or falling behind).
var ErrSpoolAlarm = errors.New("archive spool above alarm size")

// ErrObjectConflict: an object already stored under a segment's key has
// other contents (blob.ErrConflict). The archive never overwrites evidence.
var ErrObjectConflict = blob.ErrConflict

// ErrConfig: a configuration field is invalid; the error names it.
var ErrConfig = errors.New("invalid archive configuration")

// Config of the archive. Every field is required: the archive substitutes
// no defaults (cmd/bwc/config.go holds them).
type Config struct {
	SpoolDir         string        // local durable staging area
	SegmentDuration  time.Duration // target segment length (cut at the next keyframe)
	FragmentDuration time.Duration // fragment length: the most a crash loses
	Retention        time.Duration // S3 object-lock retention (GOVERNANCE) of every object
	SpoolAlarmBytes  int64         // spool size above which Check fails
	UploadWorkers    int           // recordings uploaded in parallel
	RingFrames       int           // per-recording reader ring, in frames
	BackoffMin       time.Duration // first retry delay after a failed upload
	BackoffMax       time.Duration // cap of the exponential backoff
	ScanInterval     time.Duration // spool rescan period (uploads are also kicked on each seal)
	StuckAfter       time.Duration // a spooled object not uploaded after this long (while PostgreSQL and MinIO answer) is an alarm
	ReconcileEvery   time.Duration // how often spool, index and bucket are reconciled (also at start)
	RetryWrite       time.Duration // after a spool write error, how soon writing is tried again (at the next keyframe after it; 0: the next keyframe)
	LinkBuffer       time.Duration // the assignment rule's buffer, for rows rebuilt by reconciliation (0: the window exactly)
	Node             string        // this node's name among the nodes: reconciliation seals only its recordings, and dead nodes'
	NodeDeadAfter    time.Duration // a node whose heartbeat is older is dead (its ended recordings may be sealed by any node)

	sinkWrap func(segmenter.Sink) segmenter.Sink // tests: inject disk faults
}

// validate reports every invalid field.
func (c Config) validate() error {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("%w: %s %s", ErrConfig, field, why)) }
	if c.SpoolDir == "" {
		bad("SpoolDir", "is empty")
	}
	if c.Node == "" {
		bad("Node", "is empty")
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"SegmentDuration", c.SegmentDuration}, {"FragmentDuration", c.FragmentDuration}, {"Retention", c.Retention},
		{"NodeDeadAfter", c.NodeDeadAfter}, {"BackoffMin", c.BackoffMin}, {"BackoffMax", c.BackoffMax}, {"ScanInterval", c.ScanInterval},
		{"StuckAfter", c.StuckAfter}, {"ReconcileEvery", c.ReconcileEvery}} {
		if f.v <= 0 {
			bad(f.name, fmt.Sprintf("is %v, must be positive", f.v))
		}
	}
	if c.BackoffMin > 0 && c.BackoffMax > 0 && c.BackoffMax < c.BackoffMin {
		bad("BackoffMax", fmt.Sprintf("is %v, below BackoffMin %v", c.BackoffMax, c.BackoffMin))
	}
	if c.SpoolAlarmBytes <= 0 {
		bad("SpoolAlarmBytes", fmt.Sprintf("is %d, must be positive", c.SpoolAlarmBytes))
	}
	if c.UploadWorkers <= 0 {
		bad("UploadWorkers", fmt.Sprintf("is %d, must be positive", c.UploadWorkers))
	}
	if c.RingFrames <= 0 {
		bad("RingFrames", fmt.Sprintf("is %d, must be positive", c.RingFrames))
	}
	if c.RetryWrite < 0 {
		bad("RetryWrite", fmt.Sprintf("is %v, must not be negative", c.RetryWrite))
	}
	if c.LinkBuffer < 0 {
		bad("LinkBuffer", fmt.Sprintf("is %v, must not be negative", c.LinkBuffer))
	}
	return errors.Join(errs...)
}

// Archive records live streams into the evidence store.
type Archive struct {
	cfg   Config
	db    *index.DB
	blobs *blob.Store
	log   *slog.Logger
	m     *metrics

	sealKey ed25519.PrivateKey // signs the seals of ended recordings
	sealMu  sync.Mutex         // one seal written at a time (uploader and reconciliation)

	ready     chan struct{} // closed by Run once the spool is recovered
	closing   chan struct{} // closed by Close: ends the recorders
	closeOnce sync.Once
	wg        sync.WaitGroup // recorders (Attach)

	// The uploader's work list: the recording directories kicked since it
	// last looked (a segment or init sealed, a recording ended, a row
	// rebuilt), so that it reads those directories, not the whole spool,
	// on each event. The whole spool is scanned at start and every
	// ReconcileEvery.
	kick   chan struct{} // wakes the uploader (capacity 1)
	kickMu sync.Mutex
	kicked map[string]struct{}

	spoolBytes atomic.Int64
	alarm      atomic.Bool

	recovered []spool.Recovered // written by Run before ready is closed

	alarms alarms     // spool write errors and stuck evidence: Check fails by name
	stuck  stuckWatch // ages of spooled objects
}

// New validates the configuration and prepares the archive; sealKey (the
// platform's Ed25519 key) signs the seals of ended recordings. It reads
// nothing from disk: Run recovers the spool, then uploads.
func New(cfg Config, db *index.DB, blobs *blob.Store, sealKey ed25519.PrivateKey, reg *prometheus.Registry, log *slog.Logger) (*Archive, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(sealKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: seal key is not an Ed25519 private key", ErrConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Archive{cfg: cfg, db: db, blobs: blobs, log: log, m: m, sealKey: sealKey,
		ready: make(chan struct{}), closing: make(chan struct{}), kick: make(chan struct{}, 1), kicked: map[string]struct{}{}}, nil
}

// Ready is closed once Run has recovered the spool; recordings attached
// before are buffered in their reader's ring until then.
func (a *Archive) Ready() <-chan struct{} { return a.ready }

// recover recovers the spool left by a previous run, sealing segments that
// were being written from their durable fragments, and measures it.
func (a *Archive) recover() error {
	rec, err := spool.Recover(a.cfg.SpoolDir)
	for _, r := range rec {
		if len(r.Sealed) > 0 {
			a.log.Warn("archive: recovered segments after an unclean stop", "recording", r.Recording,
				"segments", r.Sealed, "fragments", r.Fragments, "torn_bytes_dropped", r.Truncated)
			a.m.recovered.Add(float64(len(r.Sealed)))
		}
	}
	if err != nil {
		// what could be recovered was; the rest stays on disk for an operator
		a.log.Error("archive: spool recovery", "err", err)
	}
	if _, err := os.Stat(a.cfg.SpoolDir); err != nil {
		return fmt.Errorf("archive spool %s: %w", a.cfg.SpoolDir, err)
	}
	a.recovered = rec
	a.remeasureSpool()
	return nil
}

// Recovered reports what Run recovered from the spool (valid once Ready
// is closed).
func (a *Archive) Recovered() []spool.Recovered { return a.recovered }

// readLinger: the archive's reader is woken once the frames queued span a
// quarter of a second, not by every picture: four wake-ups of the
// recorder's goroutine a second instead of 25 for a camera at 25 fps.
// The segmenter keeps a fragment's frames in memory until the fragment is
// complete anyway, so a crash loses at most a fragment and a quarter of a
// second, where it lost a fragment.
const readLinger = 250 * time.Millisecond

// Attach subscribes to a new recording at once (before its first frame),
// opens its spool directory (once Run has recovered the spool: a recording
// attached before waits in its reader's ring) and archives it on its own
// goroutine until the stream ends or the archive closes. The reader's ring is large; an
// overflow (which loses frames) is an alarm: logged and counted.
func (a *Archive) Attach(s *media.Stream) {
	info := s.Info()
	log := a.log.With("recording", info.RecordingID, "device", info.DeviceSerial)
	if info.StartedAt.IsZero() {
		info.StartedAt = time.Now()
	}
	var lost atomic.Int64
	r := s.Subscribe(media.ReaderOptions{Name: "archive", Size: a.cfg.RingFrames, Linger: readLinger, OnDrop: func(n int) {
		lost.Add(int64(n))
		a.m.dropped.Add(float64(n))
	}})
	var w *spool.Writer
	select {
	case <-a.ready: // the usual case: the spool directory exists as the recording starts
		if w = a.openSpool(info, log); w == nil {
			r.Close()
			return
		}
	default: // attached before Run has recovered the spool: opened once it has
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer r.Close()
		if w == nil {
			select {
			case <-a.ready:
			case <-a.closing:
				return
			}
			if w = a.openSpool(info, log); w == nil {
				return
			}
		}
		a.m.recordings.Inc()
		defer a.m.recordings.Dec()
		ctx, cancel := a.untilClosed()
		defer cancel()
		a.record(ctx, info, w, r, &lost, log)
	}()
}

// openSpool opens the recording's spool directory; nil when it cannot
// (logged and counted: the recording is not archived).
func (a *Archive) openSpool(info media.Info, log *slog.Logger) *spool.Writer {
	w, err := spool.Open(a.cfg.SpoolDir, spool.RecMeta{Recording: info.RecordingID, StartedAt: info.StartedAt.UTC(),
		DeviceID: info.DeviceID, DeviceSerial: info.DeviceSerial, Part: info.Part}, a.kickDir)
	if err != nil {
		a.m.errors.WithLabelValues("spool").Inc()
		log.Error("archive: cannot spool recording: its media is NOT archived", "err", err)
		return nil
	}
	return w
}

// untilClosed is a context that ends when the archive closes (or cancel
// is called).
func (a *Archive) untilClosed() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		select {
		case <-a.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (a *Archive) record(ctx context.Context, info media.Info, w *spool.Writer, r *media.Reader, lost *atomic.Int64, log *slog.Logger) {
	rc := a.newRecorder(info, w, log)
	defer a.alarms.clear(rc.alarmKey)
	var reported int64
	for {
		f, err := r.Read(ctx)
		if n := lost.Load(); n != reported {
			log.Error("archive: reader fell behind, frames lost", "lost_total", n)
			reported = n
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) {
				log.Error("archive: read", "err", err)
			}
			break
		}
		rc.write(f)
	}
	rc.finish()
	a.kickDir(w.Dir())
}

// recorder writes one recording's frames to its spool directory and rides
// out spool write errors.
type recorder struct {
	a        *Archive
	info     media.Info
	w        *spool.Writer
	log      *slog.Logger
	sink     segmenter.Sink
	seg      *segmenter.Segmenter
	hasVideo bool
	alarmKey string
	failing  time.Time // zero: writing works
	retryAt  time.Time
}

func (a *Archive) newRecorder(info media.Info, w *spool.Writer, log *slog.Logger) *recorder {
	rc := &recorder{a: a, info: info, w: w, log: log, sink: &measured{Sink: w, a: a},
		alarmKey: "recording " + info.RecordingID.String() + " spool"}
	if a.cfg.sinkWrap != nil {
		rc.sink = a.cfg.sinkWrap(rc.sink)
	}
	for _, t := range info.Tracks {
		rc.hasVideo = rc.hasVideo || t.Kind == media.Video
	}
	rc.seg = rc.newSegmenter()
	return rc
}

func (rc *recorder) newSegmenter() *segmenter.Segmenter {
	cfg := rc.a.cfg
	return segmenter.New(segmenter.Config{Target: cfg.SegmentDuration, Fragment: cfg.FragmentDuration, Start: rc.info.StartedAt},
		rc.sink, rc.info.Tracks)
}

// write writes one frame; while the spool fails, frames are dropped until
// writing can resume.
func (rc *recorder) write(f *media.Frame) {
	if !rc.failing.IsZero() && !rc.resume(f) {
		return
	}
	if err := rc.seg.Write(f); err != nil {
		rc.fail(err)
		return
	}
	if !rc.failing.IsZero() {
		rc.log.Warn("archive: spool writable again: recording continues after a gap", "failed_for", time.Since(rc.failing).Round(time.Millisecond))
		rc.a.m.writeFailing.Dec()
		rc.a.alarms.clear(rc.alarmKey)
		rc.failing = time.Time{}
	}
}

// resume tries writing again after a spool write failed: after RetryWrite,
// at a keyframe, with a new segment that follows a gap. It reports whether
// f is to be written.
func (rc *recorder) resume(f *media.Frame) bool {
	if time.Now().Before(rc.retryAt) || (rc.hasVideo && (f.Track == nil || f.Track.Kind != media.Video || !f.Key)) {
		return false
	}
	if err := rc.w.Salvage(); err != nil {
		rc.retryAt = time.Now().Add(rc.a.cfg.RetryWrite)
		rc.a.alarms.set(rc.alarmKey, fmt.Sprintf("spool write failing since %s: %v", rc.failing.Format(time.RFC3339), err))
		return false
	}
	rc.seg = rc.newSegmenter()
	rc.seg.Resume(rc.w.Next())
	rc.seg.MarkGap()
	return true
}

// fail records a spool write error: alarm, metric, and a retry time.
func (rc *recorder) fail(err error) {
	rc.a.m.errors.WithLabelValues("spool").Inc()
	if rc.failing.IsZero() {
		rc.failing = time.Now()
		rc.a.m.writeFailing.Inc()
		rc.log.Error("archive: cannot write to the spool: media lost until it works again (retrying)", "err", err)
	}
	rc.retryAt = time.Now().Add(rc.a.cfg.RetryWrite)
	rc.a.alarms.set(rc.alarmKey, fmt.Sprintf("spool write failing since %s: %v", rc.failing.Format(time.RFC3339), err))
}

// finish seals the last segment (or leaves it for recovery when the spool
// still fails) and marks the recording ended in the spool.
func (rc *recorder) finish() {
	log := rc.log
	if !rc.failing.IsZero() {
		rc.a.m.writeFailing.Dec()
		if err := rc.w.Salvage(); err != nil {
			log.Error("archive: spool still failing at the recording's end: the open segment is left for recovery at the next start", "err", err)
		}
	} else if err := rc.seg.Close(); err != nil {
		rc.a.m.errors.WithLabelValues("spool").Inc()
		log.Error("archive: seal last segment", "err", err)
		if err := rc.w.Salvage(); err != nil {
			log.Error("archive: the open segment is left for recovery at the next start", "err", err)
		}
	}
	if st := rc.seg.Stats(); st.LeadingDropped > 0 || st.Unsupported > 0 {
		log.Warn("archive: frames not archived", "before_first_keyframe", st.LeadingDropped, "unsupported_codec", st.Unsupported)
	}
	if err := rc.w.End(); err != nil {
		log.Error("archive: mark recording ended in spool", "err", err)
	}
}

// measured counts spool growth as segments are written.
type measured struct {
	segmenter.Sink
	a *Archive
}

func (m *measured) Init(n int, data []byte) error {
	m.a.spoolBytes.Add(int64(len(data)))
	return m.Sink.Init(n, data)
}

func (m *measured) Fragment(data []byte, end segmenter.End) error {
	m.a.spoolBytes.Add(int64(len(data)))
	m.a.m.bytesIn.Add(float64(len(data)))
	return m.Sink.Fragment(data, end)
}

func (m *measured) Seal(end segmenter.End) error {
	m.a.m.sealed.Inc()
	return m.Sink.Seal(end)
}

// kickDir tells the uploader that a recording directory has something to
// upload (or has ended).
func (a *Archive) kickDir(dir string) {
	a.kickMu.Lock()
	a.kicked[dir] = struct{}{}
	a.kickMu.Unlock()
	a.wakeUploader()
}

func (a *Archive) wakeUploader() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// takeKicked returns the directories kicked since the last call.
func (a *Archive) takeKicked() map[string]struct{} {
	a.kickMu.Lock()
	defer a.kickMu.Unlock()
	if len(a.kicked) == 0 {
		return nil
	}
	k := a.kicked
	a.kicked = map[string]struct{}{}
	return k
}

// Check fails while the spool holds more than the alarm size, while a
// recording cannot be written to the spool, and while evidence is stuck in
// it, naming each.
func (a *Archive) Check(ctx context.Context) error {
	var errs []error
	if n := a.spoolBytes.Load(); n > a.cfg.SpoolAlarmBytes {
		errs = append(errs, fmt.Errorf("%w: %s holds %d bytes (alarm at %d): uploads to MinIO/PostgreSQL are failing or behind",
			ErrSpoolAlarm, a.cfg.SpoolDir, n, a.cfg.SpoolAlarmBytes))
	}
	if err := a.alarms.err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// SpoolBytes is the current size of the spool.
func (a *Archive) SpoolBytes() int64 { return a.spoolBytes.Load() }

// Close stops the recorders, sealing each open segment, and waits for
// them. Run's goroutines end with Run.
func (a *Archive) Close() error {
	a.closeOnce.Do(func() {
		close(a.closing)
		a.wg.Wait()
	})
	return nil
}

// The spool's size is a running count: the recorders add what they spool
// (measured), the uploader subtracts what it removes (unspool). The count
// leaves out the small metadata files, so it is measured exactly (a stat
// of every file in the spool, too costly for every scan with thousands of
// cameras) when the archive starts, when a finished recording's folder is
// removed, and every ReconcileEvery.
func (a *Archive) remeasureSpool() { a.spoolBytes.Store(a.measureSpool()) }

func (a *Archive) measureSpool() int64 {
	var n int64
	_ = filepath.WalkDir(a.cfg.SpoolDir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
