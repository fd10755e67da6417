package ingest

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
)

// viaBalancer dials the RTSP listener from the balancer's address and
// writes the PROXY protocol v1 header HAProxy would send for a camera at
// camera (header "" sends none).
func viaBalancer(t *testing.T, balancer net.IP, addr, header string) *rawClient {
	t.Helper()
	c, err := dialFrom(balancer, addr)
	if err != nil {
		t.Fatal(err)
	}
	if header != "" {
		if _, err := c.c.Write([]byte(header)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func proxyV1(camera string, port int, server string) string {
	host, sport, _ := net.SplitHostPort(server)
	return fmt.Sprintf("PROXY TCP4 %s %s %d %s\r\n", camera, host, port, sport)
}

// TestProxyProtocolFromBalancer: behind a TCP balancer sending the PROXY
// protocol (-rtsp-proxy-protocol-from), the per-address limits count each
// camera's address, not the balancer's: one camera guessing secrets is
// throttled alone and another camera behind the same balancer publishes.
// A connection from the balancer without a header is refused and counted;
// a PROXY header from any other address is not believed (it is not RTSP).
func TestProxyProtocolFromBalancer(t *testing.T) {
	balancer := srcIP(7)
	w := newWorld(t, worldOpts{cfg: Config{AuthFailuresPerAddr: 3, AuthFailuresPerDevice: 1000, Grace: time.Second,
		ProxyProtocolFrom: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte(balancer.To4())), 32)}}})
	addr := w.srv.Addr()
	u := fmt.Sprintf("rtsp://%s/live/%s", addr, w.device.Serial)

	// a camera at 203.0.113.7 guessing: throttled after 3 failures
	statuses := map[base.StatusCode]int{}
	for i := range 6 {
		c := viaBalancer(t, balancer, addr, proxyV1("203.0.113.7", 40000+i, addr))
		res, err := c.announce(u, w.device.Serial, fmt.Sprintf("guess-%d", i), false, sampleSDP(t))
		c.close()
		if err == nil {
			statuses[res.StatusCode]++
		}
	}
	if statuses[base.StatusUnauthorized] != 3 {
		t.Fatalf("guesses from 203.0.113.7 through the balancer: %v, want 3 × 401 then throttled", statuses)
	}
	mediatest.Eventually(t, "203.0.113.7 throttled", func() bool {
		return counter(w, "refused", "throttled_addr")+counter(w, "conns_refused", "throttled") >= 3
	})

	// another camera behind the same balancer is not throttled with it
	c := viaBalancer(t, balancer, addr, proxyV1("203.0.113.8", 41000, addr))
	if err := c.publish(t, u, w.device.Serial, secret); err != nil {
		t.Fatalf("a camera at another address behind the balancer: %v", err)
	}
	mediatest.Eventually(t, "the live list names the camera's own address", func() bool {
		for _, l := range w.srv.Live() {
			if host, _, _ := net.SplitHostPort(l.RemoteAddr); host == "203.0.113.8" {
				return true
			}
		}
		return false
	})
	c.close()

	// the balancer's connection without a header: refused at accept, counted
	before := counter(w, "conns_refused", "proxy_header")
	c = viaBalancer(t, balancer, addr, "")
	if _, err := c.announce(u, w.device.Serial, secret, false, sampleSDP(t)); err == nil {
		t.Fatal("an RTSP request from the balancer without a PROXY header was answered")
	}
	c.close()
	mediatest.Eventually(t, "proxy_header refusal counted", func() bool {
		return counter(w, "conns_refused", "proxy_header") == before+1
	})

	// anyone else cannot claim an address: their header is not believed
	// (gortsplib skips it as a line that is not RTSP; the connection's
	// address stays the socket's)
	other := srcIP(8)
	c, err := dialFrom(other, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if _, err := c.c.Write([]byte(proxyV1("203.0.113.9", 42000, addr))); err != nil {
		t.Fatal(err)
	}
	if err := c.publish(t, u, w.device.Serial, secret); err == nil {
		mediatest.Eventually(t, "the camera listed at its socket's address", func() bool {
			for _, l := range w.srv.Live() {
				if host, _, _ := net.SplitHostPort(l.RemoteAddr); host == other.String() {
					return true
				}
			}
			return false
		})
	}
	for _, l := range w.srv.Live() {
		if host, _, _ := net.SplitHostPort(l.RemoteAddr); host == "203.0.113.9" {
			t.Fatalf("a PROXY header from %s (not a balancer) was believed: %+v", other, l)
		}
	}
}
