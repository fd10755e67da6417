package web

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
)

// Config of the HTTP server. Every value is taken as given: the defaults
// live in cmd/bwc/config.go, and New refuses invalid values, naming each.
type Config struct {
	Addr            string        // listening address, host:port (port 0: any free port)
	ShutdownTimeout time.Duration // how long a graceful shutdown may take (> 0)
	SessionTTL      time.Duration // how long a login lasts (> 0)
	TokenTTL        time.Duration // the longest (and default) life of an API token (> 0)
	CookieSecure    bool          // mark the session cookie Secure even on plain HTTP (behind a TLS proxy)
	LinkBuffer      time.Duration // incident association rule's widening (0: exactly the assignment window)
	ExportApproval  bool          // exports need a supervisor's approval
	AuditReadPeriod time.Duration // reads and refusals: one audit event per user, route and object per period, with a count (> 0)
	// MFARequiredRoles must have a second factor: a session of such a
	// user without one may only enrol (mfa.go). Empty: nobody is held.
	MFARequiredRoles []string

	// HTTPS: both files, or neither (plain HTTP).
	TLSCert, TLSKey string
	// TrustedProxies: the client address is read from X-Forwarded-For only
	// when the direct peer is in one of these.
	TrustedProxies []netip.Prefix

	// Server limits. ReadHeaderTimeout (which also bounds the TLS
	// handshake) must be positive; for the others zero means no limit
	// (MaxHeaderBytes: net/http's own cap).
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration // reading a request's body
	WriteTimeout      time.Duration // each write of a response
	IdleTimeout       time.Duration
	MaxHeaderBytes    int

	// Per-address rate limits (requests per second, 0: none; and burst, at
	// least 1 when limited): login attempts, and requests without a
	// session or token.
	LoginRate, UnauthRate   float64
	LoginBurst, UnauthBurst int
	// HashSlots bounds concurrent password checks (argon2id, 19 MiB each;
	// negative: unbounded, for benchmarks); a login waits at most HashWait
	// (0: not at all) for a slot, then gets 503.
	HashSlots int
	HashWait  time.Duration

	// MapTiles is the map's tile server, a URL template with {z}, {x}
	// and {y} (and optionally {s}); "" : no tiles, the map draws units
	// and incidents on a plain background.
	MapTiles string

	// OIDC: single sign-on through an OpenID Connect provider (off
	// without an issuer).
	OIDC OIDCConfig
}

// validate names every invalid field.
func (c Config) validate() error {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("web: Config.%s %s", field, why)) }
	if c.Addr == "" {
		bad("Addr", "is required")
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"ShutdownTimeout", c.ShutdownTimeout}, {"SessionTTL", c.SessionTTL}, {"TokenTTL", c.TokenTTL}, {"ReadHeaderTimeout", c.ReadHeaderTimeout},
		{"AuditReadPeriod", c.AuditReadPeriod}} {
		if d.v <= 0 {
			bad(d.field, fmt.Sprintf("must be positive, not %v", d.v))
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"LinkBuffer", c.LinkBuffer}, {"ReadTimeout", c.ReadTimeout}, {"WriteTimeout", c.WriteTimeout},
		{"IdleTimeout", c.IdleTimeout}, {"HashWait", c.HashWait}} {
		if d.v < 0 {
			bad(d.field, fmt.Sprintf("must not be negative, not %v", d.v))
		}
	}
	if c.MaxHeaderBytes < 0 {
		bad("MaxHeaderBytes", fmt.Sprintf("must not be negative, not %d", c.MaxHeaderBytes))
	}
	for _, l := range []struct {
		name  string
		rate  float64
		burst int
	}{{"Login", c.LoginRate, c.LoginBurst}, {"Unauth", c.UnauthRate, c.UnauthBurst}} {
		switch {
		case l.rate < 0:
			bad(l.name+"Rate", fmt.Sprintf("must not be negative, not %v", l.rate))
		case l.rate > 0 && l.burst < 1:
			bad(l.name+"Burst", fmt.Sprintf("must be at least 1 with a rate limit, not %d", l.burst))
		}
	}
	if c.HashSlots == 0 {
		bad("HashSlots", "must not be 0 (no login could ever be checked); negative: unbounded")
	}
	for _, role := range c.MFARequiredRoles {
		if !index.ValidRole(role) {
			bad("MFARequiredRoles", fmt.Sprintf("has %q, not a role (officer, supervisor, reviewer, admin)", role))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("web: TLS needs both a certificate and a key file"))
	}
	if c.MapTiles != "" && (tileOrigin(c.MapTiles) == "" || !strings.Contains(c.MapTiles, "{z}") ||
		!strings.Contains(c.MapTiles, "{x}") || !strings.Contains(c.MapTiles, "{y}")) {
		bad("MapTiles", fmt.Sprintf("must be an http(s) URL template with {z}, {x} and {y}, not %q", c.MapTiles))
	}
	errs = append(errs, c.OIDC.validate()...)
	return errors.Join(errs...)
}
