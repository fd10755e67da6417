package mediatest

import (
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
