package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
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
// Every accepted connection goes through the connection limits.
type guardedListener struct {
	name    string // "RTSP listener" or "RTSPS listener"
	network string
	addr    string // the bound address, so a restart keeps the port
	listen  func(network, address string) (net.Listener, error)
	lim     *connLimiter
	log     *slog.Logger
	logs    *rareLog
	met     *metrics

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
