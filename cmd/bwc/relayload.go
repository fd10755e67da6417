package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediafile"
	"github.com/bwcplatform/bwc/relay"
)

// relayload measures the live relay in one process: N live recordings
// (the capture played in real time) each watched by M WHEP viewers (pion
// peer connections over loopback), for a duration. It prints CPU seconds
// per forwarded Mbit, packets per second, the relay's added latency
// (frame read from the recording → last packet written to the viewer,
// median and p99) and drops.
func relayload(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bwc relayload", flag.ContinueOnError)
	n := fs.Int("recordings", 4, "live recordings")
	m := fs.Int("viewers", 8, "viewers per recording")
	duration := fs.Duration("duration", 10*time.Second, "how long to measure")
	file := fs.String("file", "testdata/sample.ts", "MPEG-TS capture (H.264 + AAC) each recording plays")
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return err
	}
	sample, err := mediafile.Decode(*file)
	if err != nil {
		return err
	}
	src := &loadSource{m: map[uuid.UUID]*media.Stream{}}
	reg := prometheus.NewRegistry()
	r, err := relay.New(relay.Config{UDPAddr: "127.0.0.1:0", QueueFrames: defaultConfig().RelayQueueFrames, MaxViewers: *n * *m}, src, reg, nil)
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel (defers run last first)
	defer cancel()
	ran := make(chan error, 1)
	wg.Add(1)
	go func() { defer wg.Done(); ran <- r.Run(ctx) }()
	select {
	case <-r.Ready():
	case err := <-ran:
		return err
	}
	ids := make([]uuid.UUID, *n)
	for i := range ids {
		ids[i] = uuid.New()
		st := media.NewStream(media.Info{RecordingID: ids[i], StartedAt: time.Now(), Tracks: []*media.Track{sample.Video, sample.Audio}})
		src.put(ids[i], st)
		wg.Add(1)
		go func() { defer wg.Done(); play(ctx, st, sample) }()
	}
	time.Sleep(1500 * time.Millisecond) // a GOP in the cache
	var got, lost atomic.Uint64
	var pcs []*webrtc.PeerConnection
	defer func() {
		for _, pc := range pcs {
			pc.Close()
		}
	}()
	for _, id := range ids {
		for j := 0; j < *m; j++ {
			pc, err := loadViewer(ctx, r, id, &got, &lost)
			if err != nil {
				return fmt.Errorf("viewer %d of %s: %w", j, id, err)
			}
			pcs = append(pcs, pc)
		}
	}
	time.Sleep(2 * time.Second) // connected, past the GOP burst
	cpu0, t0 := cpuTime(), time.Now()
	bytes0, pkts0 := sentTotals(r)
	select {
	case <-time.After(*duration):
	case <-ctx.Done():
		return ctx.Err()
	}
	cpu, el := cpuTime()-cpu0, time.Since(t0)
	bytes1, pkts1 := sentTotals(r)
	mbit := float64(bytes1-bytes0) * 8 / 1e6
	p50, p99 := latencyQuantiles(reg)
	drops := counterValue(reg, "bwc_relay_viewer_dropped_frames_total")
	fmt.Fprintf(out, "relay load: %d recordings x %d viewers = %d viewers, %.1f s\n", *n, *m, *n**m, el.Seconds())
	fmt.Fprintf(out, "forwarded: %.1f Mbit/s, %.0f packets/s\n", mbit/el.Seconds(), float64(pkts1-pkts0)/el.Seconds())
	fmt.Fprintf(out, "CPU: %.2f s = %.4f CPU-s per forwarded Mbit (whole process: relay, the %d pion viewers decrypting, the sources)\n",
		cpu.Seconds(), cpu.Seconds()/mbit, *n**m)
	fmt.Fprintf(out, "added latency (frame read -> last packet written): median %.2f ms, p99 %.2f ms\n", p50*1000, p99*1000)
	fmt.Fprintf(out, "dropped: %.0f frames by the relay (slow viewers), %d packets lost before the viewers (of %d)\n", drops, lost.Load(), got.Load())
	return nil
}

type loadSource struct {
	mu sync.Mutex
	m  map[uuid.UUID]*media.Stream
}

func (s *loadSource) put(id uuid.UUID, st *media.Stream) { s.mu.Lock(); s.m[id] = st; s.mu.Unlock() }
func (s *loadSource) Stream(id uuid.UUID) (*media.Stream, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.m[id]
	return st, ok
}

// play writes the capture into the stream in real time, in a loop.
func play(ctx context.Context, st *media.Stream, s *mediafile.Sample) {
	defer st.Close()
	_ = s.Play(ctx, 1, 0, func(f *media.Frame) error { st.Write(f); return nil })
}

// loadViewer connects one pion viewer to the relay in process and counts
// its packets and losses.
func loadViewer(ctx context.Context, r *relay.Server, id uuid.UUID, got, lost *atomic.Uint64) (*webrtc.PeerConnection, error) {
	return countingViewer(got, lost, func(offer string) (string, error) {
		a, err := r.Offer(ctx, id, relay.Viewer{Name: "relayload", Owner: "relayload"}, offer)
		return a.SDP, err
	})
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func sentTotals(r *relay.Server) (bytes, packets uint64) {
	for _, s := range r.Stats() {
		bytes += s.Bytes
		packets += s.Packets
	}
	return
}

// latencyQuantiles estimates the median and p99 of the relay's added
// latency from its histogram (upper bucket bounds).
func latencyQuantiles(reg *prometheus.Registry) (p50, p99 float64) {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "bwc_relay_added_latency_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		total := float64(h.GetSampleCount())
		type b struct{ le, n float64 }
		var bs []b
		for _, x := range h.GetBucket() {
			bs = append(bs, b{x.GetUpperBound(), float64(x.GetCumulativeCount())})
		}
		sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
		q := func(p float64) float64 {
			for _, x := range bs {
				if x.n >= p*total {
					return x.le
				}
			}
			return math.Inf(1)
		}
		return q(0.5), q(0.99)
	}
	return 0, 0
}

func counterValue(reg *prometheus.Registry, name string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
