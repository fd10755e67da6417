package mediatest

import (
	"testing"
	"time"
)

// Eventually polls cond every 20 ms until it holds, failing the test after
// 30 s. The deadline is for a hung test, not a timing assertion: every test
// of the platform that waits for something asynchronous (a recording
// archived, a viewer connected, a counter reached) waits through it.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	EventuallyWithin(tb, 30*time.Second, what, cond)
}

// EventuallyWithin is Eventually for a condition that takes longer by
// nature (media played in real time for longer than the usual wait): it
// fails after d, never asserting how soon cond held.
func EventuallyWithin(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
