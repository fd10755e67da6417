package web

import (
	"fmt"
	"testing"
	"time"
)

// TestAddrLimiterIsBounded: the per-address map never grows past its cap
// (the least recently seen address is forgotten), and IPv6 addresses share
// a bucket per /64.
func TestAddrLimiterIsBounded(t *testing.T) {
	now := time.Now()
	l := newAddrLimiter(0.001, 2, 100)
	for i := range 1000 {
		l.allow(fmt.Sprintf("198.51.%d.%d", i/250, i%250), now)
		if n := l.size(); n > 100 {
			t.Fatalf("after %d addresses the map holds %d", i+1, n)
		}
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"2001:db8:1:2::1", true},
		{"2001:db8:1:2::ffff", true},
		{"2001:db8:1:2:abcd::9", false}, // same /64: its burst of 2 is used up
		{"2001:db8:1:3::1", true},       // another /64
		{"203.0.113.1", true},
		{"203.0.113.1", true},
		{"203.0.113.1", false},
		{"203.0.113.2", true},
	} {
		if got, wait := l.allow(tc.addr, now); got != tc.want || !got && wait <= 0 {
			t.Fatalf("%s: allowed %v (wait %v), want %v", tc.addr, got, wait, tc.want)
		}
	}
	if newAddrLimiter(0, 1, 1) != nil {
		t.Fatal("rate 0 should mean no limiter")
	}
	var off *addrLimiter
	if ok, _ := off.allow("203.0.113.1", now); !ok {
		t.Fatal("no limiter refused a request")
	}
}
