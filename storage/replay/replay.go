// Package replay turns the archive's index into what players need: HLS
// playlists (fMP4, RFC 8216 version 7) of a recording or of a wall-clock
// range, with program date-times and discontinuities at gaps, and the RFC
// 6381 codecs string of an init segment for Media Source Extensions.
// It reads nothing itself: callers pass the index rows.
package replay

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/bwcplatform/bwc/storage/index"
)

// ErrNoSegments: nothing archived in the asked range (yet).
var ErrNoSegments = errors.New("no archived segments in range")

// Playlist is an HLS media playlist of segments.
type Playlist struct {
	Segments []index.Segment // in sequence order
	Live     bool            // the recording is still live: EVENT playlist, no ENDLIST
	// URIs of the objects, relative to the playlist.
	InitURI    func(n int) string
	SegmentURI func(seq int64) string
}

// Duration of a segment on the media timeline.
func Duration(s index.Segment) time.Duration { return s.EndDTS - s.StartDTS }

// String renders the playlist.
func (p Playlist) String() string {
	var b strings.Builder
	target := 1
	for _, s := range p.Segments {
		target = max(target, int(math.Ceil(Duration(s).Seconds())))
	}
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", target)
	if len(p.Segments) > 0 {
		fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", p.Segments[0].Seq)
	}
	if p.Live {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:EVENT\n")
	} else {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	}
	b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	initN := -1
	for i, s := range p.Segments {
		// a gap, a change of codec configuration, or a hole in the range
		disc := i > 0 && (s.Gap || s.InitN != initN || s.Seq != p.Segments[i-1].Seq+1)
		if disc {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if s.InitN != initN {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=%q\n", p.InitURI(s.InitN))
			initN = s.InitN
		}
		if i == 0 || disc {
			fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", s.StartedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		}
		fmt.Fprintf(&b, "#EXTINF:%.3f,\n%s\n", Duration(s).Seconds(), p.SegmentURI(s.Seq))
	}
	if !p.Live {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return b.String()
}

// Trim keeps the segments of a wall-clock range rounded to the nearest
// segment boundaries: the first segment stays if the range starts in its
// first half, the last if the range ends in its second half (a range inside
// one segment keeps it). A player copying the playlist then gets the range
// within one segment, half a segment at most at each end.
func Trim(segs []index.Segment, from, to time.Time) []index.Segment {
	if len(segs) <= 1 {
		return segs
	}
	if first := segs[0]; !from.IsZero() && from.After(first.StartedAt) && from.Sub(first.StartedAt) >= first.EndedAt.Sub(first.StartedAt)/2 {
		segs = segs[1:]
	}
	if len(segs) <= 1 {
		return segs
	}
	if last := segs[len(segs)-1]; !to.IsZero() && to.Before(last.EndedAt) && to.Sub(last.StartedAt) < last.EndedAt.Sub(last.StartedAt)/2 {
		segs = segs[:len(segs)-1]
	}
	return segs
}

// Seek locates a wall-clock instant in a segment: the offset from the
// segment's start (0 when the instant fell in a gap before it) and the
// position on the recording's media timeline.
func Seek(s index.Segment, at time.Time) (offset, media time.Duration) {
	offset = at.Sub(s.StartedAt)
	if offset < 0 {
		offset = 0
	}
	if d := Duration(s); offset > d {
		offset = d
	}
	return offset, s.StartDTS + offset
}

// Codecs reads an init segment and returns its RFC 6381 codecs string
// (e.g. `avc1.4d0028,mp4a.40.2`), for MediaSource.addSourceBuffer.
func Codecs(initSegment []byte) (string, error) {
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(initSegment)); err != nil {
		return "", fmt.Errorf("init segment: %w", err)
	}
	var out []string
	for _, t := range in.Tracks {
		switch c := t.Codec.(type) {
		case *mp4.CodecH264:
			if len(c.SPS) < 4 {
				return "", errors.New("init segment: H.264 without SPS")
			}
			out = append(out, fmt.Sprintf("avc1.%02x%02x%02x", c.SPS[1], c.SPS[2], c.SPS[3]))
		case *mp4.CodecH265:
			out = append(out, "hvc1.1.6.L93.B0")
		case *mp4.CodecMPEG4Audio:
			out = append(out, fmt.Sprintf("mp4a.40.%d", int(c.Config.Type)))
		case *mp4.CodecOpus:
			out = append(out, "opus")
		default:
			// G.711 is archived as LPCM, which browsers' MSE does not take:
			// the picture still plays
		}
	}
	if len(out) == 0 {
		return "", errors.New("init segment: no track a browser can play")
	}
	return strings.Join(out, ","), nil
}
