// Package depack turns a camera's RTP packets, one format at a time, into
// the platform's access units (media.Frame): it depacketizes with
// gortsplib's decoders, tracks H.264/H.265 parameter sets (from the SDP and
// in-band, a change making a new media.Track), prepends them to keyframes,
// waits for the first keyframe, and extracts video DTS.
package depack

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"

	"github.com/bwcplatform/bwc/ingest/media"
)

// ErrUnsupported: the format is not one the platform takes in.
var ErrUnsupported = errors.New("unsupported codec")

// Reasons a packet gave no frame that callers count.
var (
	ErrWaitingKeyframe = errors.New("waiting for a keyframe")
	errMore            = errors.New("more packets needed")
)

// Track depacketizes one format of a publishing session. Not safe for
// concurrent use: gortsplib calls a format's callback from one goroutine.
type Track struct {
	track  *media.Track // current codec configuration
	decode func(*rtp.Packet) ([][]byte, error)

	// video
	keyed   bool // a keyframe was seen: frames can be decoded
	dts264  *h264.DTSExtractor
	dts265  *h265.DTSExtractor
	changes int // parameter-set changes seen
}

// New makes the depacketizer of one format. id numbers the track within
// its stream.
func New(f format.Format, id int) (*Track, error) {
	t := &Track{track: &media.Track{ID: id, ClockRate: f.ClockRate(), PayloadType: f.PayloadType(), FMTP: fmtp(f)}}
	var err error
	switch f := f.(type) {
	case *format.H264:
		err = t.initH264(f)
	case *format.H265:
		err = t.initH265(f)
	case *format.MPEG4Audio:
		err = t.initAAC(f)
	case *format.G711:
		err = t.initG711(f)
	case *format.Opus:
		err = t.initOpus(f)
	default:
		return nil, fmt.Errorf("%s: %w", f.Codec(), ErrUnsupported)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Track) initH264(f *format.H264) error {
	d, err := f.CreateDecoder()
	if err != nil {
		return fmt.Errorf("H.264 decoder: %w", err)
	}
	t.decode = func(p *rtp.Packet) ([][]byte, error) { return mapDecodeErr(d.Decode(p)) }
	t.track.Kind, t.track.Codec = media.Video, media.H264
	sps, pps := f.SafeParams()
	t.setH264(sps, pps)
	t.dts264 = &h264.DTSExtractor{}
	t.dts264.Initialize()
	return nil
}

func (t *Track) initH265(f *format.H265) error {
	d, err := f.CreateDecoder()
	if err != nil {
		return fmt.Errorf("H.265 decoder: %w", err)
	}
	t.decode = func(p *rtp.Packet) ([][]byte, error) { return mapDecodeErr(d.Decode(p)) }
	t.track.Kind, t.track.Codec = media.Video, media.H265
	vps, sps, pps := f.SafeParams()
	t.setH265(vps, sps, pps)
	t.dts265 = &h265.DTSExtractor{}
	t.dts265.Initialize()
	return nil
}

func (t *Track) initAAC(f *format.MPEG4Audio) error {
	if f.Config == nil {
		return fmt.Errorf("AAC without AudioSpecificConfig (LATM?): %w", ErrUnsupported)
	}
	d, err := f.CreateDecoder()
	if err != nil {
		return fmt.Errorf("AAC decoder: %w", err)
	}
	t.decode = func(p *rtp.Packet) ([][]byte, error) {
		aus, err := d.Decode(p)
		if errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) {
			return nil, errMore
		}
		return aus, err
	}
	conf, err := f.Config.Marshal()
	if err != nil {
		return fmt.Errorf("AAC config: %w", err)
	}
	t.track.Kind, t.track.Codec = media.Audio, media.AAC
	t.track.SampleRate, t.track.Channels, t.track.AudioConfig = f.Config.SampleRate, f.Config.ChannelCount, conf
	return nil
}

func (t *Track) initG711(f *format.G711) error {
	d, err := f.CreateDecoder()
	if err != nil {
		return fmt.Errorf("G.711 decoder: %w", err)
	}
	t.decode = single(d.Decode)
	t.track.Kind, t.track.Codec = media.Audio, media.PCMA
	if f.MULaw {
		t.track.Codec = media.PCMU
	}
	t.track.SampleRate, t.track.Channels = f.SampleRate, f.ChannelCount
	return nil
}

func (t *Track) initOpus(f *format.Opus) error {
	d, err := f.CreateDecoder()
	if err != nil {
		//lint:ignore ST1005 Opus is a name
		return fmt.Errorf("Opus decoder: %w", err)
	}
	t.decode = single(d.Decode)
	t.track.Kind, t.track.Codec = media.Audio, media.Opus
	t.track.SampleRate, t.track.Channels = 48000, max(f.ChannelCount, 1)
	return nil
}

func single(dec func(*rtp.Packet) ([]byte, error)) func(*rtp.Packet) ([][]byte, error) {
	return func(p *rtp.Packet) ([][]byte, error) {
		b, err := dec(p)
		if err != nil {
			return nil, err
		}
		return [][]byte{b}, nil
	}
}

func mapDecodeErr(au [][]byte, err error) ([][]byte, error) {
	switch {
	case errors.Is(err, rtph264.ErrMorePacketsNeeded), errors.Is(err, rtph265.ErrMorePacketsNeeded):
		return nil, errMore
	case errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious), errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious):
		return nil, errMore
	}
	return au, err
}

func fmtp(f format.Format) string {
	var b bytes.Buffer
	for k, v := range f.FMTP() {
		if b.Len() > 0 {
			b.WriteString(";")
		}
		b.WriteString(k + "=" + v)
	}
	return b.String()
}

// Track returns the current codec configuration.
func (t *Track) Track() *media.Track { return t.track }

// Changes returns how many times the codec configuration changed.
func (t *Track) Changes() int { return t.changes }

// Decode takes one RTP packet and its PTS (time since the session's first
// packet). It returns a frame when the packet completes an access unit,
// nil and no error when more packets are needed, ErrWaitingKeyframe while
// video cannot be decoded yet, or a decoding error (the packet is lost and
// video waits for the next keyframe).
func (t *Track) Decode(pkt *rtp.Packet, pts time.Duration) (*media.Frame, error) {
	au, err := t.decode(pkt)
	if errors.Is(err, errMore) {
		return nil, nil
	}
	if err != nil {
		t.keyed = false
		return nil, err
	}
	if t.track.Kind == media.Audio {
		return &media.Frame{Track: t.track, PTS: pts, DTS: pts, AU: au}, nil
	}
	if t.track.Codec == media.H264 {
		return t.h264(au, pts)
	}
	return t.h265(au, pts)
}

const clock90k = 90000

func ticks(d time.Duration) int64 { return int64(d) * clock90k / int64(time.Second) }
func dur(ticks int64) time.Duration {
	return time.Duration(ticks) * time.Second / clock90k
}

func (t *Track) h264(au [][]byte, pts time.Duration) (*media.Frame, error) {
	var sps, pps []byte
	key := false
	out := au[:0:0]
	for _, nalu := range au {
		if len(nalu) == 0 {
			continue
		}
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = nalu
			continue
		case h264.NALUTypePPS:
			pps = nalu
			continue
		case h264.NALUTypeAccessUnitDelimiter:
			continue
		case h264.NALUTypeIDR:
			key = true
		}
		out = append(out, nalu)
	}
	if sps != nil || pps != nil {
		t.setH264(or(sps, t.track.SPS), or(pps, t.track.PPS))
	}
	if len(out) == 0 {
		return nil, nil // parameter sets only
	}
	if !t.keyed {
		if !key || t.track.SPS == nil || t.track.PPS == nil {
			return nil, ErrWaitingKeyframe
		}
		t.keyed = true
		t.dts264.Initialize()
	}
	if key {
		out = append([][]byte{t.track.SPS, t.track.PPS}, out...)
	}
	dts, err := t.dts264.Extract(out, ticks(pts))
	if err != nil {
		t.keyed = false
		return nil, fmt.Errorf("H.264 DTS: %w", err)
	}
	return &media.Frame{Track: t.track, PTS: pts, DTS: dur(dts), Key: key, AU: out}, nil
}

func (t *Track) h265(au [][]byte, pts time.Duration) (*media.Frame, error) {
	var vps, sps, pps []byte
	out := au[:0:0]
	for _, nalu := range au {
		if len(nalu) < 2 {
			continue
		}
		switch h265.NALUType((nalu[0] >> 1) & 0b111111) {
		case h265.NALUType_VPS_NUT:
			vps = nalu
			continue
		case h265.NALUType_SPS_NUT:
			sps = nalu
			continue
		case h265.NALUType_PPS_NUT:
			pps = nalu
			continue
		case h265.NALUType_AUD_NUT:
			continue
		}
		out = append(out, nalu)
	}
	if vps != nil || sps != nil || pps != nil {
		t.setH265(or(vps, t.track.VPS), or(sps, t.track.SPS), or(pps, t.track.PPS))
	}
	if len(out) == 0 {
		return nil, nil
	}
	key := h265.IsRandomAccess(out)
	if !t.keyed {
		if !key || t.track.VPS == nil || t.track.SPS == nil || t.track.PPS == nil {
			return nil, ErrWaitingKeyframe
		}
		t.keyed = true
		t.dts265.Initialize()
	}
	if key {
		out = append([][]byte{t.track.VPS, t.track.SPS, t.track.PPS}, out...)
	}
	dts, err := t.dts265.Extract(out, ticks(pts))
	if err != nil {
		t.keyed = false
		return nil, fmt.Errorf("H.265 DTS: %w", err)
	}
	return &media.Frame{Track: t.track, PTS: pts, DTS: dur(dts), Key: key, AU: out}, nil
}

func or(a, b []byte) []byte {
	if a != nil {
		return a
	}
	return b
}

// setH264 installs parameter sets; a change makes a new track (frames
// already written keep theirs).
func (t *Track) setH264(sps, pps []byte) {
	if bytes.Equal(sps, t.track.SPS) && bytes.Equal(pps, t.track.PPS) {
		return
	}
	n := t.next()
	n.SPS, n.PPS = clone(sps), clone(pps)
	var s h264.SPS
	if sps != nil && s.Unmarshal(sps) == nil {
		n.Width, n.Height = s.Width(), s.Height()
	}
	t.install(n)
}

func (t *Track) setH265(vps, sps, pps []byte) {
	if bytes.Equal(vps, t.track.VPS) && bytes.Equal(sps, t.track.SPS) && bytes.Equal(pps, t.track.PPS) {
		return
	}
	n := t.next()
	n.VPS, n.SPS, n.PPS = clone(vps), clone(sps), clone(pps)
	var s h265.SPS
	if sps != nil && s.Unmarshal(sps) == nil {
		n.Width, n.Height = s.Width(), s.Height()
	}
	t.install(n)
}

func (t *Track) next() *media.Track {
	n := *t.track
	return &n
}

func (t *Track) install(n *media.Track) {
	if t.track.SPS != nil {
		t.changes++
	}
	t.track = n
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// Adopt makes prev the current track when it has the same codec
// configuration (a camera reconnecting with the same settings keeps its
// track, so the archive needs no new init segment).
func (t *Track) Adopt(prev *media.Track) {
	if prev == nil {
		return
	}
	c := t.track
	if prev.Kind == c.Kind && prev.Codec == c.Codec && prev.ClockRate == c.ClockRate &&
		bytes.Equal(prev.VPS, c.VPS) && bytes.Equal(prev.SPS, c.SPS) && bytes.Equal(prev.PPS, c.PPS) &&
		prev.SampleRate == c.SampleRate && prev.Channels == c.Channels && bytes.Equal(prev.AudioConfig, c.AudioConfig) {
		t.track = prev
	}
}
