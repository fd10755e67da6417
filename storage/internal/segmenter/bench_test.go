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
	replay := storagetest.NewReplay(s.Frames, s.Duration, start)
	b.ReportAllocs()
	b.SetBytes(int64(replay.Bytes()))
	cpu := storagetest.CPUTime(b)
	b.ResetTimer()
	for i := range b.N {
		replay.Pass(i, func(f *media.Frame) {
			if err := seg.Write(f); err != nil {
				b.Fatal(err)
			}
		})
	}
	b.StopTimer()
	storagetest.ReportPerVideoSecond(b, cpu, time.Duration(b.N)*s.Duration)
	if sink.bytes == 0 {
		b.Fatal("nothing written")
	}
}
