package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediafile"
	"github.com/bwcplatform/bwc/storage/durable"
	"github.com/bwcplatform/bwc/storage/index"
)

// camOptions are the flags of `bwc cam`.
type camOptions struct {
	cfg                          Config
	n                            int
	server, prefix, secret, file string
	duration                     time.Duration
	create                       bool
	metrics                      string
}

func parseCamFlags(args []string) (camOptions, error) {
	o := camOptions{cfg: defaultConfig()}
	fs := flag.NewFlagSet("bwc cam", flag.ContinueOnError)
	o.cfg.register(fs)
	fs.IntVar(&o.n, "n", 1, "number of cameras")
	fs.StringVar(&o.server, "server", "", "RTSP host:port of the server; default: -rtsp-addr")
	fs.StringVar(&o.prefix, "prefix", "LOAD-CAM-", "device serial prefix: cameras are <prefix>0001...")
	fs.StringVar(&o.secret, "secret", "load-camera-secret", "the cameras' RTSP secret")
	fs.StringVar(&o.file, "file", "testdata/sample.ts", "MPEG-TS capture (H.264 + AAC) the cameras send in a loop")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until interrupted)")
	fs.BoolVar(&o.create, "create-devices", true, "register the devices (in -database-url) when missing")
	fs.StringVar(&o.metrics, "metrics", "", "the server's /metrics URL, to report its CPU and memory per stream")
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return o, err
	}
	if o.n < 1 {
		return o, errors.New("bwc cam -n: at least 1")
	}
	if o.server == "" {
		o.server = o.cfg.RTSPAddr
	}
	return o, nil
}

// cam runs N simulated body cameras against a running server: each
// publishes a capture (H.264 + AAC) in a loop in real time over
// TCP-interleaved RTSP with digest auth, reconnecting when dropped. With
// -metrics it reads the server's own process metrics before and after and
// prints the server's CPU seconds per stream-second and RSS per stream.
func cam(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseCamFlags(args)
	if err != nil {
		return err
	}
	sample, err := mediafile.Decode(o.file)
	if err != nil {
		return fmt.Errorf("bwc cam -file: %w", err)
	}
	serials := make([]string, o.n)
	for i := range serials {
		serials[i] = fmt.Sprintf("%s%04d", o.prefix, i+1)
	}
	if o.create {
		if err := ensureDevices(ctx, o.cfg, serials, o.secret); err != nil {
			return err
		}
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	var before procStats
	if o.metrics != "" {
		if before, err = scrape(o.metrics); err != nil {
			return err
		}
	}
	start := time.Now()
	fmt.Fprintf(out, "%d camera(s) publishing %s to rtsp://%s/live/%s....\n", o.n, o.file, o.server, o.prefix)
	peakRSS := make(chan float64, 1)
	go func() { peakRSS <- samplePeakRSS(ctx, o.metrics) }()
	sent, reconnects := runCameras(ctx, o, serials, sample)
	peak := <-peakRSS
	elapsed := time.Since(start)
	fmt.Fprintf(out, "cameras: %d, elapsed: %.1f s, sent: %.1f MB (%.2f Mbit/s per camera), reconnects: %d\n",
		o.n, elapsed.Seconds(), float64(sent)/1e6, float64(sent)*8/1e6/elapsed.Seconds()/float64(o.n), reconnects)
	if o.metrics == "" {
		return nil
	}
	after, err := scrape(o.metrics)
	if err != nil {
		return err
	}
	reportServer(out, before, after, peak, elapsed, o.n)
	return nil
}

// runCameras publishes the sample from every serial until ctx ends,
// reconnecting a dropped camera after a second; it returns the payload
// bytes sent and the reconnections.
func runCameras(ctx context.Context, o camOptions, serials []string, sample *mediafile.Sample) (sent, reconnects int64) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var nSent, nReconnects atomic.Int64
	var wg sync.WaitGroup
	for i, serial := range serials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// spread the starts over a second so that keyframes do not align
			if !durable.Sleep(ctx, time.Duration(i)*time.Second/time.Duration(len(serials))) {
				return
			}
			url := fmt.Sprintf("rtsp://%s:%s@%s/live/%s", serial, o.secret, o.server, serial)
			for ctx.Err() == nil {
				err := publish(ctx, url, sample, &nSent)
				if ctx.Err() != nil {
					return
				}
				nReconnects.Add(1)
				log.Warn("camera dropped, reconnecting", "device", serial, "err", err)
				durable.Sleep(ctx, time.Second)
			}
		}()
	}
	wg.Wait()
	return nSent.Load(), nReconnects.Load()
}

// samplePeakRSS is the server's peak memory while the cameras are
// connected: samples every 2 s until ctx ends (0 without a metrics URL).
func samplePeakRSS(ctx context.Context, metrics string) float64 {
	var peak float64
	if metrics == "" {
		return peak
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return peak
		case <-t.C:
			if st, err := scrape(metrics); err == nil && st.rss > peak {
				peak = st.rss
			}
		}
	}
}

// reportServer prints the server's CPU and memory per stream and the
// archive's figures between two scrapes.
func reportServer(out io.Writer, before, after procStats, peakRSS float64, elapsed time.Duration, n int) {
	streamSeconds := elapsed.Seconds() * float64(n)
	fmt.Fprintf(out, "server: CPU %.2f s over %.0f stream-seconds = %.4f CPU-s per stream-second (%.1f%% of a core per camera)\n",
		after.cpu-before.cpu, streamSeconds, (after.cpu-before.cpu)/streamSeconds, 100*(after.cpu-before.cpu)/streamSeconds)
	fmt.Fprintf(out, "server: RSS %.1f MB before, %.1f MB (peak) with %d cameras = %.2f MB per stream\n",
		before.rss/1e6, peakRSS/1e6, n, (peakRSS-before.rss)/1e6/float64(n))
	segs := after.m["bwc_archive_segments_sealed_total"] - before.m["bwc_archive_segments_sealed_total"]
	mb := (after.m["bwc_archive_spooled_bytes_total"] - before.m["bwc_archive_spooled_bytes_total"]) / 1e6
	cores := (after.cpu - before.cpu) / elapsed.Seconds()
	fmt.Fprintf(out, "archive: %.0f segments (%.2f/s), %.1f MB (%.2f MB/s; %.2f MB/s per core used), upload lag median %.2f s, p99 %.2f s\n",
		segs, segs/elapsed.Seconds(), mb, mb/elapsed.Seconds(), mb/elapsed.Seconds()/max(cores, 1e-9),
		lagQuantile(before, after, 0.5), lagQuantile(before, after, 0.99))
}

// publish sends the sample in a loop, in real time (Sample.Play), until
// ctx ends or the connection fails.
func publish(ctx context.Context, url string, s *mediafile.Sample, sent *atomic.Int64) error {
	vf := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: s.Video.SPS, PPS: s.Video.PPS}
	var conf mpeg4audio.AudioSpecificConfig
	if err := conf.Unmarshal(s.Audio.AudioConfig); err != nil {
		return err
	}
	af := &format.MPEG4Audio{PayloadTyp: 97, Config: &conf, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
	vm := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{vf}}
	am := &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{af}}
	venc, err := vf.CreateEncoder()
	if err != nil {
		return err
	}
	aenc, err := af.CreateEncoder()
	if err != nil {
		return err
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Transport: &tcp, WriteQueueSize: 4096} // a loaded load generator must not drop itself
	if err := c.StartRecording(url, &description.Session{Medias: []*description.Media{vm, am}}); err != nil {
		return err
	}
	defer c.Close()
	return s.Play(ctx, 1, 0, func(f *media.Frame) error {
		return sendFrame(c, f, vm, am, venc, aenc, af.ClockRate(), sent)
	})
}

// sendFrame packetizes one frame (its PTS already shifted by the pass)
// and writes it.
func sendFrame(c *gortsplib.Client, f *media.Frame, vm, am *description.Media,
	venc *rtph264.Encoder, aenc *rtpmpeg4audio.Encoder, audioRate int, sent *atomic.Int64) error {
	pts := f.PTS
	m, ts := vm, uint32(int64(pts)*90000/int64(time.Second))
	var err error
	var pkts []*rtp.Packet
	if f.Track.Kind == media.Video {
		pkts, err = venc.Encode(f.AU)
	} else {
		m, ts = am, uint32(int64(pts)*int64(audioRate)/int64(time.Second))
		pkts, err = aenc.Encode(f.AU)
	}
	if err != nil {
		return err
	}
	now := time.Now()
	for _, p := range pkts {
		p.Timestamp = ts
		if err := c.WritePacketRTPWithNTP(m, p, now); err != nil {
			return err
		}
		sent.Add(int64(len(p.Payload)))
	}
	return nil
}

// ensureDevices registers the load cameras when missing.
func ensureDevices(ctx context.Context, cfg Config, serials []string, secret string) error {
	db, err := index.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range serials {
		if _, err := db.DeviceBySerial(ctx, s); err == nil {
			continue
		} else if !errors.Is(err, index.ErrNotFound) {
			return err
		}
		if _, err := db.CreateDevice(ctx, index.Device{Serial: s, Model: "bwc cam (simulated)", Secret: secret}); err != nil {
			return err
		}
	}
	return nil
}

type procStats struct {
	cpu, rss float64
	m        map[string]float64 // every sample, by name{labels}
}

// scrape reads a Prometheus text endpoint: the process's CPU and memory,
// and every other sample for the archive's figures.
func scrape(url string) (procStats, error) {
	st := procStats{m: map[string]float64{}}
	res, err := http.Get(url)
	if err != nil {
		return st, fmt.Errorf("bwc cam -metrics: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return st, fmt.Errorf("bwc cam -metrics: %s", res.Status)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		st.m[line[:i]] = v
	}
	st.cpu, st.rss = st.m["process_cpu_seconds_total"], st.m["process_resident_memory_bytes"]
	if st.rss == 0 {
		return st, fmt.Errorf("bwc cam -metrics: %s has no process metrics", url)
	}
	return st, sc.Err()
}

// lagQuantile estimates a quantile of the archive's upload lag from the
// histogram's growth between two scrapes (bucket upper bounds).
func lagQuantile(before, after procStats, q float64) float64 {
	const name = "bwc_archive_upload_lag_seconds_bucket{le=\""
	type b struct{ le, n float64 }
	var bs []b
	for k, v := range after.m {
		if !strings.HasPrefix(k, name) {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(k, name), "\"}"), 64)
		if err != nil {
			le = math.Inf(1)
		}
		bs = append(bs, b{le, v - before.m[k]})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return math.NaN()
	}
	total := bs[len(bs)-1].n
	for _, x := range bs {
		if x.n >= q*total {
			return x.le
		}
	}
	return math.Inf(1)
}
