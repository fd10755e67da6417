package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
)

// TestPerAddressCap: at the per-address cap the address's oldest
// connection not yet publishing is closed to make room (counted), so a
// camera behind the same address as a flood of idle connections still
// publishes; a publishing connection leaves the count.
func TestPerAddressCap(t *testing.T) {
	w := newWorld(t, worldOpts{cfg: Config{MaxConnsPerAddr: 3, HandshakeTimeout: time.Minute}})
	var idle []*rawClient
	defer func() {
		for _, c := range idle {
			c.close()
		}
	}()
	dial := func() *rawClient {
		c, err := dialFrom(srcIP(0), w.srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
		return c
	}
	for i := 0; i < 3; i++ {
		dial()
		mediatest.Eventually(t, "connection tracked", func() bool { return counter(w, "conns", "handshake") == float64(i+1) })
	}
	for i := 0; i < 2; i++ {
		dial()
		mediatest.Eventually(t, "eviction", func() bool { return counter(w, "conns_closed", "evicted_addr") == float64(i+1) })
	}
	for i, c := range idle[:2] {
		if !closedByServer(c.c, 20*time.Second) {
			t.Fatalf("oldest connection %d of the address not closed at the cap", i)
		}
	}
	if n := counter(w, "conns", "handshake"); n != 3 {
		t.Fatalf("%v connections of the address open, cap 3", n)
	}
	// the newest ones still work
	res, err := idle[4].do(&base.Request{Method: base.Options, URL: mustURL(t, "rtsp://"+w.srv.Addr()+"/")})
	if err != nil || res.StatusCode != base.StatusOK {
		t.Fatalf("OPTIONS on a kept connection: %v %v", res, err)
	}
	// a camera behind the same address publishes
	cam := dial()
	if err := cam.publish(t, w.url(w.device.Serial, secret), w.device.Serial, secret); err != nil {
		t.Fatalf("publish from the flooded address: %v", err)
	}
	mediatest.Eventually(t, "publisher counted as publishing", func() bool {
		return counter(w, "conns", "publishing") == 1 && counter(w, "conns", "handshake") == 2
	})
	if n := counter(w, "conns_closed", "evicted_addr"); n != 3 {
		t.Fatalf("evicted_addr = %v, want 3", n)
	}
}

func mustURL(t testing.TB, s string) *base.URL {
	u, err := base.ParseURL(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestGlobalCapEvictsIdle: with 200 idle connections against a cap of 50,
// the oldest idle ones are closed to make room (counted), never more than
// the cap are open, the listener keeps accepting, Check stays healthy and
// an honest camera publishes and its frames flow.
func TestGlobalCapEvictsIdle(t *testing.T) {
	w := newWorld(t, worldOpts{cfg: Config{MaxConns: 50, HandshakeTimeout: time.Minute, Grace: time.Second}})
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 200; i++ {
		c, err := dialFrom(srcIP(i/20), w.srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c.c)
	}
	mediatest.Eventually(t, "150 idle connections evicted", func() bool { return counter(w, "conns_closed", "evicted") == 150 })
	if n := counter(w, "conns", "handshake"); n != 50 {
		t.Fatalf("%v connections open, cap 50", n)
	}
	if !closedByServer(conns[0], 20*time.Second) {
		t.Fatal("the oldest idle connection is still open")
	}
	lc := startLiveCamera(t, w, 15)
	lc.flowing(t, "after the idle flood")
	// more idle connections: the camera publishes, it is never evicted
	for i := 0; i < 100; i++ {
		c, err := dialFrom(srcIP(20+i/20), w.srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c.c)
	}
	mediatest.Eventually(t, "evictions", func() bool { return counter(w, "conns_closed", "evicted") >= 250 })
	lc.flowing(t, "while idle connections are evicted")
	if err := w.srv.Check(context.Background()); err != nil {
		t.Fatalf("Check under an idle flood: %v", err)
	}
	if n := counter(w, "conns", "publishing"); n != 1 {
		t.Fatalf("publishing connections = %v", n)
	}
}

// TestHandshakeDeadline: a connection that does not reach RECORD within
// the deadline is closed, whether it is silent, keeps sending OPTIONS, or
// sends half a request; a camera that publishes is not.
func TestHandshakeDeadline(t *testing.T) {
	w := newWorld(t, worldOpts{cfg: Config{HandshakeTimeout: 700 * time.Millisecond, Grace: time.Second}})
	lc := startLiveCamera(t, w, 15)
	silent, err := dialFrom(srcIP(0), w.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.close()
	chatty, err := dialFrom(srcIP(1), w.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer chatty.close()
	half, err := dialFrom(srcIP(2), w.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer half.close()
	if _, err := half.c.Write([]byte("ANNOUNCE rtsp://x/live/CAM RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 100\r\n\r\nv=0")); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	chattyDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				chattyDone <- nil
				return
			case <-time.After(100 * time.Millisecond):
			}
			res, err := chatty.do(&base.Request{Method: base.Options, URL: mustURL(t, "rtsp://"+w.srv.Addr()+"/")})
			if err != nil {
				chattyDone <- err // closed by the server: expected
				return
			}
			if res.StatusCode != base.StatusOK {
				chattyDone <- fmt.Errorf("OPTIONS: %d", res.StatusCode)
				return
			}
		}
	}()
	for name, c := range map[string]net.Conn{"silent": silent.c, "half a request": half.c} {
		if !closedByServer(c, 20*time.Second) {
			t.Fatalf("%s connection not closed at the handshake deadline", name)
		}
	}
	select {
	case err := <-chattyDone:
		if err == nil || strings.Contains(err.Error(), "OPTIONS") {
			t.Fatalf("chatty connection: %v", err)
		}
	case <-time.After(20 * time.Second):
		close(stop)
		t.Fatal("a connection sending OPTIONS forever was not closed")
	}
	if n := counter(w, "conns_closed", "handshake_timeout"); n != 3 {
		t.Fatalf("handshake timeouts = %v, want 3", n)
	}
	// the camera published well past the deadline and is still flowing
	lc.flowing(t, "past the handshake deadline")
	if l := w.srv.Live(); len(l) != 1 || l[0].Status != index.RecordingLive {
		t.Fatalf("live = %+v", l)
	}
}

// TestBasicAuthRefused: an ANNOUNCE with Basic credentials (the secret in
// clear), even the right ones, is refused with 401; the challenge offers
// digest only.
func TestBasicAuthRefused(t *testing.T) {
	w := newWorld(t, worldOpts{})
	c, err := dialFrom(srcIP(0), w.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	u := fmt.Sprintf("rtsp://%s/live/%s", w.srv.Addr(), w.device.Serial)
	res, err := c.announce(u, w.device.Serial, secret, true, sampleSDP(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != base.StatusUnauthorized {
		t.Fatalf("Basic with the right secret: %d, want 401", res.StatusCode)
	}
	if n := counter(w, "refused", "basic_auth"); n != 1 {
		t.Fatalf("basic_auth refusals = %v", n)
	}
	// the challenge a client gets offers digest only
	c2, err := dialFrom(srcIP(1), w.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.close()
	res, err = c2.do(&base.Request{Method: base.Announce, URL: mustURL(t, u),
		Header: base.Header{"Content-Type": base.HeaderValue{"application/sdp"}}, Body: sampleSDP(t)})
	if err != nil || res.StatusCode != base.StatusUnauthorized {
		t.Fatalf("ANNOUNCE without credentials: %v %v", res, err)
	}
	for _, v := range res.Header["WWW-Authenticate"] {
		if !strings.HasPrefix(v, "Digest ") {
			t.Fatalf("challenge offers %q", v)
		}
	}
	if len(res.Header["WWW-Authenticate"]) == 0 {
		t.Fatal("no challenge")
	}
	// and digest with the same secret works
	if err := c2.publish(t, u, w.device.Serial, secret); err != nil {
		t.Fatalf("digest publish: %v", err)
	}
}

// TestAuthThrottled: 50 wrong-secret ANNOUNCEs from one address: the
// first ones are checked and refused (401), the rest are refused without
// any check (503, or the connection closed at accept), counted; the right
// secret from that address is then refused too (nothing is verified). A
// device attacked from many addresses is throttled the same way. An honest
// camera on another address is not affected.
func TestAuthThrottled(t *testing.T) {
	w := newWorld(t, worldOpts{cfg: Config{AuthFailuresPerAddr: 10, AuthFailuresPerDevice: 1000, Grace: time.Second}})
	u := fmt.Sprintf("rtsp://%s/live/%s", w.srv.Addr(), w.device.Serial)
	statuses := map[base.StatusCode]int{}
	closedAtAccept := 0
	for i := 0; i < 50; i++ {
		c, err := dialFrom(srcIP(0), w.srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.announce(u, w.device.Serial, fmt.Sprintf("guess-%d", i), false, sampleSDP(t))
		c.close()
		switch {
		case err != nil:
			closedAtAccept++
		default:
			statuses[res.StatusCode]++
		}
	}
	if statuses[base.StatusUnauthorized] != 10 {
		t.Fatalf("checked and refused: %v (closed at accept %d), want 10 × 401", statuses, closedAtAccept)
	}
	if n := counter(w, "refused", "bad_credentials"); n != 10 {
		t.Fatalf("bad_credentials = %v, want 10", n)
	}
	var throttled float64
	mediatest.Eventually(t, "throttled attempts counted", func() bool {
		throttled = counter(w, "refused", "throttled_addr") + counter(w, "conns_refused", "throttled")
		return throttled >= 40
	})
	if throttled != 40 || statuses[base.StatusServiceUnavailable]+closedAtAccept != 40 {
		t.Fatalf("throttled = %v (statuses %v, closed at accept %d), want 40", throttled, statuses, closedAtAccept)
	}
	// the right secret from the throttled address: refused without a check
	c, err := dialFrom(srcIP(0), w.srv.Addr())
	if err == nil {
		err = c.publish(t, u, w.device.Serial, secret)
		c.close()
	}
	if err == nil {
		t.Fatal("the right secret from a throttled address was accepted")
	}
	if n := counter(w, "refused", "bad_credentials"); n != 10 {
		t.Fatalf("a throttled attempt was verified: bad_credentials = %v", n)
	}
	// an honest camera elsewhere publishes
	lc := startLiveCamera(t, w, 15)
	lc.flowing(t, "while an address is throttled")
}

// TestDeviceThrottled: wrong secrets for one device spread over many
// addresses throttle the device (and only it), except from an address the
// device authenticated from before (a camera reconnecting from where it
// was).
func TestDeviceThrottled(t *testing.T) {
	w := newWorld(t, worldOpts{cfg: Config{AuthFailuresPerAddr: 1000, AuthFailuresPerDevice: 5}})
	ctx := context.Background()
	other, err := w.db.CreateDevice(ctx, index.Device{Serial: "BWC-OTHER-1", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	u := func(serial string) string { return fmt.Sprintf("rtsp://%s/live/%s", w.srv.Addr(), serial) }
	// the camera published from srcIP(20) earlier
	cam, err := dialFrom(srcIP(20), w.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := cam.publish(t, u(w.device.Serial), w.device.Serial, secret); err != nil {
		t.Fatal(err)
	}
	cam.close()
	var got []base.StatusCode
	for i := 0; i < 8; i++ {
		c, err := dialFrom(srcIP(i), w.srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.announce(u(w.device.Serial), w.device.Serial, "wrong", false, sampleSDP(t))
		c.close()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, res.StatusCode)
	}
	want := []base.StatusCode{401, 401, 401, 401, 401, 503, 503, 503}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	if n := counter(w, "refused", "throttled_device"); n != 3 {
		t.Fatalf("throttled_device = %v", n)
	}
	// the right secret from a new address: refused unchecked
	c, err := dialFrom(srcIP(21), w.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.announce(u(w.device.Serial), w.device.Serial, secret, false, sampleSDP(t))
	c.close()
	if err != nil || res.StatusCode != base.StatusServiceUnavailable {
		t.Fatalf("right secret from a new address while throttled: %v %v, want 503", res, err)
	}
	// the camera, from where it published before, gets in
	cam, err = dialFrom(srcIP(20), w.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer cam.close()
	if err := cam.publish(t, u(w.device.Serial), w.device.Serial, secret); err != nil {
		t.Fatalf("camera from its known address while the device is throttled: %v", err)
	}
	// another device, from an address that failed before, publishes
	c2, err := dialFrom(srcIP(0), w.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.close()
	if err := c2.publish(t, u(other.Serial), other.Serial, secret); err != nil {
		t.Fatalf("other device: %v", err)
	}
}

// TestUnknownSerialsDoNotQueryTheDatabase: ANNOUNCEs with credentials for
// made-up serials are answered from the device cache; the database is
// asked at most once per second (a reload), not once per request. A device
// registered after the start is found.
func TestUnknownSerialsDoNotQueryTheDatabase(t *testing.T) {
	var cs *countingStore
	w := newWorld(t, worldOpts{cfg: Config{AuthFailuresPerAddr: 100000}, wrap: func(s store) store { cs = &countingStore{store: s}; return cs }})
	before := cs.calls()
	start := time.Now()
	for i := 0; i < 100; i++ {
		c, err := dialFrom(srcIP(0), w.srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		serial := fmt.Sprintf("NO-SUCH-%d", i)
		res, err := c.announce(fmt.Sprintf("rtsp://%s/live/%s", w.srv.Addr(), serial), serial, "x", false, sampleSDP(t))
		c.close()
		if err != nil || res.StatusCode != base.StatusUnauthorized {
			t.Fatalf("unknown serial: %v %v", res, err)
		}
	}
	elapsed := time.Since(start)
	if n, max := cs.calls()-before, int64(elapsed/time.Second)+2; n > max {
		t.Fatalf("%d database queries for 100 unknown serials in %v (at most %d reloads)", n, elapsed, max)
	}
	// a camera registered now publishes (found by a reload)
	d, err := w.db.CreateDevice(context.Background(), index.Device{Serial: "BWC-NEW-1", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	mediatest.Eventually(t, "new device publishes", func() bool {
		c, err := dialFrom(srcIP(1), w.srv.Addr())
		if err != nil {
			return false
		}
		defer c.close()
		err = c.publish(t, fmt.Sprintf("rtsp://%s/live/%s", w.srv.Addr(), d.Serial), d.Serial, secret)
		if err != nil {
			t.Logf("publish: %v (db calls %d)", err, cs.calls())
		}
		return err == nil
	})
}

// countingStore counts device lookups (list and by serial).
type countingStore struct {
	store
	mu sync.Mutex
	n  int64
}

func (c *countingStore) calls() int64 { c.mu.Lock(); defer c.mu.Unlock(); return c.n }
func (c *countingStore) Devices(ctx context.Context) ([]index.Device, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.store.Devices(ctx)
}
func (c *countingStore) DeviceBySerial(ctx context.Context, s string) (index.Device, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.store.DeviceBySerial(ctx, s)
}

// TestTakeoverAudited: a client with the device's secret publishing while
// the device's session is open replaces it, and the audit trail names the
// device, the recording and both addresses.
func TestTakeoverAudited(t *testing.T) {
	w := newWorld(t, worldOpts{cfg: Config{Grace: time.Second}})
	lc := startLiveCamera(t, w, 15)
	lc.flowing(t, "before the takeover")
	l := w.srv.Live()
	if len(l) != 1 {
		t.Fatalf("live = %+v", l)
	}
	rec, oldRemote := l[0].RecordingID, l[0].RemoteAddr
	thief, err := dialFrom(srcIP(7), w.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer thief.close()
	if err := thief.publish(t, w.url(w.device.Serial, secret), w.device.Serial, secret); err != nil {
		t.Fatal(err)
	}
	newRemote := thief.c.LocalAddr().String()
	var ev index.AuditEvent
	mediatest.Eventually(t, "takeover audited", func() bool {
		evs, err := w.db.AuditEvents(context.Background(), index.AuditFilter{RecordingID: &rec})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Action == "live.takeover" {
				ev = e
				return true
			}
		}
		return false
	})
	if ev.RemoteAddr != newRemote || ev.Details["previous_remote_addr"] != oldRemote || ev.Details["remote_addr"] != newRemote ||
		ev.Details["device"] != w.device.Serial || ev.ObjectID != rec.String() || ev.Actor != "device:"+w.device.Serial {
		t.Fatalf("audit event = %+v (old %s, new %s)", ev, oldRemote, newRemote)
	}
	if n := testutil.ToFloat64(w.srv.met.takeovers); n != 1 {
		t.Fatalf("takeovers = %v", n)
	}
	if _, bad, err := w.db.VerifyAudit(context.Background()); err != nil || len(bad) != 0 {
		t.Fatalf("audit chain: %v %v", bad, err)
	}
}

// TestListenerRestarts: the listening socket closed from under the server:
// Check fails naming the RTSP listener while it cannot listen again, a
// camera's session in progress is not touched, and once the address is
// free the listener is back, Check is healthy and cameras connect.
func TestListenerRestarts(t *testing.T) {
	w := newWorld(t, worldOpts{cfg: Config{Grace: time.Second}})
	lc := startLiveCamera(t, w, 15)
	lc.flowing(t, "before")
	w.srv.mu.Lock()
	gl := w.srv.lns[listenerRTSP]
	w.srv.mu.Unlock()
	var mu sync.Mutex
	blocked := true
	gl.mu.Lock()
	gl.listen = func(network, address string) (net.Listener, error) {
		mu.Lock()
		defer mu.Unlock()
		if blocked {
			return nil, &net.OpError{Op: "listen", Net: network, Err: syscall.EADDRINUSE}
		}
		return net.Listen(network, address)
	}
	gl.mu.Unlock()
	gl.current().Close() // from under the server
	var checkErr error
	mediatest.Eventually(t, "Check fails", func() bool { checkErr = w.srv.Check(context.Background()); return checkErr != nil })
	if !strings.Contains(checkErr.Error(), "RTSP listener") {
		t.Fatalf("Check = %v, want it to name the RTSP listener", checkErr)
	}
	if _, err := net.DialTimeout("tcp", w.srv.Addr(), time.Second); err == nil {
		t.Fatal("connected while the listener is down")
	}
	lc.flowing(t, "while the listener is down")
	mu.Lock()
	blocked = false
	mu.Unlock()
	mediatest.Eventually(t, "Check healthy again", func() bool { return w.srv.Check(context.Background()) == nil })
	if n := testutil.ToFloat64(w.srv.met.listenerRestarts.WithLabelValues(listenerRTSP)); n != 1 {
		t.Fatalf("restarts = %v", n)
	}
	c, err := dialFrom(srcIP(0), w.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	other, err := w.db.CreateDevice(context.Background(), index.Device{Serial: "BWC-AFTER-1", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	mediatest.Eventually(t, "publish after the restart", func() bool {
		c, err := dialFrom(srcIP(1), w.srv.Addr())
		if err != nil {
			return false
		}
		defer c.close()
		return c.publish(t, fmt.Sprintf("rtsp://%s/live/%s", w.srv.Addr(), other.Serial), other.Serial, secret) == nil
	})
	lc.flowing(t, "after the restart")
}

// flakyListener fails Accept with the given errors, then accepts.
type flakyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (f *flakyListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		f.mu.Unlock()
		return nil, err
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

// TestTemporaryAcceptErrors: out of file descriptors (EMFILE, ENFILE) and
// similar errors are waited out: the listener keeps accepting, is never
// reported down, and logs once per window, not once per error.
func TestTemporaryAcceptErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		temporary bool
	}{
		{"EMFILE", &net.OpError{Op: "accept", Net: "tcp", Err: &osSyscallError{"accept4", syscall.EMFILE}}, true},
		{"ENFILE", &net.OpError{Op: "accept", Net: "tcp", Err: &osSyscallError{"accept4", syscall.ENFILE}}, true},
		{"ECONNABORTED", &net.OpError{Op: "accept", Net: "tcp", Err: &osSyscallError{"accept4", syscall.ECONNABORTED}}, true},
		{"closed", net.ErrClosed, false},
		{"EBADF", &net.OpError{Op: "accept", Net: "tcp", Err: &osSyscallError{"accept4", syscall.EBADF}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := temporaryAcceptError(tc.err); got != tc.temporary {
				t.Fatalf("temporary(%v) = %v", tc.err, got)
			}
		})
	}
	var logs strings.Builder
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil))
	met := newMetrics(prometheus.NewRegistry())
	rl := newRareLog(log, time.Hour)
	lim := newConnLimiter(10, 10, time.Minute, nil, met, rl)
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: &osSyscallError{"accept4", syscall.EMFILE}}
	var errs []error
	for i := 0; i < 8; i++ {
		errs = append(errs, emfile)
	}
	gl, err := newGuardedListener("RTSP listener", "tcp", "127.0.0.1:0", func(n, a string) (net.Listener, error) {
		ln, err := net.Listen(n, a)
		return &flakyListener{Listener: ln, errs: errs}, err
	}, lim, log, rl, met)
	if err != nil {
		t.Fatal(err)
	}
	defer gl.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := gl.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", gl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, ok := <-accepted
	if !ok {
		t.Fatal("Accept returned an error on EMFILE")
	}
	sc.Close()
	if err := gl.check(); err != nil {
		t.Fatalf("check after EMFILE: %v", err)
	}
	if n := testutil.ToFloat64(met.listenerErrors.WithLabelValues("RTSP listener", "temporary")); n != 8 {
		t.Fatalf("temporary errors = %v", n)
	}
	logMu.Lock()
	lines := strings.Count(logs.String(), "accept failed")
	logMu.Unlock()
	if lines != 1 {
		t.Fatalf("%d log lines for 8 EMFILE errors, want 1:\n%s", lines, logs.String())
	}
	// after Close, Accept ends with net.ErrClosed (gortsplib's shutdown)
	gl.Close()
	if _, err := gl.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

type osSyscallError struct {
	call string
	err  error
}

func (e *osSyscallError) Error() string { return e.call + ": " + e.err.Error() }
func (e *osSyscallError) Unwrap() error { return e.err }

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// TestThrottleMemoryBounded: an attacker cycling addresses cannot grow the
// failure counters beyond their bound, and throttled addresses are the
// last to be forgotten.
func TestThrottleMemoryBounded(t *testing.T) {
	wc := newWindowCounter(time.Hour, 1000, 3)
	now := time.Now()
	for i := 0; i < 3; i++ {
		wc.add("attacker", now)
	}
	for i := 0; i < 100000; i++ {
		wc.add(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), now)
		if wc.len() > 1000 {
			t.Fatalf("%d entries, bound 1000", wc.len())
		}
	}
	if n := wc.get("attacker", now); n != 3 {
		t.Fatalf("the throttled address was forgotten: %d", n)
	}
	if n := wc.get("attacker", now.Add(time.Hour)); n != 0 {
		t.Fatalf("count after the window = %d", n)
	}
}
