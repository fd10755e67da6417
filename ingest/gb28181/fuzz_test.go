package gb28181

import (
	"bytes"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/emiago/sipgo/sip"

	"github.com/bwcplatform/bwc/ingest/gb28181/gbtest"
	"github.com/bwcplatform/bwc/ingest/media"
)

// FuzzPSDemux: any bytes from a device, in any chunking, demultiplex
// without a panic, within the buffer bound, into frames whose video starts
// at a keyframe carrying its parameter sets.
func FuzzPSDemux(f *testing.F) {
	f.Add(gbtest.AudioPES(90000, []byte{1, 2, 3, 4}), uint8(7))
	f.Add(append([]byte{0, 0, 1, 0xba, 0x44, 0, 4, 0, 4, 1, 1, 0x86, 0xa3, 0xf8}, gbtest.AudioPES(0, []byte{0xd5, 0xd5})...), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, split uint8) {
		var frames []*media.Frame
		es := newESDemuxer(func(fr *media.Frame) { frames = append(frames, fr) })
		ps := newPSDemuxer(es.pes)
		n := int(split)%64 + 1
		for off := 0; off < len(b); off += n {
			_ = ps.Write(b[off:min(off+n, len(b))])
			if len(ps.buf) > maxPSBuffer {
				t.Fatalf("buffer %d bytes", len(ps.buf))
			}
		}
		keyed := false
		for _, fr := range frames {
			if fr.Track == nil || len(fr.AU) == 0 {
				t.Fatalf("empty frame %+v", fr)
			}
			if fr.Track.Kind == media.Video {
				if !keyed && !fr.Key {
					t.Fatal("video before a keyframe")
				}
				keyed = true
				if fr.Key && (fr.Track.SPS == nil || fr.Track.PPS == nil) {
					t.Fatal("keyframe without parameter sets")
				}
			}
			if fr.PTS < 0 && fr.Track.Kind == media.Audio {
				t.Fatalf("audio PTS %v", fr.PTS)
			}
		}
	})
}

// FuzzSIPMessage: the parts of a device's SIP request the server reads
// itself (From user, Expires, digest credentials, MANSCDP body, SDP
// answer's SSRC) never panic on any request sipgo parses.
func FuzzSIPMessage(f *testing.F) {
	f.Add([]byte("REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1\r\nFrom: <sip:34020000001320000001@3402000000>;tag=1\r\nTo: <sip:34020000001320000001@3402000000>\r\nCall-ID: 1\r\nCSeq: 2 REGISTER\r\nContact: <sip:34020000001320000001@10.0.0.2:5060>;expires=600\r\nAuthorization: Digest username=\"34020000001320000001\", realm=\"3402000000\", nonce=\"18f.abc\", uri=\"sip:34020000002000000001@3402000000\", response=\"00112233445566778899aabbccddeeff\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"x\"\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.2:5060;branch=z9hG4bK2\r\nFrom: <sip:34020000001320000001@3402000000>;tag=2\r\nTo: <sip:34020000002000000001@3402000000>\r\nCall-ID: 2\r\nCSeq: 20 MESSAGE\r\nContent-Type: Application/MANSCDP+xml\r\nContent-Length: 139\r\n\r\n<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>1</SN>\r\n<DeviceID>34020000001320000001</DeviceID>\r\n</Notify>\r\n"))
	s := &Server{cfg: Config{ID: "34020000002000000001", Domain: "3402000000"}, nonceKey: make([]byte, 32), now: time.Now}
	parser := sip.NewParser()
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := parser.ParseSIP(b)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		_ = fromUser(req)
		if n := requestExpires(req); n < 0 {
			t.Fatalf("expires %d", n)
		}
		if h := req.GetHeader("Authorization"); h != nil {
			if s.checkDigest(req, h.Value(), fromUser(req), "secret-1234") == nil {
				t.Fatal("forged credentials accepted")
			}
		}
		if m, err := parseMANSCDP(req.Body()); err == nil && m.CmdType == "" {
			t.Fatal("a body without CmdType parsed")
		}
		_ = sdpSSRC(req.Body())
		_ = parsePositionTime(string(req.Body()), time.Now())
	})
}

// TestPSDemuxFFmpeg: the simulator's stream (ffmpeg's PS with G.711
// interleaved) demultiplexes, in RTP-sized chunks, into every picture
// (25 per second, a keyframe each second, 320x240 H.264) and every 40 ms of
// A-law, with increasing timestamps.
func TestPSDemuxFFmpeg(t *testing.T) {
	var b []byte
	for _, c := range gbtest.PS(t) {
		b = append(b, c.Data...)
	}
	for _, chunk := range []int{1400, 188, 7} {
		var video, audio, keys int
		var last [2]time.Duration
		es := newESDemuxer(func(fr *media.Frame) {
			i := 0
			if fr.Track.Kind == media.Audio {
				i = 1
				audio++
			} else {
				video++
				if fr.Key {
					keys++
				}
				if fr.Track.Width != 320 || fr.Track.Height != 240 {
					t.Fatalf("picture %dx%d", fr.Track.Width, fr.Track.Height)
				}
			}
			if video+audio > 2 && fr.PTS <= last[i] && !(i == 1 && audio == 1) {
				t.Fatalf("chunk %d: %s PTS %v after %v", chunk, fr.Track.Kind, fr.PTS, last[i])
			}
			last[i] = fr.PTS
		})
		ps := newPSDemuxer(es.pes)
		for off := 0; off < len(b); off += chunk {
			if err := ps.Write(b[off:min(off+chunk, len(b))]); err != nil {
				t.Fatalf("chunk %d at %d: %v", chunk, off, err)
			}
		}
		// the last picture waits for the next one (a live stream's latency);
		// audio sent ahead of the first complete picture (the simulator's
		// muxer sends it up to half a second ahead) is not recorded
		if video != 25*gbtest.Seconds-1 || keys != gbtest.Seconds || audio < 25*gbtest.Seconds-13 {
			t.Fatalf("chunk %d: %d pictures (%d keyframes), %d audio frames", chunk, video, keys, audio)
		}
	}
}

// TestPSDemuxAAC: AAC audio in a device's PS (ADTS frames in the audio
// PES, stream type 0x0f in the program stream map, or recognised by the
// ADTS sync word without one) becomes AAC frames with the track's
// AudioSpecificConfig, every access unit of each PES in one frame.
func TestPSDemuxAAC(t *testing.T) {
	adts, err := mpeg4audio.ADTSPackets{
		{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2, AU: []byte{1, 2, 3, 4}},
		{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2, AU: []byte{5, 6, 7}},
	}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, c := range gbtest.PS(t) {
		b = append(b, c.Data...)
	}
	for _, streamType := range []byte{streamAAC, 0} {
		var frames []*media.Frame
		es := newESDemuxer(func(fr *media.Frame) {
			if fr.Track.Kind == media.Audio {
				frames = append(frames, fr)
			}
		})
		ps := newPSDemuxer(func(p pes) {
			if p.streamID >= 0xc0 && p.streamID <= 0xdf { // the simulator's G.711, replaced by AAC
				p.streamType, p.payload = streamType, adts
			}
			es.pes(p)
		})
		if err := ps.Write(b); err != nil {
			t.Fatal(err)
		}
		if len(frames) < 25*gbtest.Seconds-13 {
			t.Fatalf("stream type %#x: %d AAC frames", streamType, len(frames))
		}
		fr := frames[0]
		var conf mpeg4audio.AudioSpecificConfig
		if fr.Track.Codec != media.AAC || fr.Track.SampleRate != 48000 || fr.Track.Channels != 2 ||
			conf.Unmarshal(fr.Track.AudioConfig) != nil || conf.SampleRate != 48000 || conf.ChannelCount != 2 {
			t.Fatalf("stream type %#x: track %+v", streamType, fr.Track)
		}
		if len(fr.AU) != 2 || !bytes.Equal(fr.AU[0], []byte{1, 2, 3, 4}) || !bytes.Equal(fr.AU[1], []byte{5, 6, 7}) {
			t.Fatalf("stream type %#x: access units %v", streamType, fr.AU)
		}
	}
}
