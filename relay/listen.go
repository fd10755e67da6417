package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrListenerDown: one of the relay's ports stopped accepting viewers.
var ErrListenerDown = errors.New("relay listener down")

// tcpGuard wraps the ICE-TCP listener that pion's TCP mux accepts from.
// pion stops accepting for good on the first Accept error (an EMFILE storm
// would silently end ICE-TCP), and accepts any number of connections that
// never send a STUN binding; the guard:
//   - retries temporary errors (EMFILE, ENFILE, ECONNABORTED...) after a
//     short, growing pause, logging once per pause series,
//   - closes connections beyond a global and a per-address cap at once,
//   - reports a permanent failure (Accept failing while the relay is open)
//     through down, so that Check fails by name and Run ends the process.
type tcpGuard struct {
	net.Listener
	log       *slog.Logger
	maxConns  int
	maxPerIP  int
	onRefused func()

	mu     sync.Mutex
	total  int
	perIP  map[string]int
	closed bool

	down     chan struct{} // closed once on a permanent failure
	downOnce sync.Once
	downErr  atomic.Pointer[error]
}

func newTCPGuard(ln net.Listener, maxConns, maxPerIP int, log *slog.Logger, onRefused func()) *tcpGuard {
	return &tcpGuard{Listener: ln, log: log, maxConns: maxConns, maxPerIP: maxPerIP, onRefused: onRefused,
		perIP: map[string]int{}, down: make(chan struct{})}
}

// temporary reports accept errors that pass: out of descriptors, a
// connection reset before it was accepted, and timeouts.
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EPROTO)
}

// Accept returns the next connection within the caps. It returns an error
// only when the listener was closed (by Close or for good).
func (g *tcpGuard) Accept() (net.Conn, error) {
	var pause time.Duration
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			g.mu.Lock()
			closed := g.closed
			g.mu.Unlock()
			if closed {
				return nil, err
			}
			if temporary(err) {
				if pause == 0 {
					pause = 5 * time.Millisecond
					g.log.Error("relay: ICE-TCP accept failing, retrying", "err", err)
				} else {
					pause = min(2*pause, time.Second)
				}
				time.Sleep(pause)
				continue
			}
			g.fail(fmt.Errorf("%w: ICE-TCP %s: %v", ErrListenerDown, g.Addr(), err))
			return nil, err
		}
		pause = 0
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		g.mu.Lock()
		if g.total >= g.maxConns || g.perIP[host] >= g.maxPerIP {
			g.mu.Unlock()
			_ = c.Close()
			g.onRefused()
			continue
		}
		g.total++
		g.perIP[host]++
		g.mu.Unlock()
		return &guardedConn{Conn: c, g: g, host: host}, nil
	}
}

func (g *tcpGuard) release(host string) {
	g.mu.Lock()
	g.total--
	if g.perIP[host]--; g.perIP[host] <= 0 {
		delete(g.perIP, host)
	}
	g.mu.Unlock()
}

// Close closes the listener on purpose (not a failure).
func (g *tcpGuard) Close() error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	return g.Listener.Close()
}

func (g *tcpGuard) fail(err error) {
	g.downOnce.Do(func() {
		g.downErr.Store(&err)
		g.log.Error("relay: listener stopped: live viewing over ICE-TCP is down", "err", err)
		close(g.down)
	})
}

// err is the permanent failure, or nil.
func (g *tcpGuard) err() error {
	if p := g.downErr.Load(); p != nil {
		return *p
	}
	return nil
}

// guardedConn gives its place back once closed (pion may close twice).
type guardedConn struct {
	net.Conn
	g    *tcpGuard
	host string
	once sync.Once
}

func (c *guardedConn) Close() error {
	c.once.Do(func() { c.g.release(c.host) })
	return c.Conn.Close()
}
