// Package media holds the types every part of the platform shares about
// live media: a Track (one codec configuration), a Frame (one access unit
// with its timestamps and the RTP packets that carried it), and a Stream,
// the fan-out of one live recording to its readers (the archive, WebRTC
// viewers, tests), with a bounded ring per reader.
//
// It knows nothing of RTSP, databases or WebRTC, so that storage and relay
// can import it without importing ingest.
package media

import (
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/pion/rtp"
)

// ErrNotLive: the recording asked for is not live (never was, ended, or
// has no video yet). The ingest and the relay both answer it.
var ErrNotLive = errors.New("recording is not live")

// Kind is video or audio.
type Kind string

// Track kinds.
const (
	Video Kind = "video"
	Audio Kind = "audio"
)

// Codec names a codec the platform takes in.
type Codec string

// Supported codecs.
const (
	H264 Codec = "H264"
	H265 Codec = "H265"
	AAC  Codec = "MPEG4-GENERIC"
	PCMA Codec = "PCMA"
	PCMU Codec = "PCMU"
	Opus Codec = "opus"
)

// Track is one elementary stream with one codec configuration. A change of
// configuration mid-stream (new SPS, new resolution) makes a new *Track:
// readers notice a frame whose Track differs from the last one. Tracks are
// immutable once frames refer to them.
type Track struct {
	ID        int   // index of the track within its stream
	Kind      Kind  //
	Codec     Codec //
	ClockRate int   // RTP clock rate (90000 for video)

	// RTP description, for forwarding without transcoding.
	PayloadType uint8
	FMTP        string // SDP a=fmtp parameters, as the camera sent them

	// Video parameter sets (without start codes) and picture size.
	VPS, SPS, PPS []byte
	Width, Height int

	// Audio. AudioConfig is the AAC AudioSpecificConfig.
	SampleRate  int
	Channels    int
	AudioConfig []byte
}

// Frame is one access unit of one track. Frames are shared by every reader
// of a stream and must not be modified once written.
type Frame struct {
	Track *Track
	// PTS and DTS are on the recording's own timeline: time since the
	// recording started, continuous across reconnects.
	PTS, DTS time.Duration
	// Wall is the wall-clock time of PTS (from the camera's RTCP sender
	// reports when it sends them, the server's receive time otherwise).
	Wall time.Time
	// Key is true for a video frame a decoder can start from (IDR/IRAP);
	// its AU starts with the parameter sets.
	Key bool
	// Gap is true on the first frame after media was missing (the camera
	// reconnected): a discontinuity.
	Gap bool
	// AU is the access unit: NAL units without start codes for video, one
	// or more audio access units (AAC AUs, an Opus packet, G.711 samples)
	// for audio.
	AU [][]byte
	// RTP are the camera's packets that carried this frame, when it came
	// over RTP; read-only.
	RTP []*rtp.Packet
}

// Size is the payload size of the frame in bytes.
func (f *Frame) Size() int {
	n := 0
	for _, b := range f.AU {
		n += len(b)
	}
	return n
}

// Info describes a live recording: what the stream is bound to and what it
// carries.
type Info struct {
	RecordingID  uuid.UUID
	DeviceID     uuid.UUID
	DeviceSerial string
	OfficerID    uuid.UUID // uuid.Nil when the device was not checked out (unbound)
	StartedAt    time.Time
	Tracks       []*Track
	Part         int // 0; n >= 1: this node continues a recording another node held (the archive's part, storage/internal/chain)
}

// Video returns the stream's video track, or nil.
func (i Info) Video() *Track {
	for _, t := range i.Tracks {
		if t.Kind == Video {
			return t
		}
	}
	return nil
}
