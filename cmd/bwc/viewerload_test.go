package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/storagetest"
)

func TestParsePhases(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []loadShape
		bad  bool
	}{
		{in: "10x0,10x5,20x10", want: []loadShape{{10, 0, false}, {10, 5, false}, {20, 10, false}}},
		{in: " 1x1 ", want: []loadShape{{1, 1, false}}},
		{in: "10x5r,2x1", want: []loadShape{{10, 5, true}, {2, 1, false}}},
		{in: "10x0r", bad: true}, // no viewers to put on a second node
		{in: "10xr", bad: true},
		{in: "10x5rr", bad: true},
		{in: "r10x5", bad: true},
		{in: "0x5", bad: true},
		{in: "3x-1", bad: true},
		{in: "3", bad: true},
		{in: "3x", bad: true},
		{in: "10x5,", bad: true},
		{in: "ax1", bad: true},
	} {
		got, err := parsePhases(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("parsePhases(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parsePhases(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestParseBins(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []loadBin
		bad  bool
	}{
		{in: "base=/a/bwc,new=/b/bwc", want: []loadBin{{name: "base", path: "/a/bwc"}, {name: "new", path: "/b/bwc"}}},
		{in: "this=/x", want: []loadBin{{name: "this", path: "/x"}}},
		{in: "base=/a,base=/b", bad: true},
		{in: "/a/bwc", bad: true},
		{in: "=/a", bad: true},
		{in: "a=", bad: true},
	} {
		got, err := parseBins(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("parseBins(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseBins(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

// TestHistogramQuantile: quantiles of the latency histogram's change
// between two scrapes, interpolated within a bucket as Prometheus does.
func TestHistogramQuantile(t *testing.T) {
	scrape := func(c1, c2, c4, inf float64) map[string]float64 {
		return map[string]float64{
			`bwc_relay_added_latency_seconds_bucket{le="0.001"}`: c1,
			`bwc_relay_added_latency_seconds_bucket{le="0.002"}`: c2,
			`bwc_relay_added_latency_seconds_bucket{le="0.004"}`: c4,
			`bwc_relay_added_latency_seconds_bucket{le="+Inf"}`:  inf,
			`bwc_relay_added_latency_seconds_sum`:                1,
			`bwc_relay_packets_total`:                            7,
		}
	}
	before := metricHistogram(scrape(100, 100, 100, 100), relayLatencyMetric)
	if !reflect.DeepEqual(before.le, []float64{0.001, 0.002, 0.004, math.Inf(1)}) {
		t.Fatalf("bounds %v", before.le)
	}
	// in the window: 50 under 1 ms, 30 in 1-2 ms, 20 in 2-4 ms
	d := histogramDelta(before, metricHistogram(scrape(150, 180, 200, 200), relayLatencyMetric))
	for _, c := range []struct{ q, want float64 }{
		{0.25, 0.0005},  // rank 25 of the first bucket's 50, from 0
		{0.5, 0.001},    // rank 50: the first bucket's top
		{0.65, 0.0015},  // rank 65: half into 1-2 ms
		{0.95, 0.0035},  // rank 95: 15 of 20 into 2-4 ms
		{1.0, 0.004},    // the last finite bucket's top
		{0.001, 0.0000}, // about zero
	} {
		if got := d.quantile(c.q); math.Abs(got-c.want) > 1e-5 {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	// beyond the last finite bound: that bound
	d = histogramDelta(before, metricHistogram(scrape(100, 100, 101, 110), relayLatencyMetric))
	if got := d.quantile(0.95); got != 0.004 {
		t.Errorf("quantile in +Inf = %v, want 0.004", got)
	}
	// nothing observed
	if got := histogramDelta(before, before).quantile(0.5); !math.IsNaN(got) {
		t.Errorf("empty quantile = %v, want NaN", got)
	}
	if got := metricHistogram(map[string]float64{}, relayLatencyMetric).quantile(0.5); !math.IsNaN(got) {
		t.Errorf("missing histogram quantile = %v, want NaN", got)
	}
}

// TestLoadTable: a column per binary (median of its rounds), the ratio of
// the second to the first, "–" where nothing was measured or the base is
// zero, and rows nobody measured left out.
func TestLoadTable(t *testing.T) {
	base := medianFigures([]loadFigures{
		{rowCoresCams: 0.070, rowCoresPerView: 0.0024, rowDrops: 0},
		{rowCoresCams: 0.060, rowCoresPerView: 0.0026, rowDrops: 0},
		{rowCoresCams: 0.100, rowCoresPerView: math.NaN(), rowDrops: 0},
	})
	next := medianFigures([]loadFigures{
		{rowCoresCams: 0.035, rowCoresPerView: 0.0012, rowDrops: 3},
		{rowCoresCams: 0.035, rowCoresPerView: 0.0014, rowDrops: 5},
	})
	var b bytes.Buffer
	writeLoadTable(&b, []string{"base", "new"}, []loadFigures{base, next})
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := [][]string{
		{"base", "new", "new/base"},
		{"server", "cores,", "cameras", "only", "0.070", "0.035", "0.50"},
		{"cores", "per", "viewer", "0.00250", "0.00130", "0.52"},
		{"frames", "dropped", "(slow", "viewers)", "0", "4", "–"},
	}
	if len(lines) != len(want) {
		t.Fatalf("table:\n%s", b.String())
	}
	for i, l := range lines {
		if got := strings.Fields(l); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("line %d = %q, want fields %q", i, l, want[i])
		}
	}
	// one binary: no ratio column
	b.Reset()
	writeLoadTable(&b, []string{"this"}, []loadFigures{{rowLoss: 0.5}})
	if got := strings.Fields(strings.Split(b.String(), "\n")[1]); !reflect.DeepEqual(got, []string{"loss", "%", "0.50"}) {
		t.Errorf("one binary: %q", b.String())
	}
}

func TestRoundOrder(t *testing.T) {
	for _, c := range []struct {
		n, r int
		want []int
	}{
		{2, 0, []int{0, 1}}, {2, 1, []int{1, 0}}, {2, 2, []int{0, 1}},
		{3, 1, []int{2, 1, 0}}, {1, 1, []int{0}},
	} {
		if got := roundOrder(c.n, c.r); !reflect.DeepEqual(got, c.want) {
			t.Errorf("roundOrder(%d, %d) = %v, want %v", c.n, c.r, got, c.want)
		}
	}
}

func TestH264KeyframeStart(t *testing.T) {
	for _, c := range []struct {
		name string
		p    []byte
		want bool
	}{
		{"IDR slice", []byte{0x65, 1, 2}, true},
		{"SPS", []byte{0x67, 0x42}, true},
		{"non-IDR slice", []byte{0x41, 1}, false},
		{"PPS", []byte{0x68, 1}, false},
		{"STAP-A with SPS and PPS", []byte{0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 1}, true},
		{"STAP-A with SEI then IDR", []byte{0x78, 0, 2, 0x06, 1, 0, 2, 0x65, 1}, true},
		{"STAP-A without", []byte{0x78, 0, 2, 0x06, 1, 0, 2, 0x68, 1}, false},
		{"STAP-A cut short", []byte{0x78, 0, 9}, false},
		{"FU-A start of IDR", []byte{0x7c, 0x85, 1}, true},
		{"FU-A middle of IDR", []byte{0x7c, 0x05, 1}, false},
		{"FU-A start of non-IDR", []byte{0x5c, 0x81, 1}, false},
		{"FU-A header only", []byte{0x7c}, false},
		{"empty", nil, false},
	} {
		if got := h264KeyframeStart(c.p); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestViewerLoad runs the command itself on the smallest load: a node (the
// test binary as `bwc serve`), one camera of the committed capture, one
// viewer in a child process, then the same with the viewer on a second
// node (1x1r: the camera pulled over the inter-node link); the last
// table must show the viewer receiving video and the servers working.
func TestViewerLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node and a camera")
	}
	t.Setenv(childEnv, "serve") // the nodes and the viewer process are this test binary
	owner := storagetest.DatabaseURL(t)
	b := storagetest.NewBucket(t)
	dir := t.TempDir()
	args := []string{
		"-database-url", storagetest.AppURL(t, owner), "-migrate-database-url", owner,
		"-s3-endpoint", b.Endpoint, "-s3-access-key", b.AccessKey, "-s3-secret-key", b.SecretKey, "-s3-bucket", b.Bucket,
		"-retention-mode", "governance", "-signing-key", filepath.Join(dir, "key.pem"),
		"-capture", filepath.Join("..", "..", "testdata", "sample.ts"), "-dir", dir,
		"-phases", "1x1,1x1r", "-rounds", "1", "-duration", "1s", "-warmup", "0s",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := viewerload(ctx, args, &out); err != nil {
		t.Fatalf("viewerload: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	rows := map[string][]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		for _, r := range loadRows {
			if rest, ok := strings.CutPrefix(l, r.name); ok {
				rows[r.name] = strings.Fields(rest)
			}
		}
	}
	positive := func(row string) {
		t.Helper()
		f := rows[row]
		if len(f) != 1 || f[0] == "–" || strings.Trim(f[0], "0.") == "" {
			t.Errorf("%s: %q, want one positive figure", row, f)
		}
	}
	positive(rowCoresCams)
	positive(rowRSSView)
	positive(rowMbitPerView)
	positive(rowCamMbit)
	positive(rowFirstP50)
	if f := rows[rowFirstMissing]; len(f) != 1 || f[0] != "0" {
		t.Errorf("viewers without a keyframe: %q", f)
	}
}

// TestServeFlagsOf: the flags read from a binary's `serve -h` are every
// flag clusterNode gives a node (none silently dropped), and a binary
// without them is refused.
func TestServeFlagsOf(t *testing.T) {
	t.Setenv(childEnv, "serve") // this test binary runs `bwc serve -h`
	flags, err := serveFlagsOf(context.Background(), os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	args := serveArgs(defaultConfig())
	for _, a := range args {
		if name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "="); !flags[name] {
			t.Errorf("serve -h does not list -%s", name)
		}
	}
	if len(flags) != len(args) {
		t.Errorf("%d flags read from serve -h, serve has %d", len(flags), len(args))
	}
	if _, err := serveFlagsOf(context.Background(), "/bin/true"); err == nil {
		t.Error("a binary listing no serve flags is accepted")
	}
}
