package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediafile"
	"github.com/bwcplatform/bwc/storage/index"
)

// viewerload measures what a live viewer and an archived camera cost a
// real `bwc serve`, for one or more binaries in the same run (a baseline
// and a result): for each phase (cameras × viewers per camera) each binary
// in turn (alternating, -rounds times) runs as one fresh node; the
// cameras (in-process RTSP publishers of a 720p 2 Mbit/s capture) connect,
// and the server's cores and RSS are read from /proc idle, with the
// cameras alone, then with the WebRTC viewers, which run in child
// processes (`bwc loadviewers`) so that their CPU is not the server's. One
// table per phase: a column per binary (the median of its rounds) and the
// ratio of each to the first (README, "Viewer load").
func viewerload(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseViewerLoad(args)
	if err != nil {
		return err
	}
	if o.dir == "" {
		if o.dir, err = os.MkdirTemp("", "bwc-viewerload-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(out, "viewerload: run folder %s (nodes' logs, viewer logs, profiles)\n", o.dir)
	if err := ensureCapture(ctx, o.capture); err != nil {
		return err
	}
	if o.sample, err = mediafile.Decode(o.capture); err != nil {
		return fmt.Errorf("bwc viewerload -capture: %w", err)
	}
	v, a := sampleBitrates(o.sample)
	fmt.Fprintf(out, "capture %s: %dx%d H.264 %.2f Mbit/s + AAC %.0f kbit/s, %.1f s, sent over RTSP/TCP in a loop\n",
		o.capture, o.sample.Video.Width, o.sample.Video.Height, v/1e6, a/1e3, o.sample.Duration.Seconds())
	if o.selfExe, err = os.Executable(); err != nil {
		return err
	}
	for i := range o.bins {
		if o.bins[i].flags, err = serveFlagsOf(ctx, o.bins[i].path); err != nil {
			return fmt.Errorf("bwc viewerload -bins %s: %w", o.bins[i].name, err)
		}
	}
	if err := o.prepareDatabase(ctx); err != nil {
		return err
	}
	for pi, p := range o.phases {
		res := make([][]loadFigures, len(o.bins))
		for r := range o.rounds {
			for _, bi := range roundOrder(len(o.bins), r) {
				b := o.bins[bi]
				last := pi == len(o.phases)-1 && r == o.rounds-1
				f, err := o.runOnce(ctx, b, p, r+1, last, out)
				if err != nil {
					return fmt.Errorf("%s, %s, round %d: %w", p, b.name, r+1, err)
				}
				res[bi] = append(res[bi], f)
				fmt.Fprintf(out, "  %s %s round %d: %s\n", p, b.name, r+1, f.brief())
			}
		}
		names := make([]string, len(o.bins))
		med := make([]loadFigures, len(o.bins))
		for bi, b := range o.bins {
			names[bi], med[bi] = b.name, medianFigures(res[bi])
		}
		fmt.Fprintf(out, "== %s: %d cameras, %d viewers (%d per camera); median of %d round(s), %.0f s windows\n",
			p, p.cameras, p.cameras*p.viewers, p.viewers, o.rounds, o.duration.Seconds())
		writeLoadTable(out, names, med)
	}
	return nil
}

type viewerLoadOptions struct {
	cfg              Config
	bins             []loadBin
	phases           []loadShape
	rounds, procs    int
	duration, warmup time.Duration
	capture, dir     string
	pprof            bool

	sample          *mediafile.Sample
	selfExe         string
	serials         []string
	login, password string
}

// loadBin is one binary under test.
type loadBin struct {
	name, path string
	flags      map[string]bool // its serve flags (an older binary lacks newer ones)
}

// loadShape is one phase: cameras × viewers per camera; remote: the
// viewers watch through a second node, which pulls each camera from the
// node holding it (the inter-node leg).
type loadShape struct {
	cameras, viewers int
	remote           bool
}

func (s loadShape) String() string {
	if s.remote {
		return fmt.Sprintf("%dx%dr", s.cameras, s.viewers)
	}
	return fmt.Sprintf("%dx%d", s.cameras, s.viewers)
}

const viewerLoadSecret = "viewerload-camera-secret"

func parseViewerLoad(args []string) (*viewerLoadOptions, error) {
	o := &viewerLoadOptions{cfg: defaultConfig()}
	// no AAC-to-Opus converters (ffmpeg children, whose CPU is not the
	// server's) unless asked for with -ffmpeg
	o.cfg.FFmpeg = ""
	fs := flag.NewFlagSet("bwc viewerload", flag.ContinueOnError)
	o.cfg.register(fs)
	bins := fs.String("bins", "", "binaries under test, name=path,name=path (default: this one, as \"this\"); the ratio columns are each over the first")
	phases := fs.String("phases", "10x0,10x5,20x10", "loads to measure, in turn: cameras x viewers per camera; a trailing r (10x5r): the viewers on a second node, which pulls the cameras from the first")
	fs.IntVar(&o.rounds, "rounds", 2, "runs of every binary per phase, in alternating order (base,new, then new,base); the tables give the median")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measuring window (cameras alone, then with viewers)")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "settling time before each window")
	fs.IntVar(&o.procs, "viewer-procs", 0, "viewer processes (default: 2 to 4, one per 25 viewers)")
	fs.StringVar(&o.capture, "capture", "/var/tmp/bwc/viewerload/capture-720p25-2M.ts",
		"the cameras' capture (MPEG-TS, H.264 + AAC); made with ffmpeg when missing: 720p, 25 fps, 2 Mbit/s, a keyframe every 25 frames")
	fs.StringVar(&o.dir, "dir", "", "the run's folder: nodes' logs and spools, viewer logs, profiles (default: a new one under the temporary folder, kept)")
	fs.BoolVar(&o.pprof, "pprof", false, "profile each binary (20 s CPU, then heap) in the last phase (with its viewers, if it has any), into the run's folder")
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return nil, err
	}
	var err error
	if o.phases, err = parsePhases(*phases); err != nil {
		return nil, fmt.Errorf("bwc viewerload -phases: %w", err)
	}
	if *bins == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		*bins = "this=" + exe
	}
	if o.bins, err = parseBins(*bins); err != nil {
		return nil, fmt.Errorf("bwc viewerload -bins: %w", err)
	}
	if o.rounds < 1 || o.duration < time.Second || o.warmup < 0 || o.procs < 0 {
		return nil, errors.New("bwc viewerload: -rounds at least 1, -duration at least 1s, -warmup and -viewer-procs not negative")
	}
	maxCams := 0
	for _, p := range o.phases {
		maxCams = max(maxCams, p.cameras)
	}
	o.cfg.MFARequiredRoles = "" // the viewers' supervisor logs in with a password
	o.cfg.LoginRate = 0         // every viewer process logs in from 127.0.0.1
	o.cfg.RTSPMaxConnsPerAddr = max(o.cfg.RTSPMaxConnsPerAddr, maxCams)
	if err := o.cfg.Validate(); err != nil {
		return nil, err
	}
	o.serials = make([]string, maxCams)
	for i := range o.serials {
		o.serials[i] = fmt.Sprintf("VIEWERLOAD-%04d", i+1)
	}
	return o, nil
}

// roundOrder is the order the binaries run in round r (from 0): first to
// last, then last to first (base,new,new,base...), so that a trend of the
// machine's load weighs on each alike.
func roundOrder(n, r int) []int {
	o := make([]int, n)
	for i := range o {
		if r%2 == 0 {
			o[i] = i
		} else {
			o[i] = n - 1 - i
		}
	}
	return o
}

// parsePhases reads "10x0,10x5,20x10,10x5r": cameras × viewers per
// camera, r: the viewers on a second node.
func parsePhases(s string) ([]loadShape, error) {
	var out []loadShape
	for _, f := range strings.Split(s, ",") {
		c, v, ok := strings.Cut(strings.TrimSpace(f), "x")
		v, remote := strings.CutSuffix(v, "r")
		nc, err1 := strconv.Atoi(c)
		nv, err2 := strconv.Atoi(v)
		if !ok || err1 != nil || err2 != nil || nc < 1 || nv < 0 || remote && nv == 0 {
			return nil, fmt.Errorf("%q is not CAMERASxVIEWERS[r] (at least 1 camera, viewers per camera not negative, at least 1 with r)", f)
		}
		out = append(out, loadShape{nc, nv, remote})
	}
	return out, nil
}

// parseBins reads "base=/path/a,new=/path/b".
func parseBins(s string) ([]loadBin, error) {
	var out []loadBin
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		name, path, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok || name == "" || path == "" || seen[name] || strings.ContainsAny(name, "/ ") {
			return nil, fmt.Errorf("%q is not NAME=PATH with a new name", f)
		}
		seen[name] = true
		out = append(out, loadBin{name: name, path: path})
	}
	return out, nil
}

// serveFlagsOf lists the flags of bin's `serve` (from its -h), so that a
// baseline built before a new setting is not given it.
func serveFlagsOf(ctx context.Context, bin string) (map[string]bool, error) {
	b, _ := exec.CommandContext(ctx, bin, "serve", "-h").CombinedOutput() // -h exits non-zero
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9][a-z0-9-]*)`).FindAllStringSubmatch(string(b), -1) {
		flags[m[1]] = true
	}
	if !flags["http-addr"] {
		return nil, fmt.Errorf("%s serve -h lists no -http-addr:\n%s", bin, b)
	}
	return flags, nil
}

// ensureCapture makes the cameras' capture with ffmpeg when it is missing:
// moving content with noise, so that the encoder spends its bitrate.
func ensureCapture(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp.ts"
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25,noise=alls=10:allf=t+u",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "30",
		"-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0",
		"-b:v", "2M", "-maxrate", "2M", "-bufsize", "1M", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "64k", "-ac", "1", "-f", "mpegts", tmp)
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("making the capture with ffmpeg: %w\n%s", err, b)
	}
	return os.Rename(tmp, path)
}

// sampleBitrates: the capture's video and audio bits per second.
func sampleBitrates(s *mediafile.Sample) (video, audio float64) {
	for _, f := range s.Frames {
		n := 0
		for _, au := range f.AU {
			n += len(au)
		}
		if f.Track.Kind == media.Video {
			video += float64(n)
		} else {
			audio += float64(n)
		}
	}
	sec := s.Duration.Seconds()
	return video * 8 / sec, audio * 8 / sec
}

// prepareDatabase registers the cameras and the viewers' supervisor.
func (o *viewerLoadOptions) prepareDatabase(ctx context.Context) error {
	if o.cfg.MigrateURL != "" {
		if _, err := migrateDatabase(ctx, o.cfg.MigrateURL); err != nil {
			return err
		}
	}
	if err := ensureDevices(ctx, o.cfg, o.serials, viewerLoadSecret); err != nil {
		return err
	}
	db, err := index.Open(ctx, o.cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	o.login, o.password = "viewerload-"+randomHex(4), "load-"+randomHex(12)
	_, err = db.CreateUser(ctx, index.User{Login: o.login, Role: "supervisor"}, o.password)
	return err
}

// runOnce runs one binary as a fresh node through one phase.
func (o *viewerLoadOptions) runOnce(ctx context.Context, b loadBin, p loadShape, round int, last bool, out io.Writer) (loadFigures, error) {
	f := loadFigures{}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dir := filepath.Join(o.dir, fmt.Sprintf("%s-%s-r%d", p, b.name, round))
	// the node the cameras publish to, and in a remote phase the node the
	// viewers watch through: the figures are the nodes' sums
	names := []string{"viewerload-" + b.name}
	if p.remote {
		names = append(names, "viewerload-"+b.name+"-b")
	}
	var nodes []*clusterNode
	defer func() {
		for _, n := range nodes {
			_ = n.Stop(60 * time.Second)
		}
	}()
	for _, name := range names {
		cfg := o.cfg
		if o.pprof && last {
			addr, err := freeLoopback()
			if err != nil {
				return f, err
			}
			cfg.PprofAddr = addr
		}
		n, err := newClusterNode(cfg, name, dir, b.path, nil, os.Environ())
		if err != nil {
			return f, err
		}
		n.cfg.RTSPProxyProtocolFrom = "" // the cameras connect directly
		n.known = b.flags
		nodes = append(nodes, n)
		if err := n.Start(90 * time.Second); err != nil {
			return f, err
		}
	}
	n := nodes[0]
	db, err := index.Open(ctx, o.cfg.DatabaseURL)
	if err != nil {
		return f, err
	}
	defer db.Close()
	// idle: once its start-up work (first checkpoint, verification's first pass) is done
	if err := waitContext(ctx, o.warmup); err != nil {
		return f, err
	}
	idle, err := o.window(ctx, nodes, min(o.duration, 10*time.Second), true)
	if err != nil {
		return f, err
	}
	f.set(rowCoresIdle, idle.cores())
	f.set(rowRSSIdle, idle.rssMB())

	// the cameras
	serials := o.serials[:p.cameras]
	camCtx, camStop := context.WithCancel(ctx)
	camStart := time.Now()
	var sent int64
	var camWG sync.WaitGroup
	camWG.Add(1)
	go func() {
		defer camWG.Done()
		sent, _ = runCameras(camCtx, camOptions{server: n.RTSP, secret: viewerLoadSecret}, serials, o.sample)
	}()
	defer func() { camStop(); camWG.Wait() }()
	live, err := waitRecording(ctx, db, serials, n.Name, camStart.Add(-2*time.Second))
	if err != nil {
		return f, err
	}
	if err := waitContext(ctx, o.warmup); err != nil {
		return f, err
	}
	cams, err := o.window(ctx, nodes, o.duration, true)
	if err != nil {
		return f, err
	}
	f.set(rowCoresCams, cams.cores())
	f.set(rowRSSCams, cams.rssMB())
	f.set(rowCoresPerCam, (cams.cores()-idle.cores())/float64(p.cameras))
	f.set(rowMinIOIdle, idle.minio)
	f.set(rowMinIO, cams.minio)
	f.set(rowPostgresIdle, idle.pg)
	f.set(rowPostgres, cams.pg)
	f.set(rowOthersPerCam, (cams.minio+cams.pg-idle.minio-idle.pg)/float64(p.cameras))

	if p.viewers > 0 {
		if err := o.withViewers(ctx, nodes, b, p, live, last, dir, cams, &f, out); err != nil {
			return f, err
		}
	} else if o.pprof && last {
		if err := o.profile(ctx, nodes, b, p, out); err != nil {
			return f, err
		}
	}
	camStop()
	camWG.Wait()
	f.set(rowCamMbit, float64(sent)*8/1e6/time.Since(camStart).Seconds()/float64(p.cameras))
	for _, n := range nodes {
		if err := n.Stop(60 * time.Second); err != nil {
			return f, err
		}
	}
	return f, nil
}

// withViewers opens the phase's viewers in child processes on the last
// of the nodes, measures, and (with -pprof, in the last phase) profiles
// the nodes.
func (o *viewerLoadOptions) withViewers(ctx context.Context, nodes []*clusterNode, b loadBin, p loadShape, live []index.Recording,
	last bool, dir string, cams procWindow, f *loadFigures, out io.Writer) error {
	n := nodes[len(nodes)-1] // the viewers' node, whose relay's metrics are read
	total := p.cameras * p.viewers
	procs := o.procs
	if procs == 0 {
		procs = min(max(total/25, 2), 4)
	}
	procs = min(procs, total)
	lists := make([][]string, procs)
	for i := range total { // each camera's viewers spread over the processes
		lists[i%procs] = append(lists[i%procs], live[i%len(live)].ID.String())
	}
	var vps []*viewerProc
	defer func() {
		for _, vp := range vps {
			vp.close()
		}
	}()
	for i, l := range lists {
		vp, err := startViewerProc(ctx, o.selfExe, filepath.Join(dir, fmt.Sprintf("viewers-%d.log", i+1)),
			"http://"+n.HTTP, o.login, o.password, l)
		if err != nil {
			return err
		}
		vps = append(vps, vp)
	}
	for _, vp := range vps {
		if err := vp.waitReady(120 * time.Second); err != nil {
			return err
		}
	}
	// every viewer has its first keyframe (or 20 s have passed), then settle
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		st, err := viewerStats(vps)
		if err != nil {
			return err
		}
		if len(st.FirstFrameMS) == total {
			break
		}
		if err := waitContext(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	if err := waitContext(ctx, o.warmup); err != nil {
		return err
	}
	// what the viewers received and the node's metrics, before and after the window
	snapshot := func() (viewerReport, procStats, error) {
		st, err := viewerStats(vps)
		if err != nil {
			return st, procStats{}, err
		}
		m, err := scrape("http://" + n.HTTP + "/metrics")
		return st, m, err
	}
	s0, m0, err := snapshot()
	if err != nil {
		return err
	}
	w, err := o.window(ctx, nodes, o.duration, false)
	if err != nil {
		return err
	}
	s1, m1, err := snapshot()
	if err != nil {
		return err
	}
	vn := float64(total)
	f.set(rowCoresView, w.cores())
	f.set(rowRSSView, w.rssMB())
	f.set(rowCoresPerView, (w.cores()-cams.cores())/vn)
	f.set(rowRSSPerView, (w.rssMB()-cams.rssMB())/vn)
	f.set(rowMbitPerView, float64(s1.Bytes-s0.Bytes)*8/1e6/w.elapsed.Seconds()/vn)
	got, lost := float64(s1.Packets-s0.Packets), float64(s1.Lost-s0.Lost)
	if got+lost > 0 {
		f.set(rowLoss, 100*lost/(got+lost))
	}
	ff := append([]float64(nil), s1.FirstFrameMS...)
	sort.Float64s(ff)
	f.set(rowFirstP50, sortedQuantile(ff, 0.5))
	f.set(rowFirstP95, sortedQuantile(ff, 0.95))
	f.set(rowFirstMissing, vn-float64(len(ff)))
	h := histogramDelta(metricHistogram(m0.m, relayLatencyMetric), metricHistogram(m1.m, relayLatencyMetric))
	f.set(rowLatP50, 1000*h.quantile(0.5))
	f.set(rowLatP95, 1000*h.quantile(0.95))
	f.set(rowDrops, m1.m[relayDropsMetric]-m0.m[relayDropsMetric])
	if o.pprof && last {
		return o.profile(ctx, nodes, b, p, out)
	}
	return nil
}

// profile saves a 20 s CPU profile and then a heap profile of each node
// (with its cameras, and the viewers if the phase has any) into the run's
// folder; the second node's files are named with "-b".
func (o *viewerLoadOptions) profile(ctx context.Context, nodes []*clusterNode, b loadBin, p loadShape, out io.Writer) error {
	for i, n := range nodes {
		suffix := ""
		if i > 0 {
			suffix = "-b"
		}
		for _, pr := range []struct{ kind, query string }{{"cpu", "profile?seconds=20"}, {"heap", "heap"}} {
			path := filepath.Join(o.dir, fmt.Sprintf("%s-%s%s-%s.pprof", b.name, p, suffix, pr.kind))
			if err := fetchProfile(ctx, "http://"+n.cfg.PprofAddr+"/debug/pprof/"+pr.query, path); err != nil {
				return err
			}
			fmt.Fprintf(out, "  profile: %s\n", path)
		}
	}
	return nil
}

const (
	relayLatencyMetric = "bwc_relay_added_latency_seconds"
	relayDropsMetric   = "bwc_relay_viewer_dropped_frames_total"
)

func fetchProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, res.Status)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// waitRecording waits until every camera has a live recording on node
// started after since, and returns them.
func waitRecording(ctx context.Context, db *index.DB, serials []string, node string, since time.Time) ([]index.Recording, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		recs, err := db.Recordings(ctx, index.RecordingFilter{Status: "active"})
		if err != nil {
			return nil, err
		}
		by := map[string]index.Recording{}
		for _, r := range recs {
			if r.NodeID == node && r.StartedAt.After(since) {
				by[r.DeviceSerial] = r
			}
		}
		var live []index.Recording
		for _, s := range serials {
			if r, ok := by[s]; ok {
				live = append(live, r)
			}
		}
		if len(live) == len(serials) {
			return live, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d cameras recording on %s after 60 s", len(live), len(serials), node)
		}
		if err := waitContext(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// procWindow is what one measuring window saw of the server (and, with
// the cameras, of MinIO and PostgreSQL).
type procWindow struct {
	elapsed   time.Duration
	cpu       time.Duration
	rss       int64   // at the end
	minio, pg float64 // cores
}

func (w procWindow) cores() float64 { return w.cpu.Seconds() / w.elapsed.Seconds() }
func (w procWindow) rssMB() float64 { return float64(w.rss) / 1e6 }

// window reads the nodes' /proc (and MinIO's and PostgreSQL's processes
// with others: they serve other work on a shared machine, hence their idle
// figures) before and after d; the nodes' CPU and RSS are summed.
func (o *viewerLoadOptions) window(ctx context.Context, nodes []*clusterNode, d time.Duration, others bool) (procWindow, error) {
	var w procWindow
	read := func() (procUsage, error) {
		var sum procUsage
		for _, n := range nodes {
			u, err := readProc(n.PID())
			if err != nil {
				return sum, err
			}
			sum.CPU += u.CPU
			sum.RSS += u.RSS
		}
		return sum, nil
	}
	u0, err := read()
	if err != nil {
		return w, err
	}
	var mi0, pg0 map[int]time.Duration
	if others {
		mi0, pg0 = procsCPU("minio", o.cfg.S3Endpoint), procsCPU("postgres", "")
	}
	t0 := time.Now()
	if err := waitContext(ctx, d); err != nil {
		return w, err
	}
	u1, err := read()
	if err != nil {
		return w, err
	}
	w.elapsed = time.Since(t0)
	w.cpu, w.rss = u1.CPU-u0.CPU, u1.RSS
	if others {
		w.minio = cpuDelta(mi0, procsCPU("minio", o.cfg.S3Endpoint)).Seconds() / w.elapsed.Seconds()
		w.pg = cpuDelta(pg0, procsCPU("postgres", "")).Seconds() / w.elapsed.Seconds()
	}
	return w, nil
}

// procsCPU is the CPU time so far of every process named name (pgrep -x)
// whose command line holds arg (a MinIO's address: not the distributed
// one's processes).
func procsCPU(name, arg string) map[int]time.Duration {
	m := map[int]time.Duration{}
	b, _ := exec.Command("pgrep", "-x", name).Output()
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err != nil || !strings.Contains(string(cl), arg) {
			continue
		}
		if u, err := readProc(pid); err == nil {
			m[pid] = u.CPU
		}
	}
	return m
}

// cpuDelta sums what each process spent between the two readings (a
// process started in between counts from zero; one gone is left out).
func cpuDelta(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, c := range after {
		d += c - before[pid]
	}
	return d
}

// sortedQuantile is the q-quantile of sorted values (nearest rank); NaN
// without values.
func sortedQuantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(v)))) - 1
	return v[min(max(i, 0), len(v)-1)]
}

// histogram is a Prometheus histogram's cumulative buckets, by upper bound.
type histogram struct {
	le    []float64 // ascending, +Inf last when present
	count []float64 // cumulative
}

// metricHistogram gathers name's buckets from a scrape (name_bucket{le="..."}).
func metricHistogram(m map[string]float64, name string) histogram {
	var h histogram
	type b struct{ le, n float64 }
	var bs []b
	prefix := name + `_bucket{le="`
	for k, v := range m {
		s, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(s, `"}`), 64)
		if err != nil {
			continue
		}
		bs = append(bs, b{le, v})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, x := range bs {
		h.le, h.count = append(h.le, x.le), append(h.count, x.n)
	}
	return h
}

// histogramDelta is what was observed between two scrapes of a histogram.
func histogramDelta(before, after histogram) histogram {
	d := histogram{le: after.le, count: make([]float64, len(after.count))}
	for i := range after.count {
		d.count[i] = after.count[i]
		if i < len(before.count) && before.le[i] == after.le[i] {
			d.count[i] -= before.count[i]
		}
	}
	return d
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile
// does: linear within the bucket that holds the rank (from 0 for the
// first); the highest finite bound when it falls in +Inf; NaN when empty.
func (h histogram) quantile(q float64) float64 {
	if len(h.count) == 0 || h.count[len(h.count)-1] == 0 {
		return math.NaN()
	}
	rank := q * h.count[len(h.count)-1]
	lower, below := 0.0, 0.0
	for i, c := range h.count {
		if c >= rank {
			if math.IsInf(h.le[i], 1) {
				return lower
			}
			if c == below {
				return h.le[i]
			}
			return lower + (h.le[i]-lower)*(rank-below)/(c-below)
		}
		lower, below = h.le[i], c
	}
	return lower
}

// The rows of a phase's table, in order.
const (
	rowCoresIdle    = "server cores, idle"
	rowCoresCams    = "server cores, cameras only"
	rowCoresView    = "server cores, with viewers"
	rowRSSIdle      = "server RSS MB, idle"
	rowRSSCams      = "server RSS MB, cameras only"
	rowRSSView      = "server RSS MB, with viewers"
	rowCoresPerCam  = "cores per camera"
	rowCamMbit      = "Mbit/s sent per camera"
	rowMinIOIdle    = "MinIO cores, idle"
	rowMinIO        = "MinIO cores, cameras only"
	rowPostgresIdle = "PostgreSQL cores, idle"
	rowPostgres     = "PostgreSQL cores, cameras only"
	rowOthersPerCam = "MinIO+PostgreSQL cores per camera"
	rowCoresPerView = "cores per viewer"
	rowRSSPerView   = "RSS MB per viewer"
	rowMbitPerView  = "Mbit/s per viewer"
	rowLoss         = "loss %"
	rowFirstP50     = "first keyframe p50 ms"
	rowFirstP95     = "first keyframe p95 ms"
	rowFirstMissing = "viewers without a keyframe"
	rowLatP50       = "added latency p50 ms"
	rowLatP95       = "added latency p95 ms"
	rowDrops        = "frames dropped (slow viewers)"
)

var loadRows = []struct {
	name string
	prec int
}{
	{rowCoresIdle, 3}, {rowCoresCams, 3}, {rowCoresView, 3},
	{rowRSSIdle, 1}, {rowRSSCams, 1}, {rowRSSView, 1},
	{rowCoresPerCam, 4}, {rowCamMbit, 2},
	{rowMinIOIdle, 3}, {rowMinIO, 3}, {rowPostgresIdle, 3}, {rowPostgres, 3}, {rowOthersPerCam, 4},
	{rowCoresPerView, 5}, {rowRSSPerView, 2}, {rowMbitPerView, 2}, {rowLoss, 2},
	{rowFirstP50, 0}, {rowFirstP95, 0}, {rowFirstMissing, 0},
	{rowLatP50, 2}, {rowLatP95, 2}, {rowDrops, 0},
}

// loadFigures are one run's figures by row name (a row absent: not
// measured, e.g. the viewers' rows without viewers).
type loadFigures map[string]float64

func (f loadFigures) set(row string, v float64) { f[row] = v }

func (f loadFigures) get(row string) float64 {
	if v, ok := f[row]; ok {
		return v
	}
	return math.NaN()
}

// brief is one run's main figures on a line.
func (f loadFigures) brief() string {
	s := fmt.Sprintf("cores idle %.3f, cameras %.3f (%.4f per camera)", f.get(rowCoresIdle), f.get(rowCoresCams), f.get(rowCoresPerCam))
	if _, ok := f[rowCoresView]; ok {
		s += fmt.Sprintf(", viewers %.3f (%.5f per viewer, %.2f MB RSS per viewer, loss %.2f %%)",
			f.get(rowCoresView), f.get(rowCoresPerView), f.get(rowRSSPerView), f.get(rowLoss))
	}
	return s
}

// medianFigures is, row by row, the median of the runs that have it.
func medianFigures(runs []loadFigures) loadFigures {
	m := loadFigures{}
	for _, r := range loadRows {
		var v []float64
		for _, f := range runs {
			if x, ok := f[r.name]; ok && !math.IsNaN(x) {
				v = append(v, x)
			}
		}
		if len(v) == 0 {
			continue
		}
		sort.Float64s(v)
		if k := len(v); k%2 == 1 {
			m[r.name] = v[k/2]
		} else {
			m[r.name] = (v[k/2-1] + v[k/2]) / 2
		}
	}
	return m
}

// writeLoadTable prints a phase's rows, a column per binary and the ratio
// of each later binary to the first ("–": not measured, or a ratio over
// zero).
func writeLoadTable(w io.Writer, names []string, cols []loadFigures) {
	fmt.Fprintf(w, "%-32s", "")
	for _, n := range names {
		fmt.Fprintf(w, " %10s", n)
	}
	for _, n := range names[1:] {
		fmt.Fprintf(w, " %10s", n+"/"+names[0])
	}
	fmt.Fprintln(w)
	for _, r := range loadRows {
		any := false
		for _, c := range cols {
			if _, ok := c[r.name]; ok {
				any = true
			}
		}
		if !any {
			continue
		}
		fmt.Fprintf(w, "%-32s", r.name)
		for _, c := range cols {
			fmt.Fprintf(w, " %10s", formatFigure(c.get(r.name), r.prec))
		}
		for _, c := range cols[1:] {
			fmt.Fprintf(w, " %10s", formatFigure(c.get(r.name)/cols[0].get(r.name), 2))
		}
		fmt.Fprintln(w)
	}
}

func formatFigure(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}
