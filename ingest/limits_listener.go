package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"
)

// guardedListener is the listener handed to gortsplib. gortsplib ends the
// whole RTSP server (every camera session with it) on the first error from
// Accept, so Accept here never returns one except after Close:
//
//   - resource errors (EMFILE, ENFILE, ENOBUFS, ENOMEM, aborted
//     handshakes, timeouts) are waited out with a short, growing sleep, as
//     net/http does, and logged once per window;
//   - any other error (the socket closed or broken under us) is logged at
//     error, the listener is reported down (Check names it) and it listens
//     again on the same address with backoff until it succeeds.
//
// Every accepted connection goes through the connection limits. A
// connection from a trusted balancer (proxies, -rtsp-proxy-protocol-from)
// must open with a PROXY protocol header (v1 or v2), whose source address
// is then the connection's: the limits, the logs and the live list see the
// camera's address, not the balancer's.
type guardedListener struct {
	name    string // "RTSP listener" or "RTSPS listener"
	network string
	addr    string // the bound address, so a restart keeps the port
	listen  func(network, address string) (net.Listener, error)
	lim     *connLimiter
	log     *slog.Logger
	logs    *rareLog
	met     *metrics
	proxies []netip.Prefix // balancers whose connections carry a PROXY header (set before the first Accept)

	closing chan struct{}

	mu        sync.Mutex
	inner     net.Listener
	closed    bool
	down      error // set while not listening
	downSince time.Time
}

func newGuardedListener(name, network, address string, listen func(string, string) (net.Listener, error),
	lim *connLimiter, log *slog.Logger, logs *rareLog, met *metrics) (*guardedListener, error) {
	inner, err := listen(network, address)
	if err != nil {
		return nil, err
	}
	l := &guardedListener{name: name, network: network, addr: inner.Addr().String(), listen: listen,
		lim: lim, log: log, logs: logs, met: met, inner: inner, closing: make(chan struct{})}
	met.listenerUp.WithLabelValues(name).Set(1)
	return l, nil
}

// temporaryAcceptError tells errors that pass (out of file descriptors or
// buffers, a connection reset before it was accepted) from a listener that
// is gone.
func temporaryAcceptError(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, os.ErrDeadlineExceeded)
}

func (l *guardedListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		l.mu.Lock()
		inner, closed := l.inner, l.closed
		l.mu.Unlock()
		if closed {
			return nil, net.ErrClosed
		}
		c, err := inner.Accept()
		if err != nil {
			if l.isClosed() {
				return nil, net.ErrClosed
			}
			if temporaryAcceptError(err) {
				l.met.listenerErrors.WithLabelValues(l.name, "temporary").Inc()
				if delay == 0 {
					delay = 5 * time.Millisecond
				} else if delay *= 2; delay > time.Second {
					delay = time.Second
				}
				l.logs.warn("accept "+l.name, l.name+": accept failed, retrying", "addr", l.addr, "err", err, "retry_in", delay)
				if !l.sleep(delay) {
					return nil, net.ErrClosed
				}
				continue
			}
			l.met.listenerErrors.WithLabelValues(l.name, "fatal").Inc()
			if !l.restart(inner, err) {
				return nil, net.ErrClosed
			}
			continue
		}
		delay = 0
		c, reason := l.unwrapProxy(c)
		if c == nil {
			l.met.connsRefused.WithLabelValues(reason).Inc()
			continue
		}
		tc, reason := l.lim.admit(c)
		if tc == nil {
			l.met.connsRefused.WithLabelValues(reason).Inc()
			c.Close()
			l.logs.warn("refused "+reason, "RTSP connections refused at accept", "reason", reason,
				"remote", c.RemoteAddr().String(), "max_conns", l.lim.maxConns, "max_conns_per_addr", l.lim.maxPerAddr)
			continue
		}
		return tc, nil
	}
}

// proxyHeaderWait bounds the wait for a trusted balancer's PROXY header.
// HAProxy writes it as soon as it connects to the node, before any byte of
// the camera's, so the wait is a bound against a broken balancer, not a
// tuning value; it is short because Accept waits with it.
const proxyHeaderWait = 2 * time.Second

// unwrapProxy reads the PROXY protocol header of a connection from a
// trusted balancer and returns the connection with the camera's address as
// its remote address; a connection from any other address is returned as
// it is (a PROXY header it sends is just bytes that are not RTSP: nobody
// else can claim an address). nil (closed) with the refusal's reason when a
// trusted balancer's connection has no valid header.
func (l *guardedListener) unwrapProxy(c net.Conn) (net.Conn, string) {
	if len(l.proxies) == 0 {
		return c, ""
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil || !addrIn(ap.Addr(), l.proxies) {
		return c, ""
	}
	pc := proxyproto.NewConn(c, proxyproto.WithPolicy(proxyproto.REQUIRE), proxyproto.SetReadHeaderTimeout(proxyHeaderWait))
	if pc.ProxyHeader() == nil { // missing, malformed or too slow
		c.Close()
		l.logs.warn("refused proxy_header", "RTSP connection from a trusted balancer without a valid PROXY protocol header: closed",
			"remote", c.RemoteAddr().String(), "addr", l.addr)
		return nil, "proxy_header"
	}
	return pc, ""
}

// addrIn reports whether a is in one of the prefixes.
func addrIn(a netip.Addr, prefixes []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// restart reports the listener down and listens again with backoff. It
// returns false when the listener was closed meanwhile.
func (l *guardedListener) restart(broken net.Listener, cause error) bool {
	broken.Close()
	l.mu.Lock()
	l.down, l.downSince = cause, time.Now()
	l.mu.Unlock()
	l.met.listenerUp.WithLabelValues(l.name).Set(0)
	l.log.Error(l.name+" stopped: listening again", "addr", l.addr, "err", cause)
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if !l.sleep(delay) {
			return false
		}
		inner, err := l.listen(l.network, l.addr)
		if err != nil {
			l.mu.Lock()
			l.down = fmt.Errorf("listen again (attempt %d): %w (stopped: %v)", attempt, err, cause)
			l.mu.Unlock()
			l.logs.error("relisten "+l.name, l.name+": cannot listen again, retrying", "addr", l.addr, "err", err, "attempt", attempt)
			if delay *= 2; delay > 5*time.Second {
				delay = 5 * time.Second
			}
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			inner.Close()
			return false
		}
		l.inner, l.down = inner, nil
		down := time.Since(l.downSince)
		l.mu.Unlock()
		l.met.listenerUp.WithLabelValues(l.name).Set(1)
		l.met.listenerRestarts.WithLabelValues(l.name).Inc()
		l.log.Warn(l.name+" listening again", "addr", l.addr, "down_for", down.Round(time.Millisecond), "attempts", attempt)
		return true
	}
}

// sleep waits d unless the listener is closed; it returns false if closed.
func (l *guardedListener) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.closing:
		return false
	case <-t.C:
		return true
	}
}

func (l *guardedListener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// check is nil while the listener accepts; else it names the listener.
func (l *guardedListener) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down != nil {
		return fmt.Errorf("%s on %s down for %s: %w", l.name, l.addr, time.Since(l.downSince).Round(time.Second), l.down)
	}
	return nil
}

func (l *guardedListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	inner := l.inner
	l.mu.Unlock()
	close(l.closing)
	return inner.Close()
}

func (l *guardedListener) Addr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inner.Addr()
}

// current is the socket listening now (tests close it from under the server).
func (l *guardedListener) current() net.Listener {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inner
}
