package web_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
	"github.com/bwcplatform/bwc/web"
)

// syncBuffer collects the server's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type edgeServer struct {
	s      *web.Server
	url    string
	db     *index.DB
	log    *syncBuffer
	client *http.Client
}

// startEdge runs a real server (its own listener, Run) on a fresh
// database; mod, when not nil, changes its options.
func startEdge(t *testing.T, cfg web.Config, mod func(*web.Options)) *edgeServer {
	return startEdgeTB(t, cfg, mod)
}

func startEdgeB(b *testing.B, cfg web.Config) *edgeServer { return startEdgeTB(b, cfg, nil) }

func startEdgeTB(t testing.TB, cfg web.Config, mod func(*web.Options)) *edgeServer {
	t.Helper()
	db := storagetest.NewDB(t)
	logs := &syncBuffer{}
	o := testOptions(db)
	o.Config = cfg
	o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if mod != nil {
		mod(&o)
	}
	s := newServer(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitReady(t, s, done)
	tr := &http.Transport{MaxIdleConnsPerHost: 1000, ForceAttemptHTTP2: true}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		tr.CloseIdleConnections()
	})
	return &edgeServer{s: s, url: s.URL(), db: db, log: logs, client: &http.Client{Transport: tr, Timeout: time.Minute}}
}

type answer struct {
	code   int
	body   string
	header http.Header
	res    *http.Response
}

func (e *edgeServer) post(t testing.TB, path, body string, hdr map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest("POST", e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, string(b), res.Header, res}
}

func loginBody(login, password string) string {
	b, _ := json.Marshal(map[string]string{"login": login, "password": password})
	return string(b)
}

func TestClientAddressBehindTrustedProxies(t *testing.T) {
	proxies, err := web.ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		proxies    []netip.Prefix
		want       string
	}{
		{"no proxies configured: the header is ignored", "203.0.113.5:4000", []string{"198.51.100.1"}, nil, "203.0.113.5"},
		{"untrusted peer: the header is ignored", "203.0.113.5:4000", []string{"198.51.100.1"}, proxies, "203.0.113.5"},
		{"trusted peer, no header", "10.1.2.3:4000", nil, proxies, "10.1.2.3"},
		{"trusted peer names the client", "10.1.2.3:4000", []string{"198.51.100.1"}, proxies, "198.51.100.1"},
		{"client's own forged entries are skipped", "10.1.2.3:4000", []string{"1.1.1.1, 2.2.2.2, 198.51.100.1"}, proxies, "198.51.100.1"},
		{"chain of trusted proxies", "10.1.2.3:4000", []string{"198.51.100.1, 192.0.2.7, 10.9.9.9"}, proxies, "198.51.100.1"},
		{"several header lines", "10.1.2.3:4000", []string{"6.6.6.6", "198.51.100.1, 10.0.0.1"}, proxies, "198.51.100.1"},
		{"entries with ports", "10.1.2.3:4000", []string{"198.51.100.1:5555"}, proxies, "198.51.100.1"},
		{"IPv6 peer and client", "[2001:db8::1]:443", []string{"2001:db9::42"}, proxies, "2001:db9::42"},
		{"IPv4-mapped peer", "[::ffff:10.1.2.3]:80", []string{"198.51.100.1"}, proxies, "198.51.100.1"},
		{"garbage stops at the last good address", "10.1.2.3:4000", []string{"198.51.100.1, not-an-ip, 10.0.0.2"}, proxies, "10.0.0.2"},
		{"all trusted: the farthest", "10.1.2.3:4000", []string{"10.0.0.9, 10.0.0.2"}, proxies, "10.0.0.9"},
		{"empty entries", "10.1.2.3:4000", []string{""}, proxies, "10.1.2.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := web.ClientIP(tc.peer, tc.xff, tc.proxies); got.String() != tc.want {
				t.Fatalf("client of %s with X-Forwarded-For %q = %s, want %s", tc.peer, tc.xff, got, tc.want)
			}
		})
	}
	if _, err := web.ParseTrustedProxies([]string{"proxy.example"}); err == nil {
		t.Fatal("a host name was accepted as a trusted proxy")
	}
}

// TestLoginFlood: 500 logins at once (each from its own address behind a
// trusted proxy) against one account with wrong passwords. Every one is
// answered 401 (verified, wrong), 429 (locked) or 503 (no hashing slot in
// time); the server stays up; the account's failure counter equals the
// number of attempts actually verified.
func TestLoginFlood(t *testing.T) {
	cfg := testConfig()
	cfg.TrustedProxies, cfg.HashSlots, cfg.HashWait = mustProxies(t, "127.0.0.1/32"), 4, 3*time.Second
	cfg.LoginRate, cfg.LoginBurst, cfg.UnauthRate, cfg.UnauthBurst = 1, 5, 20, 200
	e := startEdge(t, cfg, nil)
	ctx := context.Background()
	if _, err := e.db.CreateUser(ctx, index.User{Login: "sv1", Role: index.RoleSupervisor}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	const n = 500
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		counts = map[int]int{}
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := e.post(t, "/api/login", loginBody("sv1", fmt.Sprintf("wrong password %d", i)),
				map[string]string{"X-Forwarded-For": fmt.Sprintf("198.51.%d.%d", i/250, i%250+1)})
			mu.Lock()
			counts[a.code]++
			mu.Unlock()
			if a.code == 429 || a.code == 503 {
				if a.header.Get("Retry-After") == "" && a.code == 503 {
					t.Errorf("503 without Retry-After")
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("answers to %d parallel logins: %v", n, counts)
	for code := range counts {
		if code != 401 && code != 429 && code != 503 {
			t.Errorf("%d answers %d", counts[code], code)
		}
	}
	failed, locked, err := e.db.FailedLogins(ctx, "sv1")
	if err != nil {
		t.Fatal(err)
	}
	if failed != counts[401] {
		t.Fatalf("failed_logins = %d, but %d attempts were verified and answered 401", failed, counts[401])
	}
	if failed >= 5 && locked == nil {
		t.Fatalf("%d failures and no lock", failed)
	}
	res, err := e.client.Get(e.url + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("after the flood: %v %v", res, err)
	}
	res.Body.Close()
}

func mustProxies(t testing.TB, s ...string) []netip.Prefix {
	p, err := web.ParseTrustedProxies(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOversizedLoginIsRefusedUnrecorded: a 1 MB login, or a login or
// password over its cap, is refused before anything is hashed, logged or
// audited.
func TestOversizedLoginIsRefusedUnrecorded(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	huge := strings.Repeat("A", 1<<20)
	long := strings.Repeat("B", 100)
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"1 MB login", loginBody(huge, "whatever password"), 413},
		{"100-byte login", loginBody(long, "whatever password"), 400},
		{"1000-byte password", loginBody("sv1", strings.Repeat("p", 1000)), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if a := e.post(t, "/api/login", tc.body, nil); a.code != tc.want {
				t.Fatalf("answer %d %s, want %d", a.code, a.body, tc.want)
			}
		})
	}
	// a normal failure is audited (so the trail is being written)
	if a := e.post(t, "/api/login", loginBody("nobody", "whatever password"), nil); a.code != 401 {
		t.Fatalf("unknown login: %d %s", a.code, a.body)
	}
	evs, err := e.db.AuditEvents(context.Background(), index.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var failedSeen bool
	for _, ev := range evs {
		ev.Hash, ev.PrevHash = nil, nil // base64 of zero bytes is AAAA…
		raw, _ := json.Marshal(ev)
		if bytes.Contains(raw, []byte("AAAAAAAA")) || bytes.Contains(raw, []byte("BBBBBBBB")) || bytes.Contains(raw, []byte("pppppppp")) {
			t.Fatalf("oversized input in the audit trail: %.200s", raw)
		}
		failedSeen = failedSeen || ev.Action == "auth.login.failed" && ev.ObjectID == "nobody"
	}
	if !failedSeen {
		t.Fatalf("the ordinary failed login is not in the trail: %d events", len(evs))
	}
	if logs := e.log.String(); strings.Contains(logs, "AAAAAAAA") || strings.Contains(logs, "BBBBBBBB") {
		t.Fatal("oversized login in the log")
	}
}

// TestUnknownAndKnownLoginsLookAlike: an unknown login, a known login with
// a wrong password and a disabled account get the same answer.
func TestUnknownAndKnownLoginsLookAlike(t *testing.T) {
	e := startEdge(t, testConfig(), nil)
	ctx := context.Background()
	if _, err := e.db.CreateUser(ctx, index.User{Login: "sv1", Role: index.RoleSupervisor}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	gone, err := e.db.CreateUser(ctx, index.User{Login: "gone", Role: index.RoleSupervisor}, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.SetUserDisabled(ctx, gone.ID, true); err != nil {
		t.Fatal(err)
	}
	var first answer
	for i, body := range []string{
		loginBody("nobody", "correct horse battery"),
		loginBody("sv1", "wrong horse battery"),
		loginBody("gone", "correct horse battery"),
	} {
		a := e.post(t, "/api/login", body, nil)
		if i == 0 {
			first = a
			if a.code != 401 {
				t.Fatalf("unknown login: %d %s", a.code, a.body)
			}
			continue
		}
		if a.code != first.code || a.body != first.body || a.header.Get("Content-Type") != first.header.Get("Content-Type") {
			t.Fatalf("%s: %d %q, but an unknown login gets %d %q", body, a.code, a.body, first.code, first.body)
		}
	}
	// repeated failures: an unknown login is locked like a known one, so
	// the 429 does not tell that the account exists
	if _, err := e.db.CreateUser(ctx, index.User{Login: "sv2", Role: index.RoleSupervisor}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	stamp := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	var seqs [2][]string
	for i, login := range []string{"sv2", "nobody2"} {
		for range 7 {
			a := e.post(t, "/api/login", loginBody(login, "wrong horse battery"), nil)
			seqs[i] = append(seqs[i], fmt.Sprintf("%d %s", a.code, stamp.ReplaceAllString(a.body, "<time>")))
		}
	}
	if fmt.Sprint(seqs[0]) != fmt.Sprint(seqs[1]) {
		t.Fatalf("seven wrong passwords:\nknown   %q\nunknown %q", seqs[0], seqs[1])
	}
	if !strings.HasPrefix(seqs[1][5], "429 ") || !strings.HasPrefix(seqs[1][4], "401 ") {
		t.Fatalf("no lock after five failures: %q", seqs[1])
	}
}

// TestRateLimits: per address, login attempts beyond the burst and
// requests without a session beyond theirs get 429 with Retry-After; other
// addresses and logged-in clients are not affected.
func TestRateLimits(t *testing.T) {
	cfg := testConfig()
	cfg.TrustedProxies = mustProxies(t, "127.0.0.1")
	cfg.LoginRate, cfg.LoginBurst, cfg.UnauthRate, cfg.UnauthBurst = 0.001, 3, 0.001, 8
	e := startEdge(t, cfg, nil)
	ctx := context.Background()
	if _, err := e.db.CreateUser(ctx, index.User{Login: "sv1", Role: index.RoleSupervisor}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	from := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	var codes []int
	for range 4 {
		codes = append(codes, e.post(t, "/api/login", loginBody("sv1", "wrong horse battery"), from("198.51.100.1")).code)
	}
	if fmt.Sprint(codes) != "[401 401 401 429]" {
		t.Fatalf("four logins from one address: %v, want three 401s then 429", codes)
	}
	a := e.post(t, "/api/login", loginBody("sv1", "wrong horse battery"), from("198.51.100.1"))
	if ra, err := strconv.Atoi(a.header.Get("Retry-After")); a.code != 429 || err != nil || ra < 1 {
		t.Fatalf("limited login: %d, Retry-After %q", a.code, a.header.Get("Retry-After"))
	}
	// another address logs in
	ok := e.post(t, "/api/login", loginBody("sv1", "correct horse battery"), from("198.51.100.2"))
	if ok.code != 200 {
		t.Fatalf("login from another address: %d %s", ok.code, ok.body)
	}
	var cookie *http.Cookie
	for _, c := range ok.res.Cookies() {
		if c.Name == "bwc_session" {
			cookie = c
		}
	}
	// requests without a session: the burst (minus the 5 logins above,
	// which had none either), then 429
	get := func(ip string, c *http.Cookie) int {
		req, _ := http.NewRequest("GET", e.url+"/api/session", nil)
		req.Header.Set("X-Forwarded-For", ip)
		if c != nil {
			req.AddCookie(c)
		}
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	codes = nil
	for range 4 {
		codes = append(codes, get("198.51.100.1", nil))
	}
	if fmt.Sprint(codes) != "[401 401 401 429]" {
		t.Fatalf("anonymous requests from one address: %v, want 401s then 429", codes)
	}
	// a forged session cookie counts against the same limit
	if c := get("198.51.100.1", &http.Cookie{Name: "bwc_session", Value: "forged"}); c != 429 {
		t.Fatalf("forged session from a limited address: %d, want 429", c)
	}
	// pages too
	req, _ := http.NewRequest("GET", e.url+"/wall", nil)
	req.Header.Set("X-Forwarded-For", "198.51.100.1")
	req.AddCookie(&http.Cookie{Name: "bwc_session", Value: "forged"})
	if res, err := e.client.Do(req); err != nil || res.StatusCode != 429 {
		t.Fatalf("page with a forged session from a limited address: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	// the logged-in client is not limited
	for range 20 {
		if c := get("198.51.100.2", cookie); c != 200 {
			t.Fatalf("logged-in request: %d", c)
		}
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bwc test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestHTTPS: with a certificate the API answers over TLS, with HSTS, and
// the session cookie is Secure; without one, neither.
func TestHTTPS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	for _, tc := range []struct {
		name   string
		tls    bool
		secure bool
	}{{"https", true, true}, {"plain http", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.tls {
				cfg.TLSCert, cfg.TLSKey = certFile, keyFile
			}
			e := startEdge(t, cfg, nil)
			e.client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
			if got := strings.HasPrefix(e.url, "https://"); got != tc.tls {
				t.Fatalf("URL %s", e.url)
			}
			if _, err := e.db.CreateUser(context.Background(), index.User{Login: "sv1", Role: index.RoleSupervisor}, "correct horse battery"); err != nil {
				t.Fatal(err)
			}
			a := e.post(t, "/api/login", loginBody("sv1", "correct horse battery"), nil)
			if a.code != 200 {
				t.Fatalf("login: %d %s", a.code, a.body)
			}
			if (a.res.TLS != nil) != tc.tls {
				t.Fatalf("TLS state %v", a.res.TLS)
			}
			hsts := a.header.Get("Strict-Transport-Security")
			if (hsts != "") != tc.tls || tc.tls && !strings.Contains(hsts, "max-age=") {
				t.Fatalf("Strict-Transport-Security %q", hsts)
			}
			var c *http.Cookie
			for _, x := range a.res.Cookies() {
				if x.Name == "bwc_session" {
					c = x
				}
			}
			if c == nil || c.Secure != tc.secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Fatalf("session cookie %+v: want Secure=%v, HttpOnly, SameSite=Strict", c, tc.secure)
			}
		})
	}
	opts := testOptions(storagetest.NewDB(t))
	opts.Config.TLSCert, opts.Config.TLSKey = certFile, certFile
	if _, err := web.New(opts); err == nil {
		t.Fatal("a certificate file given as the key was accepted")
	}
}

// TestListenerStopIsAnError: a listener that stops under the server ends
// Run with an error naming it (bwc serve then exits for its supervisor).
func TestListenerStopIsAnError(t *testing.T) {
	s := newServer(t, testOptions(storagetest.NewDB(t)))
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	waitReady(t, s, done)
	res, err := http.Get(s.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if err := s.BreakListener(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "http listener") {
			t.Fatalf("Run = %v, want an error naming the http listener", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run goes on without its listener")
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestTimeoutsSpareLongResponsesNotSlowBodies: with read and write
// timeouts of 300 ms, server-sent events still flow after a second, while
// a request whose body stalls is cut off.
func TestTimeoutsSpareLongResponsesNotSlowBodies(t *testing.T) {
	live := &fakeLive{ch: make(chan struct{}, 1)}
	cfg := testConfig()
	cfg.ReadTimeout, cfg.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	e := startEdge(t, cfg, func(o *web.Options) { o.Ingest = live })
	if _, err := e.db.CreateUser(context.Background(), index.User{Login: "sv1", Role: index.RoleSupervisor}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	a := e.post(t, "/api/login", loginBody("sv1", "correct horse battery"), nil)
	if a.code != 200 {
		t.Fatalf("login: %d", a.code)
	}
	req, _ := http.NewRequest("GET", e.url+"/api/live/events", nil)
	for _, c := range a.res.Cookies() {
		req.AddCookie(c)
	}
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	events := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: ") {
				events <- sc.Text()
			}
		}
		close(events)
	}()
	if ev := <-events; ev != "event: live" {
		t.Fatalf("first event %q", ev)
	}

	// a body that stalls: 10 of 50 bytes, then nothing. The server cuts
	// it off at the read timeout, counted from after the event above was
	// written: once it has, the event's write deadline has passed too.
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"login\":")
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server still waits for a stalled body after 20 s")
	}

	// the event stream outlived both timeouts: a change still arrives
	live.ch <- struct{}{}
	select {
	case ev, ok := <-events:
		if !ok || ev != "event: live" {
			t.Fatalf("after the timeouts passed: stream ended (%q, %v)", ev, ok)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no event after the change")
	}
}
