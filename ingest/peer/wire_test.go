package peer

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest/media"
)

func testInfo() media.Info {
	video := &media.Track{Kind: media.Video, Codec: media.H264, ClockRate: 90000, PayloadType: 96,
		FMTP: "packetization-mode=1", SPS: []byte{0x67, 0x42, 0xe0, 0x1f}, PPS: []byte{0x68, 0xce}, Width: 640, Height: 360}
	audio := &media.Track{ID: 1, Kind: media.Audio, Codec: media.PCMA, ClockRate: 8000, PayloadType: 8, SampleRate: 8000, Channels: 1}
	return media.Info{RecordingID: uuid.New(), DeviceID: uuid.New(), OfficerID: uuid.New(), DeviceSerial: "CAM-1",
		StartedAt: time.Unix(1700000000, 123456789), Tracks: []*media.Track{video, audio}}
}

// encodeSample is an info, frames of both tracks, a keepalive and the end.
func encodeSample(t testing.TB) ([]byte, media.Info, []*media.Frame) {
	var buf bytes.Buffer
	enc := newEncoder(&buf)
	info := testInfo()
	if _, err := enc.info(info); err != nil {
		t.Fatal(err)
	}
	frames := []*media.Frame{
		{Track: info.Tracks[0], Key: true, PTS: 0, DTS: 0, Wall: time.Unix(1700000001, 0), AU: [][]byte{{0x67, 1}, {0x68, 2}, {0x65, 3, 4, 5}}},
		{Track: info.Tracks[1], PTS: 10 * time.Millisecond, DTS: 10 * time.Millisecond, AU: [][]byte{bytes.Repeat([]byte{0xd5}, 160)}},
		{Track: info.Tracks[0], Gap: true, PTS: 66 * time.Millisecond, DTS: 33 * time.Millisecond, AU: [][]byte{{0x41, 9}}},
	}
	for _, f := range frames {
		if _, err := enc.frame(f); err != nil {
			t.Fatal(err)
		}
	}
	enc.send(msgKeep, nil)
	enc.send(msgEnd, nil)
	return buf.Bytes(), info, frames
}

// TestWireRoundTrip: what the holder encodes, the puller decodes: the
// description with its tracks, every frame field, keepalive and end.
func TestWireRoundTrip(t *testing.T) {
	data, info, frames := encodeSample(t)
	dec := newDecoder(bytes.NewReader(data))
	m, err := dec.next()
	if err != nil || m.typ != msgInfo {
		t.Fatalf("first message %q %v", m.typ, err)
	}
	got := *m.info
	if got.RecordingID != info.RecordingID || got.DeviceID != info.DeviceID || got.OfficerID != info.OfficerID ||
		got.DeviceSerial != info.DeviceSerial || !got.StartedAt.Equal(info.StartedAt) || len(got.Tracks) != 2 {
		t.Fatalf("info = %+v, want %+v", got, info)
	}
	for i, tr := range got.Tracks {
		want := *info.Tracks[i]
		want.ID = i
		if !reflect.DeepEqual(*tr, want) {
			t.Fatalf("track %d = %+v, want %+v", i, *tr, want)
		}
	}
	for i, want := range frames {
		m, err := dec.next()
		if err != nil || m.typ != msgFrame {
			t.Fatalf("frame %d: %q %v", i, m.typ, err)
		}
		f := m.frame
		if f.Track != got.Tracks[want.Track.ID] || f.Key != want.Key || f.Gap != want.Gap || f.PTS != want.PTS ||
			f.DTS != want.DTS || !f.Wall.Equal(want.Wall) || !reflect.DeepEqual(f.AU, want.AU) {
			t.Fatalf("frame %d = %+v, want %+v", i, f, want)
		}
	}
	for _, typ := range []byte{msgKeep, msgEnd} {
		if m, err := dec.next(); err != nil || m.typ != typ {
			t.Fatalf("message %q %v, want %q", m.typ, err, typ)
		}
	}
	if _, err := dec.next(); err != io.EOF {
		t.Fatalf("after the end: %v, want EOF", err)
	}
}

// TestWireRefuses: input that breaks a bound is ErrWire, never a panic
// or a large allocation.
func TestWireRefuses(t *testing.T) {
	data, _, _ := encodeSample(t)
	cases := []struct {
		name string
		in   []byte
	}{
		{"huge message", []byte{'F', 0xff, 0xff, 0xff, 0xff}},
		{"unknown type", []byte{'Z', 0, 0, 0, 0}},
		{"frame of an undefined track", []byte{'F', 0, 0, 0, 6, 7, 0, 0, 0, 0, 0}},
		{"info of an undefined track", append([]byte{'I', 0, 0, 0, 52}, append(make([]byte, 48), 0, 0, 1, 9)...)},
		{"too many access units", []byte{'T', 0, 0, 0, 18, 0, 0, 4, 'H', '2', '6', '4', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
			'F', 0, 0, 0, 8, 0, 0, 0, 0, 0, 0xff, 0xff, 0x7f}},
		{"field longer than the message", []byte{'T', 0, 0, 0, 3, 0, 0, 0x7f}},
		{"trailing bytes", []byte{'K', 0, 0, 0, 1, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dec := newDecoder(bytes.NewReader(c.in))
			var err error
			for err == nil {
				_, err = dec.next()
			}
			if !errors.Is(err, ErrWire) {
				t.Fatalf("%v, want ErrWire", err)
			}
		})
	}
	t.Run("truncated", func(t *testing.T) {
		dec := newDecoder(bytes.NewReader(data[:len(data)-12]))
		var err error
		for err == nil {
			_, err = dec.next()
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%v, want ErrUnexpectedEOF", err)
		}
	})
}

// FuzzDecode: the decoder of another node's stream never panics, and
// every frame it returns names a defined track.
func FuzzDecode(f *testing.F) {
	data, _, _ := encodeSample(f)
	f.Add(data)
	f.Fuzz(func(t *testing.T, in []byte) {
		dec := newDecoder(bytes.NewReader(in))
		for i := 0; i < 1000; i++ {
			m, err := dec.next()
			if err != nil {
				return
			}
			if m.typ == msgFrame && m.frame.Track == nil {
				t.Fatal("frame without a track")
			}
		}
	})
}
