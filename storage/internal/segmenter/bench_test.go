package segmenter

import (
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// discard is a Sink that only counts what it is given.
type discard struct{ bytes int }

func (d *discard) Init(_ int, data []byte) error { d.bytes += len(data); return nil }
func (d *discard) Begin(Header) error            { return nil }
func (d *discard) Fragment(data []byte, _ End) error {
	d.bytes += len(data)
	return nil
}
func (d *discard) Seal(End) error { return nil }

// BenchmarkSegmenter is the segmenter alone (no disk): the committed 720p
// 2 Mbit/s capture made into 1 s fragments of 4 s segments. One op is one
// pass of the capture (2 s of media).
func BenchmarkSegmenter(b *testing.B) {
	s := mediatest.Load(b)
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var sink discard
	seg := New(Config{Target: 4 * time.Second, Fragment: time.Second, Start: start}, &sink, []*media.Track{s.Video, s.Audio})
	frames := [2][]media.Frame{make([]media.Frame, len(s.Frames)), make([]media.Frame, len(s.Frames))}
	n := 0
	for _, f := range s.Frames {
		n += f.Size()
	}
	b.ReportAllocs()
	b.SetBytes(int64(n))
	cpu := storagetest.CPUTime(b)
	b.ResetTimer()
	for i := range b.N {
		buf := frames[i%2]
		off := time.Duration(i) * s.Duration
		for j, f := range s.Frames {
			buf[j] = *f
			buf[j].PTS += off
			buf[j].DTS += off
			buf[j].Wall = start.Add(buf[j].PTS)
			if err := seg.Write(&buf[j]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	storagetest.ReportPerVideoSecond(b, cpu, time.Duration(b.N)*s.Duration)
	if sink.bytes == 0 {
		b.Fatal("nothing written")
	}
}
