package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// loadviewers is `bwc viewerload`'s viewer process (hidden): it logs in
// to one node and opens a WHEP viewer per recording ID of -recordings (an
// ID may repeat), prints {"event":"ready"} once every viewer's answer is
// in, then answers each "stats" line on its standard input with one JSON
// line of its totals (viewerReport); it closes its viewers and exits at
// the end of its input.
func loadviewers(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("bwc loadviewers", flag.ContinueOnError)
	base := fs.String("base", "", "the node's web address, http://host:port")
	login := fs.String("login", "", "a supervisor's login")
	password := fs.String("password", "", "its password (BWC_PASSWORD)")
	recs := fs.String("recordings", "", "recording IDs, comma-separated: a viewer each")
	parallel := fs.Int("parallel", 4, "viewers being connected at once")
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return err
	}
	var ids []uuid.UUID
	for _, s := range strings.Split(*recs, ",") {
		id, err := uuid.Parse(s)
		if err != nil {
			return fmt.Errorf("bwc loadviewers -recordings: %w", err)
		}
		ids = append(ids, id)
	}
	s, err := webLogin(*base, *login, *password)
	if err != nil {
		return err
	}
	var c viewerCounters
	pcs := make([]*webrtc.PeerConnection, len(ids))
	defer func() {
		for _, pc := range pcs {
			if pc != nil {
				pc.Close()
			}
		}
	}()
	errs := make([]error, len(ids))
	sem := make(chan struct{}, max(*parallel, 1))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			pcs[i], errs[i] = c.viewer(ctx, s, id)
		}()
	}
	wg.Wait()
	enc := json.NewEncoder(out)
	if err := errors.Join(errs...); err != nil {
		_ = enc.Encode(viewerReport{Event: "error", Error: err.Error()})
		return err
	}
	if err := enc.Encode(viewerReport{Event: "ready", Viewers: len(ids)}); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if sc.Text() != "stats" {
			continue
		}
		if err := enc.Encode(c.report(len(ids))); err != nil {
			return err
		}
	}
	return sc.Err()
}

// viewerReport is a viewer process's line: ready, error, or its totals
// since it started.
type viewerReport struct {
	Event   string `json:"event"` // ready, stats, error
	Viewers int    `json:"viewers"`
	Error   string `json:"error,omitempty"`
	Packets uint64 `json:"packets"` // RTP packets of video received
	Bytes   uint64 `json:"bytes"`   // their size
	Lost    uint64 `json:"lost"`    // sequence numbers missed
	// from the WHEP POST to the first packet of a keyframe, per viewer
	// that has had one
	FirstFrameMS []float64 `json:"first_frame_ms"`
}

// viewerCounters are a viewer process's totals.
type viewerCounters struct {
	packets, bytes, lost atomic.Uint64
	mu                   sync.Mutex
	firstFrame           []float64 // ms
}

func (c *viewerCounters) report(viewers int) viewerReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return viewerReport{Event: "stats", Viewers: viewers, Packets: c.packets.Load(), Bytes: c.bytes.Load(), Lost: c.lost.Load(),
		FirstFrameMS: append([]float64{}, c.firstFrame...)}
}

// viewer opens one WHEP viewer of rec that counts into c.
func (c *viewerCounters) viewer(ctx context.Context, s *webSession, rec uuid.UUID) (*webrtc.PeerConnection, error) {
	var posted time.Time
	var once sync.Once
	post := whepAnswer(ctx, s, rec)
	return recvViewer(func() func(*rtp.Packet) {
		var last uint16
		first := true
		return func(p *rtp.Packet) {
			if d := int16(p.SequenceNumber - last - 1); !first && d > 0 {
				c.lost.Add(uint64(d))
			}
			first, last = false, p.SequenceNumber
			c.packets.Add(1)
			c.bytes.Add(uint64(p.MarshalSize()))
			if h264KeyframeStart(p.Payload) {
				once.Do(func() {
					ms := float64(time.Since(posted).Microseconds()) / 1000
					c.mu.Lock()
					c.firstFrame = append(c.firstFrame, ms)
					c.mu.Unlock()
				})
			}
		}
	}, func(offer string) (string, error) {
		posted = time.Now()
		return post(offer)
	})
}

// h264KeyframeStart tells whether an H.264 RTP payload (RFC 6184) starts
// a keyframe: an IDR slice or a sequence parameter set, alone, in a
// STAP-A, or as the first fragment of an FU-A.
func h264KeyframeStart(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	key := func(t byte) bool { return t == 5 || t == 7 }
	switch t := p[0] & 0x1f; t {
	case 24: // STAP-A: 16-bit sizes, each followed by a NAL unit
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			if size > 0 && key(p[i+2]&0x1f) {
				return true
			}
			i += 2 + size
		}
		return false
	case 28: // FU-A
		return len(p) >= 2 && p[1]&0x80 != 0 && key(p[1]&0x1f)
	default:
		return key(t)
	}
}

// viewerProc is a running `bwc loadviewers`.
type viewerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
	log   *os.File
}

func startViewerProc(ctx context.Context, exe, logPath, base, login, password string, recs []string) (*viewerProc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "loadviewers", "-base", base, "-login", login, "-recordings", strings.Join(recs, ","))
	cmd.Env = append(os.Environ(), "BWC_PASSWORD="+password)
	cmd.Stderr = lf
	vp := &viewerProc{cmd: cmd, log: lf}
	if vp.stdin, err = cmd.StdinPipe(); err != nil {
		lf.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	vp.lines = bufio.NewScanner(stdout)
	vp.lines.Buffer(make([]byte, 64<<10), 16<<20)
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	return vp, nil
}

// next reads the process's next line (up to wait).
func (vp *viewerProc) next(wait time.Duration) (viewerReport, error) {
	var r viewerReport
	got := make(chan error, 1)
	go func() {
		if !vp.lines.Scan() {
			got <- fmt.Errorf("viewer process ended: %v", vp.lines.Err())
			return
		}
		got <- json.Unmarshal(vp.lines.Bytes(), &r)
	}()
	select {
	case err := <-got:
		if err == nil && r.Event == "error" {
			err = errors.New(r.Error)
		}
		return r, err
	case <-time.After(wait):
		return r, fmt.Errorf("viewer process silent for %v (log %s)", wait, vp.log.Name())
	}
}

func (vp *viewerProc) waitReady(wait time.Duration) error {
	r, err := vp.next(wait)
	if err != nil {
		return fmt.Errorf("viewers (log %s): %w", vp.log.Name(), err)
	}
	if r.Event != "ready" {
		return fmt.Errorf("viewers: %q, not ready", r.Event)
	}
	return nil
}

// close ends the process (end of its input) and waits for it.
func (vp *viewerProc) close() {
	vp.stdin.Close()
	t := time.AfterFunc(30*time.Second, func() { _ = vp.cmd.Process.Kill() })
	_ = vp.cmd.Wait()
	t.Stop()
	vp.log.Close()
}

// viewerStats asks every viewer process for its totals and adds them up.
func viewerStats(vps []*viewerProc) (viewerReport, error) {
	var sum viewerReport
	for _, vp := range vps {
		if _, err := io.WriteString(vp.stdin, "stats\n"); err != nil {
			return sum, err
		}
	}
	for _, vp := range vps {
		r, err := vp.next(30 * time.Second)
		if err != nil {
			return sum, err
		}
		sum.Viewers += r.Viewers
		sum.Packets += r.Packets
		sum.Bytes += r.Bytes
		sum.Lost += r.Lost
		sum.FirstFrameMS = append(sum.FirstFrameMS, r.FirstFrameMS...)
	}
	return sum, nil
}
