package replay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediafile"
	"github.com/bwcplatform/bwc/ingest/media/transcode"
	"github.com/bwcplatform/bwc/storage/internal/segmenter"
)

// collect is a segmenter sink keeping the init and media segments.
type collect struct {
	inits [][]byte
	segs  [][]byte
}

func (c *collect) Init(n int, data []byte) error { c.inits = append(c.inits, data); return nil }
func (c *collect) Begin(segmenter.Header) error  { c.segs = append(c.segs, nil); return nil }
func (c *collect) Fragment(data []byte, _ segmenter.End) error {
	c.segs[len(c.segs)-1] = append(c.segs[len(c.segs)-1], data...)
	return nil
}
func (c *collect) Seal(segmenter.End) error { return nil }

// g711Recording archives the committed capture's video with G.711 (A-law,
// 8 kHz, 20 ms packets) audio as the archive does: LPCM in fMP4.
func g711Recording(t *testing.T) *collect {
	t.Helper()
	s, err := mediafile.Decode("../../testdata/sample.ts")
	if err != nil {
		t.Fatal(err)
	}
	audio := &media.Track{ID: 1, Kind: media.Audio, Codec: media.PCMA, ClockRate: 8000, Channels: 1}
	var frames []*media.Frame
	next := time.Duration(0)
	for _, f := range s.Loop(3, time.Now()) {
		if f.Track.Kind != media.Video {
			continue
		}
		for ; next <= f.DTS; next += 20 * time.Millisecond {
			frames = append(frames, &media.Frame{Track: audio, PTS: next, DTS: next, AU: [][]byte{bytes.Repeat([]byte{0xd5, 0x55, 0x2a, 0xaa}, 40)}})
		}
		frames = append(frames, f)
	}
	c := &collect{}
	sg := segmenter.New(segmenter.Config{Target: 2 * time.Second, Fragment: 500 * time.Millisecond, Start: time.Now()}, c, []*media.Track{s.Video, audio})
	for _, f := range frames {
		if err := sg.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := sg.Close(); err != nil {
		t.Fatal(err)
	}
	if len(c.inits) != 1 || len(c.segs) < 2 {
		t.Fatalf("%d inits, %d segments", len(c.inits), len(c.segs))
	}
	return c
}

func TestBrowserCopyOfG711Recording(t *testing.T) {
	c := g711Recording(t)
	if _, err := Codecs(c.inits[0]); err != nil {
		t.Fatal(err)
	}
	ff := transcode.FFmpeg{Path: "ffmpeg"}
	sums := [][32]byte{sha256.Sum256(c.inits[0])}
	for _, s := range c.segs {
		sums = append(sums, sha256.Sum256(s))
	}

	init, changed, err := BrowserInit(c.inits[0], true)
	if err != nil || !changed {
		t.Fatalf("browser init: changed %v, %v", changed, err)
	}
	codecs, err := Codecs(init)
	if err != nil || !strings.HasPrefix(codecs, "avc1.") || !strings.HasSuffix(codecs, ",mp4a.40.2") {
		t.Fatalf("codecs %q, %v", codecs, err)
	}
	file := append([]byte(nil), init...)
	var videoIn, videoOut, audioSamples int
	for i, s := range c.segs {
		out, err := BrowserSegment(context.Background(), c.inits[0], s, ff)
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		file = append(file, out...)
		// the video samples are the archived ones, byte for byte
		vin, _ := trackSamples(t, s, 1)
		vout, _ := trackSamples(t, out, 1)
		videoIn += len(vin)
		videoOut += len(vout)
		if !bytes.Equal(bytes.Join(vin, nil), bytes.Join(vout, nil)) {
			t.Fatalf("segment %d: video samples changed", i)
		}
		_, aac := trackSamples(t, out, 2)
		audioSamples += aac
	}
	if videoIn == 0 || videoIn != videoOut || audioSamples == 0 {
		t.Fatalf("video samples %d in, %d out; %d AAC samples", videoIn, videoOut, audioSamples)
	}
	// the archived bytes are untouched
	if sha256.Sum256(c.inits[0]) != sums[0] {
		t.Fatal("init segment changed in place")
	}
	for i, s := range c.segs {
		if sha256.Sum256(s) != sums[i+1] {
			t.Fatalf("segment %d changed in place", i)
		}
	}
	// a real decoder reads the copy: H.264 and AAC at 48 kHz, the audio as
	// long as the video within a segment's encoder delay
	path := filepath.Join(t.TempDir(), "browser.mp4")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name,sample_rate,duration", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "h264") || !strings.Contains(string(out), "aac,48000") {
		t.Fatalf("ffprobe: %s", out)
	}
	dec, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-map", "0:a", "-f", "s16le", "-").Output()
	if err != nil {
		t.Fatalf("decode the copy's audio: %v", err)
	}
	audioSecs := float64(len(dec)) / 2 / transcode.AACRate
	videoSecs := float64(videoIn) / 25
	if d := audioSecs - videoSecs; d < -0.2 || d > 0.2+float64(len(c.segs))*0.05 {
		t.Fatalf("%.2f s of audio for %.2f s of video", audioSecs, videoSecs)
	}
	t.Logf("%d segments: %.2f s video, %.2f s AAC audio", len(c.segs), videoSecs, audioSecs)
}

func TestBrowserCopyWithoutConversion(t *testing.T) {
	c := g711Recording(t)
	// no encoder: the picture alone
	init, changed, err := BrowserInit(c.inits[0], false)
	if err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	if codecs, err := Codecs(init); err != nil || strings.Contains(codecs, ",") {
		t.Fatalf("codecs %q, %v", codecs, err)
	}
	out, err := BrowserSegment(context.Background(), c.inits[0], c.segs[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, n := trackSamples(t, out, 2); n != 0 {
		t.Fatalf("%d audio samples left in a copy without conversion", n)
	}
	// an encoder that fails names the conversion
	if _, err := BrowserSegment(context.Background(), c.inits[0], c.segs[0], failing{}); err == nil || !strings.Contains(err.Error(), ErrConvert.Error()) {
		t.Fatalf("failing encoder: %v", err)
	}
}

func TestBrowserCopyOfPlayableRecordingIsTheArchivedOne(t *testing.T) {
	s, err := mediafile.Decode("../../testdata/sample.ts")
	if err != nil {
		t.Fatal(err)
	}
	var in fmp4.Init
	in.Tracks = []*fmp4.InitTrack{{ID: 1, TimeScale: 90000, Codec: &mp4.CodecH264{SPS: s.Video.SPS, PPS: s.Video.PPS}},
		{ID: 2, TimeScale: 48000, Codec: &mp4.CodecMPEG4Audio{Config: transcode.AACConfig(transcode.PCM{Channels: 1})}}}
	var buf seekablebuffer.Buffer
	if err := in.Marshal(&buf); err != nil {
		t.Fatal(err)
	}
	out, changed, err := BrowserInit(buf.Bytes(), true)
	if err != nil || changed || !bytes.Equal(out, buf.Bytes()) {
		t.Fatalf("changed %v, %v", changed, err)
	}
	seg := []byte("anything: not parsed when nothing changes")
	if got, err := BrowserSegment(context.Background(), buf.Bytes(), seg, failing{}); err != nil || !bytes.Equal(got, seg) {
		t.Fatalf("segment: %v", err)
	}
}

type failing struct{}

func (failing) EncodeAAC(context.Context, transcode.PCM, []byte) ([][]byte, error) {
	return nil, transcode.ErrUnavailable
}

// trackSamples returns the payloads of a track's samples in a media segment
// and their count.
func trackSamples(t *testing.T, seg []byte, id int) ([][]byte, int) {
	t.Helper()
	var parts fmp4.Parts
	if err := parts.Unmarshal(seg); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, p := range parts {
		for _, tr := range p.Tracks {
			if tr.ID == id {
				for _, s := range tr.Samples {
					out = append(out, s.Payload)
				}
			}
		}
	}
	return out, len(out)
}
