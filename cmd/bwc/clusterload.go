package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pion/webrtc/v4"

	"github.com/bwcplatform/bwc/ingest/media/mediafile"
	"github.com/bwcplatform/bwc/storage/index"
)

// clusterload measures the platform as a cluster: for each node count it
// starts that many `bwc serve` processes on this machine behind HAProxy,
// N cameras (in-process RTSP publishers) connecting through the balancer,
// then M WebRTC viewers per camera (pion, through WHEP on the node that
// holds the camera), and prints each node's cores and RSS read from /proc,
// idle, with the cameras alone, then with the viewers, and the figures per
// node, per camera and per viewer; the archive's MB/s and PostgreSQL's rows/s over
// the same window. The same total load for every node count shows what a
// node costs and what adding one saves.
func clusterload(ctx context.Context, args []string, out io.Writer) error {
	o := clusterLoadOptions{cfg: defaultConfig()}
	fs := flag.NewFlagSet("bwc clusterload", flag.ContinueOnError)
	o.cfg.register(fs)
	nodes := fs.String("nodes", "1,2,3", "node counts to measure, in turn")
	fs.IntVar(&o.cameras, "cameras", 6, "cameras (spread over the nodes by the balancer)")
	fs.IntVar(&o.viewers, "viewers", 2, "WebRTC viewers per camera")
	fs.DurationVar(&o.duration, "duration", 15*time.Second, "how long to measure each phase (cameras alone, then with viewers)")
	fs.StringVar(&o.file, "file", "testdata/sample.ts", "MPEG-TS capture (H.264 + AAC) the cameras send in a loop")
	fs.StringVar(&o.dir, "dir", "", "folder for the nodes' spools and logs and HAProxy's configuration (default: a new temporary folder)")
	bin := fs.String("bin", "", "the bwc binary the nodes run (default: this one)")
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return err
	}
	for _, s := range strings.Split(*nodes, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || k < 1 {
			return fmt.Errorf("bwc clusterload -nodes: %q is not a node count", s)
		}
		o.counts = append(o.counts, k)
	}
	if o.cameras < 1 || o.viewers < 0 {
		return errors.New("bwc clusterload: -cameras at least 1, -viewers not negative")
	}
	o.cfg.MFARequiredRoles = "" // the load's supervisor logs in with a password
	// behind the balancer every camera comes from its address (README,
	// "Cameras find a live node"): the per-address handshake cap must let
	// them all connect at once
	o.cfg.RTSPMaxConnsPerAddr = max(o.cfg.RTSPMaxConnsPerAddr, o.cameras)
	if err := o.cfg.Validate(); err != nil {
		return err
	}
	if o.bin = *bin; o.bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.bin = exe
	}
	if o.dir == "" {
		d, err := os.MkdirTemp("", "bwc-clusterload-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	sample, err := mediafile.Decode(o.file)
	if err != nil {
		return fmt.Errorf("bwc clusterload -file: %w", err)
	}
	o.sample = sample
	for _, k := range o.counts {
		if err := o.round(ctx, k, out); err != nil {
			return fmt.Errorf("%d node(s): %w", k, err)
		}
	}
	return nil
}

type clusterLoadOptions struct {
	cfg              Config
	counts           []int
	cameras, viewers int
	duration         time.Duration
	file, dir, bin   string
	sample           *mediafile.Sample
}

// loadPhase is what one measuring window saw.
type loadPhase struct {
	elapsed time.Duration
	nodes   map[string]procUsage // CPU spent in the window, RSS at its end
	segs    int64                // segments archived in the window
	bytes   int64                // their bytes
	rows    int64                // rows inserted and updated in the database
}

func (o *clusterLoadOptions) round(ctx context.Context, k int, out io.Writer) error {
	dir := filepath.Join(o.dir, fmt.Sprintf("%dnodes", k))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var nodes []*clusterNode
	defer func() {
		for _, n := range nodes {
			_ = n.Stop(30 * time.Second)
		}
	}()
	for i := range k {
		n, err := newClusterNode(o.cfg, fmt.Sprintf("load-%d", i+1), dir, o.bin, nil, os.Environ())
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
		if err := n.Start(60 * time.Second); err != nil { // the first migrates (with -migrate-database-url)
			return err
		}
	}
	lb, err := startBalancer(dir, nodes, 500*time.Millisecond)
	if err != nil {
		return err
	}
	defer lb.Close()
	db, err := index.Open(ctx, o.cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	// what a node costs without cameras, once its start-up work (first
	// checkpoint, background verification's first pass) is done
	if err := waitContext(ctx, 5*time.Second); err != nil {
		return err
	}
	idle, err := o.measure(ctx, db, nodes, min(o.duration, 5*time.Second))
	if err != nil {
		return err
	}
	serials := make([]string, o.cameras)
	for i := range serials {
		serials[i] = fmt.Sprintf("CLUSTERLOAD-%04d", i+1)
	}
	const secret = "clusterload-camera-secret"
	if err := ensureDevices(ctx, o.cfg, serials, secret); err != nil {
		return err
	}
	var camWG sync.WaitGroup
	camWG.Add(1)
	go func() {
		defer camWG.Done()
		runCameras(ctx, camOptions{server: lb.Front, secret: secret}, serials, o.sample)
	}()
	defer camWG.Wait() // after cancel
	defer cancel()
	live, err := waitLive(ctx, db, serials, nodes)
	if err != nil {
		return err
	}
	if err := waitContext(ctx, 3*time.Second); err != nil { // past the first segments
		return err
	}
	alone, err := o.measure(ctx, db, nodes, o.duration)
	if err != nil {
		return err
	}
	var got, lost atomic.Uint64
	pcs, viewersAt, err := o.startViewers(ctx, db, nodes, live, &got, &lost)
	defer func() {
		for _, pc := range pcs {
			pc.Close()
		}
	}()
	if err != nil {
		return err
	}
	if err := waitContext(ctx, 3*time.Second); err != nil { // connected, past the keyframe burst
		return err
	}
	watched, err := o.measure(ctx, db, nodes, o.duration)
	if err != nil {
		return err
	}
	held := map[string]int{}
	for _, r := range live {
		held[r.NodeID]++
	}
	o.report(out, k, nodes, held, viewersAt, idle, alone, watched, got.Load(), lost.Load())
	return nil
}

// waitLive waits until every camera records (on a node of this round) and
// returns their recordings.
func waitLive(ctx context.Context, db *index.DB, serials []string, nodes []*clusterNode) ([]index.Recording, error) {
	ours := map[string]bool{}
	for _, n := range nodes {
		ours[n.Name] = true
	}
	want := map[string]bool{}
	for _, s := range serials {
		want[s] = true
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		recs, err := db.Recordings(ctx, index.RecordingFilter{Status: "active"})
		if err != nil {
			return nil, err
		}
		var live []index.Recording
		for _, r := range recs {
			if want[r.DeviceSerial] && ours[r.NodeID] {
				live = append(live, r)
			}
		}
		if len(live) == len(serials) {
			return live, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d cameras recording after 60 s", len(live), len(serials))
		}
		if err := waitContext(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// startViewers opens M viewers per live recording on the node holding it
// (WHEP), as one supervisor.
func (o *clusterLoadOptions) startViewers(ctx context.Context, db *index.DB, nodes []*clusterNode, live []index.Recording,
	got, lost *atomic.Uint64) ([]*webrtc.PeerConnection, map[string]int, error) {
	at := map[string]int{}
	if o.viewers == 0 {
		return nil, at, nil
	}
	pw := "load-" + randomHex(12)
	login := "clusterload-" + randomHex(4)
	if _, err := db.CreateUser(ctx, index.User{Login: login, Role: "supervisor"}, pw); err != nil {
		return nil, at, err
	}
	byName := map[string]*clusterNode{}
	sessions := map[string]*webSession{}
	for _, n := range nodes {
		byName[n.Name] = n
		s, err := webLogin("http://"+n.HTTP, login, pw)
		if err != nil {
			return nil, at, err
		}
		sessions[n.Name] = s
	}
	var pcs []*webrtc.PeerConnection
	for _, r := range live {
		for range o.viewers {
			pc, err := whepViewer(ctx, sessions[r.NodeID], r.ID, got, lost)
			if err != nil {
				return pcs, at, fmt.Errorf("viewer of %s on %s: %w", r.ID, r.NodeID, err)
			}
			pcs = append(pcs, pc)
			at[r.NodeID]++
		}
	}
	return pcs, at, nil
}

// measure samples every node's /proc and the database before and after
// the window.
func (o *clusterLoadOptions) measure(ctx context.Context, db *index.DB, nodes []*clusterNode, d time.Duration) (loadPhase, error) {
	p := loadPhase{nodes: map[string]procUsage{}}
	before := map[string]procUsage{}
	for _, n := range nodes {
		u, err := readProc(n.PID())
		if err != nil {
			return p, fmt.Errorf("node %s: %w", n.Name, err)
		}
		before[n.Name] = u
	}
	s0, b0, r0, err := dbTotals(ctx, db)
	if err != nil {
		return p, err
	}
	// CPU over the window; RSS its peak, sampled every half second (a Go
	// process's RSS moves with its garbage collections)
	t0 := time.Now()
	peak := map[string]int64{}
	for end := t0.Add(d); ; {
		left := time.Until(end)
		if left <= 0 {
			break
		}
		if err := waitContext(ctx, min(left, 500*time.Millisecond)); err != nil {
			return p, err
		}
		for _, n := range nodes {
			u, err := readProc(n.PID())
			if err != nil {
				return p, fmt.Errorf("node %s: %w", n.Name, err)
			}
			peak[n.Name] = max(peak[n.Name], u.RSS)
			p.nodes[n.Name] = procUsage{CPU: u.CPU - before[n.Name].CPU, RSS: peak[n.Name]}
		}
	}
	p.elapsed = time.Since(t0)
	s1, b1, r1, err := dbTotals(ctx, db)
	if err != nil {
		return p, err
	}
	p.segs, p.bytes, p.rows = s1-s0, b1-b0, r1-r0
	return p, nil
}

// dbTotals: the archive's segments and bytes so far, and the rows the
// database has inserted and updated (its statistics, flushed about every
// second).
func dbTotals(ctx context.Context, db *index.DB) (segs, bytes, rows int64, err error) {
	err = db.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM segments), (SELECT coalesce(sum(size), 0) FROM segments)::bigint,
		(SELECT tup_inserted + tup_updated FROM pg_stat_database WHERE datname = current_database())`).Scan(&segs, &bytes, &rows)
	return
}

func (o *clusterLoadOptions) report(out io.Writer, k int, nodes []*clusterNode, held, viewersAt map[string]int,
	idle, alone, watched loadPhase, got, lost uint64) {
	viewers := o.cameras * o.viewers
	cores := func(p loadPhase, n string) float64 { return p.nodes[n].CPU.Seconds() / p.elapsed.Seconds() }
	mb := func(p loadPhase, n string) float64 { return float64(p.nodes[n].RSS) / 1e6 }
	fmt.Fprintf(out, "== %d node(s): %d cameras, %d viewers (%d per camera), %.0f s per phase\n", k, o.cameras, viewers, o.viewers, o.duration.Seconds())
	fmt.Fprintf(out, "%-25s| %-14s| %-14s| %s\n", "", "idle", "cameras", "cameras+viewers   (RSS: peak in the window)")
	fmt.Fprintf(out, "%-8s %7s %7s | %6s %6s | %6s %6s | %6s %6s\n", "node", "cameras", "viewers", "cores", "RSS MB", "cores", "RSS MB", "cores", "RSS MB")
	var sum [6]float64
	for _, n := range nodes {
		v := [6]float64{cores(idle, n.Name), mb(idle, n.Name), cores(alone, n.Name), mb(alone, n.Name), cores(watched, n.Name), mb(watched, n.Name)}
		for i := range v {
			sum[i] += v[i]
		}
		fmt.Fprintf(out, "%-8s %7d %7d | %6.3f %6.0f | %6.3f %6.0f | %6.3f %6.0f\n", n.Name, held[n.Name], viewersAt[n.Name], v[0], v[1], v[2], v[3], v[4], v[5])
	}
	fmt.Fprintf(out, "%-8s %7d %7d | %6.3f %6.0f | %6.3f %6.0f | %6.3f %6.0f\n", "all", o.cameras, viewers, sum[0], sum[1], sum[2], sum[3], sum[4], sum[5])
	// cores add up; a Go process's RSS does not (start-up garbage is
	// returned to the system minutes later), so memory is given whole: an
	// upper bound per camera
	fmt.Fprintf(out, "cores: %.4f per idle node, %.4f per camera, %.4f per viewer; RSS: %.0f MB per node, %.1f MB per camera with its viewers (all nodes' peak RSS / cameras)\n",
		sum[0]/float64(k), (sum[2]-sum[0])/float64(o.cameras), perViewer(sum[4]-sum[2], viewers),
		sum[5]/float64(k), sum[5]/float64(o.cameras))
	fmt.Fprintf(out, "archive: %.3f MB/s (%.2f segments/s); PostgreSQL: %.1f rows/s written (cameras alone), %.1f (with viewers)\n",
		float64(alone.bytes)/1e6/alone.elapsed.Seconds(), float64(alone.segs)/alone.elapsed.Seconds(),
		float64(alone.rows)/alone.elapsed.Seconds(), float64(watched.rows)/watched.elapsed.Seconds())
	fmt.Fprintf(out, "viewers received %d RTP packets, %d lost\n", got, lost)
}

func perViewer(v float64, viewers int) float64 {
	if viewers == 0 {
		return 0
	}
	return v / float64(viewers)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// webSession is a logged-in user of one node's web API.
type webSession struct {
	base   string
	cookie *http.Cookie
	csrf   string
}

// webLogin logs in with a password (no second factor).
func webLogin(base, login, password string) (*webSession, error) {
	body, _ := json.Marshal(map[string]string{"login": login, "password": password})
	res, err := http.Post(base+"/api/login", "application/json", strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var b struct {
		CSRF string `json:"csrf_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&b); err != nil || res.StatusCode != http.StatusOK || len(res.Cookies()) == 0 {
		return nil, fmt.Errorf("login %s at %s: %d %v", login, base, res.StatusCode, err)
	}
	return &webSession{base: base, cookie: res.Cookies()[0], csrf: b.CSRF}, nil
}

// whepViewer is a pion viewer of the recording through the node's WHEP
// endpoint (non-trickle: the offer carries every candidate), counting its
// video packets and the sequence numbers missed.
func whepViewer(ctx context.Context, s *webSession, rec uuid.UUID, got, lost *atomic.Uint64) (*webrtc.PeerConnection, error) {
	return countingViewer(got, lost, whepAnswer(ctx, s, rec))
}

// whepAnswer posts a viewer's offer to the node's WHEP endpoint of the
// recording and returns the answer.
func whepAnswer(ctx context.Context, s *webSession, rec uuid.UUID) func(offer string) (string, error) {
	return func(offer string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/api/live/"+rec.String()+"/whep", strings.NewReader(offer))
		if err != nil {
			return "", err
		}
		req.AddCookie(s.cookie)
		req.Header.Set("X-CSRF-Token", s.csrf)
		req.Header.Set("Content-Type", "application/sdp")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		answer, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			return "", fmt.Errorf("WHEP %s: %d %s", s.base, res.StatusCode, answer)
		}
		return string(answer), nil
	}
}
