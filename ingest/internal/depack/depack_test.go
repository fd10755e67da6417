package depack

import (
	"bytes"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
)

// encodeFrame packetizes an access unit as a camera would.
func encodeFrame(t *testing.T, f *format.H264, au [][]byte, seq *uint16) []*rtp.Packet {
	t.Helper()
	enc, err := f.CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	enc.InitialSequenceNumber = seq
	pkts, err := enc.Encode(au)
	if err != nil {
		t.Fatal(err)
	}
	*seq += uint16(len(pkts))
	return pkts
}

func decodeAll(t *testing.T, tr *Track, pkts []*rtp.Packet, pts time.Duration) (*media.Frame, error) {
	t.Helper()
	var out *media.Frame
	for _, p := range pkts {
		f, err := tr.Decode(p, pts)
		if err != nil {
			return nil, err
		}
		if f != nil {
			out = f
		}
	}
	return out, nil
}

// TestH264WaitsForKeyframeAndFollowsResolutionChange: frames before the
// first IDR are refused; an in-band SPS with another resolution makes a
// new track, and the keyframe after it carries the new parameter sets.
func TestH264WaitsForKeyframeAndFollowsResolutionChange(t *testing.T) {
	s := mediatest.Load(t)
	f := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: s.Video.SPS, PPS: s.Video.PPS}
	tr, err := New(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	first := tr.Track()
	if first.Width != 1280 || first.Height != 720 {
		t.Fatalf("track from SDP = %dx%d", first.Width, first.Height)
	}
	var seq uint16
	var key, delta *media.Frame
	for _, fr := range s.Frames {
		if fr.Track.Kind != media.Video {
			continue
		}
		if fr.Key && key == nil {
			key = fr
		} else if !fr.Key && delta == nil {
			delta = fr
		}
	}
	if _, err := decodeAll(t, tr, encodeFrame(t, f, delta.AU, &seq), 0); !errors.Is(err, ErrWaitingKeyframe) {
		t.Fatalf("delta frame first: %v, want ErrWaitingKeyframe", err)
	}
	got, err := decodeAll(t, tr, encodeFrame(t, f, key.AU, &seq), 40*time.Millisecond)
	if err != nil || got == nil || !got.Key || got.Track != first {
		t.Fatalf("keyframe: %+v %v", got, err)
	}
	// a keyframe of another resolution, with its parameter sets in-band
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=5",
		"-frames:v", "1", "-c:v", "libx264", "-preset", "ultrafast", "-bsf:v", "h264_mp4toannexb", "-f", "h264", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	var annexb h264.AnnexB
	if err := annexb.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	got, err = decodeAll(t, tr, encodeFrame(t, f, annexb, &seq), 80*time.Millisecond)
	if err != nil || got == nil || !got.Key {
		t.Fatalf("new-resolution keyframe: %+v %v", got, err)
	}
	if got.Track == first || got.Track.Width != 320 || got.Track.Height != 240 || tr.Changes() != 1 {
		t.Fatalf("after the change: track %dx%d (same = %v), changes %d", got.Track.Width, got.Track.Height, got.Track == first, tr.Changes())
	}
	if !bytes.Equal(got.AU[0], got.Track.SPS) || h264.NALUType(got.AU[1][0]&0x1f) != h264.NALUTypePPS {
		t.Fatal("keyframe does not start with the new SPS and PPS")
	}
	if first.Width != 1280 {
		t.Fatal("the old track was modified")
	}
}

// TestUnsupportedFormat: a codec the platform does not take is refused by
// name.
func TestUnsupportedFormat(t *testing.T) {
	_, err := New(&format.MJPEG{}, 0)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("MJPEG: %v", err)
	}
}

func fuzzFormats() []format.Format {
	return []format.Format{
		&format.H264{PayloadTyp: 96, PacketizationMode: 1},
		&format.H265{PayloadTyp: 96},
		&format.MPEG4Audio{PayloadTyp: 97, Config: &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelCount: 1},
			SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3},
		&format.G711{PayloadTyp: 8, SampleRate: 8000, ChannelCount: 1},
		&format.Opus{PayloadTyp: 111, ChannelCount: 2},
	}
}

// FuzzDecode: any RTP payload a camera sends is decoded or refused,
// never a panic.
func FuzzDecode(f *testing.F) {
	s, err := mediatest.Decode(mediatest.Path())
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{0x7c, 0x85, 0x88}, uint8(0)) // FU-A start of an IDR
	f.Add(s.Video.SPS, uint8(0))
	f.Add([]byte{0x00, 0x10, 0x01, 0x00, 0xaa}, uint8(2))
	f.Fuzz(func(t *testing.T, payload []byte, which uint8) {
		formats := fuzzFormats()
		tr, err := New(formats[int(which)%len(formats)], 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			p := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: i == 2, SequenceNumber: uint16(i), PayloadType: 96}, Payload: payload}
			_, _ = tr.Decode(p, time.Duration(i)*time.Millisecond)
		}
	})
}

// BenchmarkDecodeH264: the ingest's per-packet path for video: RTP packets
// of the 2 Mbit/s sample to access units with DTS.
func BenchmarkDecodeH264(b *testing.B) {
	s := mediatest.Load(b)
	f := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: s.Video.SPS, PPS: s.Video.PPS}
	enc, err := f.CreateEncoder()
	if err != nil {
		b.Fatal(err)
	}
	type pp struct {
		p   *rtp.Packet
		pts time.Duration
	}
	var pkts []pp
	var bytes int
	for _, fr := range s.Frames {
		if fr.Track.Kind != media.Video {
			continue
		}
		ps, err := enc.Encode(fr.AU)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range ps {
			pkts = append(pkts, pp{p, fr.PTS})
			bytes += len(p.Payload)
		}
	}
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tr, err := New(f, 0)
		if err != nil {
			b.Fatal(err)
		}
		for _, x := range pkts {
			if _, err := tr.Decode(x.p, x.pts+time.Duration(i)*s.Duration); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts)), "ns/packet")
}
