package relay

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/google/uuid"
	"github.com/pion/rtp"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/transcode"
)

// maxPayload keeps RTP packets under common path MTUs once SRTP and
// UDP/IP headers are added.
const maxPayload = 1180

// frame is one access unit packetized for WebRTC, once per recording: the
// packets' payloads are shared by every viewer; each viewer writes its own
// header (sequence number, SSRC) around them.
type frame struct {
	kind media.Kind
	key  bool
	ts   uint32 // RTP timestamp on the recording's timeline
	at   time.Time
	pkts []rtp.Packet
	size int    // the payloads' bytes (pacing)
	seq0 uint64 // video: the feed sequence number of pkts[0] (history.add)
}

// feed fans one live recording out to its viewers: one reader of the
// recording's stream, one packetizer, one goroutine, whatever the number
// of viewers. It keeps the current GOP so that a new viewer starts at the
// last keyframe at once.
type feed struct {
	id     uuid.UUID
	stream *media.Stream
	reader *media.Reader
	s      *Server

	mu       sync.Mutex
	viewers  map[*viewer]struct{}
	gop      *media.GOP[*frame]       // video since the last keyframe
	hist     *history                 // recent video packets, for NACKs (nack.go)
	timeline atomic.Pointer[timeline] // set at the first frame packetized (report.go)
	h264     *rtph264.Encoder
	h265     *rtph265.Encoder
	done     chan struct{}
	cancel   context.CancelFunc
	ended    bool

	// AAC to Opus (only with Config.Transcoder), owned by run's goroutine
	// but for the counters the converter's goroutine updates under mu
	opus     *transcode.Live
	opusSrc  *media.Track // the AAC track being converted
	opusBase int64        // RTP timestamp (48 kHz) of the converter's first output
	opusOut  int64        // samples out so far (under mu)
	opusFail *media.Track // a track the converter failed to start for: not retried
}

// feedGOPFrames bounds the feed's GOP cache (video frames). The feed keeps
// the first feedGOPFrames of a longer group (media.KeepGroupHead).
const feedGOPFrames = 600

// newFeed starts a feed (with s.mu held: its goroutine is a worker).
func newFeed(s *Server, id uuid.UUID, st *media.Stream) *feed {
	ctx, cancel := context.WithCancel(context.Background())
	f := &feed{id: id, stream: st, s: s, viewers: map[*viewer]struct{}{}, done: make(chan struct{}), cancel: cancel,
		gop: media.NewGOP[*frame](feedGOPFrames, media.KeepGroupHead), hist: newHistory()}
	f.reader = st.Subscribe(media.ReaderOptions{Name: "relay", Size: 1024, FromKeyframe: true, Want: f.forwards, OnDrop: func(n int) {
		s.met.feedDrops.Add(float64(n))
	}})
	s.goWorker(func() { f.run(ctx) })
	return f
}

// finished reports whether the feed's goroutine has returned.
func (f *feed) finished() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// forwards reports whether the feed uses a track's frames (packetize,
// convertAAC): the frames of the others do not wake its goroutine (AAC
// audio without a transcoder, at about twice a camera's frame rate).
func (f *feed) forwards(t *media.Track) bool {
	switch t.Codec {
	case media.H264, media.H265:
		return t.Kind == media.Video
	case media.PCMA, media.PCMU, media.Opus:
		return t.Kind == media.Audio
	case media.AAC:
		return f.convertsAAC(t)
	}
	return false
}

// convertsAAC reports whether a track is AAC audio that the feed converts
// to Opus while watched (convertAAC): a transcoder is configured and the
// track has the decoder configuration it needs.
func (f *feed) convertsAAC(t *media.Track) bool {
	return t.Kind == media.Audio && t.Codec == media.AAC && f.s.cfg.Transcoder != nil && len(t.AudioConfig) > 0
}

// tracks returns what the feed forwards: the video track and the audio
// track when browsers can play it (G.711, Opus) or when it is AAC and a
// transcoder is configured (then an Opus track: see convertAAC).
func (f *feed) tracks() (video, audio *media.Track, audioNote string) {
	info := f.stream.Info()
	video = info.Video()
	for _, t := range info.Tracks {
		if t.Kind != media.Audio {
			continue
		}
		switch t.Codec {
		case media.PCMA, media.PCMU, media.Opus:
			return video, t, ""
		case media.AAC:
			if f.convertsAAC(t) {
				// converted while watched: the viewer gets Opus
				return video, &media.Track{Kind: media.Audio, Codec: media.Opus, ClockRate: transcode.OpusRate, Channels: 2}, ""
			}
			if f.s.cfg.Transcoder == nil {
				audioNote = "none: " + string(t.Codec) + " audio cannot be played over WebRTC (no transcoder configured)"
			} else {
				audioNote = "none: " + string(t.Codec) + " audio without its decoder configuration cannot be converted for WebRTC"
			}
		default:
			audioNote = "none: " + string(t.Codec) + " audio cannot be played over WebRTC (no transcoding on the live path)"
		}
	}
	return video, nil, audioNote
}

func (f *feed) run(ctx context.Context) {
	defer close(f.done)
	defer f.reader.Close()
	defer f.endViewers()
	defer f.stopOpus()
	for {
		fr, err := f.reader.Read(ctx)
		if err != nil {
			return // the recording ended, or the feed was closed
		}
		if fr.Track.Kind == media.Audio && fr.Track.Codec == media.AAC {
			f.convertAAC(fr)
			continue
		}
		p := f.packetize(fr)
		if p == nil {
			continue
		}
		if p.kind == media.Video {
			f.hist.add(p)
		}
		f.mu.Lock()
		if p.kind == media.Video {
			f.gop.Add(p, true, p.key)
		}
		f.deliver(p)
		f.mu.Unlock()
	}
}

// inlineViewers bounds the viewers a feed writes to on its own goroutine
// (viewer.send): beyond it, each viewer's goroutine writes (in parallel).
const inlineViewers = 64

// deliver hands a frame to every viewer (with f.mu held).
func (f *feed) deliver(p *frame) {
	inline := len(f.viewers) <= inlineViewers
	for v := range f.viewers {
		if inline {
			v.send(p)
		} else {
			v.push(p)
		}
	}
}

// packetize turns a frame into RTP packets once. Frames of tracks the feed
// does not forward give nil.
func (f *feed) packetize(fr *media.Frame) *frame {
	t := fr.Track
	p := &frame{kind: t.Kind, key: fr.Key, at: time.Now()}
	switch {
	case t.Kind == media.Video && t.Codec == media.H264:
		if f.h264 == nil {
			f.h264 = &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: maxPayload, PacketizationMode: 1}
			if err := f.h264.Init(); err != nil {
				return nil
			}
		}
		pkts, err := f.h264.Encode(fr.AU)
		if err != nil {
			return nil
		}
		p.pkts = deref(pkts)
	case t.Kind == media.Video && t.Codec == media.H265:
		if f.h265 == nil {
			f.h265 = &rtph265.Encoder{PayloadType: 96, PayloadMaxSize: maxPayload}
			if err := f.h265.Init(); err != nil {
				return nil
			}
		}
		pkts, err := f.h265.Encode(fr.AU)
		if err != nil {
			return nil
		}
		p.pkts = deref(pkts)
	case t.Kind == media.Audio && (t.Codec == media.PCMA || t.Codec == media.PCMU || t.Codec == media.Opus):
		for _, au := range fr.AU {
			p.pkts = append(p.pkts, rtp.Packet{Header: rtp.Header{Version: 2, Marker: t.Codec == media.Opus}, Payload: au})
		}
	default:
		return nil
	}
	clock := int64(90000)
	if t.Kind == media.Audio {
		clock = int64(t.ClockRate)
		if t.Codec == media.Opus {
			clock = 48000
		}
	}
	p.ts = rtpTime(fr.PTS, clock)
	if f.timeline.Load() == nil {
		f.timeline.Store(&timeline{wall: p.at, pts: fr.PTS})
	}
	for i := range p.pkts {
		p.size += len(p.pkts[i].Payload)
	}
	return p
}

func deref(pkts []*rtp.Packet) []rtp.Packet {
	out := make([]rtp.Packet, len(pkts))
	for i, p := range pkts {
		out[i] = *p
	}
	return out
}

// add makes v a viewer, queueing the current GOP first: the picture starts
// at once, at the last keyframe.
func (f *feed) add(v *viewer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		return errEnded
	}
	f.viewers[v] = struct{}{}
	v.feed.Store(f)
	for _, p := range f.gop.Frames() {
		v.push(p)
	}
	return nil
}

var errEnded = errors.New("feed ended")

// remove drops a viewer; it reports whether the feed has none left.
func (f *feed) remove(v *viewer) (empty bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.viewers, v)
	return len(f.viewers) == 0
}

// endViewers closes every viewer when the recording ends.
func (f *feed) endViewers() {
	f.mu.Lock()
	f.ended = true
	vs := make([]*viewer, 0, len(f.viewers))
	for v := range f.viewers {
		vs = append(vs, v)
	}
	f.mu.Unlock()
	for _, v := range vs {
		v.close("recording ended")
	}
}

// close stops the feed and waits for its goroutine.
func (f *feed) close() {
	f.cancel()
	<-f.done
}

// opusQueue bounds the AAC access units waiting for the converter (about
// 1 s at 48 kHz); beyond it they are dropped, never waited for.
const opusQueue = 50

// convertAAC hands an AAC frame to the feed's converter, starting it on
// the first frame once a viewer is connected and stopping it when none is
// (a feed closes after its last viewer: the converter stops with it).
// The video path never waits for it: Write drops when the queue is full.
func (f *feed) convertAAC(fr *media.Frame) {
	if !f.convertsAAC(fr.Track) || fr.Track == f.opusFail {
		return
	}
	ff := f.s.cfg.Transcoder
	f.mu.Lock()
	watched := len(f.viewers) > 0
	f.mu.Unlock()
	if !watched || f.opus != nil && f.opusSrc != fr.Track { // nobody connected (yet), or a new configuration
		f.stopOpus()
	}
	if !watched {
		return
	}
	if f.opus == nil {
		f.mu.Lock()
		f.opusBase = int64(rtpTime(fr.PTS, transcode.OpusRate))
		f.opusOut = 0
		f.mu.Unlock()
		l, err := ff.StartOpus(fr.Track.AudioConfig, opusQueue, f.opusPacket)
		if err != nil {
			f.opusFail = fr.Track
			f.s.log.Error("live audio: AAC to Opus converter did not start: watched without sound", "recording", f.id, "err", err)
			return
		}
		f.opus, f.opusSrc = l, fr.Track
		f.s.met.transcoders.Inc()
	}
	for _, au := range fr.AU {
		if !f.opus.Write(au) {
			f.s.met.audioDrops.Inc()
		}
	}
}

// opusPacket sends a converted packet to the viewers (on the converter's
// goroutine).
func (f *feed) opusPacket(p transcode.Packet) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := f.opusBase + f.opusOut
	f.opusOut += int64(p.Duration)
	if f.ended {
		return
	}
	fr := &frame{kind: media.Audio, at: time.Now(), ts: uint32(ts), size: len(p.Data),
		pkts: []rtp.Packet{{Header: rtp.Header{Version: 2, Marker: true}, Payload: p.Data}}}
	f.deliver(fr)
}

// stopOpus kills the converter, if one runs, and waits for it.
func (f *feed) stopOpus() {
	if f.opus == nil {
		return
	}
	if err := f.opus.Close(); err != nil {
		f.s.log.Warn("live audio: the converter ended early", "recording", f.id, "err", err)
	}
	f.opus, f.opusSrc = nil, nil
	f.s.met.transcoders.Dec()
}
