package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
)

// testCamera publishes the committed sample over RTSP with gortsplib's
// client, the way a body camera does (ANNOUNCE/RECORD), so that tests
// control exactly when it connects, sends and drops.
type testCamera struct {
	t      testing.TB
	sample *mediatest.Sample
	client *gortsplib.Client
	video  *description.Media
	audio  *description.Media
	venc   *rtph264.Encoder
	aenc   *rtpmpeg4audio.Encoder
	vf     *format.H264
	af     *format.MPEG4Audio
}

// dialCamera publishes to url over TCP (or UDP). It returns the error of
// the ANNOUNCE/SETUP/RECORD exchange.
func dialCamera(t testing.TB, url string, udp bool, videoOnly bool) (*testCamera, error) {
	t.Helper()
	s := mediatest.Load(t)
	c := &testCamera{t: t, sample: s}
	c.vf = &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: s.Video.SPS, PPS: s.Video.PPS}
	c.video = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{c.vf}}
	desc := &description.Session{Medias: []*description.Media{c.video}}
	if !videoOnly {
		var conf mpeg4audio.AudioSpecificConfig
		if err := conf.Unmarshal(s.Audio.AudioConfig); err != nil {
			t.Fatal(err)
		}
		c.af = &format.MPEG4Audio{PayloadTyp: 97, Config: &conf, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
		c.audio = &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{c.af}}
		desc.Medias = append(desc.Medias, c.audio)
	}
	var err error
	if c.venc, err = c.vf.CreateEncoder(); err != nil {
		t.Fatal(err)
	}
	if c.af != nil {
		if c.aenc, err = c.af.CreateEncoder(); err != nil {
			t.Fatal(err)
		}
	}
	tr := gortsplib.TransportTCP
	if udp {
		tr = gortsplib.TransportUDP
	}
	c.client = &gortsplib.Client{Transport: &tr, WriteQueueSize: 8192}
	if err := c.client.StartRecording(url, desc); err != nil {
		return nil, err
	}
	return c, nil
}

// send publishes frames as fast as the connection takes them.
func (c *testCamera) send(frames []*media.Frame) error {
	for _, f := range frames {
		if err := c.write(f); err != nil {
			return err
		}
	}
	return nil
}

// play publishes passes of the sample in real time (Sample.Play).
func (c *testCamera) play(ctx context.Context, passes int) error {
	return c.sample.Play(ctx, 1, passes, c.write)
}

// write publishes one frame as RTP, timestamped from its PTS.
func (c *testCamera) write(f *media.Frame) error {
	var err error
	if f.Track.Kind == media.Video {
		pkts, e := c.venc.Encode(f.AU)
		if e != nil {
			return e
		}
		for _, p := range pkts {
			p.Timestamp = uint32(int64(f.PTS) * 90000 / int64(time.Second))
			if err = c.client.WritePacketRTP(c.video, p); err != nil {
				break
			}
		}
	} else if c.aenc != nil {
		pkts, e := c.aenc.Encode(f.AU)
		if e != nil {
			return e
		}
		for _, p := range pkts {
			p.Timestamp = uint32(int64(f.PTS) * int64(c.af.ClockRate()) / int64(time.Second))
			if err = c.client.WritePacketRTP(c.audio, p); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("write RTP: %w", err)
	}
	return nil
}

func (c *testCamera) close() { c.client.Close() }
