package segmenter

import (
	"bytes"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
)

type memSink struct {
	inits    map[int][]byte
	segs     []*memSeg
	initSeen []int
}

type memSeg struct {
	h     Header
	frags [][]byte
	ends  []End
	end   End
	done  bool
}

func (m *memSink) Init(n int, data []byte) error {
	if m.inits == nil {
		m.inits = map[int][]byte{}
	}
	m.inits[n] = data
	m.initSeen = append(m.initSeen, n)
	return nil
}
func (m *memSink) Begin(h Header) error { m.segs = append(m.segs, &memSeg{h: h}); return nil }
func (m *memSink) Fragment(d []byte, e End) error {
	s := m.segs[len(m.segs)-1]
	s.frags = append(s.frags, bytes.Clone(d)) // d is the segmenter's buffer
	s.ends = append(s.ends, e)
	return nil
}
func (m *memSink) Seal(e End) error {
	s := m.segs[len(m.segs)-1]
	s.end, s.done = e, true
	return nil
}

// concat is the init segment followed by every media segment.
func (m *memSink) concat(init int) []byte {
	var b bytes.Buffer
	b.Write(m.inits[init])
	for _, s := range m.segs {
		if s.h.Init == init {
			for _, f := range s.frags {
				b.Write(f)
			}
		}
	}
	return b.Bytes()
}

func TestSegmenterCutsAtKeyframesAndDecodes(t *testing.T) {
	s := mediatest.Load(t)
	const passes = 6 // 12 s
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var sink memSink
	seg := New(Config{Target: 4 * time.Second, Fragment: time.Second, Start: start}, &sink, []*media.Track{s.Video, s.Audio})
	for _, f := range s.Loop(passes, start) {
		if err := seg.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
	if len(sink.initSeen) != 1 {
		t.Fatalf("init segments %v, want one", sink.initSeen)
	}
	// keyframe every second, 12 s, target 4 s: segments at 0, 4, 8.
	if len(sink.segs) != 3 {
		t.Fatalf("%d segments, want 3", len(sink.segs))
	}
	for i, sg := range sink.segs {
		if !sg.done || sg.h.Seq != uint64(i) || sg.h.Gap {
			t.Errorf("segment %d: %+v", i, sg.h)
		}
		// the sample's video starts 21 ms after its audio
		if want := time.Duration(i) * 4 * time.Second; sg.h.StartDTS < want || sg.h.StartDTS > want+150*time.Millisecond {
			t.Errorf("segment %d starts at %v, want %v", i, sg.h.StartDTS, want)
		}
		if len(sg.frags) < 3 || len(sg.frags) > 5 {
			t.Errorf("segment %d has %d fragments, want about 4 (1 s each)", i, len(sg.frags))
		}
		if !sg.h.StartWall.Equal(start.Add(sg.h.StartDTS)) {
			t.Errorf("segment %d wall %v", i, sg.h.StartWall)
		}
	}
	if got := sink.segs[2].end.DTS; got < 12*time.Second || got > 12*time.Second+150*time.Millisecond {
		t.Errorf("last segment ends at %v, want 12 s", got)
	}
	d := mediatest.DecodeDuration(t, sink.concat(0))
	if want := passes * s.Duration; d < want-100*time.Millisecond || d > want+100*time.Millisecond {
		t.Errorf("decoded duration %v, want %v", d, want)
	}
	// each segment alone (with its init) decodes too: segments are
	// independently playable.
	one := append(append([]byte(nil), sink.inits[0]...), bytes.Join(sink.segs[1].frags, nil)...)
	mediatest.DecodeDuration(t, one)
}

func TestSegmenterGapAndTrackChange(t *testing.T) {
	s := mediatest.Load(t)
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var sink memSink
	seg := New(Config{Target: 4 * time.Second, Fragment: time.Second, Start: start}, &sink, []*media.Track{s.Video, s.Audio})
	frames := s.Loop(4, start) // 8 s
	// at 2 s: a reconnect (gap) with a new video track (same config, new pointer)
	v2 := *s.Video
	var gapAt time.Duration
	for i, f := range frames {
		if f.DTS >= 2*time.Second && gapAt == 0 && f.Track == s.Video && f.Key {
			gapAt = f.DTS
			g := *f
			g.Gap = true
			frames[i] = &g
		}
		if gapAt != 0 && frames[i].Track == s.Video {
			g := *frames[i]
			g.Track = &v2
			frames[i] = &g
		}
	}
	// leading non-key frames are dropped
	lead := []*media.Frame{{Track: s.Video, AU: [][]byte{{0x41, 0}}, DTS: -time.Second}}
	for _, f := range append(lead, frames...) {
		if err := seg.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
	if seg.Stats().LeadingDropped < 1 {
		t.Errorf("leading dropped %d, want at least 1", seg.Stats().LeadingDropped)
	}
	if len(sink.initSeen) != 2 {
		t.Fatalf("inits %v, want 2 (new track config)", sink.initSeen)
	}
	if len(sink.segs) < 2 || sink.segs[1].h.StartDTS != gapAt || !sink.segs[1].h.Gap || sink.segs[1].h.Init != 1 {
		t.Fatalf("segment after the gap: %+v (gap at %v)", sink.segs[1].h, gapAt)
	}
	mediatest.DecodeDuration(t, sink.concat(0))
	mediatest.DecodeDuration(t, sink.concat(1))
}

func TestTicks(t *testing.T) {
	for _, c := range []struct {
		d     time.Duration
		scale uint32
		want  int64
	}{
		{time.Second, 90000, 90000},
		{40 * time.Millisecond, 90000, 3600},
		{48 * time.Hour, 90000, 48 * 3600 * 90000},
		{time.Second/3 + 1, 48000, 16000},
	} {
		if got := ticks(c.d, c.scale); got != c.want {
			t.Errorf("ticks(%v, %d) = %d, want %d", c.d, c.scale, got, c.want)
		}
	}
}
