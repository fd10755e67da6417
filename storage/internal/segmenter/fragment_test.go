package segmenter

import (
	"bytes"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
)

// mediacommonFragment is the fragment mediacommon's fmp4.Part.Marshal
// writes for the tracks' samples (what the segmenter wrote before it had
// appendFragment).
func mediacommonFragment(t *testing.T, seq uint32, tracks ...*track) []byte {
	t.Helper()
	part := fmp4.Part{SequenceNumber: seq}
	for _, tr := range tracks {
		if tr == nil || len(tr.samples) == 0 {
			continue
		}
		pt := &fmp4.PartTrack{ID: tr.id, BaseTime: tr.base}
		for _, s := range tr.samples {
			payload := s.payload
			if s.nalus != nil {
				var err error
				if payload, err = h264.AVCC(s.nalus).Marshal(); err != nil {
					t.Fatal(err)
				}
			}
			pt.Samples = append(pt.Samples, &fmp4.Sample{Duration: s.dur, PTSOffset: s.ptsOff, IsNonSyncSample: s.nonSync, Payload: payload})
		}
		part.Tracks = append(part.Tracks, pt)
	}
	var buf seekablebuffer.Buffer
	if err := part.Marshal(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestAppendFragmentMatchesMediacommon: the segmenter's own fragment
// writer writes exactly the bytes mediacommon's did, for every combination
// of what changes the layout (tracks present, sync flags, composition
// offsets, base times beyond 32 bits, empty payloads).
func TestAppendFragmentMatchesMediacommon(t *testing.T) {
	idr := [][]byte{{0x67, 1, 2, 3}, {0x68, 4}, {0x65, 9, 9, 9, 9, 9}}
	p := [][]byte{{0x41, 7, 7}, {0x41, 8}}
	video := func(smp ...sample) *track { return &track{id: 1, base: 123456, samples: smp} }
	audio := func(smp ...sample) *track { return &track{id: 2, base: 1 << 40, samples: smp} }
	for _, c := range []struct {
		name         string
		video, audio *track
	}{
		{"video and audio", video(videoSample(3600, 0, false, idr), videoSample(3600, 0, true, p)),
			audio(audioSample(1024, []byte{1, 2, 3}), audioSample(1024, []byte{4}))},
		{"video only, all sync", video(videoSample(3000, 0, false, idr)), nil},
		{"composition offsets, negative too", video(videoSample(3600, 7200, false, idr), videoSample(3600, -3600, true, p)), nil},
		{"audio only", nil, audio(audioSample(960, bytes.Repeat([]byte{5}, 300)))},
		{"empty video track left out", video(), audio(audioSample(160, []byte{}))},
		{"empty NAL unit list", video(videoSample(3600, 0, true, [][]byte{})), audio(audioSample(1024, []byte{6}))},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := mediacommonFragment(t, 42, c.video, c.audio)
			got, err := appendFragment([]byte("left alone"), 42, c.video, c.audio)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(got, []byte("left alone")) {
				t.Fatalf("appendFragment overwrote what was in the buffer: %q", got[:10])
			}
			if got = got[len("left alone"):]; !bytes.Equal(got, want) {
				t.Fatalf("fragment differs from mediacommon's:\n got %x\nwant %x", got, want)
			}
		})
	}
}

// TestSegmenterFragmentsMatchMediacommon: over the committed capture (with
// its audio), every fragment the segmenter writes reads back with
// mediacommon's fMP4 reader and marshals back to the same bytes, and all
// the capture's video frames are in them.
func TestSegmenterFragmentsMatchMediacommon(t *testing.T) {
	s := mediatest.Load(t)
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var sink memSink
	seg := New(Config{Target: 4 * time.Second, Fragment: time.Second, Start: start}, &sink, []*media.Track{s.Video, s.Audio})
	const passes = 3
	for _, f := range s.Loop(passes, start) {
		if err := seg.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
	videoFrames := 0
	for _, f := range s.Frames {
		if f.Track == s.Video {
			videoFrames++
		}
	}
	videoSamples, frags := 0, 0
	for _, sg := range sink.segs {
		for _, frag := range sg.frags {
			frags++
			var parts fmp4.Parts
			if err := parts.Unmarshal(frag); err != nil {
				t.Fatalf("fragment %d: %v", frags, err)
			}
			if len(parts) != 1 {
				t.Fatalf("fragment %d holds %d parts, want 1", frags, len(parts))
			}
			var buf seekablebuffer.Buffer
			if err := parts[0].Marshal(&buf); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), frag) {
				t.Fatalf("fragment %d differs from mediacommon's marshaling of its own samples", frags)
			}
			for _, tr := range parts[0].Tracks {
				if tr.ID == 1 {
					videoSamples += len(tr.Samples)
				}
			}
		}
	}
	if frags < 5 {
		t.Fatalf("%d fragments, want at least 5 (6 s of 1 s fragments)", frags)
	}
	if videoSamples != passes*videoFrames {
		t.Errorf("%d video samples in the fragments, want %d", videoSamples, passes*videoFrames)
	}
}
