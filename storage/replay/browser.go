package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/bwcplatform/bwc/ingest/media/transcode"
)

// Browsers' Media Source Extensions play AAC and Opus audio in fMP4, not
// LPCM (the archive's G.711, decoded losslessly when archived), whose init
// segment they refuse outright ("Unsupported audio format 0x6970636d").
// For the browser's player a recording is therefore served converted, on
// the fly: the video samples as archived, the LPCM audio encoded to AAC
// segment by segment (each segment on its own, so that any segment can be
// fetched first: seeking stays one request); audio that cannot be
// converted is left out and the picture plays. The archived objects are
// never changed: HLS, exports and verification read them as they are.

// AudioEncoder encodes LPCM to AAC (transcode.FFmpeg).
type AudioEncoder interface {
	EncodeAAC(ctx context.Context, p transcode.PCM, samples []byte) ([][]byte, error)
}

// ErrConvert: a segment's audio could not be converted for the browser.
var ErrConvert = errors.New("audio conversion for the browser failed")

// playable reports whether browsers' MSE plays a codec in fMP4.
func playable(c mp4.Codec) bool {
	switch c.(type) {
	case *mp4.CodecH264, *mp4.CodecH265, *mp4.CodecMPEG4Audio, *mp4.CodecOpus:
		return true
	}
	return false
}

// browserTracks is what the browser's copy does with each track of an init
// segment: keep it, convert it (LPCM to AAC) or leave it out.
type browserTracks struct {
	convert map[int]*mp4.CodecLPCM // track ID -> its LPCM
	scale   map[int]uint32         // track ID -> its time scale
	drop    map[int]bool
}

func (b browserTracks) changed() bool { return len(b.convert)+len(b.drop) > 0 }

func planTracks(in *fmp4.Init, canConvert bool) browserTracks {
	b := browserTracks{convert: map[int]*mp4.CodecLPCM{}, scale: map[int]uint32{}, drop: map[int]bool{}}
	for _, t := range in.Tracks {
		b.scale[t.ID] = t.TimeScale
		if playable(t.Codec) {
			continue
		}
		if l, ok := t.Codec.(*mp4.CodecLPCM); ok && canConvert && (transcode.PCM{Rate: l.SampleRate, Channels: l.ChannelCount, BitDepth: l.BitDepth}).Valid() {
			b.convert[t.ID] = l
			continue
		}
		b.drop[t.ID] = true
	}
	return b
}

func pcmOf(l *mp4.CodecLPCM) transcode.PCM {
	return transcode.PCM{Rate: l.SampleRate, Channels: l.ChannelCount, BitDepth: l.BitDepth, LittleEndian: l.LittleEndian}
}

// BrowserInit returns the init segment of the browser's copy: changed is
// false when the archived one plays as it is; otherwise out has the LPCM
// audio as AAC (canConvert) or no audio track.
func BrowserInit(initSegment []byte, canConvert bool) (out []byte, changed bool, err error) {
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(initSegment)); err != nil {
		return nil, false, fmt.Errorf("init segment: %w", err)
	}
	plan := planTracks(&in, canConvert)
	if !plan.changed() {
		return initSegment, false, nil
	}
	var tracks []*fmp4.InitTrack
	for _, t := range in.Tracks {
		switch {
		case plan.drop[t.ID]:
			continue
		case plan.convert[t.ID] != nil:
			conf := transcode.AACConfig(pcmOf(plan.convert[t.ID]))
			t = &fmp4.InitTrack{ID: t.ID, TimeScale: transcode.AACRate, Codec: &mp4.CodecMPEG4Audio{Config: conf}}
		}
		tracks = append(tracks, t)
	}
	if len(tracks) == 0 {
		return nil, false, errors.New("init segment: no track a browser can play")
	}
	in.Tracks = tracks
	var buf seekablebuffer.Buffer
	if err := in.Marshal(&buf); err != nil {
		return nil, false, fmt.Errorf("init segment: %w", err)
	}
	return buf.Bytes(), true, nil
}

// BrowserSegment returns the browser's copy of a media segment of the init
// segment initSegment (as archived), matching BrowserInit's with the same
// enc (nil: cannot convert): video samples as archived, LPCM audio encoded
// to AAC at transcode.AACRate, placed so that the encoder's delay falls
// before the segment's first sample (the next segment's start overlaps the
// previous one's end by that delay, which MSE trims), other audio left out.
func BrowserSegment(ctx context.Context, initSegment, segment []byte, enc AudioEncoder) ([]byte, error) {
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(initSegment)); err != nil {
		return nil, fmt.Errorf("init segment: %w", err)
	}
	plan := planTracks(&in, enc != nil)
	if !plan.changed() {
		return segment, nil
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(segment); err != nil {
		return nil, fmt.Errorf("media segment: %w", err)
	}
	type pending struct {
		part  *fmp4.Part
		base  uint64
		bytes []byte
	}
	audio := map[int]*pending{}
	var order []int
	for _, p := range parts {
		kept := p.Tracks[:0]
		for _, t := range p.Tracks {
			switch {
			case plan.drop[t.ID]:
				continue
			case plan.convert[t.ID] != nil:
				a := audio[t.ID]
				if a == nil {
					a = &pending{part: p, base: t.BaseTime}
					audio[t.ID] = a
					order = append(order, t.ID)
				}
				for _, s := range t.Samples {
					a.bytes = append(a.bytes, s.Payload...)
				}
				continue
			}
			kept = append(kept, t)
		}
		p.Tracks = kept
	}
	for _, id := range order {
		a := audio[id]
		aus, err := enc.EncodeAAC(ctx, pcmOf(plan.convert[id]), a.bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: track %d: %w", ErrConvert, id, err)
		}
		// the segment's start at 48 kHz, less the encoder's delay
		base := int64(a.base)*transcode.AACRate/int64(max(plan.scale[id], 1)) - transcode.AACDelay
		for base < 0 && len(aus) > 0 { // the recording's very start: no room before it
			aus, base = aus[1:], base+1024
		}
		pt := &fmp4.PartTrack{ID: id, BaseTime: uint64(base)}
		for _, au := range aus {
			pt.Samples = append(pt.Samples, &fmp4.Sample{Duration: 1024, Payload: au})
		}
		a.part.Tracks = append(a.part.Tracks, pt)
	}
	parts = slices.DeleteFunc(parts, func(p *fmp4.Part) bool { return len(p.Tracks) == 0 })
	var buf seekablebuffer.Buffer
	if err := parts.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("media segment: %w", err)
	}
	return buf.Bytes(), nil
}
