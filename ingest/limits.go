package ingest

import (
	"container/list"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Connection limits. Anyone who can reach the RTSP port can open
// connections, so every accepted connection is tracked from accept to
// close:
//
//   - a global cap on connections. When it is reached, the oldest
//     connection that has not started publishing (an idle or slow client)
//     is closed to make room, so that a flood of idle connections cannot lock
//     honest cameras out; only when every connection publishes is the new
//     one refused;
//   - a cap per remote address on connections that have not started
//     publishing (cameras behind one carrier NAT share an address; once a
//     camera publishes it is authenticated and no longer counts); at it,
//     that address's oldest such connection is closed to make room, so a
//     camera behind the same address as a flood still gets in;
//   - a handshake deadline: a connection that has not reached RECORD within
//     it is closed (gortsplib clears read deadlines before RECORD, so the
//     deadline is a timer here);
//   - addresses throttled for failed authentications are closed at accept,
//     before anything is read or parsed.
type connLimiter struct {
	maxConns   int
	maxPerAddr int
	handshake  time.Duration
	throttle   *authThrottle
	met        *metrics
	logs       *rareLog

	mu      sync.Mutex
	total   int
	perAddr map[string]*list.List // *trackedConn not yet publishing, by address key, oldest first
	pending *list.List            // *trackedConn not yet publishing, oldest first
}

func newConnLimiter(maxConns, maxPerAddr int, handshake time.Duration, th *authThrottle, met *metrics, logs *rareLog) *connLimiter {
	return &connLimiter{maxConns: maxConns, maxPerAddr: maxPerAddr, handshake: handshake, throttle: th,
		met: met, logs: logs, perAddr: map[string]*list.List{}, pending: list.New()}
}

// open is the number of connections held.
func (l *connLimiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// addrKey is what per-address limits count by: the IP, or its /64 for IPv6
// (one subscriber's prefix).
func addrKey(a net.Addr) string {
	var ip net.IP
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return a.String()
		}
		ip = net.ParseIP(host)
		if ip == nil {
			return host
		}
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// trackedConn is an accepted connection under the limits. Close is
// idempotent and releases its place.
type trackedConn struct {
	net.Conn
	l     *connLimiter
	key   string
	elem  *list.Element // in l.pending while not publishing; guarded by l.mu
	aelem *list.Element // in l.perAddr[key] likewise
	// guarded by l.mu
	publishing bool
	closed     bool
	timer      *time.Timer
	once       sync.Once
	closeErr   error
}

// admit takes an accepted connection under the limits. It returns nil and
// the refusal's reason when the connection must be closed at once.
func (l *connLimiter) admit(c net.Conn) (*trackedConn, string) {
	key := addrKey(c.RemoteAddr())
	if l.throttle != nil && l.throttle.addrBlocked(key, time.Now()) {
		return nil, "throttled"
	}
	l.mu.Lock()
	var evict *trackedConn
	evictReason := ""
	al := l.perAddr[key]
	if l.maxPerAddr > 0 && al != nil && al.Len() >= l.maxPerAddr {
		// the address's oldest connection not yet publishing makes room: a
		// camera behind the same address as a flood still gets in
		evict, evictReason = al.Front().Value.(*trackedConn), "evicted_addr"
		l.releaseLocked(evict)
	} else if l.maxConns > 0 && l.total >= l.maxConns {
		front := l.pending.Front()
		if front == nil {
			l.mu.Unlock()
			return nil, "max_conns"
		}
		evict, evictReason = front.Value.(*trackedConn), "evicted"
		l.releaseLocked(evict)
	}
	tc := &trackedConn{Conn: c, l: l, key: key}
	l.total++
	if al = l.perAddr[key]; al == nil {
		al = list.New()
		l.perAddr[key] = al
	}
	tc.aelem = al.PushBack(tc)
	tc.elem = l.pending.PushBack(tc)
	l.met.conns.WithLabelValues("handshake").Inc()
	if l.handshake > 0 {
		tc.timer = time.AfterFunc(l.handshake, tc.handshakeExpired)
	}
	l.mu.Unlock()
	if evict != nil {
		l.met.connsClosed.WithLabelValues(evictReason).Inc()
		l.logs.warn(evictReason, "RTSP connection limit reached: oldest connections that were not publishing closed to make room",
			"reason", evictReason, "max_conns", l.maxConns, "max_conns_per_addr", l.maxPerAddr, "remote", evict.RemoteAddr().String())
		evict.Conn.Close()
	}
	return tc, ""
}

// releaseLocked gives up a connection's place (once). l.mu is held.
func (l *connLimiter) releaseLocked(tc *trackedConn) {
	if tc.closed {
		return
	}
	tc.closed = true
	l.total--
	if tc.elem != nil {
		l.unpendLocked(tc)
		l.met.conns.WithLabelValues("handshake").Dec()
	} else if tc.publishing {
		l.met.conns.WithLabelValues("publishing").Dec()
	}
	if tc.timer != nil {
		tc.timer.Stop()
	}
}

// unpendLocked takes a connection off the not-yet-publishing lists.
func (l *connLimiter) unpendLocked(tc *trackedConn) {
	l.pending.Remove(tc.elem)
	tc.elem = nil
	if al := l.perAddr[tc.key]; al != nil {
		al.Remove(tc.aelem)
		if al.Len() == 0 {
			delete(l.perAddr, tc.key)
		}
	}
	tc.aelem = nil
}

// publishing marks a connection as a camera that reached RECORD: the
// handshake deadline no longer applies, it leaves the per-address count and
// is never evicted. It returns false when the connection is already closed.
func (tc *trackedConn) markPublishing() bool {
	l := tc.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if tc.closed {
		return false
	}
	if tc.elem != nil {
		l.unpendLocked(tc)
		tc.publishing = true
		l.met.conns.WithLabelValues("handshake").Dec()
		l.met.conns.WithLabelValues("publishing").Inc()
	}
	if tc.timer != nil {
		tc.timer.Stop()
	}
	return true
}

func (tc *trackedConn) handshakeExpired() {
	l := tc.l
	l.mu.Lock()
	expired := !tc.closed && !tc.publishing
	l.mu.Unlock()
	if !expired {
		return
	}
	l.met.connsClosed.WithLabelValues("handshake_timeout").Inc()
	l.logs.info("handshake_timeout", "RTSP connections closed: no RECORD within the handshake deadline",
		"remote", tc.RemoteAddr().String(), "deadline", l.handshake)
	tc.Close()
}

// Close closes the connection and gives up its place; it may be called
// any number of times.
func (tc *trackedConn) Close() error {
	tc.once.Do(func() {
		tc.l.mu.Lock()
		tc.l.releaseLocked(tc)
		tc.l.mu.Unlock()
		tc.closeErr = tc.Conn.Close()
	})
	return tc.closeErr
}

// trackedOf finds the tracked connection under what gortsplib reports as
// a session's connection (a *tls.Conn over it for RTSPS).
func trackedOf(c net.Conn) *trackedConn {
	for i := 0; i < 4 && c != nil; i++ {
		if tc, ok := c.(*trackedConn); ok {
			return tc
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
	return nil
}

// rareLog logs an event at most once per window per key, with the number
// of occurrences since the last line: a flood makes one line per window,
// not one per connection.
type rareLog struct {
	log    *slog.Logger
	window time.Duration

	mu    sync.Mutex
	next  map[string]time.Time
	count map[string]int
}

func newRareLog(log *slog.Logger, window time.Duration) *rareLog {
	return &rareLog{log: log, window: window, next: map[string]time.Time{}, count: map[string]int{}}
}

// allow counts one occurrence of key (a fixed set of names, so the maps
// stay small) and says whether to log it now, with how many occurred
// since the last line.
func (r *rareLog) allow(key string) (bool, int) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count[key]++
	if now.Before(r.next[key]) {
		return false, 0
	}
	n := r.count[key]
	r.count[key] = 0
	r.next[key] = now.Add(r.window)
	return true, n
}

func (r *rareLog) warn(key, msg string, args ...any) {
	if ok, n := r.allow(key); ok {
		r.log.Warn(msg, append(args, "count", n, "window", r.window)...)
	}
}

func (r *rareLog) info(key, msg string, args ...any) {
	if ok, n := r.allow(key); ok {
		r.log.Info(msg, append(args, "count", n, "window", r.window)...)
	}
}

func (r *rareLog) error(key, msg string, args ...any) {
	if ok, n := r.allow(key); ok {
		r.log.Error(msg, append(args, "count", n, "window", r.window)...)
	}
}
