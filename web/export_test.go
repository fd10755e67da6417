package web

import (
	"maps"
	"net/netip"
)

// ClientIP exposes clientIP to the tests.
func ClientIP(remoteAddr string, xff []string, proxies []netip.Prefix) netip.Addr {
	return clientIP(remoteAddr, xff, proxies)
}

// BreakListener closes the server's listening socket under it, as a
// failing network stack would.
func (s *Server) BreakListener() error { return s.ln.Close() }

// OwnAudit lists the routes the router does not audit, and why.
func OwnAudit() map[string]string { return maps.Clone(ownAudit) }

// SetAuditBound sets the bound of the keys of aggregated audit events
// counted in a period (small, for a test to reach it).
func (s *Server) SetAuditBound(n int) {
	s.audits.mu.Lock()
	defer s.audits.mu.Unlock()
	s.audits.bound = n
}

// AuditPending is the number of keys counted in the current period.
func (s *Server) AuditPending() int {
	s.audits.mu.Lock()
	defer s.audits.mu.Unlock()
	return len(s.audits.pending)
}
