// Package mediafile reads a short MPEG-TS capture (one H.264 and one AAC
// track) into media.Frames, demuxed with mediacommon's MPEG-TS reader. It
// feeds the simulated cameras of the load command (bwc cam) and, through
// mediatest, the tests.
package mediafile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"

	"github.com/bwcplatform/bwc/ingest/media"
)

// Sample is the decoded capture.
type Sample struct {
	Video, Audio *media.Track
	// Frames in decoding order, video and audio interleaved by DTS; PTS and
	// DTS start at 0. Wall is zero: Loop sets it.
	Frames []*media.Frame
	// Duration of one pass (the video's length).
	Duration time.Duration
}

// Decode reads an MPEG-TS file with one H.264 and one AAC track.
func Decode(path string) (*Sample, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &mpegts.Reader{R: bytes.NewReader(raw)}
	if err := r.Initialize(); err != nil {
		return nil, fmt.Errorf("mpegts: %w", err)
	}
	s := &Sample{}
	var frames []*media.Frame
	if err := s.subscribe(r, &frames); err != nil {
		return nil, err
	}
	if s.Video == nil || s.Audio == nil {
		return nil, fmt.Errorf("%s: want one H.264 and one AAC track", path)
	}
	for {
		if err := r.Read(); err != nil {
			break // io.EOF at the end of the file
		}
	}
	if err := s.describeVideo(path); err != nil {
		return nil, err
	}
	s.setFrames(frames)
	return s, nil
}

// ts90k converts MPEG-TS 90 kHz ticks to a duration.
func ts90k(v int64) time.Duration { return time.Duration(v) * time.Second / 90000 }

// subscribe sets the sample's tracks from the file's H.264 and AAC tracks
// and has the reader append their frames to frames.
func (s *Sample) subscribe(r *mpegts.Reader, frames *[]*media.Frame) error {
	for _, tr := range r.Tracks() {
		switch c := tr.Codec.(type) {
		case *mpegts.CodecH264:
			s.Video = &media.Track{ID: 0, Kind: media.Video, Codec: media.H264, ClockRate: 90000, PayloadType: 96}
			r.OnDataH264(tr, func(pts, dts int64, au [][]byte) error {
				s.keepParameterSets(au)
				*frames = append(*frames, &media.Frame{Track: s.Video, PTS: ts90k(pts), DTS: ts90k(dts), Key: h264.IsRandomAccess(au), AU: au})
				return nil
			})
		case *mpegts.CodecMPEG4Audio:
			conf, err := c.Config.Marshal()
			if err != nil {
				return err
			}
			s.Audio = &media.Track{ID: 1, Kind: media.Audio, Codec: media.AAC, ClockRate: c.Config.SampleRate,
				PayloadType: 97, SampleRate: c.Config.SampleRate, Channels: c.Config.ChannelCount, AudioConfig: conf}
			r.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
				for i, au := range aus {
					p := ts90k(pts) + time.Duration(i)*1024*time.Second/time.Duration(c.Config.SampleRate)
					*frames = append(*frames, &media.Frame{Track: s.Audio, PTS: p, DTS: p, AU: [][]byte{au}})
				}
				return nil
			})
		}
	}
	return nil
}

// keepParameterSets copies the first SPS and PPS seen into the video track.
func (s *Sample) keepParameterSets(au [][]byte) {
	for _, n := range au {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			if s.Video.SPS == nil {
				s.Video.SPS = append([]byte(nil), n...)
			}
		case h264.NALUTypePPS:
			if s.Video.PPS == nil {
				s.Video.PPS = append([]byte(nil), n...)
			}
		}
	}
}

// describeVideo sets the video track's size from its SPS.
func (s *Sample) describeVideo(path string) error {
	if s.Video.SPS == nil || s.Video.PPS == nil {
		return fmt.Errorf("%s: no SPS/PPS in the video", path)
	}
	var sps h264.SPS
	if err := sps.Unmarshal(s.Video.SPS); err != nil {
		return fmt.Errorf("%s: SPS: %w", path, err)
	}
	s.Video.Width, s.Video.Height = sps.Width(), sps.Height()
	s.Video.FMTP = "packetization-mode=1"
	return nil
}

// setFrames makes every key frame start with SPS and PPS (the media.Frame
// contract), orders the frames by DTS from 0 and sets the Duration.
func (s *Sample) setFrames(frames []*media.Frame) {
	for _, f := range frames {
		if f.Key && h264.NALUType(f.AU[0][0]&0x1f) != h264.NALUTypeSPS {
			f.AU = append([][]byte{s.Video.SPS, s.Video.PPS}, f.AU...)
		}
	}
	sort.SliceStable(frames, func(i, j int) bool { return frames[i].DTS < frames[j].DTS })
	base := frames[0].DTS
	for _, f := range frames {
		f.PTS -= base
		f.DTS -= base
	}
	s.Frames = frames
	var last time.Duration
	for _, f := range frames {
		if f.Track == s.Video && f.PTS > last {
			last = f.PTS
		}
	}
	s.Duration = last + time.Second/25
}

// Loop returns n passes of the sample as one continuous stream: fresh
// Frame values (sharing the sample's bytes) with PTS/DTS shifted by one
// Duration per pass and Wall = start + PTS.
func (s *Sample) Loop(n int, start time.Time) []*media.Frame {
	out := make([]*media.Frame, 0, n*len(s.Frames))
	for i := 0; i < n; i++ {
		off := time.Duration(i) * s.Duration
		for _, f := range s.Frames {
			g := *f
			g.PTS += off
			g.DTS += off
			g.Wall = start.Add(g.PTS)
			out = append(out, &g)
		}
	}
	return out
}

// Play emits the sample's frames paced at speed times real time (0: as
// fast as possible): passes passes one after another as one continuous
// stream (0: until ctx ends), each frame a fresh value sharing the sample's
// bytes, PTS and DTS shifted by one Duration per pass, Wall = start + PTS.
// It is the one pacing loop of the simulated cameras, the relay load
// command and the tests. It returns nil when ctx ends or the passes are
// done, or emit's first error.
func (s *Sample) Play(ctx context.Context, speed float64, passes int, emit func(*media.Frame) error) error {
	start := time.Now()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for pass := 0; passes == 0 || pass < passes; pass++ {
		off := time.Duration(pass) * s.Duration
		for _, f := range s.Frames {
			if ctx.Err() != nil {
				return nil
			}
			g := *f
			g.PTS += off
			g.DTS += off
			g.Wall = start.Add(g.PTS)
			if speed > 0 {
				if d := time.Until(start.Add(time.Duration(float64(g.DTS) / speed))); d > 0 {
					if timer == nil {
						timer = time.NewTimer(d)
					} else {
						timer.Reset(d)
					}
					select {
					case <-ctx.Done():
						return nil
					case <-timer.C:
					}
				}
			}
			if err := emit(&g); err != nil {
				return err
			}
		}
	}
	return nil
}
