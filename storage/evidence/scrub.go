package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/durable"
	"github.com/bwcplatform/bwc/storage/index"
)

// ErrConfig: a configuration field is invalid; the error names it.
var ErrConfig = errors.New("invalid evidence configuration")

// ErrDamaged is Scrubber.Check's error while stored evidence fails
// verification.
var ErrDamaged = errors.New("evidence verification")

// ScrubConfig configures background verification.
type ScrubConfig struct {
	// BytesPerHour is how much stored evidence is re-read and re-hashed per
	// hour; 0: off.
	BytesPerHour int64
	// RetryMin and RetryMax bound the backoff after a step could not
	// check (PostgreSQL or MinIO unreachable).
	RetryMin, RetryMax time.Duration
}

// What a step costs besides the bytes it re-reads (listing, stat and
// version requests), so that a tiny or empty archive is not re-listed in
// a tight loop.
const (
	listCost      = 1 << 20
	recordingCost = 64 << 10
)

// Scrubber re-verifies stored evidence in the background, round robin:
// every archived recording, oldest first, with Verify (objects re-read at
// their indexed version and re-hashed, hash chains, sequence numbers),
// then the whole index against the signed seals and the newest checkpoint
// (as VerifyAnchored does), then again from the start, paced so that an
// hour re-reads about BytesPerHour. A problem found is an alarm until a
// later pass finds it gone: the gauge bwc_evidence_verify_problems, an error in
// the log (key recording) and Check's error, which /readyz shows as a
// detail without failing readiness (every node shares the bucket: one
// damaged object must not take every node out of the load balancer).
//
// One node of the cluster verifies at a time: the one holding the job lock
// "evidence-verification" (index.TryJobLock); the others try to take it
// every RetryMax, and take over at once when its node stops or dies. The
// alarms are the verifying node's.
type Scrubber struct {
	cfg   ScrubConfig
	db    *index.DB
	blobs *blob.Store
	pub   ed25519.PublicKey // checks seals and checkpoints
	log   *slog.Logger
	m     *scrubMetrics
	ready chan struct{}
	once  sync.Once

	mu       sync.Mutex
	problems map[uuid.UUID][]Problem // by recording, as its last verification found them; uuid.Nil: seals and checkpoints
}

// NewScrubber validates cfg and allocates; pub is the platform's public
// key (seals and checkpoints), needed unless off; a nil reg registers
// nowhere, a nil log discards.
func NewScrubber(cfg ScrubConfig, db *index.DB, blobs *blob.Store, pub ed25519.PublicKey, reg *prometheus.Registry, log *slog.Logger) (*Scrubber, error) {
	if cfg.BytesPerHour < 0 {
		return nil, fmt.Errorf("%w: BytesPerHour %d is negative (0: off)", ErrConfig, cfg.BytesPerHour)
	}
	if cfg.RetryMin <= 0 || cfg.RetryMax < cfg.RetryMin {
		return nil, fmt.Errorf("%w: RetryMin %v and RetryMax %v must be positive, RetryMin <= RetryMax", ErrConfig, cfg.RetryMin, cfg.RetryMax)
	}
	if cfg.BytesPerHour > 0 && len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: background verification needs the platform's public key (seals and checkpoints)", ErrConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newScrubMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Scrubber{cfg: cfg, db: db, blobs: blobs, pub: pub, log: log, m: m, ready: make(chan struct{}),
		problems: map[uuid.UUID][]Problem{}}, nil
}

// Ready is closed when Run starts.
func (s *Scrubber) Ready() <-chan struct{} { return s.ready }

// Close: Run starts no goroutine of its own; nothing to wait for.
func (s *Scrubber) Close() error { return nil }

// Run verifies until ctx ends (with BytesPerHour 0 it only waits).
func (s *Scrubber) Run(ctx context.Context) error {
	s.once.Do(func() { close(s.ready) })
	if s.cfg.BytesPerHour == 0 {
		<-ctx.Done()
		return nil
	}
	pace := newPacer(s.cfg.BytesPerHour, time.Now())
	retry := durable.Backoff{Min: s.cfg.RetryMin, Max: s.cfg.RetryMax}
	var lock *index.JobLock
	defer func() { lock.Release() }()
	for ctx.Err() == nil {
		if lock == nil {
			l, err := s.db.TryJobLock(ctx, "evidence-verification")
			if err != nil {
				s.failed(ctx, "take the job lock", uuid.Nil, err, &retry)
				continue
			}
			if l == nil { // another node verifies
				durable.Sleep(ctx, s.cfg.RetryMax)
				continue
			}
			lock = l
			s.log.Info("background verification: this node verifies the archive, the cluster's other nodes wait")
		}
		if !durable.Sleep(ctx, pace.wait(time.Now())) {
			break
		}
		recs, err := s.db.ArchivedRecordings(ctx)
		pace.spend(listCost, time.Now())
		if err != nil {
			s.failed(ctx, "list recordings", uuid.Nil, err, &retry)
			continue
		}
		ok := s.pass(ctx, lock, recs, pace, &retry)
		if ctx.Err() == nil && lock.Held(ctx) != nil {
			s.log.Warn("background verification: job lock lost (database connection), taking it again")
			lock.Release()
			lock = nil
			continue
		}
		if ok && s.anchors(ctx, len(recs), pace, &retry) {
			s.m.passes.Inc()
			s.m.lastPass.SetToCurrentTime()
		}
	}
	return nil
}

// pass verifies recs in order, each when the pace allows, while this node
// holds the job lock; it reports whether it got through them all (ctx not
// ended, lock held). Recordings no longer
// archived lose their alarms.
func (s *Scrubber) pass(ctx context.Context, lock *index.JobLock, recs []uuid.UUID, pace *pacer, retry *durable.Backoff) bool {
	for _, rec := range recs {
		if !durable.Sleep(ctx, pace.wait(time.Now())) {
			return false
		}
		if lock.Held(ctx) != nil {
			return false // Run takes the lock again
		}
		rep, err := Verify(ctx, s.db, s.blobs, []uuid.UUID{rec})
		pace.spend(rep.Bytes+recordingCost, time.Now())
		s.m.bytes.Add(float64(rep.Bytes))
		if err != nil {
			s.failed(ctx, "verify", rec, err, retry)
			continue
		}
		retry.Reset()
		s.m.recordings.Inc()
		s.record(rec, rep.Problems)
	}
	if ctx.Err() != nil {
		return false
	}
	s.forgetExcept(recs)
	return true
}

// anchors checks the index against the seals and the newest checkpoint
// (reading every seal: charged a few KiB per recording); false when it
// could not.
func (s *Scrubber) anchors(ctx context.Context, recordings int, pace *pacer, retry *durable.Backoff) bool {
	if !durable.Sleep(ctx, pace.wait(time.Now())) {
		return false
	}
	var r Report
	err := anchors(ctx, s.db, s.blobs, s.pub, nil, &r)
	pace.spend(listCost+int64(recordings)*4<<10, time.Now())
	if err != nil {
		s.failed(ctx, "seals and checkpoints", uuid.Nil, err, retry)
		return false
	}
	s.record(uuid.Nil, r.Problems)
	return true
}

// failed logs a failure to check (not a problem found: PostgreSQL or MinIO
// unreachable, which their own readiness checks show) and backs off.
func (s *Scrubber) failed(ctx context.Context, what string, rec uuid.UUID, err error, retry *durable.Backoff) {
	if ctx.Err() != nil {
		return
	}
	s.m.errors.Inc()
	if rec == uuid.Nil {
		s.log.Warn("evidence: background verification could not check", "step", what, "err", err)
	} else {
		s.log.Warn("evidence: background verification could not check", "step", what, "recording", rec, "err", err)
	}
	durable.Sleep(ctx, retry.Next())
}

// record keeps what rec's verification found: new problems are logged at
// error level, a recording found intact again clears its alarm.
func (s *Scrubber) record(rec uuid.UUID, found []Problem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	before := s.problems[rec]
	switch {
	case len(found) == 0 && len(before) > 0:
		delete(s.problems, rec)
		if rec == uuid.Nil {
			s.log.Info("evidence: background verification finds the index agreeing with the seals and checkpoints again")
		} else {
			s.log.Info("evidence: background verification finds the recording intact again", "recording", rec)
		}
	case len(found) > 0:
		for _, p := range found {
			if !slices.ContainsFunc(before, func(b Problem) bool { return b.String() == p.String() }) {
				s.log.Error("evidence: stored evidence fails verification", "recording", p.Recording, "kind", p.Kind(), "key", p.Key, "problem", p.What)
			}
		}
		s.problems[rec] = found
	}
	s.m.problems.Set(float64(s.countLocked()))
}

// forgetExcept drops the alarms of recordings not in recs (no longer
// archived: their deletion is for the seals and checkpoints to name).
func (s *Scrubber) forgetExcept(recs []uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	archived := make(map[uuid.UUID]bool, len(recs)+1)
	archived[uuid.Nil] = true // the seals' and checkpoints' problems
	for _, rec := range recs {
		archived[rec] = true
	}
	for rec := range s.problems {
		if !archived[rec] {
			delete(s.problems, rec)
		}
	}
	s.m.problems.Set(float64(s.countLocked()))
}

func compareUUID(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

func (s *Scrubber) countLocked() int {
	n := 0
	for _, ps := range s.problems {
		n += len(ps)
	}
	return n
}

// Problems returns the problems found and not cleared, oldest recording
// first.
func (s *Scrubber) Problems() []Problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := make([]uuid.UUID, 0, len(s.problems))
	for rec := range s.problems {
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, compareUUID)
	var out []Problem
	for _, rec := range recs {
		out = append(out, s.problems[rec]...)
	}
	return out
}

// Check is ErrDamaged naming the first problem while any is found and not
// cleared, for /readyz's details.
func (s *Scrubber) Check(context.Context) error {
	ps := s.Problems()
	if len(ps) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d problem(s), the first: %s", ErrDamaged, len(ps), ps[0])
}

// pacer is a token bucket on bytes: tokens accrue at the hourly budget's
// rate, at most a minute's worth while idle; a step spends what it read
// (the balance may go negative: a recording is verified whole) and the
// next step waits until the balance is back to zero. Over an hour the
// bytes spent are the budget plus at most one step and one minute's burst.
type pacer struct {
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
}

func newPacer(perHour int64, now time.Time) *pacer {
	rate := float64(perHour) / 3600
	return &pacer{rate: rate, burst: rate * 60, last: now}
}

func (p *pacer) refill(now time.Time) {
	if dt := now.Sub(p.last).Seconds(); dt > 0 {
		p.tokens = min(p.burst, p.tokens+dt*p.rate)
	}
	p.last = now
}

// spend takes n bytes at now.
func (p *pacer) spend(n int64, now time.Time) {
	p.refill(now)
	p.tokens -= float64(n)
}

// wait is how long from now until the balance is zero again.
func (p *pacer) wait(now time.Time) time.Duration {
	p.refill(now)
	if p.tokens >= 0 {
		return 0
	}
	return time.Duration(-p.tokens / p.rate * float64(time.Second))
}

type scrubMetrics struct {
	problems   prometheus.Gauge
	bytes      prometheus.Counter
	recordings prometheus.Counter
	passes     prometheus.Counter
	errors     prometheus.Counter
	lastPass   prometheus.Gauge
}

func newScrubMetrics(reg *prometheus.Registry) (*scrubMetrics, error) {
	m := &scrubMetrics{
		problems: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_evidence_verify_problems",
			Help: "Problems background verification found in stored evidence and has not seen cleared (alarm: should be 0)."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_evidence_verified_bytes_total",
			Help: "Bytes of stored evidence re-read and re-hashed by background verification."}),
		recordings: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_evidence_verified_recordings_total",
			Help: "Recordings verified by background verification."}),
		passes: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_evidence_verify_passes_total",
			Help: "Complete passes of background verification over every archived recording."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_evidence_verify_errors_total",
			Help: "Background verification steps that could not check (PostgreSQL or MinIO unreachable)."}),
		lastPass: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_evidence_verify_last_pass_timestamp_seconds",
			Help: "When background verification last completed a pass (Unix time)."}),
	}
	for _, c := range []prometheus.Collector{m.problems, m.bytes, m.recordings, m.passes, m.errors, m.lastPass} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("evidence metrics: %w", err)
		}
	}
	return m, nil
}
