package relay

import (
	"testing"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/transcode"
)

// TestForwardsWhatIsPacketized: the feed's reader takes (forwards) exactly
// the frames the feed uses: those packetize turns into RTP, and AAC only
// when a transcoder converts it (convertAAC). A codec added to one and not
// the other fails here.
func TestForwardsWhatIsPacketized(t *testing.T) {
	au := map[media.Codec][]byte{media.H264: {0x65, 0x88, 0x84, 0x00}, media.H265: {0x26, 0x01, 0xaf, 0x00}}
	for _, transcoder := range []*transcode.FFmpeg{nil, {}} {
		f := &feed{s: &Server{cfg: Config{Transcoder: transcoder}}}
		for _, kind := range []media.Kind{media.Video, media.Audio} {
			for _, codec := range []media.Codec{media.H264, media.H265, media.AAC, media.PCMA, media.PCMU, media.Opus, "VP8"} {
				tr := &media.Track{Kind: kind, Codec: codec, ClockRate: 90000}
				data := au[codec]
				if data == nil {
					data = []byte{1, 2, 3}
				}
				used := f.packetize(&media.Frame{Track: tr, Key: true, AU: [][]byte{data}}) != nil
				if codec == media.AAC && kind == media.Audio {
					used = transcoder != nil // convertAAC
				}
				if got := f.forwards(tr); got != used {
					t.Errorf("%s %s, transcoder %v: forwards %v, but the feed uses its frames: %v", kind, codec, transcoder != nil, got, used)
				}
			}
		}
	}
}
