package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
)

// writer applies the ingest's database writes (new recording, status,
// gaps, end) one at a time, in order, retrying with backoff while
// PostgreSQL is down. The camera's media never waits for it: a recording
// starts and is archived to the spool before its row exists, and the row
// is written (bound to the officer wearing the device at the recording's
// start) when the database is back.
type writer struct {
	log *slog.Logger
	met *metrics
	max int

	exec   sync.Mutex // held while a write runs: run and drain never run one twice
	mu     sync.Mutex
	queue  []op
	wake   chan struct{}
	closed bool

	backoffMin, backoffMax time.Duration
}

type op struct {
	what string
	do   func(ctx context.Context) error
}

func newWriter(log *slog.Logger, met *metrics, max int) *writer {
	return &writer{log: log, met: met, max: max, wake: make(chan struct{}, 1),
		backoffMin: 200 * time.Millisecond, backoffMax: 10 * time.Second}
}

// enqueue adds a write. It never blocks; beyond the queue's bound the
// write is dropped and counted (the media keeps flowing either way).
func (w *writer) enqueue(what string, do func(ctx context.Context) error) {
	w.mu.Lock()
	if w.closed || len(w.queue) >= w.max {
		w.mu.Unlock()
		w.met.dbDropped.Inc()
		w.log.Error("database write dropped: queue full", "op", what)
		return
	}
	w.queue = append(w.queue, op{what, do})
	w.met.dbQueue.Set(float64(len(w.queue)))
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// pending returns the number of queued writes.
func (w *writer) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// permanent reports an error that retrying cannot fix.
func permanent(err error) bool {
	return errors.Is(err, index.ErrInvalid) || errors.Is(err, index.ErrConflict) || errors.Is(err, index.ErrNotFound)
}

// run applies writes until ctx ends, then tries once more to drain what is
// queued within a short time.
func (w *writer) run(ctx context.Context) {
	backoff := w.backoffMin
	for {
		w.exec.Lock()
		w.mu.Lock()
		var next *op
		if len(w.queue) > 0 {
			next = &w.queue[0]
		}
		w.mu.Unlock()
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
		err := next.do(octx)
		cancel()
		if err != nil && ctx.Err() != nil {
			w.exec.Unlock()
			return // interrupted by shutdown: drain applies it
		}
		if err != nil && !permanent(err) {
			w.exec.Unlock()
			w.met.dbRetries.Inc()
			w.log.Warn("database write failed, retrying", "op", next.what, "in", backoff, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, w.backoffMax)
			continue
		}
		if err != nil {
			w.log.Error("database write failed", "op", next.what, "err", err)
		}
		backoff = w.backoffMin
		w.mu.Lock()
		w.queue = w.queue[1:]
		w.met.dbQueue.Set(float64(len(w.queue)))
		w.mu.Unlock()
		w.exec.Unlock()
	}
}

// drain applies what is queued with a deadline (at shutdown).
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
		w.queue = w.queue[1:]
		w.mu.Unlock()
		if err := next.do(ctx); err != nil {
			w.log.Error("database write lost at shutdown", "op", next.what, "err", err)
		}
		if ctx.Err() != nil {
			return
		}
	}
}
