package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/storage/index"
)

// recording is a live recording: one device's stream, continued across
// reconnects within the grace window.
type recording struct {
	id        uuid.UUID
	dev       index.Device
	stream    *media.Stream
	startedAt time.Time
	part      int // this node's part (>= 1: continued from another node)

	// guarded by Server.mu
	pub        *publisher // nil while waiting for the camera to come back
	status     string
	graceUntil time.Time
	remote     string
	reconnects int
	indexed    bool // the recording's row exists
	officer    *Officer
	incidents  []Incident
	tracks     []*media.Track
	kbps       float64
	loss       float64
	lastBytes  uint64
	lastRTP    uint64
	lastLost   uint64

	// guarded by writeMu: the frame path
	writeMu     sync.Mutex
	lastPTS     time.Duration
	lastWall    time.Time
	frames      uint64
	clockOffset time.Duration
	clockKnown  bool
	rtpRecv     uint64 // RTP packets received
	rtpLost     uint64 // RTP packets missing (sequence-number holes)
}

// Officer identifies the officer a live recording is bound to.
type Officer struct {
	ID    uuid.UUID `json:"id"`
	Name  string    `json:"name"`
	Badge string    `json:"badge"`
}

// Incident is an incident a live recording is linked to.
type Incident struct {
	ID     uuid.UUID `json:"id"`
	Number string    `json:"number"`
	Method string    `json:"method"`
}

// Live describes a live recording for the supervisors' wall.
type Live struct {
	RecordingID   uuid.UUID  `json:"recording_id"`
	Device        string     `json:"device"`
	Officer       *Officer   `json:"officer"`
	Unbound       bool       `json:"unbound"` // recorded without a check-out
	Indexed       bool       `json:"indexed"` // false while the database is catching up
	Incidents     []Incident `json:"incidents"`
	StartedAt     time.Time  `json:"started_at"`
	Status        string     `json:"status"` // live or reconnecting
	Reconnects    int        `json:"reconnects"`
	RemoteAddr    string     `json:"remote_addr"`
	BitrateKbps   float64    `json:"bitrate_kbps"`
	PacketLoss    float64    `json:"packet_loss"` // fraction of RTP packets lost over the last second
	VideoCodec    string     `json:"video_codec"`
	Width         int        `json:"width"`
	Height        int        `json:"height"`
	AudioCodec    string     `json:"audio_codec"`
	ClockOffsetMS *float64   `json:"clock_offset_ms"`
}

// Live lists the live recordings, oldest first.
func (s *Server) Live() []Live {
	s.mu.Lock()
	recs := make([]*recording, 0, len(s.byID))
	for _, r := range s.byID {
		recs = append(recs, r)
	}
	out := make([]Live, 0, len(recs))
	for _, r := range recs {
		l := Live{RecordingID: r.id, Device: r.dev.Serial, Officer: r.officer, Unbound: r.indexed && r.officer == nil,
			Indexed: r.indexed, Incidents: slices.Clone(r.incidents), StartedAt: r.startedAt, Status: r.status,
			Reconnects: r.reconnects, RemoteAddr: r.remote, BitrateKbps: r.kbps, PacketLoss: r.loss}
		l.VideoCodec, l.AudioCodec, l.Width, l.Height = describe(r.tracks)
		out = append(out, l)
	}
	s.mu.Unlock()
	for i, r := range recs {
		r.writeMu.Lock()
		if r.clockKnown {
			ms := float64(r.clockOffset) / float64(time.Millisecond)
			out[i].ClockOffsetMS = &ms
		}
		r.writeMu.Unlock()
	}
	slices.SortFunc(out, func(a, b Live) int { return a.StartedAt.Compare(b.StartedAt) })
	return out
}

// attach makes a publishing session the source of its device's recording:
// the one waiting in its grace window, or the one of a session that is
// still open but silent (a half-open TCP connection after the camera
// changed cell), which is closed at once; or a new recording, claimed in
// the database first (claim): a device live on another node is refused
// (index.ErrDeviceLive), unless that node let the recording go within its
// grace window or died: then this node continues it (continueLocked).
func (s *Server) attach(p *publisher) error {
	now := s.now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("server closing")
	}
	if r := s.byDevice[p.dev.Serial]; r != nil {
		replaced := s.resumeLocked(r, p)
		s.mu.Unlock()
		s.resumed(r, p, replaced, now)
		return nil
	}
	if s.claiming[p.dev.Serial] {
		s.mu.Unlock()
		return errClaiming
	}
	s.claiming[p.dev.Serial] = true
	s.mu.Unlock()

	create := s.newCreate(p, now)
	cont, err := s.claim(create)
	s.mu.Lock()
	delete(s.claiming, p.dev.Serial)
	if err == nil && s.closed {
		err = errors.New("server closing") // the row, if written, is ended at this node's next start
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if cont != nil {
		r, hooks, mop := s.continueLocked(p, cont)
		s.mu.Unlock()
		s.continued(r, p, cont, hooks, mop)
		return nil
	}
	r, hooks := s.startLocked(p, create)
	s.mu.Unlock()

	s.met.publishes.Inc()
	s.met.live.Inc()
	s.log.Info("recording started", "device", p.dev.Serial, "recording", r.id, "remote", p.remote, "node", s.cfg.Node)
	// journaled before any media is archived: the row survives a crash
	s.writes.put(create)
	for _, hook := range hooks {
		hook(r.stream)
	}
	return nil
}

// errClaiming: another session of the device is being admitted this very
// moment (the camera retries).
var errClaiming = errors.New("another session of the device is being admitted")

// newCreate is the write that creates a new recording of p's device.
func (s *Server) newCreate(p *publisher, now time.Time) *op {
	vc, ac, w, h := describe(p.currentTracks())
	return &op{Kind: opCreate, Recording: uuid.Must(uuid.NewV7()), DeviceID: p.dev.ID, Device: p.dev.Serial, Source: p.source,
		At: now.UTC().Truncate(time.Microsecond), Remote: p.remote, Video: vc, Audio: ac, Width: w, Height: h}
}

// claim writes a new recording's row at once (within ClaimTimeout), so
// that the database's rule of one live recording per device, over every
// node, decides before the camera is admitted: a device live on another
// node is refused with an *index.DeviceLiveError naming it, unless that
// node let it go within its grace window (its camera disconnected) or is
// dead (its lock is free): then the recording is taken over
// (index.TakeOverRecording; one node wins) and returned. The camera
// never waits for an unreachable database: then it is admitted and its
// row is written through the queue as before (the rule is checked then;
// see apply). A device whose live recording is this node's own, ended
// here with its end still queued, is admitted too: the queue writes the
// end first.
func (s *Server) claim(o *op) (*index.Continued, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ClaimTimeout)
	defer cancel()
	err := s.create(ctx, o)
	var live *index.DeviceLiveError
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &live) && live.Node != s.cfg.Node:
		c, terr := s.db.TakeOverRecording(ctx, index.TakeOver{Device: o.DeviceID, Node: s.cfg.Node, Remote: o.Remote, Grace: s.cfg.Grace})
		switch {
		case terr == nil:
			return &c, nil
		case errors.Is(terr, index.ErrNotFound): // ended meanwhile: a new recording
			if err := s.create(ctx, o); err != nil {
				return nil, err
			}
			return nil, nil
		case errors.Is(terr, index.ErrDeviceLive):
			return nil, terr
		default: // not known whether it could be taken: refused, the camera retries
			s.log.Warn("recording of another node not taken over", "device", o.Device, "recording", live.Recording,
				"node", live.Node, "err", terr)
			return nil, err
		}
	case errors.As(err, &live):
		return nil, nil
	default:
		s.log.Warn("new recording not claimed in the database: admitted, its row queued", "device", o.Device,
			"recording", o.Recording, "err", err)
		return nil, nil
	}
}

// continueLocked (s.mu held) makes p the source of the recording c this
// node took over from another node: same ID, start, officer and clock
// offset, this node's part of the archive, its first frames following the
// gap from the last media the database knew of. It returns it, the stream
// hooks to call and the write of what this camera session carries.
func (s *Server) continueLocked(p *publisher, c *index.Continued) (*recording, []func(*media.Stream), *op) {
	rec := c.Recording
	r := &recording{id: rec.ID, dev: p.dev, startedAt: rec.StartedAt, part: c.Part, indexed: true,
		pub: p, status: index.RecordingLive, remote: p.remote, tracks: p.currentTracks()}
	info := media.Info{RecordingID: r.id, DeviceID: p.dev.ID, DeviceSerial: p.dev.Serial, StartedAt: r.startedAt,
		Tracks: r.tracks, Part: c.Part}
	if rec.OfficerID != nil {
		r.officer = &Officer{ID: *rec.OfficerID, Name: rec.OfficerName, Badge: rec.OfficerBadge}
		info.OfficerID = *rec.OfficerID
	}
	if rec.ClockOffsetMS != nil {
		r.clockOffset, r.clockKnown = time.Duration(*rec.ClockOffsetMS*float64(time.Millisecond)), true
	}
	r.stream = media.NewStream(info)
	r.lastWall = c.GapFrom // the last media known: ended there, or a reconnect's gap from there, if no frame comes
	p.rec = r
	p.gapFrom = c.GapFrom
	p.gapReason = fmt.Sprintf("continued on node %s (held by node %s)", s.cfg.Node, c.From)
	s.byDevice[p.dev.Serial] = r
	s.byID[r.id] = r
	hooks := slices.Clone(s.onStream)
	s.notifyLocked()
	vc, ac, w, h := describe(r.tracks)
	return r, hooks, &op{Kind: opMedia, Recording: r.id, Device: r.dev.Serial, Video: vc, Audio: ac, Width: w, Height: h}
}

// continued counts and logs a recording taken over from another node,
// writes what it now carries and reloads its incident links.
func (s *Server) continued(r *recording, p *publisher, c *index.Continued, hooks []func(*media.Stream), mediaOp *op) {
	s.met.continued.Inc()
	s.met.publishes.Inc()
	s.met.live.Inc()
	s.log.Warn("camera reconnected from another node: recording continues here", "device", p.dev.Serial, "recording", r.id,
		"remote", p.remote, "node", s.cfg.Node, "from_node", c.From, "part", c.Part, "gap_from", c.GapFrom)
	s.writes.put(mediaOp)
	s.writes.put(&op{Kind: opRefresh, Recording: r.id, rec: r})
	for _, hook := range hooks {
		hook(r.stream)
	}
}

// letGo drops a recording another node took over (learned when a write
// conditional on holding it changed nothing, or from its row): its camera
// session, if any, is closed, its stream closes (the archive seals and
// uploads this node's part) and nothing more is written of it.
func (s *Server) letGo(id uuid.UUID, cause error) {
	s.mu.Lock()
	r := s.byID[id]
	s.mu.Unlock()
	if r == nil {
		return
	}
	pub, _, ok := s.drop(r)
	if !ok {
		return
	}
	if pub != nil {
		pub.sess.Close()
	}
	r.stream.Close()
	s.met.live.Dec()
	s.met.letGo.Inc()
	// this node writes nothing more of it: its journal goes, after the
	// writes queued before (the queue is in order)
	s.writes.enqueue("let go of "+id.String(), func(context.Context) error {
		if s.writes.jr != nil {
			s.writes.jr.remove(id)
		}
		return nil
	})
	s.log.Warn("recording taken over by another node: this node lets go of it (its part stays archived)",
		"device", r.dev.Serial, "recording", id, "node", s.cfg.Node, "err", cause)
}

// heldOrLetGo lets go of the recording when err says another node holds
// it (the write is done with: nil); other errors are returned.
func (s *Server) heldOrLetGo(id uuid.UUID, err error) error {
	if errors.Is(err, index.ErrNotHeld) {
		s.letGo(id, err)
		return nil
	}
	return err
}

// resumeLocked (s.mu held) makes p the source of the device's existing
// recording r, after a gap from r's last frame, detaching the session it
// replaces (returned, nil if none).
func (s *Server) resumeLocked(r *recording, p *publisher) (replaced *publisher) {
	replaced = r.pub
	if replaced != nil {
		r.writeMu.Lock()
		replaced.detached = true
		r.writeMu.Unlock()
	}
	r.writeMu.Lock()
	p.gapFrom = r.lastWall
	if p.gapFrom.IsZero() {
		p.gapFrom = r.startedAt
	}
	for i, t := range p.tracks {
		for _, prev := range r.tracks {
			if t.dp != nil {
				t.dp.Adopt(prev)
			} else if sameConfig(t.last, prev) {
				t.last = prev // a Feed's track
			}
		}
		p.tracks[i].last = t.current()
	}
	r.writeMu.Unlock()
	r.pub, r.status, r.remote = p, index.RecordingLive, p.remote
	r.reconnects++
	r.tracks = p.currentTracks()
	r.stream.SetTracks(r.tracks)
	p.rec = r
	s.notifyLocked()
	return replaced
}

// resumed closes the replaced session (a takeover, audited), logs and
// counts the reconnect and queues the recording's status write.
func (s *Server) resumed(r *recording, p, replaced *publisher, now time.Time) {
	if replaced != nil {
		replaced.close()
		s.auditTakeover(r.id, p.dev, replaced.remote, p.remote)
		s.log.Warn("camera published again while its old session was open: old session closed",
			"device", p.dev.Serial, "recording", r.id, "remote", p.remote)
	} else {
		s.log.Info("camera reconnected: recording continues", "device", p.dev.Serial, "recording", r.id,
			"remote", p.remote, "gap", now.Sub(p.gapFrom).Round(time.Millisecond))
	}
	s.met.reconnects.Inc()
	s.met.publishes.Inc()
	s.writes.put(&op{Kind: opStatus, Recording: r.id, Device: r.dev.Serial, Status: index.RecordingLive, Remote: p.remote})
}

// startLocked (s.mu held) makes the new recording o creates for p. It
// returns it and the stream hooks to call.
func (s *Server) startLocked(p *publisher, o *op) (*recording, []func(*media.Stream)) {
	r := &recording{id: o.Recording, dev: p.dev, startedAt: o.At,
		pub: p, status: index.RecordingLive, remote: p.remote, tracks: p.currentTracks()}
	r.stream = media.NewStream(media.Info{RecordingID: r.id, DeviceID: p.dev.ID, DeviceSerial: p.dev.Serial,
		StartedAt: r.startedAt, Tracks: r.tracks})
	p.rec = r
	s.byDevice[p.dev.Serial] = r
	s.byID[r.id] = r
	hooks := slices.Clone(s.onStream)
	s.notifyLocked()
	return r, hooks
}

// apply makes one write in PostgreSQL. Every kind is idempotent: a write
// replayed from the journal after a crash, or retried, changes nothing
// more.
func (s *Server) apply(ctx context.Context, o *op) error {
	switch o.Kind {
	case opCreate:
		err := s.create(ctx, o)
		s.mu.Lock()
		r := s.byID[o.Recording]
		s.mu.Unlock()
		if errors.Is(err, index.ErrDeviceLive) && r != nil {
			// admitted while the database did not answer, and meanwhile the
			// device went live elsewhere: this copy has no row; its media
			// stays in the spool (an alarm), the camera is disconnected and
			// its next publish is claimed like any new one
			s.log.Error("recording refused by the database: the device is live elsewhere; disconnecting the camera",
				"device", o.Device, "recording", o.Recording, "err", err)
			s.end(r, "the device is live on another node")
		}
		if err != nil {
			return err
		}
		if r == nil { // replayed after a restart: link by the rule all the same
			_, err := s.db.AutoLink(ctx, o.Recording, s.cfg.LinkBuffer)
			return err
		}
		return s.refresh(ctx, r)
	case opStatus:
		return s.heldOrLetGo(o.Recording, s.db.SetHeldStatus(ctx, o.Recording, s.cfg.Node, o.Status, o.Remote, o.Until))
	case opMedia:
		return s.db.SetRecordingMedia(ctx, o.Recording, o.Video, o.Audio, o.Width, o.Height)
	case opClock:
		return s.db.SetClockOffset(ctx, o.Recording, o.Offset)
	case opGap:
		return s.db.AddGap(ctx, o.Recording, index.Gap{StartedAt: o.At, EndedAt: o.Until, Reason: o.Reason})
	case opEnd:
		return s.heldOrLetGo(o.Recording, s.db.EndHeld(ctx, o.Recording, s.cfg.Node, o.At))
	case opRefresh:
		if o.rec == nil {
			return nil
		}
		return s.refresh(ctx, o.rec)
	}
	return fmt.Errorf("%w: unknown database write %q", index.ErrInvalid, o.Kind)
}

// create writes a new recording's row, bound to the officer who had the
// device checked out when it started.
func (s *Server) create(ctx context.Context, o *op) error {
	var officer *uuid.UUID
	co, err := s.db.WearerAt(ctx, o.DeviceID, o.At)
	switch {
	case err == nil:
		officer = &co.OfficerID
	case errors.Is(err, index.ErrNotFound):
		// not checked out: recorded all the same, flagged unbound
	default:
		return err
	}
	source := o.Source
	if source == "" {
		source = index.SourceRTSP
	}
	_, err = s.db.CreateRecording(ctx, index.Recording{ID: o.Recording, DeviceID: o.DeviceID, OfficerID: officer, Source: source,
		Status: index.RecordingLive, StartedAt: o.At, VideoCodec: o.Video, AudioCodec: o.Audio, Width: o.Width, Height: o.Height,
		RemoteAddr: o.Remote, NodeID: s.cfg.Node}, "device check-out")
	if err != nil && !errors.Is(err, index.ErrConflict) { // a conflict: written by an earlier try
		return fmt.Errorf("create recording %s of %s: %w", o.Recording, o.Device, err)
	}
	return nil
}

// refresh reloads a recording's binding and links into the live state,
// after linking it to any incident the rule now covers.
func (s *Server) refresh(ctx context.Context, r *recording) error {
	if _, err := s.db.AutoLink(ctx, r.id, s.cfg.LinkBuffer); err != nil {
		return err
	}
	rec, err := s.db.Recording(ctx, r.id)
	if err != nil {
		return err
	}
	if rec.Status != index.RecordingEnded && rec.NodeID != "" && rec.NodeID != s.cfg.Node {
		s.letGo(r.id, fmt.Errorf("recording %s: %w: node %s holds it", r.id, index.ErrNotHeld, rec.NodeID))
		return nil
	}
	links, err := s.db.RecordingLinks(ctx, r.id, false)
	if err != nil {
		return err
	}
	var o *Officer
	if rec.OfficerID != nil {
		o = &Officer{ID: *rec.OfficerID, Name: rec.OfficerName, Badge: rec.OfficerBadge}
		r.stream.SetOfficer(*rec.OfficerID)
	}
	inc := make([]Incident, 0, len(links))
	for _, l := range links {
		inc = append(inc, Incident{ID: l.IncidentID, Number: l.IncidentNumber, Method: l.Method})
	}
	s.mu.Lock()
	changed := !r.indexed || !officerEq(r.officer, o) || !slices.Equal(r.incidents, inc)
	r.indexed, r.officer, r.incidents = true, o, inc
	if changed {
		s.notifyLocked()
	}
	s.mu.Unlock()
	if changed {
		log := s.log.With("device", r.dev.Serial, "recording", r.id)
		if o != nil {
			log = log.With("officer", o.Badge)
		}
		for _, i := range inc {
			log = log.With("incident", i.Number)
		}
		log.Info("recording bound")
	}
	return nil
}

func officerEq(a, b *Officer) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// describe names a recording's codecs (the first video and audio track)
// and its picture size, for Live and the index.
func describe(tracks []*media.Track) (video, audio string, w, h int) {
	for _, t := range tracks {
		if t.Kind == media.Video && video == "" {
			video, w, h = string(t.Codec), t.Width, t.Height
		}
		if t.Kind == media.Audio && audio == "" {
			audio = string(t.Codec)
		}
	}
	return
}

// Refresh reloads a live recording's officer and incident links (after a
// supervisor bound or re-linked it). Unknown recordings are media.ErrNotLive.
func (s *Server) Refresh(id uuid.UUID) error {
	s.mu.Lock()
	r, ok := s.byID[id]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("refresh %s: %w", id, media.ErrNotLive)
	}
	s.writes.put(&op{Kind: opRefresh, Recording: id, rec: r})
	return nil
}

// mediaChanged records a change of codec configuration (new resolution).
func (s *Server) mediaChanged(r *recording, tracks []*media.Track) {
	s.mu.Lock()
	r.tracks = tracks
	s.notifyLocked()
	s.mu.Unlock()
	vc, ac, w, h := describe(tracks)
	s.log.Info("camera changed its video configuration", "device", r.dev.Serial, "recording", r.id, "codec", vc, "width", w, "height", h)
	s.writes.put(&op{Kind: opMedia, Recording: r.id, Device: r.dev.Serial, Video: vc, Audio: ac, Width: w, Height: h})
}

// detach: a publishing session ended. Its recording waits for the camera
// for the grace window.
func (s *Server) detach(p *publisher, cause error) {
	s.mu.Lock()
	r := p.rec
	if r == nil || r.pub != p {
		s.mu.Unlock()
		return
	}
	r.pub = nil
	r.status = index.RecordingReconnecting
	r.graceUntil = s.now().Add(s.cfg.Grace)
	until := r.graceUntil
	r.writeMu.Lock()
	p.detached = true
	r.writeMu.Unlock()
	s.notifyLocked()
	s.mu.Unlock()
	s.log.Warn("camera disconnected: waiting for it to come back", "device", p.dev.Serial, "recording", r.id,
		"grace", s.cfg.Grace, "err", cause)
	s.writes.put(&op{Kind: opStatus, Recording: r.id, Device: r.dev.Serial, Status: index.RecordingReconnecting, Until: until})
}

// drop takes r out of the hub (false when it is no longer there: ended or
// let go already) and detaches its publisher, which it returns with the
// wall-clock time of r's last frame.
func (s *Server) drop(r *recording) (pub *publisher, last time.Time, ok bool) {
	s.mu.Lock()
	if s.byID[r.id] != r {
		s.mu.Unlock()
		return nil, time.Time{}, false
	}
	delete(s.byID, r.id)
	if s.byDevice[r.dev.Serial] == r {
		delete(s.byDevice, r.dev.Serial)
	}
	pub = r.pub
	r.pub = nil
	s.notifyLocked()
	s.mu.Unlock()
	r.writeMu.Lock()
	if pub != nil {
		pub.detached = true
	}
	last = r.lastWall
	r.writeMu.Unlock()
	return pub, last, true
}

// end finishes a recording: its stream closes (the archive seals the last
// segment) and its row is ended at its last frame.
func (s *Server) end(r *recording, why string) {
	pub, endAt, ok := s.drop(r)
	if !ok {
		return
	}
	if pub != nil {
		pub.close()
	}
	if endAt.IsZero() {
		endAt = r.startedAt
	}
	r.stream.Close()
	s.met.live.Dec()
	s.log.Info("recording ended", "device", r.dev.Serial, "recording", r.id, "why", why)
	s.writes.put(&op{Kind: opEnd, Recording: r.id, Device: r.dev.Serial, At: endAt})
}

// housekeep runs every second: recordings past their grace window end,
// silent publishers are closed, signal figures are updated.
func (s *Server) housekeep(now time.Time) {
	s.mu.Lock()
	var expired []*recording
	var silent []*publisher
	for _, r := range s.byID {
		if r.pub == nil {
			if now.After(r.graceUntil) {
				expired = append(expired, r)
			}
			r.kbps, r.loss = 0, 0
			continue
		}
		if last := r.pub.lastPacket.Load(); last != 0 && now.Sub(time.Unix(0, last)) > s.cfg.MediaTimeout {
			silent = append(silent, r.pub)
		}
		_, bytes := r.stream.Stats()
		r.kbps = float64(bytes-r.lastBytes) * 8 / 1000
		r.lastBytes = bytes
		r.writeMu.Lock()
		got, lost := r.rtpRecv-r.lastRTP, r.rtpLost-r.lastLost
		r.lastRTP, r.lastLost = r.rtpRecv, r.rtpLost
		r.writeMu.Unlock()
		if got+lost > 0 {
			r.loss = float64(lost) / float64(got+lost)
		}
	}
	if len(s.byID) > 0 {
		s.notifyLocked() // figures changed
	}
	s.mu.Unlock()
	for _, p := range silent {
		s.met.timeouts.Inc()
		s.log.Warn("camera sends no media: closing its session", "device", p.dev.Serial, "recording", p.rec.id, "timeout", s.cfg.MediaTimeout)
		p.close()
	}
	for _, r := range expired {
		s.end(r, "camera did not come back within the grace window")
	}
}

// relinkLive links live recordings to incidents assigned since they
// started. Skipped while the database is behind.
func (s *Server) relinkLive() {
	if s.writes.pending() > 100 {
		return
	}
	s.mu.Lock()
	recs := make([]*recording, 0, len(s.byID))
	for _, r := range s.byID {
		if r.indexed {
			recs = append(recs, r)
		}
	}
	s.mu.Unlock()
	for _, r := range recs {
		s.writes.put(&op{Kind: opRefresh, Recording: r.id, rec: r})
	}
}

// setClockOffset records a recording's measured camera clock offset
// (journaled, then queued).
func (s *Server) setClockOffset(id uuid.UUID, off time.Duration) {
	s.writes.put(&op{Kind: opClock, Recording: id, Offset: off})
}

// addGap records media missing inside a recording (journaled, then queued).
func (s *Server) addGap(id uuid.UUID, from, to time.Time, reason string) {
	s.writes.put(&op{Kind: opGap, Recording: id, At: from, Until: to, Reason: reason})
}
