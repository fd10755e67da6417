package web

import "net/netip"

// ClientIP exposes clientIP to the tests.
func ClientIP(remoteAddr string, xff []string, proxies []netip.Prefix) netip.Addr {
	return clientIP(remoteAddr, xff, proxies)
}

// BreakListener closes the server's listening socket under it, as a
// failing network stack would.
func (s *Server) BreakListener() error { return s.ln.Close() }
