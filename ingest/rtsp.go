package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/google/uuid"
	"github.com/pion/rtp"

	"github.com/bwcplatform/bwc/ingest/internal/depack"
	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/storage/index"
)

// PathPrefix is the RTSP path cameras publish to: rtsp://host/live/<serial>.
const PathPrefix = "live/"

// statusConflict answers a publish of a device that records on another
// node (RTSP takes HTTP's 409; gortsplib names no such status).
const statusConflict base.StatusCode = 409

// rtspHandler answers the cameras' RTSP requests (gortsplib calls it).
type rtspHandler struct {
	s *Server
}

var (
	_ gortsplib.ServerHandlerOnConnOpen     = (*rtspHandler)(nil)
	_ gortsplib.ServerHandlerOnConnClose    = (*rtspHandler)(nil)
	_ gortsplib.ServerHandlerOnAnnounce     = (*rtspHandler)(nil)
	_ gortsplib.ServerHandlerOnSetup        = (*rtspHandler)(nil)
	_ gortsplib.ServerHandlerOnRecord       = (*rtspHandler)(nil)
	_ gortsplib.ServerHandlerOnDescribe     = (*rtspHandler)(nil)
	_ gortsplib.ServerHandlerOnSessionClose = (*rtspHandler)(nil)
)

func (h *rtspHandler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	h.s.log.Debug("RTSP connection opened", "remote", ctx.Conn.NetConn().RemoteAddr().String())
}

func (h *rtspHandler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	h.s.log.Debug("RTSP connection closed", "remote", ctx.Conn.NetConn().RemoteAddr().String(), "err", ctx.Error)
}

// OnDescribe: the ingest takes video in; it does not serve RTSP playback
// (supervisors watch over WebRTC, reviewers over HLS).
func (h *rtspHandler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusMethodNotAllowed, Header: base.Header{"Allow": base.HeaderValue{"OPTIONS, ANNOUNCE, SETUP, RECORD, TEARDOWN"}}},
		nil, nil
}

// serialOf extracts the device serial from a publish path.
func serialOf(path string) (string, bool) {
	path = strings.Trim(path, "/")
	serial, ok := strings.CutPrefix(path, PathPrefix)
	if !ok || !index.ValidSerial(serial) {
		return "", false
	}
	return serial, true
}

// refuse counts and logs a refused publish and returns its response.
func (h *rtspHandler) refuse(remote, serial, reason string, status base.StatusCode, err error) (*base.Response, error) {
	h.s.met.authFailures.WithLabelValues(reason).Inc()
	switch reason {
	case "bad_path", "basic_auth":
		// anyone can send these: once per window, with the count
		h.s.logs.warn(reason, "publish refused", "device", serial, "remote", remote, "reason", reason, "err", err)
	default:
		h.s.log.Warn("publish refused", "device", serial, "remote", remote, "reason", reason, "err", err)
	}
	return &base.Response{StatusCode: status}, err
}

func randomSecret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// OnAnnounce authenticates the camera (digest, user = device serial,
// password = device secret) and checks what it will send. The cheap
// refusals come first: a request without credentials gets its challenge
// without any lookup, Basic credentials are refused unread, and a
// throttled address or device is refused before the device is looked up
// or the credentials checked. Credentials are checked against the
// in-memory device cache; only a camera that passed is looked up in the
// database (a device disabled a moment ago is refused at once).
func (h *rtspHandler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	remote := ctx.Conn.NetConn().RemoteAddr().String()
	serial, ok := serialOf(ctx.Path)
	if !ok {
		return h.refuse(remote, "", "bad_path", base.StatusNotFound,
			fmt.Errorf("path %q is not %s<device serial>", ctx.Path, PathPrefix))
	}
	authz, sent := ctx.Request.Header["Authorization"]
	if !sent {
		// the first request of a digest exchange: send the challenge (the
		// nonce is made by VerifyCredentials), look nothing up, count nothing
		ctx.Conn.VerifyCredentials(ctx.Request, serial, randomSecret())
		return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
	}
	now := time.Now()
	key := addrKey(ctx.Conn.NetConn().RemoteAddr())
	if len(authz) > 0 && len(authz[0]) >= 6 && strings.EqualFold(authz[0][:6], "basic ") {
		h.s.auth.failed(key, serial, now)
		return h.refuse(remote, serial, "basic_auth", base.StatusUnauthorized,
			//lint:ignore ST1005 Basic is the scheme's name
			errors.New("Basic authentication refused (the secret in clear): use digest"))
	}
	if h.s.auth.addrBlocked(key, now) {
		return h.throttled(remote, serial, "throttled_addr")
	}
	if h.s.auth.deviceBlocked(serial, key, now) {
		return h.throttled(remote, serial, "throttled_device")
	}
	dev, res, err := h.verify(ctx, remote, serial, key, now)
	if res != nil {
		return res, err
	}
	p, err := newPublisher(h.s, ctx.Session, dev, remote, ctx.Description)
	if err != nil {
		return h.refuse(remote, serial, "no_video", base.StatusUnsupportedMediaType, err)
	}
	ctx.Session.SetUserData(p)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// verify checks the digest credentials against the device cache (an
// unknown device is challenged like a known one), then takes the device's
// current state from the database (the cache when PostgreSQL is down). A
// non-nil response is the refusal to send.
func (h *rtspHandler) verify(ctx *gortsplib.ServerHandlerOnAnnounceCtx, remote, serial, key string, now time.Time) (index.Device, *base.Response, error) {
	dev, found, err := h.s.deviceForAuth(context.Background(), serial)
	if err != nil {
		h.s.log.Error("cannot check device: database unreachable and device not cached", "device", serial, "remote", remote, "err", err)
		return dev, &base.Response{StatusCode: base.StatusServiceUnavailable}, fmt.Errorf("device %s: %w", serial, err)
	}
	secret := dev.Secret
	if !found || secret == "" {
		secret = randomSecret() // an unknown device is challenged like a known one
	}
	if !ctx.Conn.VerifyCredentials(ctx.Request, serial, secret) {
		if !found {
			// no secret to guess: counted against the address only (a
			// camera retrying before its registration is loaded does not
			// lock itself out), logged once per window
			h.s.auth.failed(key, "", now)
			h.s.met.authFailures.WithLabelValues("unknown_device").Inc()
			h.s.logs.warn("unknown_device", "publish refused: unknown device", "device", serial, "remote", remote)
			return dev, &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
		}
		h.s.auth.failed(key, serial, now)
		res, err := h.refuse(remote, serial, "bad_credentials", base.StatusUnauthorized, liberrors.ErrServerAuth{})
		return dev, res, err
	}
	h.s.auth.succeeded(key, serial)
	// authenticated: the device's current state, from the database (the
	// cache when PostgreSQL is down)
	if fresh, ok, err := h.s.devices.lookup(context.Background(), serial); err == nil && !ok {
		res, err := h.refuse(remote, serial, "unknown_device", base.StatusUnauthorized, liberrors.ErrServerAuth{})
		return dev, res, err
	} else if err == nil {
		dev = fresh
	}
	if dev.Status != index.DeviceActive {
		res, err := h.refuse(remote, serial, "disabled", base.StatusForbidden,
			fmt.Errorf("device %s is %s", serial, dev.Status))
		return dev, res, err
	}
	return dev, nil, nil
}

// throttled refuses an attempt from an address or for a device that failed
// too often in the current window, without checking anything; logged once
// per window.
func (h *rtspHandler) throttled(remote, serial, reason string) (*base.Response, error) {
	h.s.met.authFailures.WithLabelValues(reason).Inc()
	h.s.logs.warn(reason, "publish refused: too many failed authentications", "reason", reason,
		"device", serial, "remote", remote, "window", h.s.cfg.AuthFailureWindow)
	return &base.Response{StatusCode: base.StatusServiceUnavailable,
			Header: base.Header{"Retry-After": base.HeaderValue{strconv.Itoa(int(h.s.cfg.AuthFailureWindow / time.Second))}}},
		errors.New("too many failed authentications")
}

// OnSetup accepts the publisher's transports; reading is not served.
func (h *rtspHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if _, ok := ctx.Session.UserData().(*publisher); !ok {
		return &base.Response{StatusCode: base.StatusMethodNotAllowed}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, nil, nil
}

// OnRecord starts (or continues) the device's recording.
func (h *rtspHandler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	p, ok := ctx.Session.UserData().(*publisher)
	if !ok {
		return &base.Response{StatusCode: base.StatusBadRequest}, errors.New("RECORD without ANNOUNCE")
	}
	for _, t := range p.tracks {
		ctx.Session.OnPacketRTP(t.media, t.format, func(pkt *rtp.Packet) { p.onPacket(t, pkt) })
	}
	if err := h.s.attach(p); errors.Is(err, index.ErrDeviceLive) {
		// one live recording per device over every node: the database said
		// no (a cloned camera, or one still held by a node not yet dead)
		h.s.met.authFailures.WithLabelValues("device_live").Inc()
		h.s.log.Warn("publish refused: the device is recording on another node", "device", p.dev.Serial,
			"remote", p.remote, "reason", "device_live", "err", err)
		return &base.Response{StatusCode: statusConflict, StatusMessage: "Device Already Recording On Another Node"}, err
	} else if err != nil {
		return &base.Response{StatusCode: base.StatusServiceUnavailable}, err
	}
	// the handshake deadline and the per-address cap no longer apply
	if tc := trackedOf(ctx.Conn.NetConn()); tc != nil {
		tc.markPublishing()
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *rtspHandler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	if p, ok := ctx.Session.UserData().(*publisher); ok {
		h.s.detach(p, ctx.Error)
	}
}

// publisher is one camera's RTSP session that publishes.
type publisher struct {
	s      *Server
	sess   *gortsplib.ServerSession
	dev    index.Device
	remote string
	tracks []*pubTrack
	source string // index.Source*; "" is RTSP
	// closeFn closes a session that is not gortsplib's (a Feed's); nil:
	// sess is closed
	closeFn func()

	lastPacket atomic.Int64 // unix ns of the last RTP packet

	// set by attach; the per-packet state below is guarded by rec.writeMu
	rec        *recording
	detached   bool
	started    bool
	serverBase time.Time     // wall time of the session's PTS 0
	ptsBase    time.Duration // the session's PTS 0 on the recording's timeline
	offset     time.Duration // camera clock minus server clock, applied to Wall
	offsetSeen bool
	gapFrom    time.Time // non-zero: the first frames follow a gap that began here
	gapReason  string    // why ("": a reconnect)
}

type pubTrack struct {
	seq     uint16 // last RTP sequence number
	seqOK   bool
	media   *description.Media
	format  format.Format
	dp      *depack.Track
	last    *media.Track
	gapDone bool
}

// newPublisher picks, in each announced media, the first format the
// platform takes in. A session without supported video is refused.
func newPublisher(s *Server, sess *gortsplib.ServerSession, dev index.Device, remote string, desc *description.Session) (*publisher, error) {
	p := &publisher{s: s, sess: sess, dev: dev, remote: remote}
	video := false
	var skipped []string
	for _, m := range desc.Medias {
		for _, f := range m.Formats {
			dp, err := depack.New(f, len(p.tracks))
			if err != nil {
				skipped = append(skipped, f.Codec())
				continue
			}
			p.tracks = append(p.tracks, &pubTrack{media: m, format: f, dp: dp, last: dp.Track()})
			video = video || dp.Track().Kind == media.Video
			break
		}
	}
	if !video {
		return nil, fmt.Errorf("no supported video track (H.264 or H.265) among %d medias (unsupported: %v)", len(desc.Medias), skipped)
	}
	if len(skipped) > 0 {
		s.log.Warn("camera sends formats that are not recorded", "device", dev.Serial, "formats", skipped)
	}
	return p, nil
}

func (p *publisher) currentTracks() []*media.Track {
	out := make([]*media.Track, len(p.tracks))
	for i, t := range p.tracks {
		out[i] = t.current()
	}
	return out
}

// current is the track's codec configuration: its depacketizer's, or for
// a Feed's track (no depacketizer) the last one its frames carried.
func (t *pubTrack) current() *media.Track {
	if t.dp == nil {
		return t.last
	}
	return t.dp.Track()
}

// close closes the publisher's session.
func (p *publisher) close() {
	if p.closeFn != nil {
		p.closeFn()
		return
	}
	p.sess.Close()
}

// ptsDuration converts RTP ticks to a duration without overflow.
func ptsDuration(v int64, clock int) time.Duration {
	c := int64(clock)
	return time.Duration(v/c)*time.Second + time.Duration(v%c)*time.Second/time.Duration(c)
}

// onPacket runs for every RTP packet, on gortsplib's goroutine: it must
// never block (the stream's rings and the write queue do not).
func (p *publisher) onPacket(t *pubTrack, pkt *rtp.Packet) {
	now := p.s.now()
	p.lastPacket.Store(now.UnixNano())
	v, ok := p.sess.PacketPTS2(t.media, pkt)
	if !ok {
		return
	}
	d := ptsDuration(v, t.format.ClockRate())
	r := p.rec
	if r == nil {
		return
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if p.detached {
		return // replaced by a newer session of the same camera
	}
	p.countPacket(r, t, pkt)
	if !p.started {
		p.startTimeline(r, now, d)
	}
	if !p.offsetSeen {
		p.learnClockOffset(r, t, pkt, d)
	}
	f := p.decode(r, t, pkt, d)
	if f == nil {
		return
	}
	p.place(r, t, f)
	p.emit(r, t, f)
}

// countPacket counts the packet received and the ones lost before it.
func (p *publisher) countPacket(r *recording, t *pubTrack, pkt *rtp.Packet) {
	r.rtpRecv++
	if t.seqOK {
		if diff := pkt.SequenceNumber - t.seq - 1; diff > 0 && diff < 0x8000 {
			r.rtpLost += uint64(diff)
		}
	}
	t.seq, t.seqOK = pkt.SequenceNumber, true
}

// startTimeline places the session's first packet (PTS d, received now) on
// the recording's timeline, after whatever an earlier session wrote.
func (p *publisher) startTimeline(r *recording, now time.Time, d time.Duration) {
	p.started = true
	p.serverBase = now.Add(-d)
	if r.frames > 0 && !p.serverBase.Add(d).After(r.lastWall) {
		// a camera that sent faster than real time before: stay monotonic
		p.serverBase = r.lastWall.Add(time.Millisecond - d)
	}
	p.ptsBase = p.serverBase.Sub(r.startedAt)
}

// learnClockOffset measures, from the first packet with an RTCP sender
// report time, how far the camera's clock is from the server's; within
// MaxClockSkew the camera's clock dates the frames.
func (p *publisher) learnClockOffset(r *recording, t *pubTrack, pkt *rtp.Packet, d time.Duration) {
	ntp, ok := p.sess.PacketNTP(t.media, pkt)
	if !ok {
		return
	}
	p.offsetSeen = true
	off := ntp.Sub(p.serverBase.Add(d))
	r.clockOffset, r.clockKnown = off, true
	if off.Abs() <= p.s.cfg.MaxClockSkew {
		p.offset = off
	} else {
		p.s.log.Warn("camera clock too far off: using server time", "device", p.dev.Serial, "recording", r.id, "offset", off)
	}
	p.s.setClockOffset(r.id, off) // journaled: once per session
}

// decode returns the frame the packet completes, or nil (more packets
// needed, waiting for a keyframe, or undecodable: counted).
func (p *publisher) decode(r *recording, t *pubTrack, pkt *rtp.Packet, d time.Duration) *media.Frame {
	f, err := t.dp.Decode(pkt, d)
	switch {
	case errors.Is(err, depack.ErrWaitingKeyframe):
		p.s.met.droppedWaiting.Inc()
		return nil
	case err != nil:
		p.s.met.droppedDecode.Inc()
		p.s.log.Debug("RTP packet not decoded", "device", p.dev.Serial, "recording", r.id, "err", err)
		return nil
	}
	return f
}

// place dates the frame on the recording's timeline and marks the first
// frame of each track after a reconnect as following a gap (the video's
// gap journaled once).
func (p *publisher) place(r *recording, t *pubTrack, f *media.Frame) {
	f.Wall = p.serverBase.Add(f.PTS + p.offset)
	f.PTS += p.ptsBase
	f.DTS += p.ptsBase
	if p.gapFrom.IsZero() || t.gapDone {
		return
	}
	t.gapDone = true
	f.Gap = true
	if f.Track.Kind == media.Video {
		from, to, id := p.gapFrom, f.Wall, r.id
		reason := p.gapReason
		if reason == "" {
			reason = "reconnect"
		}
		if to.After(from) {
			p.s.addGap(id, from, to, reason) // journaled: once per reconnect
		}
	}
}

// emit announces a track change, counts the frame and writes it to the
// recording's stream.
func (p *publisher) emit(r *recording, t *pubTrack, f *media.Frame) {
	if f.Track != t.last {
		t.last = f.Track
		r.stream.SetTracks(p.currentTracks())
		p.s.mediaChanged(r, p.currentTracks())
	}
	if f.PTS > r.lastPTS {
		r.lastPTS = f.PTS
	}
	if f.Wall.After(r.lastWall) {
		r.lastWall = f.Wall
	}
	r.frames++
	p.s.met.frames.Inc()
	p.s.met.bytes.Add(float64(f.Size()))
	r.stream.Write(f)
}

// auditTakeover records, in the audit trail, that a client holding a
// device's secret replaced the device's session while it was still open:
// both addresses, the device and the recording. Written through the
// ingest's database queue: the camera never waits for it.
func (s *Server) auditTakeover(rec uuid.UUID, dev index.Device, oldRemote, newRemote string) {
	s.met.takeovers.Inc()
	at := s.now().UTC()
	s.log.Warn("live session taken over: a client with the device's secret replaced its open session",
		"device", dev.Serial, "recording", rec, "remote", newRemote, "previous_remote", oldRemote)
	s.writes.enqueue("takeover audit of "+rec.String(), func(ctx context.Context) error {
		_, err := s.db.Audit(ctx, index.AuditEvent{Actor: "device:" + dev.Serial, Role: "device", Action: "live.takeover",
			ObjectType: "recording", ObjectID: rec.String(), RecordingID: &rec, RemoteAddr: newRemote,
			Details: map[string]any{"device": dev.Serial, "device_id": dev.ID.String(), "remote_addr": newRemote,
				"previous_remote_addr": oldRemote, "at": at.Format(time.RFC3339Nano)}})
		return err
	})
}
