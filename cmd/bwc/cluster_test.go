package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/pion/webrtc/v4"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/seal"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// clusterWorld is the real-component cluster on one machine: `bwc serve`
// nodes as processes (this test binary as a child), one PostgreSQL
// database, a bucket on the 4-drive distributed MinIO (scripts/services.sh
// dist-up) and HAProxy balancing the cameras' RTSP over the nodes.
type clusterWorld struct {
	t     *testing.T
	cfg   Config // shared by the nodes
	dir   string
	db    *index.DB // the test's view of the database (after the first node migrated it)
	store *blob.Store
	nodes []*clusterNode
	lb    *balancer
}

// distEndpoint is the distributed MinIO, or a skip saying how to start it.
func distEndpoint(t *testing.T) string {
	t.Helper()
	ep := os.Getenv("BWC_TEST_S3_DIST_ENDPOINT")
	if ep == "" {
		t.Skip("no distributed MinIO: run scripts/services.sh dist-up and source /var/tmp/bwc/env (BWC_TEST_S3_DIST_ENDPOINT); scripts/test.sh does")
	}
	res, err := http.Get("http://" + ep + "/minio/health/cluster")
	if err != nil {
		t.Skipf("distributed MinIO %s not answering (%v): scripts/services.sh dist-up", ep, err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Skipf("distributed MinIO %s not healthy (/minio/health/cluster %d): scripts/services.sh dist-up", ep, res.StatusCode)
	}
	return ep
}

// newClusterWorld prepares nodes named names (not started) on a fresh
// database and bucket; it skips when HAProxy or the distributed MinIO is
// missing.
func newClusterWorld(t *testing.T, names ...string) *clusterWorld {
	t.Helper()
	if haproxyPath() == "" {
		t.Skip("haproxy not installed: apt-get install -y haproxy (scripts/services.sh tools)")
	}
	ep := distEndpoint(t)
	ctx := context.Background()
	w := &clusterWorld{t: t, dir: t.TempDir()}
	cfg := defaultConfig()
	owner := storagetest.DatabaseURL(t)
	cfg.DatabaseURL, cfg.MigrateURL = storagetest.AppURL(t, owner), owner
	b := storagetest.BlobConfig(t)
	b.Endpoint = ep
	admin, err := blob.Open(storagetest.AdminConfig(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateBucket(ctx); err != nil {
		t.Fatalf("bucket on the distributed MinIO: %v", err)
	}
	admin.Close()
	cfg.S3Endpoint, cfg.S3AccessKey, cfg.S3SecretKey, cfg.S3Bucket = b.Endpoint, b.AccessKey, b.SecretKey, b.Bucket
	cfg.RetentionMode = "governance"
	cfg.SigningKey = filepath.Join(w.dir, "platform-key.pem") // created by the first node, held by all
	cfg.SegmentDuration = 2 * time.Second
	// a node is dead after 6 s of silence (a camera's grace is longer, so
	// that a recording can move before it ends); shorter, a loaded machine
	// whose PostgreSQL answers slowly for a few seconds has the nodes take
	// each other for dead (seen at a load average of 26 on 2 cores)
	cfg.ReconnectGrace = 8 * time.Second
	cfg.NodeHeartbeat = time.Second
	cfg.NodeDeadAfter = 6 * time.Second
	cfg.MFARequiredRoles = ""
	cfg.LogLevel = "debug"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// the schema migrated, and the platform's key made, once by the
	// administrator: the nodes start together
	w.cfg = cfg
	db, _, err := openDatabase(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.db = db
	t.Cleanup(db.Close)
	if _, err := export.LoadOrCreateKey(cfg.SigningKey); err != nil {
		t.Fatal(err)
	}
	cfg.MigrateURL = ""
	if w.store, err = blob.Open(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.store.Close() })
	for _, name := range names {
		n, err := newClusterNode(cfg, name, w.dir, os.Args[0], nil, append(os.Environ(), childEnv+"=serve"))
		if err != nil {
			t.Fatal(err)
		}
		w.nodes = append(w.nodes, n)
		t.Cleanup(n.Kill)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range w.nodes {
				t.Logf("node %s log:\n%s", n.Name, n.Output(6000))
			}
		}
	})
	return w
}

// start starts the nodes together and waits until they answer.
func (w *clusterWorld) start(nodes ...*clusterNode) {
	w.t.Helper()
	for _, n := range nodes {
		if err := n.Launch(); err != nil {
			w.t.Fatal(err)
		}
	}
	for _, n := range nodes {
		if err := n.WaitHealthy(90 * time.Second); err != nil {
			w.t.Fatal(err)
		}
	}
}

// balance starts HAProxy over every node of the world (started or not:
// its /readyz check keeps a stopped node out).
func (w *clusterWorld) balance() {
	w.t.Helper()
	lb, err := startBalancer(w.dir, w.nodes, 300*time.Millisecond)
	if err != nil {
		w.t.Fatal(err)
	}
	w.lb = lb
	w.t.Cleanup(lb.Close)
}

// device registers a camera (secret cameraSecret).
func (w *clusterWorld) device(serial string) index.Device {
	w.t.Helper()
	d, err := w.db.CreateDevice(context.Background(), index.Device{Serial: serial, Secret: cameraSecret})
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

// live is the device's live recording (ok false when none).
func (w *clusterWorld) live(dev index.Device) (index.Recording, bool) {
	w.t.Helper()
	recs, err := w.db.Recordings(context.Background(), index.RecordingFilter{Status: "active", DeviceID: &dev.ID})
	if err != nil {
		w.t.Fatal(err)
	}
	if len(recs) != 1 {
		return index.Recording{}, false
	}
	return recs[0], true
}

// waitLive waits until the device records and returns the recording.
func (w *clusterWorld) waitLive(dev index.Device) index.Recording {
	w.t.Helper()
	var r index.Recording
	mediatest.Eventually(w.t, dev.Serial+" recording", func() bool {
		var ok bool
		r, ok = w.live(dev)
		return ok
	})
	return r
}

// holder is the node holding the recording (recordings.node_id).
func (w *clusterWorld) holder(rec index.Recording) *clusterNode {
	w.t.Helper()
	for _, n := range w.nodes {
		if n.Name == rec.NodeID {
			return n
		}
	}
	w.t.Fatalf("recording %s held by %q, not a node of the test", rec.ID, rec.NodeID)
	return nil
}

// segments is how many segments of the recording are archived (indexed).
func (w *clusterWorld) segments(id uuid.UUID) int {
	w.t.Helper()
	segs, err := w.db.Segments(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	return len(segs)
}

// metric reads a metric without labels from the node's /metrics; ok false
// when the node does not export it.
func (w *clusterWorld) metric(n *clusterNode, name string) (float64, bool) {
	w.t.Helper()
	res, err := http.Get("http://" + n.HTTP + "/metrics")
	if err != nil {
		w.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				w.t.Fatal(err)
			}
			return f, true
		}
	}
	return 0, false
}

// camera publishes the sample through the balancer in a loop until stop;
// like a body camera it connects again (through the balancer) a moment
// after its connection drops.
type loopCamera struct {
	stopOnce sync.Once
	stopc    chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	cur      *exec.Cmd
	runs     int
}

func (w *clusterWorld) camera(serial string) *loopCamera {
	w.t.Helper()
	c := &loopCamera{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", mediatest.Path(),
				"-c:v", "copy", "-c:a", "aac", "-f", "rtsp", "-rtsp_transport", "tcp",
				"rtsp://"+serial+":"+cameraSecret+"@"+w.lb.Front+"/live/"+serial)
			c.mu.Lock()
			select {
			case <-c.stopc:
				c.mu.Unlock()
				return
			default:
			}
			if err := cmd.Start(); err != nil {
				c.mu.Unlock()
				return
			}
			c.cur = cmd
			c.runs++
			c.mu.Unlock()
			_ = cmd.Wait()
			select {
			case <-c.stopc:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	w.t.Cleanup(c.stop)
	return c
}

// connections is how many times the camera has connected.
func (c *loopCamera) connections() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs
}

func (c *loopCamera) stop() {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		close(c.stopc)
		if c.cur != nil {
			_ = c.cur.Process.Kill()
		}
		c.mu.Unlock()
		<-c.done
	})
}

// exportBuilds counts the "export ready" records for the export in every
// node's log.
func (w *clusterWorld) exportBuilds(id uuid.UUID) int {
	n := 0
	for _, node := range w.nodes {
		for _, l := range strings.Split(node.Output(1<<30), "\n") {
			if strings.Contains(l, `msg="export ready"`) && strings.Contains(l, "export="+id.String()) {
				n++
			}
		}
	}
	return n
}

// verifyClean waits until every recording has ended and is sealed, then
// runs bwc verify over them all.
func (w *clusterWorld) verifyClean() {
	w.t.Helper()
	ctx := context.Background()
	var recs []index.Recording
	mediatest.Eventually(w.t, "every recording ended and sealed", func() bool {
		var err error
		if recs, err = w.db.Recordings(ctx, index.RecordingFilter{}); err != nil {
			w.t.Fatal(err)
		}
		for _, r := range recs {
			if r.Status != index.RecordingEnded {
				return false
			}
			if _, err := w.store.Client().StatObject(ctx, w.cfg.S3Bucket, seal.Key(r.ID), minio.StatObjectOptions{}); err != nil {
				return false
			}
		}
		return len(recs) > 0
	})
	var report bytes.Buffer
	c := w.cfg
	args := []string{"-database-url", c.DatabaseURL, "-s3-endpoint", c.S3Endpoint, "-s3-access-key", c.S3AccessKey,
		"-s3-secret-key", c.S3SecretKey, "-s3-bucket", c.S3Bucket, "-signing-key", c.SigningKey}
	if err := verify(ctx, args, &report); err != nil {
		w.t.Errorf("bwc verify: %v\n%s", err, report.String())
	}
	w.t.Logf("bwc verify over %d recordings:\n%s", len(recs), report.String())
}

// TestClusterBehindBalancer: three nodes, one PostgreSQL, the distributed
// MinIO, cameras through HAProxy. The cameras spread over the nodes;
// stopping and starting a node never ends another node's recordings (their
// rows stay live, their archives keep growing); an approved export is
// built exactly once; a node with another signing key refuses to start,
// naming both fingerprints; bwc verify is clean at the end.
func TestClusterBehindBalancer(t *testing.T) {
	ctx := context.Background()
	w := newClusterWorld(t, "node-a", "node-b", "node-c")
	// an approved export waiting when the three nodes start together: each
	// looks for unclaimed exports at start, one builds it
	inc, err := w.db.CreateIncident(ctx, index.Incident{Number: "110-CLUSTER-" + uuid.NewString()[:6]})
	if err != nil {
		t.Fatal(err)
	}
	exp, err := w.db.RequestExport(ctx, index.Export{IncidentID: inc.ID, RequestedBy: "reviewer", Reason: "court"}, false)
	if err != nil {
		t.Fatal(err)
	}
	w.start(w.nodes...)
	w.balance()

	// one camera at a time, each recording before the next connects:
	// least connections gives each node one
	var cams []*loopCamera
	held := map[string]index.Recording{} // by node
	for i := range w.nodes {
		d := w.device(fmt.Sprintf("CLUSTER-%d-%s", i+1, strings.ToUpper(uuid.NewString()[:6])))
		cams = append(cams, w.camera(d.Serial))
		r := w.waitLive(d)
		held[r.NodeID] = r
	}
	if len(held) != len(w.nodes) {
		t.Fatalf("cameras on nodes %v, want one on each of the %d nodes", held, len(w.nodes))
	}
	c := w.nodes[2]
	others := []index.Recording{held["node-a"], held["node-b"]}
	growing := func(when string) {
		t.Helper()
		for _, r := range others {
			before := w.segments(r.ID)
			mediatest.Eventually(t, fmt.Sprintf("%s: recording %s on %s archiving on", when, r.ID, r.NodeID), func() bool {
				return w.segments(r.ID) > before
			})
			now, ok := w.live(index.Device{ID: r.DeviceID, Serial: r.DeviceSerial})
			if !ok || now.ID != r.ID || now.NodeID != r.NodeID {
				t.Fatalf("%s: %s's recording %+v (live %v), want %s still live on %s", when, r.DeviceSerial, now, ok, r.ID, r.NodeID)
			}
		}
	}
	growing("three nodes")

	// stopping node C (its camera drops, reconnects through the balancer,
	// is refused by the others while C's recording is live, then records
	// again) and starting it again leave A's and B's recordings alone
	if err := c.Stop(30 * time.Second); err != nil {
		t.Fatalf("stopping node C: %v", err)
	}
	growing("node C stopped")
	w.start(c)
	growing("node C started again")

	// the export: built once
	mediatest.Eventually(t, "the export built", func() bool {
		e, err := w.db.Export(ctx, exp.ID)
		return err == nil && e.Status == index.ExportReady
	})
	versions := 0
	for o := range w.store.Client().ListObjects(ctx, w.cfg.S3Bucket, minio.ListObjectsOptions{Prefix: "exports/", Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if strings.Contains(o.Key, exp.ID.String()) {
			versions++
		}
	}
	if b := w.exportBuilds(exp.ID); versions != 1 || b != 1 {
		t.Errorf("export %s: %d package versions, %d builds in the nodes' logs; want 1, 1", exp.ID, versions, b)
	}

	// a node with another signing key refuses to start, naming both keys
	platformKey, err := export.LoadOrCreateKey(w.cfg.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	otherCfg := w.cfg
	otherCfg.SigningKey = filepath.Join(w.dir, "other-key.pem")
	otherKey, err := export.LoadOrCreateKey(otherCfg.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := newClusterNode(otherCfg, "node-rogue", w.dir, os.Args[0], nil, append(os.Environ(), childEnv+"=serve"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rogue.Kill)
	if err := rogue.Launch(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rogue.Exited():
	case <-time.After(60 * time.Second):
		t.Fatal("a node with another signing key is still running after 60 s")
	}
	out := rogue.Output(1 << 20)
	for _, fp := range []string{export.Fingerprint(platformKey.Public().(ed25519.PublicKey)), export.Fingerprint(otherKey.Public().(ed25519.PublicKey))} {
		if rogue.Err() == nil || !strings.Contains(out, fp) {
			t.Errorf("node with another key: exit %v, output does not name fingerprint %s:\n%s", rogue.Err(), fp, out)
		}
	}
	growing("a rogue node refused")

	for _, cam := range cams {
		cam.stop()
	}
	w.verifyClean()
	for _, n := range w.nodes {
		if err := n.Stop(30 * time.Second); err != nil {
			t.Errorf("node %s: %v", n.Name, err)
		}
	}
}

// requireMetric skips the test while the node does not export the metric
// that the feature under test brings (it is built by another part of
// issue 16 and merged separately).
func (w *clusterWorld) requireMetric(n *clusterNode, name, feature string) {
	w.t.Helper()
	if _, ok := w.metric(n, name); !ok {
		w.t.Skipf("%s not built yet: node %s exports no %s (issue 16)", feature, n.Name, name)
	}
}

// otherNode is a running node of the world that is not n.
func (w *clusterWorld) otherNode(n *clusterNode) *clusterNode {
	w.t.Helper()
	for _, o := range w.nodes {
		if o != n && o.Running() {
			return o
		}
	}
	w.t.Fatalf("no running node but %s", n.Name)
	return nil
}

// TestClusterCameraContinuesOnAnotherNode: the node holding a camera is
// killed; the camera connects again through the balancer, lands on the
// other node and continues the same recording there within the grace
// window, the gap recorded; the killed node, restarted, uploads what it
// had spooled; bwc verify is clean.
func TestClusterCameraContinuesOnAnotherNode(t *testing.T) {
	ctx := context.Background()
	w := newClusterWorld(t, "node-a", "node-b")
	w.start(w.nodes[0])
	w.requireMetric(w.nodes[0], "bwc_ingest_node_takeovers_total", "continuing a recording on another node")
	w.start(w.nodes[1])
	w.balance()
	dev := w.device("CONT-" + strings.ToUpper(uuid.NewString()[:6]))
	cam := w.camera(dev.Serial)
	rec := w.waitLive(dev)
	old := w.holder(rec)
	mediatest.Eventually(t, "a segment archived on "+old.Name, func() bool { return w.segments(rec.ID) > 0 })
	conns := cam.connections()
	old.Kill()
	next := w.otherNode(old)
	var now index.Recording
	mediatest.Eventually(t, "the recording continued on "+next.Name, func() bool {
		var ok bool
		now, ok = w.live(dev)
		return ok && now.NodeID == next.Name
	})
	if now.ID != rec.ID {
		t.Fatalf("camera on %s records %s, want the same recording %s continued", next.Name, now.ID, rec.ID)
	}
	if cam.connections() <= conns {
		t.Fatal("the camera never connected again")
	}
	before := w.segments(rec.ID)
	mediatest.Eventually(t, "the recording archiving on "+next.Name, func() bool { return w.segments(rec.ID) > before })
	if v, _ := w.metric(next, "bwc_ingest_node_takeovers_total"); v < 1 {
		t.Errorf("%s bwc_ingest_node_takeovers_total = %v, want at least 1", next.Name, v)
	}
	gaps, err := w.db.Gaps(ctx, rec.ID)
	if err != nil || len(gaps) == 0 {
		t.Errorf("gaps of %s: %+v %v, want the handover's gap", rec.ID, gaps, err)
	}
	w.start(old) // uploads what it had spooled
	cam.stop()
	w.verifyClean()
}

// TestClusterLiveFromAnotherNode: ten viewers on node A of a camera held by
// node B play it (video packets arrive) through one inter-node stream,
// counted in A's metrics; when they leave, the stream ends.
func TestClusterLiveFromAnotherNode(t *testing.T) {
	ctx := context.Background()
	w := newClusterWorld(t, "node-a", "node-b")
	w.start(w.nodes[0])
	const metric = "bwc_peer_streams_in"
	w.requireMetric(w.nodes[0], metric, "watching a camera held by another node")
	w.start(w.nodes[1])
	w.balance()
	dev := w.device("LIVE-" + strings.ToUpper(uuid.NewString()[:6]))
	w.camera(dev.Serial)
	rec := w.waitLive(dev)
	holder := w.holder(rec)
	at := w.otherNode(holder)
	pw := "cluster-" + uuid.NewString()
	if _, err := w.db.CreateUser(ctx, index.User{Login: "cluster-supervisor", Role: "supervisor"}, pw); err != nil {
		t.Fatal(err)
	}
	s, err := webLogin("http://"+at.HTTP, "cluster-supervisor", pw)
	if err != nil {
		t.Fatal(err)
	}
	var got [10]atomic.Uint64
	var lost atomic.Uint64
	var viewers []*webrtc.PeerConnection
	defer func() {
		for _, pc := range viewers {
			pc.Close()
		}
	}()
	for i := range got {
		pc, err := whepViewer(ctx, s, rec.ID, &got[i], &lost)
		if err != nil {
			t.Fatalf("viewer %d on %s of a camera on %s: %v", i, at.Name, holder.Name, err)
		}
		viewers = append(viewers, pc)
	}
	playing := func() (n int, total uint64) {
		for i := range got {
			if v := got[i].Load(); v > 0 {
				n++
				total += v
			}
		}
		return n, total
	}
	mediatest.Eventually(t, "video at the ten viewers", func() bool { _, total := playing(); return total > 1000 })
	// Each viewer connected before they all leave, as far as this loaded
	// machine lets them: one closed while its ICE is still connecting
	// sends no DTLS close, so the relay ends its session only when ICE
	// gives up (about 30 s), and the inter-node stream lingers after that.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n, _ := playing(); n == len(got) {
			break
		}
	}
	if v, _ := w.metric(at, metric); v != 1 {
		t.Errorf("%s %s = %v with ten viewers of one camera on %s, want 1", at.Name, metric, v, holder.Name)
	}
	for _, pc := range viewers {
		pc.Close()
	}
	viewers = nil
	mediatest.EventuallyWithin(t, 90*time.Second, "the inter-node stream ended with its viewers", func() bool {
		v, _ := w.metric(at, metric)
		return v == 0
	})
}
