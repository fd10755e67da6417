package relay

import (
	"fmt"
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
				tr := &media.Track{Kind: kind, Codec: codec, ClockRate: 90000, AudioConfig: []byte{0x15, 0x88}}
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

// TestTracksOfferWhatIsForwarded: the SDP answer offers (tracks) an audio
// track exactly when the feed forwards that track's frames: an offered
// track the feed never feeds would be silent, and frames forwarded for a
// track not offered would be read for nothing. A codec added to one switch
// and not the other fails here.
func TestTracksOfferWhatIsForwarded(t *testing.T) {
	for _, transcoder := range []*transcode.FFmpeg{nil, {}} {
		for _, config := range [][]byte{nil, {0x15, 0x88}} {
			for _, codec := range []media.Codec{media.AAC, media.PCMA, media.PCMU, media.Opus, "G726"} {
				video := &media.Track{Kind: media.Video, Codec: media.H264, ClockRate: 90000}
				audio := &media.Track{Kind: media.Audio, Codec: codec, ClockRate: 8000, Channels: 1, AudioConfig: config}
				f := &feed{s: &Server{cfg: Config{Transcoder: transcoder}},
					stream: media.NewStream(media.Info{Tracks: []*media.Track{video, audio}})}
				what := fmt.Sprintf("%s (config %x), transcoder %v", codec, config, transcoder != nil)
				v, a, note := f.tracks()
				if v != video || !f.forwards(v) {
					t.Errorf("%s: video offered %v, forwarded %v", what, v, f.forwards(video))
				}
				if offered, fwd := a != nil, f.forwards(audio); offered != fwd {
					t.Errorf("%s: audio offered %v (%q), forwarded %v", what, offered, note, fwd)
				}
				if (a == nil) == (note == "") {
					t.Errorf("%s: no audio offered must say why (%q), and only then", what, note)
				}
			}
		}
	}
}
