package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
)

// childEnv: a test binary started with it set runs `bwc serve` (configured
// by BWC_* variables, or by the flags after "serve"; or viewerload's viewer
// process, `loadviewers`) instead of the tests:
// the process the crash and cluster tests kill for real.
const childEnv = "BWC_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "serve" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		args := []string{"serve"} // configured by BWC_* variables (newServer)
		if len(os.Args) > 1 && (os.Args[1] == "serve" || os.Args[1] == "loadviewers") {
			args = os.Args[1:] // configured by flags (clusterNode), or viewerload's viewer process
		}
		err := run(ctx, args)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bwc:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// server is `bwc serve` as a child process, on fixed addresses and a spool
// that survive its restarts.
type server struct {
	t    *testing.T
	env  []string
	http string // host:port
	rtsp string
	log  string // the children's output, appended
	cmd  *exec.Cmd
	done chan struct{}
}

// freeAddr returns a loopback address nothing listens on now (the child
// binds it; restarts reuse it).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newServer prepares a child server with cfg (addresses of the services as
// given: point them at proxies to cut them off).
func newServer(t *testing.T, cfg Config) *server {
	t.Helper()
	s := &server{t: t, http: freeAddr(t), rtsp: freeAddr(t), log: filepath.Join(t.TempDir(), "serve.log")}
	s.env = append(os.Environ(), childEnv+"=serve",
		"BWC_HTTP_ADDR="+s.http, "BWC_RTSP_ADDR="+s.rtsp,
		"BWC_WEBRTC_UDP_ADDR=127.0.0.1:0", "BWC_WEBRTC_TCP_ADDR=127.0.0.1:0",
		"BWC_DATABASE_URL="+cfg.DatabaseURL, "BWC_MIGRATE_DATABASE_URL="+cfg.MigrateURL,
		"BWC_S3_ENDPOINT="+cfg.S3Endpoint, "BWC_S3_ACCESS_KEY="+cfg.S3AccessKey, "BWC_S3_SECRET_KEY="+cfg.S3SecretKey,
		"BWC_S3_BUCKET="+cfg.S3Bucket, "BWC_RETENTION_MODE="+cfg.RetentionMode, "BWC_SPOOL_DIR="+cfg.SpoolDir, "BWC_UPLOAD_DIR="+cfg.UploadDir,
		"BWC_SIGNING_KEY="+cfg.SigningKey, "BWC_SEGMENT_DURATION="+cfg.SegmentDuration.String(),
		"BWC_RECONNECT_GRACE="+cfg.ReconnectGrace.String(), "BWC_LOG_LEVEL=debug")
	t.Cleanup(s.kill9)
	return s
}

// start runs the server and waits until it answers /healthz.
func (s *server) start() {
	s.t.Helper()
	out, err := os.OpenFile(s.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	fmt.Fprintf(out, "==== start %s\n", time.Now().Format(time.RFC3339Nano))
	s.cmd = exec.Command(os.Args[0], "-test.run=^$")
	s.cmd.Env, s.cmd.Stdout, s.cmd.Stderr = s.env, out, out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); out.Close(); close(done) }(s.cmd, s.done)
	defer s.logOnFailure()
	mediatest.Eventually(s.t, "bwc serve answering /healthz", func() bool {
		select {
		case <-s.done:
			s.t.Fatal("bwc serve exited at start")
		default:
		}
		resp, err := http.Get("http://" + s.http + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// logOnFailure, deferred by a wait, logs the children's output when the
// test has failed (a wait that timed out).
func (s *server) logOnFailure() {
	if s.t.Failed() {
		s.t.Logf("bwc serve output:\n%s", s.output())
	}
}

// kill9 kills the server with SIGKILL and waits for it to be gone.
func (s *server) kill9() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// output is the children's log so far (the tail).
func (s *server) output() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 20000 {
		b = b[len(b)-20000:]
	}
	return string(b)
}

// ready reports /readyz's answer.
func (s *server) ready() (int, string) {
	resp, err := http.Get("http://" + s.http + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// proxy is a TCP proxy to a real service (PostgreSQL, MinIO) that the test
// can cut: while down, open connections are closed and new ones refused at
// once, as when the service is unreachable. The real service keeps
// running for everyone else.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.pipe(c)
	}
}

func (p *proxy) pipe(c net.Conn) {
	defer p.wg.Done()
	u, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[u] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(u, c); u.Close(); c.Close() }()
	go func() { defer wg.Done(); _, _ = io.Copy(c, u); u.Close(); c.Close() }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// setDown cuts the service off (true) or lets it through again.
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
	}
}

// viaProxy returns a URL or host:port with its address replaced by the
// proxy's.
func viaProxy(t *testing.T, dbURL string, p *proxy) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.addr()
	return u.String()
}

// camera is ffmpeg publishing the sample in real time, as a body camera
// does. It reports how much media it has written to the server
// (-progress).
type camera struct {
	cmd    *exec.Cmd
	errOut bytes.Buffer
	sent   atomic.Int64 // media time written to the connection, µs
	done   chan struct{}
	err    error // ffmpeg's exit, once done is closed
}

// startCamera publishes passes passes of the sample (0: in a loop until
// stop) to the RTSP server at rtspAddr as the device serial.
func startCamera(t *testing.T, rtspAddr, serial, secret string, passes int) *camera {
	t.Helper()
	c := &camera{done: make(chan struct{})}
	c.cmd = exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-progress", "pipe:1", "-stats_period", "0.2",
		"-re", "-stream_loop", strconv.Itoa(passes-1), "-i", mediatest.Path(),
		"-c:v", "copy", "-c:a", "aac", "-f", "rtsp", "-rtsp_transport", "tcp",
		"rtsp://"+serial+":"+secret+"@"+rtspAddr+"/live/"+serial)
	c.cmd.Stderr = &c.errOut
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "out_time_us="); ok {
				if us, err := strconv.ParseInt(v, 10, 64); err == nil {
					c.sent.Store(us)
				}
			}
		}
		if err := c.cmd.Wait(); err != nil {
			c.err = fmt.Errorf("ffmpeg: %v\n%s", err, c.errOut.Bytes())
		}
	}()
	t.Cleanup(c.stop)
	return c
}

// sentMedia is the media the camera has written so far.
func (c *camera) sentMedia() time.Duration { return time.Duration(c.sent.Load()) * time.Microsecond }

// wait waits until the camera has sent its passes; an error when ffmpeg
// failed.
func (c *camera) wait() error {
	<-c.done
	return c.err
}

// stop kills the camera (if it still runs) and waits until it is gone.
func (c *camera) stop() {
	select {
	case <-c.done:
	default:
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}
