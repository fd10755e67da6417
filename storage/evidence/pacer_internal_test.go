package evidence

import (
	"testing"
	"time"
)

// The pacer's arithmetic on a simulated clock: over an hour a scrubber
// that verifies as soon as the pacer allows re-reads the hourly budget
// (give or take one recording and a minute's burst), whatever the sizes;
// one recording is followed by a rest of its size at the rate; a long idle
// time accrues at most a minute's budget.
func TestPacerKeepsTheHourlyBudget(t *testing.T) {
	const perHour = 1 << 30
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sizes := []int64{50 << 20, 1 << 20, 300 << 20, 64 << 10, 7 << 20}
	p := newPacer(perHour, t0)
	now, spent, steps := t0, int64(0), 0
	for ; ; steps++ {
		now = now.Add(p.wait(now))
		if !now.Before(t0.Add(time.Hour)) {
			break
		}
		n := sizes[steps%len(sizes)]
		now = now.Add(time.Duration(n) * time.Nanosecond) // reading takes a little time
		p.spend(n, now)
		spent += n
	}
	if lo, hi := int64(perHour)-300<<20, int64(perHour)+300<<20+perHour/60; spent < lo || spent > hi {
		t.Fatalf("an hour spent %d bytes in %d steps; want %d..%d", spent, steps, lo, hi)
	}

	p = newPacer(perHour, t0)
	p.spend(100<<20, t0)
	if got, want := p.wait(t0), time.Duration(float64(100<<20)/(perHour/3600.0)*float64(time.Second)); got < want-time.Millisecond || got > want+time.Millisecond {
		t.Fatalf("after 100 MiB: wait %v, want %v", got, want)
	}
	later := t0.Add(3 * time.Hour)
	if w := p.wait(later); w != 0 {
		t.Fatalf("after 3 h idle: wait %v, want 0", w)
	}
	p.spend(perHour/60, later)
	if w := p.wait(later); w != 0 {
		t.Fatalf("a minute's budget after 3 h idle: wait %v, want 0 (the burst)", w)
	}
	p.spend(perHour/60, later)
	if w := p.wait(later); w < 59*time.Second || w > 61*time.Second {
		t.Fatalf("a second minute's budget at once: wait %v, want a minute (idle time beyond the burst is not kept)", w)
	}
}
