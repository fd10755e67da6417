package mediatest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/media"
)

func TestSampleDecodes(t *testing.T) {
	s := Load(t)
	if s.Video.Width != 1280 || s.Video.Height != 720 {
		t.Fatalf("video %dx%d, want 1280x720", s.Video.Width, s.Video.Height)
	}
	if s.Audio.SampleRate != 48000 || len(s.Audio.AudioConfig) == 0 {
		t.Fatalf("audio %+v", s.Audio)
	}
	var video, keys, audio int
	var lastDTS time.Duration = -1
	for _, f := range s.Frames {
		if f.DTS < lastDTS {
			t.Fatalf("DTS goes back: %v after %v", f.DTS, lastDTS)
		}
		lastDTS = f.DTS
		if f.Track.Kind == media.Video {
			video++
			if f.Key {
				keys++
			}
		} else {
			audio++
		}
	}
	if video != 50 || keys != 2 {
		t.Fatalf("%d video frames with %d keyframes, want 50 and 2", video, keys)
	}
	if audio < 90 {
		t.Fatalf("%d audio frames, want about 94", audio)
	}
	for _, f := range s.Frames {
		if f.Track.Kind == media.Video {
			if !f.Key {
				t.Fatal("the sample's video does not start with a keyframe")
			}
			break
		}
	}
	loop := s.Loop(3, time.Unix(1700000000, 0))
	if len(loop) != 3*len(s.Frames) || loop[len(s.Frames)].DTS < s.Duration-time.Second/25 {
		t.Fatalf("Loop does not shift timestamps")
	}
}

func TestPlay(t *testing.T) {
	s := Load(t)
	var n int
	var last time.Duration = -1
	if err := s.Play(context.Background(), 0, 2, func(f *media.Frame) error {
		if f.DTS < last {
			t.Fatalf("frame %d: DTS %v after %v", n, f.DTS, last)
		}
		last = f.DTS
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 2*len(s.Frames) || last < s.Duration {
		t.Fatalf("two passes: %d frames up to %v, want %d frames past %v", n, last, 2*len(s.Frames), s.Duration)
	}
	stop := errors.New("stop")
	if err := s.Play(context.Background(), 0, 0, func(*media.Frame) error { return stop }); err != stop {
		t.Fatalf("emit's error: got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	if err := s.Play(ctx, 1, 0, func(*media.Frame) error { n++; cancel(); return nil }); err != nil || n != 1 {
		t.Fatalf("cancelled: err %v after %d frames, want nil after 1", err, n)
	}
}
