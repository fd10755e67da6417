package transcode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
)

// OpusRate is Opus's clock in WebRTC.
const OpusRate = 48000

// Live converts a live stream of AAC access units to Opus packets with one
// ffmpeg child: AAC in on its standard input (as ADTS), Ogg Opus out on its
// standard output, 20 ms packets flushed one by one. Write never blocks:
// access units beyond the bounded queue are dropped and counted, so a
// stuck or slow child never holds up its caller.
type Live struct {
	conf    mpeg4audio.AudioSpecificConfig
	in      chan []byte
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	dropped atomic.Uint64
	err     error // why the child ended, read after Close
	once    sync.Once
}

// Packet is one Opus packet and its duration in samples at OpusRate.
type Packet struct {
	Data     []byte
	Duration int
}

// StartOpus starts converting AAC of configuration conf (AudioSpecificConfig
// bytes) to Opus; out gets each packet, in order, on the converter's own
// goroutine. queue bounds the access units waiting for the child. Close
// kills the child and waits for the converter's goroutines.
func (f FFmpeg) StartOpus(conf []byte, queue int, out func(Packet)) (*Live, error) {
	var c mpeg4audio.AudioSpecificConfig
	if err := c.Unmarshal(conf); err != nil {
		return nil, fmt.Errorf("start Opus: AAC config: %w", err)
	}
	if queue <= 0 {
		return nil, fmt.Errorf("start Opus: queue %d, must be positive", queue)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, f.Path, "-hide_banner", "-loglevel", "error", "-nostats",
		"-fflags", "+nobuffer", "-flags", "low_delay", "-probesize", "32", "-analyzeduration", "0",
		"-f", "aac", "-i", "pipe:0",
		"-c:a", "libopus", "-b:a", strconv.Itoa(32000*min(c.ChannelCount, 2)), "-application", "lowdelay", "-frame_duration", "20",
		"-ar", strconv.Itoa(OpusRate), "-f", "ogg", "-page_duration", "20000", "-flush_packets", "1", "pipe:1")
	cmd.WaitDelay = time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start Opus: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start Opus: %w", err)
	}
	var stderr limitedBuffer
	stderr.max = 4096
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start Opus: %w: %v", ErrUnavailable, err)
	}
	l := &Live{conf: c, in: make(chan []byte, queue), cancel: cancel}
	l.wg.Add(2)
	go func() { // the child's input
		defer l.wg.Done()
		defer stdin.Close()
		l.feed(ctx, stdin)
	}()
	go func() { // its output, then its end
		defer l.wg.Done()
		rerr := readOpus(stdout, out) // never nil: io.EOF at the child's clean end
		cancel()                      // output over: nothing more to convert
		werr := cmd.Wait()
		if !errors.Is(rerr, io.EOF) {
			l.err = errors.Join(rerr, werr, errors.New(strings.TrimSpace(stderr.String())))
		}
	}()
	return l, nil
}

// feed writes queued access units to the child as ADTS until ctx ends or
// the child stops reading.
func (l *Live) feed(ctx context.Context, w io.Writer) {
	for {
		select {
		case <-ctx.Done():
			return
		case au := <-l.in:
			pkt, err := mpeg4audio.ADTSPackets{{Type: l.conf.Type, SampleRate: l.conf.SampleRate,
				ChannelCount: l.conf.ChannelCount, AU: au}}.Marshal()
			if err != nil {
				continue // an access unit too large for ADTS
			}
			if _, err := w.Write(pkt); err != nil {
				return
			}
		}
	}
}

// readOpus passes the Opus packets of an Ogg stream to out (the OpusHead
// and OpusTags headers skipped).
func readOpus(r io.Reader, out func(Packet)) error {
	o := newOggReader(r)
	for {
		p, err := o.next()
		if err != nil {
			return err
		}
		if bytes.HasPrefix(p, []byte("OpusHead")) || bytes.HasPrefix(p, []byte("OpusTags")) || len(p) == 0 {
			continue
		}
		d := opus.PacketDuration2(p)
		if d <= 0 {
			continue
		}
		out(Packet{Data: p, Duration: int(d)})
	}
}

// Write queues an AAC access unit; it never blocks. It reports false when
// the unit was dropped (the queue is full, or the converter closed).
func (l *Live) Write(au []byte) bool {
	select {
	case l.in <- au:
		return true
	default:
		l.dropped.Add(1)
		return false
	}
}

// Dropped counts the access units Write dropped.
func (l *Live) Dropped() uint64 { return l.dropped.Load() }

// Close kills the child and waits for the converter's goroutines; it
// returns why the child ended early, if it did.
func (l *Live) Close() error {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
	})
	return l.err
}
