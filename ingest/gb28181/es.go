package gb28181

import (
	"bytes"
	"errors"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/bwcplatform/bwc/ingest/media"
)

// The elementary streams of a device's PS stream become the platform's
// frames: video PES payloads (Annex-B) are gathered into access units (a
// PES with a PTS starts the next one), parameter sets are tracked (a change
// makes a new media.Track) and prepended to keyframes; each audio PES is
// one frame. Timestamps are the PES's 90 kHz PTS/DTS, unwrapped, from the
// stream's first one.

// ErrNoVideo: the device's PS stream carries no video the platform takes
// (H.264 or H.265) after a few seconds of packets.
var ErrNoVideo = errors.New("PS stream without H.264/H.265 video")

// maxAU bounds one video access unit (a broken stream without timestamps
// is not gathered forever).
const maxAU = 4 << 20

const (
	trackVideo = 0
	trackAudio = 1
)

// esDemuxer turns PES packets into frames (out). Frames of a track are
// handed out in order; video waits for its first keyframe.
//
// Access units are told apart by the bitstream (an access unit delimiter,
// parameter sets or SEI after a picture's slices, a slice starting a new
// picture), not by PES packets: a muxer may carry several pictures in one
// PES (ffmpeg does) or one picture in several. A PES timestamp belongs to
// the first picture that starts in it; a picture without one is dated one
// frame interval after the previous.
type esDemuxer struct {
	out func(*media.Frame)

	video      *media.Track // current configuration; nil until known
	audio      *media.Track
	videoCodec media.Codec
	keyed      bool

	au      [][]byte // NAL units of the access unit being gathered
	auSize  int
	auTS    stamp // the access unit's PES timestamp, if any
	auVCL   bool  // the access unit has a slice
	nalTail []byte
	tailTS  stamp // timestamp of the NAL unit in nalTail (if it started a PES)
	carry   stamp // a PES timestamp waiting for the next picture to start
	open    bool  // a NAL unit started (its bytes so far in nalTail)

	lastPTS, lastDTS int64 // 90 kHz, of the last access unit handed out (unwrapped)
	lastSet          bool
	frameDur         int64 // 90 kHz, estimated from timestamped pictures
	sinceTS          int   // pictures since the last timestamped one

	base     int64 // first timestamp (90 kHz, unwrapped)
	baseSet  bool
	last     int64 // last raw timestamp, for 33-bit wrap-around
	wraps    int64
	audioPTS int64 // next audio PTS when a PES has none
}

// stamp is a PES's timestamps (ok false when it had none).
type stamp struct {
	pts, dts int64
	ok       bool
}

func newESDemuxer(out func(*media.Frame)) *esDemuxer {
	return &esDemuxer{out: out, frameDur: 3600}
}

// unwrap makes a 33-bit timestamp monotonic across its wrap-around.
func (e *esDemuxer) unwrap(ts int64) int64 {
	const span = int64(1) << 33
	if e.baseSet {
		if d := ts - e.last; d < -span/2 {
			e.wraps++
		} else if d > span/2 && e.wraps > 0 {
			e.wraps--
		}
	}
	e.last = ts
	full := ts + e.wraps*span
	if !e.baseSet {
		e.base, e.baseSet = full, true
	}
	return full
}

// since converts an unwrapped timestamp to the time since the stream's
// first one.
func (e *esDemuxer) since(full int64) time.Duration {
	return time.Duration(full-e.base) * time.Second / 90000
}

func (e *esDemuxer) pes(p pes) {
	switch {
	case p.streamID >= 0xe0 && p.streamID <= 0xef:
		e.videoPES(p)
	case p.streamID >= 0xc0 && p.streamID <= 0xdf:
		e.audioPES(p)
	}
}

func (e *esDemuxer) videoPES(p pes) {
	if e.videoCodec == "" {
		switch p.streamType {
		case streamH264:
			e.videoCodec = media.H264
		case streamH265:
			e.videoCodec = media.H265
		case 0:
			e.videoCodec = sniffVideo(p.payload)
		}
		if e.videoCodec == "" {
			return
		}
	}
	e.annexB(p.payload, stamp{p.pts, p.dts, p.hasPTS})
}

// annexB splits Annex-B bytes into NAL units, keeping an unterminated
// tail; the first NAL unit starting in this PES takes its timestamp.
func (e *esDemuxer) annexB(b []byte, ts stamp) {
	old := len(e.nalTail)
	data := append(e.nalTail, b...)
	e.nalTail = nil
	cur, given := e.tailTS, false
	start := -1
	for i := 0; i+3 <= len(data); {
		if data[i] != 0 || data[i+1] != 0 || data[i+2] != 1 {
			i++
			continue
		}
		if start >= 0 {
			end := i
			for end > start && data[end-1] == 0 { // 4-byte start code, trailing zeros
				end--
			}
			e.nalu(data[start:end], cur)
		} else if i > 0 && e.open {
			e.nalu(trimZeros(data[:i]), cur) // the open NAL unit ends here
		}
		cur = stamp{}
		if i+3 > old && !given {
			cur, given = ts, true
		}
		i += 3
		start = i
	}
	switch {
	case start >= 0:
		e.nalTail, e.tailTS, e.open = append([]byte(nil), data[start:]...), cur, true
	case e.open:
		e.nalTail = append([]byte(nil), data...) // no start code: the open NAL unit continues
	}
	if len(e.nalTail) > maxAU {
		e.nalTail, e.au, e.auSize, e.open = nil, nil, 0, false
	}
}

func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// nalu adds a NAL unit, first handing out the access unit it ends.
func (e *esDemuxer) nalu(n []byte, ts stamp) {
	if len(n) == 0 {
		return
	}
	vcl, starts := e.classify(n)
	switch {
	case ts.ok && !starts:
		// a PES's timestamp is the first picture's that starts in it, not
		// of a slice continuing one
		e.carry, ts = ts, stamp{}
	case starts && !ts.ok && e.carry.ok:
		ts, e.carry = e.carry, stamp{}
	case starts:
		e.carry = stamp{}
	}
	if starts && e.auVCL {
		e.flushAU()
	}
	if len(e.au) == 0 || (!e.auTS.ok && ts.ok) {
		if ts.ok || len(e.au) == 0 {
			e.auTS = ts
		}
	}
	e.auVCL = e.auVCL || vcl
	if e.auSize+len(n) > maxAU {
		e.au, e.auSize, e.auVCL = nil, 0, false
		return
	}
	e.au = append(e.au, append([]byte(nil), n...))
	e.auSize += len(n)
}

// classify tells whether a NAL unit is a slice (vcl) and whether it starts
// a new access unit when the current one already has a slice.
func (e *esDemuxer) classify(n []byte) (vcl, starts bool) {
	if e.videoCodec == media.H265 {
		if len(n) < 3 {
			return false, false
		}
		t := (n[0] >> 1) & 0x3f
		switch {
		case t <= 31:
			return true, n[2]&0x80 != 0 // first_slice_segment_in_pic_flag
		case t == 35 || t == 32 || t == 33 || t == 34 || t == 39 || (t >= 41 && t <= 44) || (t >= 48 && t <= 55):
			return false, true
		}
		return false, false
	}
	if len(n) < 2 {
		return false, false
	}
	switch t := n[0] & 0x1f; {
	case t == 1 || t == 5:
		return true, n[1]&0x80 != 0 // first_mb_in_slice == 0
	case t == 9 || t == 7 || t == 8 || t == 6 || (t >= 14 && t <= 18):
		return false, true
	}
	return false, false
}

// flushAU hands out the access unit gathered so far.
func (e *esDemuxer) flushAU() {
	au, ts := e.au, e.auTS
	e.au, e.auSize, e.auVCL, e.auTS = nil, 0, false, stamp{}
	if len(au) == 0 {
		return
	}
	var pts, dts int64
	switch {
	case ts.ok:
		pts, dts = e.unwrap(ts.pts), e.unwrap(ts.dts)
		if e.lastSet && pts > e.lastPTS && e.sinceTS > 0 {
			if d := (pts - e.lastPTS) / int64(e.sinceTS); d > 0 && d < 90000 {
				e.frameDur = d
			}
		}
		e.sinceTS = 1
	case e.lastSet:
		pts, dts = e.lastPTS+e.frameDur, e.lastDTS+e.frameDur
		e.sinceTS++
	default:
		return // nothing to date it from yet
	}
	e.lastPTS, e.lastDTS, e.lastSet = pts, dts, true
	var f *media.Frame
	if e.videoCodec == media.H264 {
		f = e.h264(au)
	} else {
		f = e.h265(au)
	}
	if f == nil {
		return
	}
	f.PTS, f.DTS = e.since(pts), e.since(dts)
	e.out(f)
}

func (e *esDemuxer) h264(au [][]byte) *media.Frame {
	var sps, pps []byte
	key := false
	out := au[:0:0]
	for _, n := range au {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
			continue
		case h264.NALUTypePPS:
			pps = n
			continue
		case h264.NALUTypeAccessUnitDelimiter:
			continue
		case h264.NALUTypeIDR:
			key = true
		}
		out = append(out, n)
	}
	if sps != nil || pps != nil {
		e.setVideo(nil, or(sps, e.cur().SPS), or(pps, e.cur().PPS))
	}
	if len(out) == 0 || e.video == nil {
		return nil
	}
	v := e.video
	if !e.keyed {
		if !key || v.SPS == nil || v.PPS == nil {
			return nil
		}
		e.keyed = true
	}
	if key {
		out = append([][]byte{v.SPS, v.PPS}, out...)
	}
	return &media.Frame{Track: v, Key: key, AU: out}
}

func (e *esDemuxer) h265(au [][]byte) *media.Frame {
	var vps, sps, pps []byte
	out := au[:0:0]
	for _, n := range au {
		if len(n) < 2 {
			continue
		}
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			vps = n
			continue
		case h265.NALUType_SPS_NUT:
			sps = n
			continue
		case h265.NALUType_PPS_NUT:
			pps = n
			continue
		case h265.NALUType_AUD_NUT:
			continue
		}
		out = append(out, n)
	}
	if vps != nil || sps != nil || pps != nil {
		e.setVideo(or(vps, e.cur().VPS), or(sps, e.cur().SPS), or(pps, e.cur().PPS))
	}
	if len(out) == 0 || e.video == nil {
		return nil
	}
	v := e.video
	key := h265.IsRandomAccess(out)
	if !e.keyed {
		if !key || v.VPS == nil || v.SPS == nil || v.PPS == nil {
			return nil
		}
		e.keyed = true
	}
	if key {
		out = append([][]byte{v.VPS, v.SPS, v.PPS}, out...)
	}
	return &media.Frame{Track: v, Key: key, AU: out}
}

func (e *esDemuxer) cur() *media.Track {
	if e.video == nil {
		return &media.Track{}
	}
	return e.video
}

// setVideo installs parameter sets; a change makes a new track.
func (e *esDemuxer) setVideo(vps, sps, pps []byte) {
	c := e.cur()
	if e.video != nil && bytes.Equal(vps, c.VPS) && bytes.Equal(sps, c.SPS) && bytes.Equal(pps, c.PPS) {
		return
	}
	n := &media.Track{ID: trackVideo, Kind: media.Video, Codec: e.videoCodec, ClockRate: 90000,
		VPS: clone(vps), SPS: clone(sps), PPS: clone(pps)}
	switch e.videoCodec {
	case media.H264:
		n.PayloadType = 96
		var s h264.SPS
		if sps != nil && s.Unmarshal(sps) == nil {
			n.Width, n.Height = s.Width(), s.Height()
		}
	case media.H265:
		n.PayloadType = 96
		var s h265.SPS
		if sps != nil && s.Unmarshal(sps) == nil {
			n.Width, n.Height = s.Width(), s.Height()
		}
	}
	e.video = n
}

func (e *esDemuxer) audioPES(p pes) {
	var aus [][]byte
	var adts mpeg4audio.ADTSPackets
	st := p.streamType
	if st == 0 && len(p.payload) >= 2 && p.payload[0] == 0xff && p.payload[1]&0xf6 == 0xf0 {
		st = streamAAC // no program stream map: the ADTS sync word (and layer 0)
	}
	switch st {
	case streamPCMA, streamPCMU:
		aus = [][]byte{p.payload}
	case streamAAC: // ADTS frames: each one access unit of 1024 samples
		if adts.Unmarshal(p.payload) != nil || len(adts) == 0 {
			return // not whole ADTS frames: dropped
		}
		for _, a := range adts {
			aus = append(aus, a.AU)
		}
	default:
		return // unknown audio: not recorded
	}
	if e.audio == nil {
		switch st {
		case streamPCMA:
			e.audio = &media.Track{ID: trackAudio, Kind: media.Audio, Codec: media.PCMA, ClockRate: 8000, PayloadType: 8, SampleRate: 8000, Channels: 1}
		case streamPCMU:
			e.audio = &media.Track{ID: trackAudio, Kind: media.Audio, Codec: media.PCMU, ClockRate: 8000, PayloadType: 0, SampleRate: 8000, Channels: 1}
		case streamAAC:
			a := adts[0]
			conf, err := mpeg4audio.AudioSpecificConfig{Type: a.Type, SampleRate: a.SampleRate, ChannelCount: a.ChannelCount}.Marshal()
			if err != nil {
				return
			}
			e.audio = &media.Track{ID: trackAudio, Kind: media.Audio, Codec: media.AAC, ClockRate: a.SampleRate, PayloadType: 97,
				SampleRate: a.SampleRate, Channels: a.ChannelCount, AudioConfig: conf}
		}
	}
	if !e.keyed {
		return // audio starts with the first picture
	}
	samples := len(p.payload) // G.711: one byte a sample
	if st == streamAAC {
		samples = len(aus) * mpeg4audio.SamplesPerAccessUnit
	}
	var pts time.Duration
	if p.hasPTS {
		pts = e.since(e.unwrap(p.pts))
	} else {
		pts = time.Duration(e.audioPTS) * time.Second / 90000
	}
	e.audioPTS = int64(pts/(time.Second/90000)) + int64(samples)*90000/int64(e.audio.SampleRate)
	if pts < 0 {
		return // sent before the first picture
	}
	out := make([][]byte, len(aus))
	for i, au := range aus {
		out[i] = append([]byte(nil), au...)
	}
	e.out(&media.Frame{Track: e.audio, PTS: pts, DTS: pts, AU: out})
}

// sniffVideo guesses the codec of a video stream without a program stream
// map from its parameter sets.
func sniffVideo(b []byte) media.Codec {
	for i := 0; i+4 <= len(b); i++ {
		if b[i] != 0 || b[i+1] != 0 || b[i+2] != 1 {
			continue
		}
		n := b[i+3]
		switch {
		case (n>>1)&0x3f == 32: // H.265 VPS
			return media.H265
		case n&0x1f == 7 && n&0x80 == 0: // H.264 SPS
			return media.H264
		}
	}
	return ""
}

func or(a, b []byte) []byte {
	if a != nil {
		return a
	}
	return b
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
