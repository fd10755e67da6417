package media

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	vid = &Track{ID: 0, Kind: Video, Codec: H264, ClockRate: 90000}
	aud = &Track{ID: 1, Kind: Audio, Codec: AAC, ClockRate: 48000}
)

// frames makes n video frames at 30 fps with a keyframe every gop frames,
// each followed by an audio frame.
func frames(n, gop int) []*Frame {
	var out []*Frame
	for i := 0; i < n; i++ {
		ts := time.Duration(i) * time.Second / 30
		out = append(out, &Frame{Track: vid, PTS: ts, DTS: ts, Key: i%gop == 0, AU: [][]byte{{byte(i)}}})
		out = append(out, &Frame{Track: aud, PTS: ts, DTS: ts, AU: [][]byte{{byte(i)}}})
	}
	return out
}

func readAll(t *testing.T, r *Reader) []*Frame {
	t.Helper()
	var out []*Frame
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		f, err := r.Read(ctx)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
}

func TestReaderGetsEveryFrameInOrder(t *testing.T) {
	s := NewStream(Info{})
	r := s.Subscribe(ReaderOptions{Size: 1000})
	in := frames(100, 30)
	for _, f := range in {
		s.Write(f)
	}
	s.Close()
	readInOrder(t, r, in)
	if r.Dropped() != 0 {
		t.Fatalf("dropped %d", r.Dropped())
	}
}

func TestSlowReaderResumesAtKeyframeWithoutAffectingOthers(t *testing.T) {
	s := NewStream(Info{})
	fast := s.Subscribe(ReaderOptions{Size: 1000})
	var lost int
	slow := s.Subscribe(ReaderOptions{Size: 64, OnDrop: func(n int) { lost += n }})
	in := frames(90, 30) // 180 frames; the slow reader reads none while they are written
	for _, f := range in {
		s.Write(f)
	}
	s.Close()
	if got := readAll(t, fast); len(got) != len(in) {
		t.Fatalf("fast reader got %d frames, want %d", len(got), len(in))
	}
	got := readAll(t, slow)
	if len(got) == 0 || !got[0].Key {
		t.Fatalf("slow reader's first frame after overflow is not a keyframe: %+v", got)
	}
	if slow.Dropped() == 0 || lost == 0 {
		t.Fatalf("drops not counted: Dropped()=%d OnDrop total=%d", slow.Dropped(), lost)
	}
	if uint64(len(got))+slow.Dropped() != uint64(len(in)) {
		t.Fatalf("read %d + dropped %d != written %d", len(got), slow.Dropped(), len(in))
	}
}

func TestFromKeyframeStartsWithCachedGOP(t *testing.T) {
	s := NewStream(Info{})
	in := frames(40, 30) // keyframes at video frames 0 and 30
	for _, f := range in {
		s.Write(f)
	}
	r := s.Subscribe(ReaderOptions{FromKeyframe: true})
	s.Close()
	got := readAll(t, r)
	if len(got) == 0 || got[0] != in[60] {
		t.Fatalf("first frame is not the last keyframe (video frame 30)")
	}
	if len(got) != 20 {
		t.Fatalf("got %d frames from the GOP cache, want 20", len(got))
	}

	// before any keyframe, a FromKeyframe reader waits for one
	s2 := NewStream(Info{})
	r2 := s2.Subscribe(ReaderOptions{FromKeyframe: true})
	for _, f := range frames(40, 30)[2:] { // starts mid-GOP
		s2.Write(f)
	}
	s2.Close()
	got = readAll(t, r2)
	if len(got) == 0 || !got[0].Key {
		t.Fatal("reader joining before the first keyframe did not start at a keyframe")
	}
}

func TestReadHonoursContextAndClose(t *testing.T) {
	s := NewStream(Info{})
	r := s.Subscribe(ReaderOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := r.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read on an idle stream: %v, want deadline exceeded", err)
	}
	done := make(chan error)
	go func() {
		_, err := r.Read(context.Background())
		done <- err
	}()
	r.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}
	if s.Readers() != 0 {
		t.Fatalf("closed reader still attached")
	}
	s.Close()
	if _, err := s.Subscribe(ReaderOptions{}).Read(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("reader of a closed stream: %v, want io.EOF", err)
	}
}

// BenchmarkWrite measures the fan-out cost of one frame to 20 readers that
// keep up.
func BenchmarkWrite20Readers(b *testing.B) {
	s := NewStream(Info{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	for i := 0; i < 20; i++ {
		r := s.Subscribe(ReaderOptions{})
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				if _, err := r.Read(ctx); err != nil {
					return
				}
			}
		}()
	}
	in := frames(300, 30)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Write(in[i%len(in)])
	}
	b.StopTimer()
	s.Close()
	for i := 0; i < 20; i++ {
		<-done
	}
}

// readInOrder reads r to its end and fails unless it read exactly in, in
// order.
func readInOrder(t *testing.T, r *Reader, in []*Frame) {
	t.Helper()
	out := readAll(t, r)
	if len(out) != len(in) {
		t.Fatalf("read %d frames, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i] != in[i] {
			t.Fatalf("frame %d out of order", i)
		}
	}
}

// woken reports (and takes) a pending wake-up of r.
func woken(r *Reader) bool {
	select {
	case <-r.notify:
		return true
	default:
		return false
	}
}

// TestBatchReaderWokenByPictures: a reader with Batch is woken by a video
// frame, or once Batch frames are queued, not by each audio frame; it
// still reads every frame, in order.
func TestBatchReaderWokenByPictures(t *testing.T) {
	s := NewStream(Info{})
	r := s.Subscribe(ReaderOptions{Size: 100, Batch: 4})
	plain := s.Subscribe(ReaderOptions{Size: 100})
	var in []*Frame
	write := func(f *Frame) { in = append(in, f); s.Write(f) }
	for i, step := range []struct {
		f    *Frame
		wake bool
	}{
		{&Frame{Track: aud}, false},
		{&Frame{Track: aud}, false},
		{&Frame{Track: vid, Key: true}, true}, // a picture: 3 queued
		{&Frame{Track: aud}, true},            // 4 queued: the batch is full
		{&Frame{Track: aud}, true},            // still at least 4
	} {
		write(step.f)
		if got := woken(r); got != step.wake {
			t.Fatalf("frame %d: woken %v, want %v", i, got, step.wake)
		}
		if !woken(plain) {
			t.Fatalf("frame %d: a reader without Batch was not woken", i)
		}
	}
	if r.Len() != len(in) {
		t.Fatalf("Len = %d, want %d queued", r.Len(), len(in))
	}
	s.Close()
	if out := readAll(t, r); len(out) != len(in) || out[0] != in[0] || out[len(out)-1] != in[len(in)-1] {
		t.Fatalf("read %d frames of %d", len(out), len(in))
	}
	readAll(t, plain)
}

// TestLingerReaderWokenBySpan: a reader with Linger is woken once the
// frames queued span Linger (by their DTS), or a timestamp jumps back as
// far, or its ring is half full; not by a picture nor by audio a little
// behind the video. It still reads every frame, in order.
func TestLingerReaderWokenBySpan(t *testing.T) {
	type lingerStep struct {
		dts         time.Duration
		video, wake bool
	}
	ms := time.Millisecond
	for _, tc := range []struct {
		name  string
		size  int
		steps []lingerStep
	}{
		{"span", 100, []lingerStep{
			{0, true, false},        // a keyframe alone
			{20 * ms, false, false}, // audio
			{40 * ms, true, false},  // a picture
			{249 * ms, true, false},
			{250 * ms, false, true}, // 250 ms queued
			{260 * ms, true, true},  // still
		}},
		{"backwards", 100, []lingerStep{
			{time.Second, true, false},
			{time.Second - 10*ms, false, false}, // audio a little behind: interleaving
			{time.Second + 20*ms, true, false},
			{750 * ms, true, true}, // a jump back by 250 ms
		}},
		{"half full", 4, []lingerStep{
			{0, true, false},
			{ms, true, true}, // 2 of 4
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStream(Info{})
			r := s.Subscribe(ReaderOptions{Size: tc.size, Linger: 250 * ms})
			var in []*Frame
			for i, st := range tc.steps {
				f := &Frame{Track: aud, DTS: st.dts}
				if st.video {
					f = &Frame{Track: vid, Key: i == 0, DTS: st.dts}
				}
				in = append(in, f)
				s.Write(f)
				if got := woken(r); got != st.wake {
					t.Fatalf("frame %d: woken %v, want %v", i, got, st.wake)
				}
			}
			s.Close()
			readInOrder(t, r, in)
		})
	}
}

// TestReaderWantsTracks: a reader with Want neither queues nor is woken by
// the frames of the tracks it does not want, the GOP it starts with
// included; a reader without Want reads them all.
func TestReaderWantsTracks(t *testing.T) {
	s := NewStream(Info{})
	s.Write(&Frame{Track: vid, Key: true})
	s.Write(&Frame{Track: aud})
	r := s.Subscribe(ReaderOptions{Size: 100, FromKeyframe: true, Want: func(t *Track) bool { return t.Kind == Video }})
	all := s.Subscribe(ReaderOptions{Size: 100, FromKeyframe: true})
	if r.Len() != 1 || all.Len() != 2 {
		t.Fatalf("from the GOP: %d and %d frames queued, want 1 and 2", r.Len(), all.Len())
	}
	<-r.notify
	s.Write(&Frame{Track: aud})
	select {
	case <-r.notify:
		t.Fatal("woken by an audio frame it does not want")
	default:
	}
	s.Write(&Frame{Track: vid})
	s.Close()
	for _, f := range readAll(t, r) {
		if f.Track != vid {
			t.Fatalf("read a frame of %v", f.Track.Kind)
		}
	}
	if n := len(readAll(t, all)); n != 4 {
		t.Fatalf("the reader without Want read %d frames, want 4", n)
	}
}
