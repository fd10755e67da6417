package ingest

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/storage/index"
)

// FeedSpec describes a live source that is not an RTSP session: a GB/T
// 28181 device's stream, demultiplexed by its own package (ingest/gb28181)
// into frames. It becomes a recording exactly like an RTSP publish: bound to
// the officer wearing the device, linked, archived, relayed, continued across
// drops within the grace window.
type FeedSpec struct {
	Device index.Device
	Source string // index.SourceGB, ...
	Remote string // the device's address, for the wall and the logs
	// Tracks are the first configuration of each track, Tracks[i].ID == i;
	// at least one video track.
	Tracks []*media.Track
	// Close closes the source (the hub calls it when the recording ends,
	// the source is replaced by a newer one, or it sent no media for the
	// ingest's media timeout); it must not block. The source then calls
	// Feed.Close.
	Close func()
}

// ErrFeed: a FeedSpec the hub cannot take.
var ErrFeed = errors.New("invalid live feed")

// Feed is an admitted live source; Write and Close are called from the
// source's one goroutine.
type Feed struct {
	p *publisher
}

// OpenFeed admits a live source: it continues the device's recording (in
// its grace window, or replacing a silent session) or claims a new one. A
// device live on another node is index.ErrDeviceLive.
func (s *Server) OpenFeed(spec FeedSpec) (*Feed, error) {
	video := false
	for i, t := range spec.Tracks {
		if t == nil || t.ID != i {
			return nil, fmt.Errorf("%w: track %d has ID %v", ErrFeed, i, t)
		}
		video = video || t.Kind == media.Video
	}
	if !video || spec.Close == nil || spec.Source == "" {
		return nil, fmt.Errorf("%w: needs a video track, a source name and Close", ErrFeed)
	}
	p := &publisher{s: s, dev: spec.Device, remote: spec.Remote, source: spec.Source, closeFn: spec.Close}
	for _, t := range spec.Tracks {
		p.tracks = append(p.tracks, &pubTrack{last: t})
	}
	p.lastPacket.Store(s.now().UnixNano())
	if err := s.attach(p); err != nil {
		if errors.Is(err, index.ErrDeviceLive) {
			s.met.authFailures.WithLabelValues("device_live").Inc()
		}
		return nil, err
	}
	return &Feed{p: p}, nil
}

// Recording is the ID of the recording the feed writes to.
func (f *Feed) Recording() uuid.UUID {
	f.p.s.mu.Lock()
	defer f.p.s.mu.Unlock()
	if f.p.rec == nil {
		return uuid.Nil
	}
	return f.p.rec.id
}

// Write places one frame on the recording's timeline and hands it to the
// recording's readers; it never blocks. fr.Track is the current
// configuration of track fr.Track.ID (a new *media.Track when it changed);
// fr.PTS and fr.DTS are on the source's own clock, from its first frame. A
// frame of an unknown track, or written after the feed was replaced or
// ended, is dropped.
func (f *Feed) Write(fr *media.Frame) {
	p := f.p
	now := p.s.now()
	p.lastPacket.Store(now.UnixNano())
	r := p.rec
	if r == nil || fr.Track == nil || fr.Track.ID < 0 || fr.Track.ID >= len(p.tracks) {
		return
	}
	t := p.tracks[fr.Track.ID]
	r.writeMu.Lock()
	if fr.Track != t.last && sameConfig(fr.Track, t.last) {
		fr.Track = t.last // the recording's track, adopted on a reconnect
	}
	defer r.writeMu.Unlock()
	if p.detached {
		return
	}
	if !p.started {
		p.startTimeline(r, now, fr.PTS)
	}
	p.place(r, t, fr)
	p.emit(r, t, fr)
}

// Close ends the source: its recording waits for the device for the grace
// window.
func (f *Feed) Close(cause error) {
	f.p.s.detach(f.p, cause)
}

// sameConfig reports whether two tracks have the same codec configuration
// (a device reconnecting with the same settings keeps its recording's
// track: the archive needs no new init segment).
func sameConfig(a, b *media.Track) bool {
	return a != nil && b != nil && a.ID == b.ID && a.Kind == b.Kind && a.Codec == b.Codec && a.ClockRate == b.ClockRate &&
		bytes.Equal(a.VPS, b.VPS) && bytes.Equal(a.SPS, b.SPS) && bytes.Equal(a.PPS, b.PPS) &&
		a.SampleRate == b.SampleRate && a.Channels == b.Channels && bytes.Equal(a.AudioConfig, b.AudioConfig)
}
