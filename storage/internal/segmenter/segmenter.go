// Package segmenter turns the access units of one recording into
// fragmented MP4 (ISO BMFF): an init segment (ftyp+moov) per codec
// configuration and media segments cut at video keyframes, each written as
// a series of fragments (moof+mdat) so that the caller can make every
// fragment durable as soon as it exists. Init segments are mediacommon's
// (fmp4.Init); fragments are written by appendFragment (fragment.go), the
// same bytes as mediacommon's fmp4.Part without its allocations: the
// archive's hot path.
//
// Codecs: H.264 and H.265 video; AAC and Opus audio as they are; G.711
// (PCMA/PCMU) audio decoded losslessly to 16-bit big-endian LPCM ('ipcm'),
// since ISO BMFF has no G.711 sample entry that mediacommon writes. Other
// codecs are skipped (counted in Stats).
package segmenter

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/g711"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/bwcplatform/bwc/ingest/media"
)

// Config of a segmenter.
type Config struct {
	// Target is the duration after which the next video keyframe starts a
	// new segment. Positive (the caller validates: archive.New).
	Target time.Duration
	// Fragment is the duration of one fragment: what a crash can lose at
	// most. Positive (the caller validates: archive.New).
	Fragment time.Duration
	// Start is the wall-clock time of DTS 0, used for frames without Wall.
	Start time.Time
}

// Header describes a media segment when it begins.
type Header struct {
	Seq       uint64
	Init      int           // the init segment it needs
	StartDTS  time.Duration // on the recording's timeline
	StartWall time.Time
	Gap       bool // the segment follows missing media
}

// End is where the media written so far ends.
type End struct {
	DTS  time.Duration
	Wall time.Time
}

// Sink receives the output, in this order: Init (before the first segment
// and on every change of codec configuration), then per segment Begin,
// Fragment..., Seal. Fragment's data is the segmenter's reused buffer:
// valid only until Fragment returns (a Sink that keeps it copies it).
type Sink interface {
	Init(n int, data []byte) error
	Begin(h Header) error
	Fragment(data []byte, end End) error
	Seal(end End) error
}

// Stats counts what a segmenter did not write.
type Stats struct {
	// LeadingDropped: video frames before the first keyframe (undecodable)
	// and audio before it.
	LeadingDropped int
	// Unsupported: frames of a codec fMP4 cannot carry here.
	Unsupported int
}

type track struct {
	src       *media.Track
	id        int // fMP4 track ID, from 1
	timescale uint32
	samples   []sample
	base      uint64 // BaseTime of samples[0]
	next      uint64 // audio: where the next sample starts
	pending   *media.Frame
	lastDur   uint32
}

// Segmenter is single-goroutine: Write and Close from one owner.
type Segmenter struct {
	cfg  Config
	sink Sink

	video, audio *track
	initN        int // current init number, -1 before the first
	open         bool
	seq          uint64
	partSeq      uint32
	segStart     time.Duration
	fragStart    time.Duration
	gapPending   bool
	last         End
	stats        Stats
	expectVideo  bool
	frag         []byte // the fragment being written, reused: Sink.Fragment's data is valid only during the call
}

// New makes a segmenter for a stream that starts with the given tracks
// (media.Info.Tracks); the first init segment describes them. With a video
// track, every segment starts at a video keyframe.
func New(cfg Config, sink Sink, tracks []*media.Track) *Segmenter {
	s := &Segmenter{cfg: cfg, sink: sink, initN: -1}
	for _, t := range tracks {
		switch {
		case !supported(t):
		case t.Kind == media.Video && s.video == nil:
			s.video = &track{src: t, timescale: 90000}
		case t.Kind == media.Audio && s.audio == nil:
			s.audio = &track{src: t, timescale: audioScale(t)}
		}
	}
	s.expectVideo = s.video != nil
	return s
}

// Resume continues numbering after segments and inits written earlier
// (a recording continued after a restart).
func (s *Segmenter) Resume(nextSeq uint64, nextInit int) {
	s.seq = nextSeq
	s.initN = nextInit - 1
}

// MarkGap makes the next segment follow missing media (the archive lost
// some after a spool write error).
func (s *Segmenter) MarkGap() { s.gapPending = true }

// Stats returns what was not written.
func (s *Segmenter) Stats() Stats { return s.stats }

func supported(t *media.Track) bool {
	switch t.Codec {
	case media.H264, media.H265:
		return t.Kind == media.Video
	case media.AAC, media.Opus, media.PCMA, media.PCMU:
		return t.Kind == media.Audio
	}
	return false
}

// ticks converts a duration to a timescale without overflow.
func ticks(d time.Duration, scale uint32) int64 {
	sec, rem := d/time.Second, d%time.Second
	return int64(sec)*int64(scale) + int64(rem)*int64(scale)/int64(time.Second)
}

func (s *Segmenter) wall(f *media.Frame) time.Time {
	if !f.Wall.IsZero() {
		return f.Wall
	}
	return s.cfg.Start.Add(f.DTS)
}

// Write adds one frame.
func (s *Segmenter) Write(f *media.Frame) error {
	if f.Track == nil {
		return nil
	}
	if !supported(f.Track) {
		s.stats.Unsupported++
		return nil
	}
	if f.Gap {
		s.gapPending = true
	}
	isVideo := f.Track.Kind == media.Video
	key := isVideo && f.Key
	cur := s.audio
	if isVideo {
		cur = s.video
	}
	changed := cur == nil || cur.src != f.Track
	if !s.open {
		if s.expectVideo && !key {
			s.stats.LeadingDropped++
			return nil
		}
		return s.begin(f)
	}
	switch {
	case changed:
		// a new codec configuration needs a new init segment, so a new
		// media segment, starting with this frame.
		if err := s.seal(f); err != nil {
			return err
		}
		return s.begin(f)
	case key && (f.DTS-s.segStart >= s.cfg.Target || s.gapPending):
		if err := s.seal(f); err != nil {
			return err
		}
		return s.begin(f)
	case !s.expectVideo && f.DTS-s.segStart >= s.cfg.Target:
		if err := s.seal(f); err != nil {
			return err
		}
		return s.begin(f)
	}
	if f.Gap || f.DTS-s.fragStart >= s.cfg.Fragment {
		if err := s.flush(f); err != nil {
			return err
		}
	}
	return s.add(f)
}

// Close writes what is pending and seals the open segment.
func (s *Segmenter) Close() error {
	if !s.open {
		return nil
	}
	return s.seal(nil)
}

// begin starts a segment with frame f, writing a new init segment first
// when the tracks changed.
func (s *Segmenter) begin(f *media.Frame) error {
	newInit := s.initN < 0
	if f.Track.Kind == media.Video {
		if s.video == nil || s.video.src != f.Track {
			s.video = &track{src: f.Track, timescale: 90000}
			newInit = true
		}
	} else if s.audio == nil || s.audio.src != f.Track {
		s.audio = &track{src: f.Track, timescale: audioScale(f.Track)}
		newInit = true
	}
	if newInit {
		if err := s.writeInit(); err != nil {
			return err
		}
	}
	gap := s.gapPending
	s.gapPending = false
	s.segStart, s.fragStart = f.DTS, f.DTS
	if err := s.sink.Begin(Header{Seq: s.seq, Init: s.initN, StartDTS: f.DTS, StartWall: s.wall(f), Gap: gap}); err != nil {
		return err
	}
	s.open = true
	for _, t := range []*track{s.video, s.audio} {
		if t != nil {
			t.samples, t.pending = t.samples[:0], nil
		}
	}
	return s.add(f)
}

func audioScale(t *media.Track) uint32 {
	switch t.Codec {
	case media.Opus:
		return 48000
	case media.PCMA, media.PCMU:
		if t.ClockRate > 0 {
			return uint32(t.ClockRate)
		}
		return 8000
	}
	if t.SampleRate > 0 {
		return uint32(t.SampleRate)
	}
	return uint32(t.ClockRate)
}

func (s *Segmenter) writeInit() error {
	var init fmp4.Init
	id := 1
	for _, t := range []*track{s.video, s.audio} {
		if t == nil {
			continue
		}
		c, err := codecOf(t.src)
		if err != nil {
			return err
		}
		t.id = id
		id++
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: t.id, TimeScale: t.timescale, Codec: c})
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return fmt.Errorf("marshal init segment: %w", err)
	}
	s.initN++
	return s.sink.Init(s.initN, buf.Bytes())
}

func codecOf(t *media.Track) (mp4.Codec, error) {
	switch t.Codec {
	case media.H264:
		if t.SPS == nil || t.PPS == nil {
			return nil, errors.New("H.264 track without SPS/PPS")
		}
		return &mp4.CodecH264{SPS: t.SPS, PPS: t.PPS}, nil
	case media.H265:
		if t.VPS == nil || t.SPS == nil || t.PPS == nil {
			return nil, errors.New("H.265 track without VPS/SPS/PPS")
		}
		return &mp4.CodecH265{VPS: t.VPS, SPS: t.SPS, PPS: t.PPS}, nil
	case media.AAC:
		var conf mpeg4audio.AudioSpecificConfig
		if err := conf.Unmarshal(t.AudioConfig); err != nil {
			return nil, fmt.Errorf("AAC config: %w", err)
		}
		return &mp4.CodecMPEG4Audio{Config: conf}, nil
	case media.Opus:
		ch := t.Channels
		if ch <= 0 {
			ch = 2
		}
		return &mp4.CodecOpus{ChannelCount: ch}, nil
	case media.PCMA, media.PCMU:
		ch := t.Channels
		if ch <= 0 {
			ch = 1
		}
		return &mp4.CodecLPCM{BitDepth: 16, SampleRate: int(audioScale(t)), ChannelCount: ch}, nil
	}
	return nil, fmt.Errorf("codec %s not supported", t.Codec)
}

// add queues a frame's samples in the current fragment.
func (s *Segmenter) add(f *media.Frame) error {
	if f.Track.Kind == media.Video {
		t := s.video
		if t.pending != nil {
			s.closeVideo(ticks(f.DTS, t.timescale))
		}
		t.pending = f
		return nil
	}
	t := s.audio
	start := uint64(max(ticks(f.DTS, t.timescale), 0))
	if len(t.samples) == 0 {
		t.base, t.next = start, start
	}
	for _, au := range f.AU {
		var d uint32
		payload := au
		switch t.src.Codec {
		case media.AAC:
			d = mpeg4audio.SamplesPerAccessUnit
		case media.Opus:
			d = uint32(opus.PacketDuration2(au))
		case media.PCMA:
			var l g711.Alaw
			l.Unmarshal(au)
			payload, d = l, uint32(len(au)/max(t.src.Channels, 1))
		case media.PCMU:
			var l g711.Mulaw
			l.Unmarshal(au)
			payload, d = l, uint32(len(au)/max(t.src.Channels, 1))
		}
		if d == 0 {
			continue
		}
		t.samples = append(t.samples, audioSample(d, payload))
		t.next += uint64(d)
	}
	d := time.Duration(t.next-start) * time.Second / time.Duration(t.timescale)
	s.advance(End{DTS: f.DTS + d, Wall: s.wall(f).Add(d)})
	return nil
}

// closeVideo ends the pending video sample at DTS endTicks. The sample
// refers to the frame's NAL units; they are copied once, into the fragment.
func (s *Segmenter) closeVideo(endTicks int64) {
	t := s.video
	p := t.pending
	t.pending = nil
	start := ticks(p.DTS, t.timescale)
	d := endTicks - start
	if d <= 0 || d > int64(t.timescale)*10 {
		d = int64(t.lastDur) // broken timestamps: keep the previous rhythm
		if d == 0 {
			d = int64(t.timescale) / 30
		}
	}
	t.lastDur = uint32(d)
	ptsOff := ticks(p.PTS, t.timescale) - start
	var nonSync bool
	if t.src.Codec == media.H265 {
		nonSync = !h265.IsRandomAccess(p.AU)
	} else {
		nonSync = !h264.IsRandomAccess(p.AU)
	}
	if len(t.samples) == 0 {
		t.base = uint64(max(start, 0))
	}
	t.samples = append(t.samples, videoSample(uint32(d), int32(ptsOff), nonSync, p.AU))
	dd := time.Duration(d) * time.Second / time.Duration(t.timescale)
	s.advance(End{DTS: p.DTS + dd, Wall: s.wall(p).Add(dd)})
}

// advance moves the end of the written media forward.
func (s *Segmenter) advance(e End) {
	if e.DTS > s.last.DTS || s.last.Wall.IsZero() {
		s.last = e
	}
}

// flush writes the samples gathered so far as one fragment. next is the
// frame that follows (nil at the end of a segment without successor).
func (s *Segmenter) flush(next *media.Frame) error {
	if next != nil {
		s.fragStart = next.DTS
	}
	if (s.video == nil || len(s.video.samples) == 0) && (s.audio == nil || len(s.audio.samples) == 0) {
		return nil
	}
	s.partSeq++
	frag, err := appendFragment(s.frag[:0], s.partSeq, s.video, s.audio)
	if err != nil {
		return fmt.Errorf("marshal fragment: %w", err)
	}
	s.frag = frag
	for _, t := range []*track{s.video, s.audio} {
		if t != nil {
			clear(t.samples) // the frames' bytes are not held beyond their fragment
			t.samples = t.samples[:0]
		}
	}
	return s.sink.Fragment(frag, s.last)
}

// seal ends the open segment before frame next (nil: end of stream).
func (s *Segmenter) seal(next *media.Frame) error {
	if v := s.video; v != nil && v.pending != nil {
		var end int64
		if next != nil && next.Track.Kind == media.Video {
			end = ticks(next.DTS, v.timescale)
		} else {
			end = ticks(v.pending.DTS, v.timescale) + int64(max(v.lastDur, v.timescale/30))
		}
		s.closeVideo(end)
	}
	if err := s.flush(nil); err != nil {
		return err
	}
	s.open = false
	s.seq++
	return s.sink.Seal(s.last)
}
