package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwcplatform/bwc/storage/durable"
	"github.com/bwcplatform/bwc/storage/index"
)

// writer applies the ingest's database writes (new recording, status,
// gaps, clock offset, media, end) one at a time, in order, retrying with
// backoff while PostgreSQL is down. The camera's media never waits for it:
// a recording starts and is archived to the spool before its row exists,
// and the row is written (bound to the officer wearing the device at the
// recording's start) when the database is back.
//
// Writes are data (op), not closures: each is first recorded durably in
// the journal (when there is one) and only then queued, so that a crash
// before PostgreSQL has it loses nothing (the journal is replayed at the
// next start, see Server.Run).
type writer struct {
	log   *slog.Logger
	met   *metrics
	max   int
	apply func(ctx context.Context, o *op) error
	jr    *journal // nil: memory only
	jm    *journalMetrics
	jfail atomic.Pointer[error] // the last journal write failed (disk)

	exec   sync.Mutex // held while a write runs: run and drain never run one twice
	jmu    sync.Mutex // journal order = queue order
	mu     sync.Mutex
	queue  []*op
	wake   chan struct{}
	closed bool
}

// The writer's retry policy (durable.Backoff) while PostgreSQL is down.
const (
	retryMin = 200 * time.Millisecond
	retryMax = 10 * time.Second
)

func newWriter(log *slog.Logger, met *metrics, jm *journalMetrics, max int, jr *journal, apply func(ctx context.Context, o *op) error) *writer {
	return &writer{log: log, met: met, jm: jm, max: max, jr: jr, apply: apply, wake: make(chan struct{}, 1)}
}

// put journals a write (fsynced) and queues it. It never blocks on the
// database. A write the journal cannot take is still queued (and the
// failure logged and counted): the camera keeps recording. Beyond the
// queue's bound the write is dropped from memory (counted); a journaled
// one is applied at the next start.
func (w *writer) put(o *op) {
	if w.jr != nil && o.journaled() {
		// journal order = queue order; writes that are not journaled (on
		// the packet path) never wait for a journal fsync
		w.jmu.Lock()
		defer w.jmu.Unlock()
		if err := w.jr.append(o); err != nil {
			w.jm.errors.Inc()
			w.jfail.Store(&err)
			w.log.Error("database write not journaled: lost if the process dies before PostgreSQL has it",
				"recording", o.Recording, "op", o.Kind, "err", err)
		} else {
			w.jfail.Store(nil)
		}
	}
	w.mu.Lock()
	if w.closed || len(w.queue) >= w.max {
		w.mu.Unlock()
		w.met.dbDropped.Inc()
		w.log.Error("database write dropped: queue full", "op", o.String())
		return
	}
	w.queue = append(w.queue, o)
	w.met.dbQueue.Set(float64(len(w.queue)))
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// enqueue adds a write given as a function. It is not journaled: use put
// with an op for anything that must survive a crash.
func (w *writer) enqueue(what string, do func(ctx context.Context) error) {
	w.put(&op{Kind: opFunc, what: what, fn: do})
}

// pending returns the number of queued writes.
func (w *writer) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// permanent reports an error that retrying cannot fix.
func permanent(err error) bool {
	return errors.Is(err, index.ErrInvalid) || errors.Is(err, index.ErrConflict) || errors.Is(err, index.ErrNotFound) ||
		errors.Is(err, index.ErrDeviceLive)
}

func (w *writer) do(ctx context.Context, o *op) error {
	if o.Kind == opFunc {
		return o.fn(ctx)
	}
	return w.apply(ctx, o)
}

// done marks an op applied in the journal.
func (w *writer) done(o *op) {
	if w.jr != nil && o.journaled() {
		w.jr.applied(o)
	}
}

// run applies writes until ctx ends, in order, retrying each through
// durable.Backoff while the failure may pass; drain (at shutdown) applies
// what is left.
func (w *writer) run(ctx context.Context) {
	backoff := durable.Backoff{Min: retryMin, Max: retryMax}
	for {
		w.exec.Lock()
		next := w.head()
		if next == nil {
			w.exec.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
				continue
			}
		}
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := w.do(octx, next)
		cancel()
		if err != nil && ctx.Err() != nil {
			w.exec.Unlock()
			return // interrupted by shutdown: drain applies it
		}
		if err != nil && !permanent(err) {
			w.exec.Unlock()
			if !w.wait(ctx, next, backoff.Next(), err) {
				return
			}
			continue
		}
		backoff.Reset()
		if err != nil {
			w.log.Error("database write failed", "op", next.String(), "err", err)
		}
		w.pop(next)
		w.exec.Unlock()
	}
}

// head returns the next write to apply, nil when none is queued.
func (w *writer) head() *op {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return nil
	}
	return w.queue[0]
}

// pop marks the head write applied (or given up) and dequeues it.
func (w *writer) pop(o *op) {
	w.done(o)
	w.mu.Lock()
	w.queue = w.queue[1:]
	w.met.dbQueue.Set(float64(len(w.queue)))
	w.mu.Unlock()
}

// wait pauses before retrying a failed write; false when ctx ended first.
func (w *writer) wait(ctx context.Context, o *op, d time.Duration, err error) bool {
	w.met.dbRetries.Inc()
	w.log.Warn("database write failed, retrying", "op", o.String(), "in", d, "err", err)
	return durable.Sleep(ctx, d)
}

// drain applies what is queued with a deadline (at shutdown). What it
// cannot apply stays in the journal for the next start.
func (w *writer) drain(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	w.exec.Lock()
	defer w.exec.Unlock()
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.closed = true
			w.mu.Unlock()
			return
		}
		next := w.queue[0]
		w.mu.Unlock()
		err := w.do(ctx, next)
		if err != nil && !permanent(err) {
			// stop at the first failure: what follows must not overtake it
			w.mu.Lock()
			rest := w.queue
			w.queue, w.closed = nil, true
			w.mu.Unlock()
			for _, o := range rest {
				if w.jr != nil && o.journaled() {
					w.log.Warn("database write left in the journal for the next start", "op", o.String(), "err", err)
				} else if o.Kind != opRefresh {
					w.log.Error("database write lost at shutdown", "op", o.String(), "err", err)
				}
			}
			return
		}
		w.done(next)
		w.mu.Lock()
		w.queue = w.queue[1:]
		w.mu.Unlock()
	}
}

// journalErr reports the journal failing (its last write did), for Check.
func (w *writer) journalErr() error {
	if e := w.jfail.Load(); e != nil {
		return fmt.Errorf("database writes not journaled (lost if the process dies while PostgreSQL lacks them): %w", *e)
	}
	return nil
}
