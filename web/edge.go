package web

import (
	clist "container/list"
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/bwcplatform/bwc/storage/index"
)

// The edge of the HTTP server: who the client is (behind trusted proxies),
// per-address rate limits, the bound on concurrent password hashing,
// per-request deadlines and HSTS.

// maxTokenLen caps a session cookie or bearer token: longer ones are
// refused without a database lookup.
const maxTokenLen = 256

// maxLoginBody caps the body of POST /api/login.
const maxLoginBody = 4 << 10

// ParseTrustedProxies parses a list of CIDRs or single addresses (the
// -trusted-proxies setting).
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not a CIDR or an IP address", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func trusted(a netip.Addr, proxies []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop reads one address of X-Forwarded-For: an IP, or an IP with a
// port ("1.2.3.4:5", "[::1]:5").
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// maxHops is how many X-Forwarded-For entries are looked at, from the right.
const maxHops = 32

// clientIP is the client's address: the direct peer's, unless the peer is
// a trusted proxy; then the rightmost X-Forwarded-For address that is not a
// trusted proxy (what the client wrote itself, further left, is never
// believed). An unreadable entry stops the walk at the last good address.
func clientIP(remoteAddr string, xff []string, proxies []netip.Prefix) netip.Addr {
	peer, ok := parseHop(remoteAddr)
	if !ok {
		host, _, err := net.SplitHostPort(remoteAddr)
		if err != nil {
			return netip.Addr{}
		}
		if peer, ok = parseHop(host); !ok {
			return netip.Addr{}
		}
	}
	if len(proxies) == 0 || !trusted(peer, proxies) {
		return peer
	}
	client, hops := peer, 0
	for i := len(xff) - 1; i >= 0 && hops < maxHops; i-- {
		parts := strings.Split(xff[i], ",")
		for j := len(parts) - 1; j >= 0 && hops < maxHops; j-- {
			if strings.TrimSpace(parts[j]) == "" && len(parts) == 1 {
				continue // an empty header line
			}
			hops++
			a, ok := parseHop(parts[j])
			if !ok {
				return client
			}
			client = a
			if !trusted(a, proxies) {
				return a
			}
		}
	}
	return client
}

type clientKey struct{}

// clientAddr is the request's client address (see clientIP), the one
// address used for the audit trail, rate limits and logs.
func clientAddr(r *http.Request) string {
	if a, ok := r.Context().Value(clientKey{}).(netip.Addr); ok && a.IsValid() {
		return a.String()
	}
	if a, ok := parseHop(r.RemoteAddr); ok {
		return a.String()
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// edge runs first for every request: who the client is, the per-address
// limit of requests without credentials, HSTS and per-write deadlines.
type edge struct {
	proxies      []netip.Prefix
	writeTimeout time.Duration
	anonLimit    *addrLimiter // nil: no limit
	rateLimited  *prometheus.CounterVec
}

func newEdge(cfg Config, reg *prometheus.Registry) *edge {
	e := &edge{proxies: cfg.TrustedProxies, writeTimeout: cfg.WriteTimeout,
		anonLimit: newAddrLimiter(cfg.UnauthRate, cfg.UnauthBurst, maxLimitedAddrs),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bwc_http_rate_limited_total", Help: "Requests answered 429 by a per-address limit.",
		}, []string{"limit"})}
	reg.MustRegister(e.rateLimited)
	return e
}

// fromTrustedProxy tells whether the direct peer is a trusted proxy (whose
// X-Forwarded-Proto may be believed).
func (e *edge) fromTrustedProxy(r *http.Request) bool {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		peer, ok = parseHop(host)
	}
	return ok && len(e.proxies) > 0 && trusted(peer, e.proxies)
}

// --- per-address rate limits ---

// addrLimiter is a token bucket per client address (IPv6 per /64), in a
// map bounded by an LRU: the least recently seen address is forgotten
// first.
type addrLimiter struct {
	limit rate.Limit
	burst int
	max   int

	mu  sync.Mutex
	m   map[string]*clist.Element
	lru clist.List // of *limEntry, most recent first
}

type limEntry struct {
	key string
	lim *rate.Limiter
}

// maxLimitedAddrs bounds each limiter's map.
const maxLimitedAddrs = 1 << 16

// newAddrLimiter: perSecond <= 0 means no limit (nil); burst and max are
// at least 1 (Config.validate checks the burst).
func newAddrLimiter(perSecond float64, burst, max int) *addrLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &addrLimiter{limit: rate.Limit(perSecond), burst: burst, max: max, m: map[string]*clist.Element{}}
}

func limiterKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Is4() {
		return addr
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// allow takes one token for addr; when none is left it says how long until
// one is.
func (l *addrLimiter) allow(addr string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	key := limiterKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	var e *limEntry
	if el, ok := l.m[key]; ok {
		l.lru.MoveToFront(el)
		e = el.Value.(*limEntry)
	} else {
		for len(l.m) >= l.max {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.m, old.Value.(*limEntry).key)
		}
		e = &limEntry{key: key, lim: rate.NewLimiter(l.limit, l.burst)}
		l.m[key] = l.lru.PushFront(e)
	}
	res := e.lim.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Minute
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (l *addrLimiter) size() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// tooMany answers 429 with Retry-After (whole seconds, at least 1).
func tooMany(w http.ResponseWriter, wait time.Duration, what string) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	writeJSON(w, http.StatusTooManyRequests, apiError{Error: "too many " + what + " from this address; retry later"})
}

// --- locks of unknown logins ---

// unknownLocks locks unknown logins after repeated failures exactly as the
// database locks known accounts (index.LockoutFor), so that a 429 does not
// tell which logins exist. Bounded like the rate limiters (least recently
// failed forgotten first); kept in memory only.
type unknownLocks struct {
	mu  sync.Mutex
	max int
	m   map[string]*clist.Element
	lru clist.List // of *unknownEntry, most recent first
}

type unknownEntry struct {
	login    string
	failures int
	until    time.Time
}

func newUnknownLocks(max int) *unknownLocks {
	return &unknownLocks{max: max, m: map[string]*clist.Element{}}
}

// locked tells whether login is locked at now, and until when.
func (u *unknownLocks) locked(login string, now time.Time) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if el, ok := u.m[login]; ok {
		e := el.Value.(*unknownEntry)
		return e.until, now.Before(e.until)
	}
	return time.Time{}, false
}

// fail counts a failed login for an unknown login.
func (u *unknownLocks) fail(login string, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var e *unknownEntry
	if el, ok := u.m[login]; ok {
		u.lru.MoveToFront(el)
		e = el.Value.(*unknownEntry)
	} else {
		for len(u.m) >= u.max {
			old := u.lru.Back()
			u.lru.Remove(old)
			delete(u.m, old.Value.(*unknownEntry).login)
		}
		e = &unknownEntry{login: login}
		u.m[login] = u.lru.PushFront(e)
	}
	e.failures++
	if d := index.LockoutFor(e.failures); d > 0 {
		e.until = now.Add(d)
	}
}

// forget drops a login that now exists.
func (u *unknownLocks) forget(login string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if el, ok := u.m[login]; ok {
		u.lru.Remove(el)
		delete(u.m, login)
	}
}

// --- the edge middleware ---

// wrap runs first for every request: it finds the client address, applies
// the per-address limit to requests without credentials, sets HSTS over
// TLS and replaces the server's whole-request deadlines with per-request
// ones (see deadlines).
func (e *edge) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := clientIP(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), e.proxies)
		r = r.WithContext(context.WithValue(r.Context(), clientKey{}, ip))
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		if !hasCredentials(r) && !probe(r) {
			if ok, wait := e.anonLimit.allow(clientAddr(r), time.Now()); !ok {
				e.rateLimited.WithLabelValues("unauthenticated").Inc()
				tooMany(w, wait, "requests without a session")
				return
			}
		}
		w, r = e.deadlines(w, r)
		next.ServeHTTP(w, r)
	})
}

// limitFailedAuth charges a request whose session cookie or token was
// refused to its address's limit of unauthenticated requests (requests
// without any were charged by edge), so that guessing sessions or tokens is
// limited too. It answers 429 and returns false when the address is over
// the limit.
func (e *edge) limitFailedAuth(w http.ResponseWriter, r *http.Request) bool {
	if !hasCredentials(r) {
		return true
	}
	if ok, wait := e.anonLimit.allow(clientAddr(r), time.Now()); !ok {
		e.rateLimited.WithLabelValues("unauthenticated").Inc()
		tooMany(w, wait, "requests without a valid session")
		return false
	}
	return true
}

// probe reports the health probes, which are never rate limited (readyz
// shares one answer a second, healthz costs nothing).
func probe(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.URL.Path == "/readyz" || r.URL.Path == "/healthz")
}

func hasCredentials(r *http.Request) bool {
	if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		return true
	}
	_, err := r.Cookie(sessionCookie)
	return err == nil
}

// deadlines: the server's WriteTimeout would bound a whole response, from
// the end of the request's headers, which would cut server-sent events and
// long downloads. Instead every write gets WriteTimeout to complete: long
// responses go on while the client keeps reading, and a client that stops
// reading is cut off. (ReadTimeout needs nothing here: net/http lifts the
// read deadline once a body has been read, and tus PATCH requests set
// their own deadline per read of the body.)
func (e *edge) deadlines(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request) {
	if e.writeTimeout > 0 {
		w = &progressWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: e.writeTimeout}
	}
	return w, r
}

type progressWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *progressWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.ResponseWriter.Write(p)
}

func (w *progressWriter) FlushError() error {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// --- TLS ---

// certReloader serves the certificate files, read again when they change
// (checked at most once a minute), so a renewed certificate needs no
// restart.
type certReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	mod     time.Time
	checked time.Time
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certReloader) modTime() time.Time {
	var t time.Time
	for _, f := range []string{c.certFile, c.keyFile} {
		if fi, err := os.Stat(f); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

func (c *certReloader) load() error {
	mod := c.modTime()
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("web: TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.mod, c.checked = &cert, mod, time.Now()
	return nil
}

func (c *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checked) > time.Minute {
		c.checked = time.Now()
		if c.modTime().After(c.mod) {
			_ = c.load() // a half-written renewal: keep serving the old one
		}
	}
	return c.cert, nil
}
