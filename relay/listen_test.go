package relay

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// newTCPRelay runs a relay with ICE-TCP until the test ends; done receives
// what its Run returns.
func newTCPRelay(t *testing.T, maxConns, perAddr int, stun time.Duration) (s *Server, done <-chan error) {
	t.Helper()
	s, err := New(Config{UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", QueueFrames: 64, MaxViewers: 500,
		TCPMaxConns: maxConns, TCPMaxPerAddr: perAddr, STUNTimeout: stun}, &streams{m: nil}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, runRelay(t, s)
}

// closedByServer reports whether the server closed c (EOF or reset) within
// the deadline, rather than keeping it open.
func closedByServer(c net.Conn, within time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

func TestICETCPCapsCloseExcessConnections(t *testing.T) {
	s, _ := newTCPRelay(t, 1000, 5, time.Minute)
	addr := s.tcpLn.Addr().String()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range 8 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// the three beyond the per-address cap are closed at once, the first
	// five stay open (waiting for their STUN binding)
	for i, c := range conns {
		closed := closedByServer(c, 300*time.Millisecond)
		if want := i >= 5; closed != want {
			t.Errorf("connection %d: closed=%v, want %v", i, closed, want)
		}
	}
	if got := testutil.ToFloat64(s.met.tcpRefused); got != 3 {
		t.Errorf("refused counter = %v, want 3", got)
	}
	// a closed connection gives its place back
	conns[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if !closedByServer(c, 300*time.Millisecond) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the place of a closed connection was never given back")
		}
	}
	if err := s.Check(context.Background()); err != nil {
		t.Errorf("Check = %v while only over the caps", err)
	}
}

func TestICETCPSilentConnectionClosedAfterSTUNTimeout(t *testing.T) {
	s, _ := newTCPRelay(t, 1000, 100, 200*time.Millisecond)
	c, err := net.Dial("tcp", s.tcpLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !closedByServer(c, 10*time.Second) {
		t.Fatal("a connection that never sent a STUN binding was kept open")
	}
}

// flakyListener fails Accept with the given errors, then serves the real one.
type flakyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func TestTCPGuardAcceptErrors(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: &syscallErr{syscall.EMFILE}}
	for _, tc := range []struct {
		name     string
		errs     []error
		wantDown bool
	}{
		{"out of descriptors is waited out", []error{emfile, emfile, emfile}, false},
		{"aborted connection is skipped", []error{&net.OpError{Op: "accept", Net: "tcp", Err: &syscallErr{syscall.ECONNABORTED}}}, false},
		{"a permanent error is a failure", []error{errors.New("bad file descriptor")}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			g := newTCPGuard(&flakyListener{Listener: ln, errs: tc.errs}, 10, 10, slog.New(slog.DiscardHandler), func() {})
			defer g.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			c, err := g.Accept()
			if tc.wantDown {
				if err == nil {
					c.Close()
					t.Fatal("Accept went on after a permanent error")
				}
				if !errors.Is(g.err(), ErrListenerDown) {
					t.Fatalf("err() = %v, want ErrListenerDown", g.err())
				}
				select {
				case <-g.down:
				default:
					t.Fatal("down not signalled")
				}
				return
			}
			if err != nil {
				t.Fatalf("Accept = %v, want the connection after the temporary errors", err)
			}
			c.Close()
			if g.err() != nil {
				t.Fatalf("err() = %v after temporary errors", g.err())
			}
		})
	}
}

// syscallErr makes a syscall.Errno look like what the runtime returns.
type syscallErr struct{ errno syscall.Errno }

func (e *syscallErr) Error() string { return e.errno.Error() }
func (e *syscallErr) Unwrap() error { return e.errno }

func TestListenerStoppedFailsCheckAndEndsRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(s *Server)
	}{
		{"UDP socket closed under the relay", func(s *Server) { s.udp.Close() }},
		{"ICE-TCP listener fails", func(s *Server) { _ = s.tcpLn.Listener.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, done := newTCPRelay(t, 100, 10, time.Second)
			if err := s.Check(context.Background()); err != nil {
				t.Fatalf("Check before = %v", err)
			}
			tc.kill(s)
			select {
			case err := <-done:
				if !errors.Is(err, ErrListenerDown) {
					t.Fatalf("Run = %v, want ErrListenerDown", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run went on with a dead listener")
			}
			if err := s.Check(context.Background()); !errors.Is(err, ErrListenerDown) {
				t.Fatalf("Check = %v, want ErrListenerDown", err)
			}
		})
	}
}

func TestCloseIsNotAListenerFailure(t *testing.T) {
	s, done := newTCPRelay(t, 100, 10, time.Second)
	s.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run after Close = %v", err)
	}
	if err := s.Check(context.Background()); err != nil {
		t.Fatalf("Check after Close = %v", err)
	}
}

// TestConfigInvalidFields: New substitutes no default: it names every
// invalid field at once.
func TestConfigInvalidFields(t *testing.T) {
	_, err := New(Config{TCPAddr: "127.0.0.1:0", ICEServers: []string{"http://x"}}, nil, nil, nil)
	for _, f := range []string{"QueueFrames", "MaxViewers", "TCPMaxConns", "TCPMaxPerAddr", "STUNTimeout", "ICEServers"} {
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), f+" ") {
			t.Errorf("New(bad config) = %v, does not name %s", err, f)
		}
	}
	if _, err := New(Config{QueueFrames: 1, MaxViewers: 1}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "UDPAddr") {
		t.Errorf("New without addresses = %v", err)
	}
}
