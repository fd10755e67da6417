package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A local cluster: `bwc serve` nodes as processes on this machine behind a
// real HAProxy balancing the cameras' RTSP connections over them, as in
// production (README, "Cameras find a live node"). The cluster test and
// `bwc clusterload` run it.

// clusterNode is one `bwc serve` process with its own name, addresses,
// spool and log; it can be stopped and started again on the same ones.
type clusterNode struct {
	Name       string
	HTTP, RTSP string // host:port
	cfg        Config
	logPath    string
	bin        string   // the executable
	pre        []string // its arguments before serve's flags
	env        []string
	known      map[string]bool // the serve flags bin has (nil: all of this one's)

	cmd  *exec.Cmd
	done chan struct{}
	err  error // the process's exit, once done is closed
}

// newClusterNode prepares node name from cfg (database, bucket, signing
// key and timings shared by the cluster) on free loopback addresses with
// its own spool, upload and export folders under dir. bin and pre run
// `bwc serve` (the binary and "serve", or a test binary as a child).
func newClusterNode(cfg Config, name, dir, bin string, pre, env []string) (*clusterNode, error) {
	n := &clusterNode{Name: name, bin: bin, pre: pre, env: env, logPath: filepath.Join(dir, name+".log")}
	var err error
	if n.HTTP, err = freeLoopback(); err != nil {
		return nil, err
	}
	if n.RTSP, err = freeLoopback(); err != nil {
		return nil, err
	}
	cfg.Node = name
	cfg.HTTPAddr, cfg.RTSPAddr = n.HTTP, n.RTSP
	cfg.RTSPProxyProtocolFrom = "127.0.0.1" // HAProxy, which sends the PROXY protocol (haproxyConfig)
	cfg.WebRTCUDPAddr, cfg.WebRTCTCPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SpoolDir = filepath.Join(dir, name, "spool")
	cfg.UploadDir = filepath.Join(dir, name, "uploads")
	cfg.ExportDir = filepath.Join(dir, name, "exports")
	for _, d := range []string{cfg.SpoolDir, cfg.UploadDir, cfg.ExportDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	n.cfg = cfg
	return n, nil
}

// freeLoopback is a loopback address nothing listens on now.
func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// serveArgs are serve's flags carrying every setting of cfg (flags, not
// BWC_* variables, so that an empty value stays empty).
func serveArgs(cfg Config) []string {
	fs := flag.NewFlagSet("bwc serve", flag.ContinueOnError)
	c := cfg
	c.register(fs)
	var args []string
	fs.VisitAll(func(f *flag.Flag) { args = append(args, "-"+f.Name+"="+f.Value.String()) })
	return args
}

// Start runs the node and waits (up to wait) until it answers /healthz; an
// error, with the end of its log, when it exits first.
func (n *clusterNode) Start(wait time.Duration) error {
	if err := n.Launch(); err != nil {
		return err
	}
	return n.WaitHealthy(wait)
}

// WaitHealthy waits (up to wait) until the launched node answers /healthz;
// an error, with the end of its log, when it exits first.
func (n *clusterNode) WaitHealthy(wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		select {
		case <-n.done:
			return fmt.Errorf("node %s exited at start: %v\n%s", n.Name, n.err, n.Output(4000))
		default:
		}
		if resp, err := http.Get("http://" + n.HTTP + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not answering /healthz after %v\n%s", n.Name, wait, n.Output(4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Launch starts the process without waiting for it (Exited tells when it
// is gone).
func (n *clusterNode) Launch() error {
	if err := os.MkdirAll(filepath.Dir(n.logPath), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(n.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "==== start %s\n", time.Now().Format(time.RFC3339Nano))
	var flags []string
	for _, a := range serveArgs(n.cfg) {
		if name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "="); n.known == nil || n.known[name] {
			flags = append(flags, a)
		}
	}
	n.cmd = exec.Command(n.bin, append(append(append([]string{}, n.pre...), "serve"), flags...)...)
	n.cmd.Env, n.cmd.Stdout, n.cmd.Stderr = n.env, out, out
	if err := n.cmd.Start(); err != nil {
		out.Close()
		return err
	}
	n.done, n.err = make(chan struct{}), nil
	go func(c *exec.Cmd, done chan struct{}) {
		n.err = c.Wait()
		out.Close()
		close(done)
	}(n.cmd, n.done)
	return nil
}

// Exited is closed when the process is gone; its error is then Err.
func (n *clusterNode) Exited() <-chan struct{} { return n.done }

// Err is the process's exit (after Exited).
func (n *clusterNode) Err() error { return n.err }

// Running tells whether the process runs.
func (n *clusterNode) Running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Stop ends the node with SIGTERM (a graceful stop: it ends its
// recordings) and waits up to wait, then kills it.
func (n *clusterNode) Stop(wait time.Duration) error {
	if !n.Running() {
		return nil
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		return n.err
	case <-time.After(wait):
		n.Kill()
		return fmt.Errorf("node %s did not stop within %v: killed", n.Name, wait)
	}
}

// Kill kills the node with SIGKILL (a crash) and waits until it is gone.
func (n *clusterNode) Kill() {
	if !n.Running() {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// PID is the running process's ID (0 when not running).
func (n *clusterNode) PID() int {
	if !n.Running() {
		return 0
	}
	return n.cmd.Process.Pid
}

// Output is the last max bytes of the node's log (every run of it).
func (n *clusterNode) Output(max int) string {
	b, _ := os.ReadFile(n.logPath)
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// haproxyConfig is the balancer's configuration: one TCP frontend for the
// cameras' RTSP on front, spread over the nodes by least connections (an
// RTSP session is one long TCP connection), each node checked by its
// /readyz (a node that is not ready, or whose heartbeat is stale, gets no
// new camera; the cameras it has keep their connections: a check that
// fails for a moment must not cut recordings, and a dead node's
// connections break by themselves), each connection opened with a PROXY
// protocol v2 header naming the camera (the nodes trust it from the
// balancer only: -rtsp-proxy-protocol-from). The production configuration is the
// same (README).
func haproxyConfig(front string, nodes []*clusterNode, check time.Duration) string {
	var b strings.Builder
	ms := check.Milliseconds()
	fmt.Fprintf(&b, `global
    maxconn 4000

defaults
    mode tcp
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout check %dms

frontend rtsp
    bind %s
    default_backend bwc_rtsp

backend bwc_rtsp
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter %dms fall 2 rise 1
`, ms, front, ms)
	for _, n := range nodes {
		_, port, _ := net.SplitHostPort(n.HTTP)
		fmt.Fprintf(&b, "    server %s %s check port %s send-proxy-v2\n", n.Name, n.RTSP, port)
	}
	return b.String()
}

// balancer is HAProxy as a process, with a generated configuration.
type balancer struct {
	Front string // the cameras' one address
	cmd   *exec.Cmd
	done  chan struct{}
	log   string
}

// haproxyPath finds HAProxy (Debian puts it in /usr/sbin); "" when missing.
func haproxyPath() string {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	return ""
}

// startBalancer writes the configuration to dir and runs HAProxy in the
// foreground until Close; it returns once the frontend accepts connections.
func startBalancer(dir string, nodes []*clusterNode, check time.Duration) (*balancer, error) {
	bin := haproxyPath()
	if bin == "" {
		return nil, errors.New("haproxy not installed (apt-get install -y haproxy)")
	}
	front, err := freeLoopback()
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(haproxyConfig(front, nodes, check)), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, "-c", "-q", "-f", cfgPath).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("haproxy -c %s: %v\n%s", cfgPath, err, out)
	}
	b := &balancer{Front: front, log: filepath.Join(dir, "haproxy.log"), done: make(chan struct{})}
	out, err := os.Create(b.log)
	if err != nil {
		return nil, err
	}
	b.cmd = exec.Command(bin, "-db", "-f", cfgPath) // -db: foreground, no daemon
	b.cmd.Stdout, b.cmd.Stderr = out, out
	if err := b.cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	go func() { _ = b.cmd.Wait(); out.Close(); close(b.done) }()
	for i := 0; ; i++ {
		if c, err := net.DialTimeout("tcp", front, time.Second); err == nil {
			c.Close()
			return b, nil
		}
		select {
		case <-b.done:
			log, _ := os.ReadFile(b.log)
			return nil, fmt.Errorf("haproxy exited at start:\n%s", log)
		case <-time.After(100 * time.Millisecond):
		}
		if i > 100 {
			b.Close()
			return nil, errors.New("haproxy not accepting connections after 10 s")
		}
	}
}

// Close stops HAProxy and waits until it is gone.
func (b *balancer) Close() {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
}

// procUsage is a process's CPU time so far and its resident memory, read
// from /proc.
type procUsage struct {
	CPU time.Duration
	RSS int64 // bytes
}

// readProc reads /proc/PID/stat (utime + stime, in clock ticks of 1/100 s
// on Linux) and /proc/PID/status (VmRSS).
func readProc(pid int) (procUsage, error) {
	var u procUsage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// the command name, in parentheses, may hold spaces: fields follow the last ')'
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return u, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return u, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// after the name: state(0) ... utime(11) stime(12)
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return u, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	u.CPU = time.Duration(ut+st) * 10 * time.Millisecond
	st2, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, l := range strings.Split(string(st2), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return u, fmt.Errorf("/proc/%d/status VmRSS: %w", pid, err)
			}
			u.RSS = kb * 1024
		}
	}
	return u, nil
}

// waitContext sleeps d or until ctx ends.
func waitContext(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
