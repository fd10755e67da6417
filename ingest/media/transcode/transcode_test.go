package transcode

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ff = FFmpeg{Path: "ffmpeg"}

// sine makes seconds of a 440 Hz tone as 16-bit LPCM.
func sine(rate, channels int, seconds float64, little bool) []byte {
	n := int(float64(rate) * seconds)
	out := make([]byte, 0, n*channels*2)
	for i := range n {
		v := uint16(int16(8000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate))))
		for range channels {
			if little {
				out = binary.LittleEndian.AppendUint16(out, v)
			} else {
				out = binary.BigEndian.AppendUint16(out, v)
			}
		}
	}
	return out
}

func TestEncodeAAC(t *testing.T) {
	if err := ff.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pcm  PCM
	}{
		{"G.711 as archived: 8 kHz mono big-endian", PCM{Rate: 8000, Channels: 1, BitDepth: 16}},
		{"16 kHz stereo little-endian", PCM{Rate: 16000, Channels: 2, BitDepth: 16, LittleEndian: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			aus, err := ff.EncodeAAC(context.Background(), tc.pcm, sine(tc.pcm.Rate, tc.pcm.Channels, 1, tc.pcm.LittleEndian))
			if err != nil {
				t.Fatal(err)
			}
			// one second at 48 kHz, plus the encoder's delay, in 1024-sample units
			if want := (AACRate + AACDelay) / 1024; len(aus) < want || len(aus) > want+2 {
				t.Fatalf("%d access units, want about %d", len(aus), want)
			}
			for i, au := range aus {
				if len(au) == 0 {
					t.Fatalf("access unit %d empty", i)
				}
			}
		})
	}
}

func TestEncodeAACRefusesAndFails(t *testing.T) {
	if _, err := ff.EncodeAAC(context.Background(), PCM{Rate: 8000, Channels: 1, BitDepth: 12}, nil); err == nil {
		t.Fatal("12-bit LPCM accepted")
	}
	missing := FFmpeg{Path: filepath.Join(t.TempDir(), "no-ffmpeg")}
	if _, err := missing.EncodeAAC(context.Background(), PCM{Rate: 8000, Channels: 1, BitDepth: 16}, sine(8000, 1, 0.1, false)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("missing ffmpeg: %v, want ErrUnavailable", err)
	}
	if err := missing.Check(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Check of a missing ffmpeg: %v", err)
	}
}

func TestLiveOpusFromAAC(t *testing.T) {
	pcm := PCM{Rate: 48000, Channels: 1, BitDepth: 16}
	aus, err := ff.EncodeAAC(context.Background(), pcm, sine(48000, 1, 2, false))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	total, packets := 0, 0
	l, err := ff.StartOpus(AACConfigBytes(t, pcm), 256, func(p Packet) {
		mu.Lock()
		total += p.Duration
		packets++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, au := range aus {
		if !l.Write(au) {
			t.Fatal("an access unit dropped with room in the queue")
		}
	}
	// 20 ms packets come out while the input is still open (live, no
	// waiting for the end of the stream)
	mediatest.Eventually(t, "Opus packets from the converter", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return total >= OpusRate // one second of the two
	})
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if total/packets != OpusRate/50 {
		t.Fatalf("%d packets of %d samples on average, want 20 ms packets", packets, total/packets)
	}
}

func AACConfigBytes(t *testing.T, p PCM) []byte {
	t.Helper()
	c := AACConfig(p)
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A child that never reads nor writes: Write keeps returning at once
// (dropping beyond the queue), and Close kills it.
func TestLiveStuckChildNeverBlocks(t *testing.T) {
	script := filepath.Join(t.TempDir(), "stuck")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	stuck := FFmpeg{Path: script}
	l, err := stuck.StartOpus(AACConfigBytes(t, PCM{Rate: 48000, Channels: 1, BitDepth: 16}), 8, func(Packet) { t.Error("a packet from a stuck child") })
	if err != nil {
		t.Fatal(err)
	}
	au := bytes.Repeat([]byte{1}, 200)
	for range 10000 { // far more than a pipe buffer and the queue hold
		l.Write(au)
	}
	if l.Dropped() == 0 {
		t.Fatal("nothing dropped by a stuck child")
	}
	done := make(chan struct{})
	go func() { l.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not end a stuck child")
	}
}

// oggPage builds one Ogg page of packets (each under 255 bytes).
func oggPage(flags byte, packets ...[]byte) []byte {
	hdr := make([]byte, 27)
	copy(hdr, "OggS")
	hdr[5] = flags
	hdr[26] = byte(len(packets))
	var body []byte
	for _, p := range packets {
		hdr = append(hdr, byte(len(p)))
		body = append(body, p...)
	}
	return append(hdr, body...)
}

func TestOggReader(t *testing.T) {
	long := bytes.Repeat([]byte{7}, 300) // 255 + 45: laced over two segments
	page2 := append(oggPage(0, []byte("OpusTags")), oggPage(0, []byte{0xfc, 1, 2})...)
	lp := make([]byte, 27)
	copy(lp, "OggS")
	lp[26] = 2
	lp = append(lp, 255, 45)
	lp = append(lp, long...)
	stream := append(append(oggPage(2, []byte("OpusHead")), page2...), lp...)
	o := newOggReader(bytes.NewReader(stream))
	var got [][]byte
	for {
		p, err := o.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	if len(got) != 4 || string(got[0]) != "OpusHead" || !bytes.Equal(got[2], []byte{0xfc, 1, 2}) || !bytes.Equal(got[3], long) {
		t.Fatalf("packets %q", got)
	}
	if _, err := newOggReader(bytes.NewReader([]byte("OggX0000000000000000000000000"))).next(); !errors.Is(err, errOgg) {
		t.Fatalf("not Ogg: %v", err)
	}
}

func FuzzOggReader(f *testing.F) {
	f.Add(oggPage(2, []byte("OpusHead")))
	f.Add(append(oggPage(0, []byte{0xfc, 1}), oggPage(1, []byte{2})...))
	f.Fuzz(func(t *testing.T, b []byte) {
		o := newOggReader(bytes.NewReader(b))
		n := 0
		for {
			p, err := o.next()
			if err != nil {
				return
			}
			if len(p) > maxPacket {
				t.Fatalf("packet of %d bytes", len(p))
			}
			n += len(p)
			if n > len(b) {
				t.Fatalf("%d packet bytes out of %d input bytes", n, len(b))
			}
		}
	})
}
