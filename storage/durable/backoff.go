package durable

import (
	"context"
	"time"
)

// Backoff is the platform's one retry policy for evidence writes that fail
// for a reason that may pass (PostgreSQL or MinIO down, a full disk): wait
// Min after the first failure, double after each further one up to Max, and
// start again from Min after a success. The ingest's database writer and the
// archive's uploader both retry through it.
//
// The zero Backoff is not usable: Min and Max must be positive, Min <= Max.
// A Backoff is a value owned by one retry loop; it is not safe for
// concurrent use.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// Next returns how long to wait before the next attempt after a failure.
func (b *Backoff) Next() time.Duration {
	d := min(max(b.next, b.Min), b.Max)
	b.next = min(d*2, b.Max)
	return d
}

// Reset records a success: the next failure waits Min again.
func (b *Backoff) Reset() { b.next = 0 }

// Sleep waits d, or until ctx ends; it reports whether the wait ran its
// course (false: ctx ended). The wait between retries of every loop that
// backs off.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
