package relay

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/ingest/media/transcode"
)

// readAudio counts the audio packets a browser receives and notes their
// codec.
func (b *browser) readAudio(tr *webrtc.TrackRemote) {
	b.mu.Lock()
	b.audio.mime = tr.Codec().MimeType
	b.mu.Unlock()
	for {
		if _, _, err := tr.ReadRTP(); err != nil {
			return
		}
		b.mu.Lock()
		b.audio.packets++
		b.mu.Unlock()
	}
}

func (b *browser) audioPackets() (string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.audio.mime, b.audio.packets
}

func newTranscodingRelay(t *testing.T, src source, ff *transcode.FFmpeg) *Server {
	t.Helper()
	s, err := New(Config{UDPAddr: "127.0.0.1:0", QueueFrames: 64, MaxViewers: 500, Transcoder: ff}, src, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	runRelay(t, s)
	return s
}

// TestAACHeardAsOpusWhileWatched: an AAC camera's viewer gets an Opus
// track converted by real ffmpeg alongside the camera's video; the
// converter starts with the first viewer and stops after the last.
func TestAACHeardAsOpusWhileWatched(t *testing.T) {
	src := &streams{m: map[uuid.UUID]*media.Stream{}}
	r := newTranscodingRelay(t, src, &transcode.FFmpeg{Path: "ffmpeg"})
	id, st := liveSample(t, src)
	awaitVideo(t, st, 5)
	if n := testutil.ToFloat64(r.met.transcoders); n != 0 {
		t.Fatalf("%v converters before any viewer", n)
	}
	var sessions []string
	var browsers []*browser
	for range 2 { // two viewers, one converter
		b, offer := newBrowser(t)
		a, err := r.Offer(context.Background(), id, Viewer{Name: "sup1", Owner: "user:sup1"}, offer)
		if err != nil {
			t.Fatal(err)
		}
		if a.AudioNote != "" {
			t.Fatalf("audio note %q with a transcoder", a.AudioNote)
		}
		b.accept(t, a)
		sessions, browsers = append(sessions, a.Session), append(browsers, b)
	}
	for _, b := range browsers {
		mediatest.Eventually(t, "Opus packets and video", func() bool {
			mime, n := b.audioPackets()
			return mime == webrtc.MimeTypeOpus && n >= 50 && len(b.received()) >= 30 // a second of 20 ms packets
		})
	}
	if n := testutil.ToFloat64(r.met.transcoders); n != 1 {
		t.Fatalf("%v converters for two viewers of one camera, want 1", n)
	}
	// lip sync: the video's and the converted audio's sender reports map
	// their RTP times to the wall clock on one timeline
	b := browsers[0]
	latest := func() (v, a rtcp.SenderReport, ok bool) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.video.reports) == 0 || len(b.audio.reports) == 0 {
			return v, a, false
		}
		return b.video.reports[len(b.video.reports)-1], b.audio.reports[len(b.audio.reports)-1], true
	}
	mediatest.Eventually(t, "sender reports for video and audio", func() bool { _, _, ok := latest(); return ok })
	v, a, _ := latest()
	offset := func(sr rtcp.SenderReport, clock float64) float64 { // media time minus wall time, in seconds
		return float64(sr.RTPTime)/clock - float64(sr.NTPTime)/(1<<32)
	}
	if d := offset(v, 90000) - offset(a, 48000); d < -0.005 || d > 0.005 {
		t.Fatalf("video and audio reports disagree by %.1f ms (video %+v, audio %+v)", d*1000, v, a)
	}
	for _, s := range sessions {
		if err := r.Delete(s); err != nil {
			t.Fatal(err)
		}
	}
	mediatest.Eventually(t, "no converter after the last viewer", func() bool { return testutil.ToFloat64(r.met.transcoders) == 0 })
}

// TestStuckTranscoderNeverStallsVideo: a converter that never reads nor
// writes costs the viewer its sound, not its picture: the video keeps
// coming while the converter's queue drops.
func TestStuckTranscoderNeverStallsVideo(t *testing.T) {
	script := filepath.Join(t.TempDir(), "stuck-ffmpeg")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := &streams{m: map[uuid.UUID]*media.Stream{}}
	r := newTranscodingRelay(t, src, &transcode.FFmpeg{Path: script})
	id, st := liveSample(t, src)
	awaitVideo(t, st, 5)
	b, a := watch(t, r, id)
	mediatest.Eventually(t, "the queue to the stuck converter overflows", func() bool { return testutil.ToFloat64(r.met.audioDrops) > 0 })
	seen := len(b.received())
	mediatest.Eventually(t, "video after the converter stuck", func() bool { return len(b.received()) >= seen+25 })
	if err := r.Delete(a.Session); err != nil {
		t.Fatal(err)
	}
	mediatest.Eventually(t, "the stuck converter killed", func() bool { return testutil.ToFloat64(r.met.transcoders) == 0 })
}
