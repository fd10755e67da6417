package web

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientIP: whatever X-Forwarded-For says, the client address is the
// peer's when the peer is not a trusted proxy, and otherwise the peer's or
// an address written in the header; never a panic.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.1:443", "198.51.100.1, 10.0.0.2")
	f.Add("203.0.113.9:5000", "1.2.3.4")
	f.Add("[2001:db8::1]:80", "[2001:db9::2]:1234,garbage,,")
	f.Add("10.0.0.1:443", strings.Repeat("10.0.0.3,", 100))
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	f.Fuzz(func(t *testing.T, peer, xff string) {
		got := clientIP(peer, []string{xff}, proxies)
		p, ok := parseHop(peer)
		if !ok {
			return
		}
		if !trusted(p, proxies) {
			if got != p {
				t.Fatalf("untrusted peer %s: client %s", peer, got)
			}
			return
		}
		if got != p {
			found := false
			for _, h := range strings.Split(xff, ",") {
				if a, ok := parseHop(h); ok && a == got {
					found = true
				}
			}
			if !found {
				t.Fatalf("client %s is neither the peer %s nor in %q", got, peer, xff)
			}
		}
	})
}
