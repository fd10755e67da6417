package gb28181

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/bwcplatform/bwc/ingest"
	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/storage/index"
)

// session is one INVITEd media stream of a device: RTP carrying PS, over
// TCP (RFC 4571 framing; the device connects to the media port) or UDP,
// told apart from the others on the shared media port by its SSRC.
type session struct {
	s         *Server
	devID     string
	dev       index.Device
	ssrc      uint32
	transport string // "tcp" or "udp" (media)
	invitedAt time.Time
	in        chan []byte // RTP packets, bounded; the session's goroutine reads it

	dialog *sipgo.DialogClientSession
	callID string

	mu       sync.Mutex
	conn     net.Conn // TCP media connection, once the device connected
	packets  int
	keyed    bool
	feed     *ingest.Feed
	stopped  bool
	done     chan struct{}
	stopOnce sync.Once

	// the session goroutine's own
	audioOpened bool
	ps          *psDemuxer
	es          *esDemuxer
}

const inQueue = 1024

// byeTimeout bounds the wait for a device's answer to BYE (a device gone
// from the network does not hold the server's shutdown).
const byeTimeout = 2 * time.Second

func (ss *session) ssrcString() string { return fmt.Sprintf("%010d", ss.ssrc) }

func (ss *session) streaming() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.feed != nil
}

// overdue: no video arrived within wait of the INVITE.
func (ss *session) overdue(now time.Time, wait time.Duration) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return !ss.keyed && !ss.stopped && now.Sub(ss.invitedAt) > wait
}

// failure names why a session got no video: the device never reached the
// media port, or its PS carried no video the platform takes.
func (ss *session) failure() (reason, why string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.packets == 0 {
		if ss.transport == index.GBTransportTCP && ss.conn == nil {
			return "media_unreachable", "the device did not connect to the media port over TCP (firewall, or wrong platform address on the device)"
		}
		return "media_unreachable", "no RTP arrived at the media port (firewall, NAT, or wrong platform address on the device)"
	}
	return "no_video", fmt.Sprintf("%d RTP packets without H.264/H.265 video in the PS stream", ss.packets)
}

// allocSSRC picks a real-time SSRC per GB/T 28181: "0", the 4th to 8th
// digits of the platform ID, a 4-digit sequence (s.mu held).
func (s *Server) allocSSRCLocked() uint32 {
	prefix, _ := strconv.Atoi(s.cfg.ID[3:8])
	for range 10000 {
		s.ssrcSeq = (s.ssrcSeq + 1) % 10000
		v := uint32(prefix)*10000 + s.ssrcSeq
		if _, used := s.bySSRC[v]; !used {
			return v
		}
	}
	return uint32(prefix)*10000 + s.ssrcSeq
}

// invite brings a device's media up: Catalog, INVITE, ACK; the media
// arrives on the media port.
func (s *Server) invite(id string) error {
	s.queryCatalog(s.ctx, id)
	s.mu.Lock()
	d := s.devs[id]
	if d != nil {
		d.catalogDone = true
	}
	if d == nil || d.sess != nil || s.closed {
		s.mu.Unlock()
		return nil
	}
	channel := id
	if len(d.channels) > 0 {
		channel = d.channels[0]
	}
	transport := d.dev.GBTransport
	if transport != index.GBTransportUDP {
		transport = index.GBTransportTCP
	}
	ss := &session{s: s, devID: id, dev: d.dev, ssrc: s.allocSSRCLocked(), transport: transport, invitedAt: s.now(),
		in: make(chan []byte, inQueue), done: make(chan struct{})}
	s.bySSRC[ss.ssrc] = ss
	d.sess = ss
	sdp := s.offer(ss)
	req := s.toDevice(d, sip.INVITE, channel, sdp, "APPLICATION/SDP")
	req.AppendHeader(sip.NewHeader("Subject", fmt.Sprintf("%s:%s,%s:0", channel, ss.ssrcString(), s.cfg.ID)))
	s.mu.Unlock()

	if !s.goTracked(ss.run) {
		return errors.New("closing")
	}
	host, portS, _ := net.SplitHostPort(s.SIPAddr())
	port, _ := strconv.Atoi(portS)
	dua := sipgo.DialogUA{Client: s.client, RewriteContact: true,
		ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: s.cfg.ID, Host: hostOr(host, "127.0.0.1"), Port: port}}}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.InviteTimeout)
	defer cancel()
	dlg, err := dua.WriteInvite(ctx, req)
	if err == nil {
		err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{})
	}
	if err != nil {
		reason := "invite_refused"
		var re *sipgo.ErrDialogResponse
		if errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &re) {
			reason = "invite_timeout"
		}
		s.met.media.WithLabelValues(reason).Inc()
		s.log.Warn("GB/T 28181 INVITE failed: retrying", "device", id, "channel", channel, "reason", reason, "err", err)
		ss.stop(fmt.Errorf("INVITE: %w", err))
		return err
	}
	if err := dlg.Ack(ctx); err != nil {
		s.log.Warn("GB/T 28181 ACK not sent", "device", id, "err", err)
	}
	ss.mu.Lock()
	ss.dialog, ss.callID = dlg, req.CallID().Value()
	stopped := ss.stopped
	ss.mu.Unlock()
	if stopped { // stopped while the device answered (it unregistered, the server closes)
		bctx, bcancel := context.WithTimeout(context.Background(), byeTimeout)
		_ = dlg.Bye(bctx)
		bcancel()
		_ = dlg.Close()
		return nil
	}
	// a device that answers with its own SSRC (y=) is found by it too
	if y := sdpSSRC(dlg.InviteResponse.Body()); y != 0 && y != ss.ssrc {
		s.mu.Lock()
		if _, used := s.bySSRC[y]; !used {
			s.bySSRC[y] = ss
		}
		s.mu.Unlock()
	}
	s.log.Info("GB/T 28181 device invited", "device", id, "channel", channel, "ssrc", ss.ssrcString(), "transport", transport)
	return nil
}

// offer is the INVITE's SDP: PS over RTP, TCP passive or UDP, with the
// session's SSRC (y=).
func (s *Server) offer(ss *session) []byte {
	host, portS, _ := net.SplitHostPort(s.MediaAddr())
	if s.cfg.PublicHost != "" {
		host = s.cfg.PublicHost
	}
	host = hostOr(host, "127.0.0.1")
	proto := "RTP/AVP"
	if ss.transport == index.GBTransportTCP {
		proto = "TCP/RTP/AVP"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=%s 0 0 IN IP4 %s\r\ns=Play\r\nc=IN IP4 %s\r\nt=0 0\r\n", s.cfg.ID, host, host)
	fmt.Fprintf(&b, "m=video %s %s 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\n", portS, proto)
	if ss.transport == index.GBTransportTCP {
		b.WriteString("a=setup:passive\r\na=connection:new\r\n")
	}
	fmt.Fprintf(&b, "y=%s\r\n", ss.ssrcString())
	return []byte(b.String())
}

// sdpSSRC reads the y= line of an SDP answer (0 when none).
func sdpSSRC(b []byte) uint32 {
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "y="); ok {
			n, err := strconv.ParseUint(v, 10, 32)
			if err == nil {
				return uint32(n)
			}
		}
	}
	return 0
}

// stop ends the session: BYE (unless the device sent it), the media
// connection closed, the hub's feed detached (its recording waits for the
// device for the grace window). Safe to call more than once.
func (ss *session) stop(cause error) {
	ss.stopOnce.Do(func() {
		s := ss.s
		ss.mu.Lock()
		ss.stopped = true
		conn, dlg, feed := ss.conn, ss.dialog, ss.feed
		ss.mu.Unlock()
		s.mu.Lock()
		for k, v := range s.bySSRC {
			if v == ss {
				delete(s.bySSRC, k)
			}
		}
		if d := s.devs[ss.devID]; d != nil && d.sess == ss {
			d.sess = nil
			d.retryAt = s.now().Add(s.cfg.RetryInterval)
		}
		s.mu.Unlock()
		close(ss.done)
		if conn != nil {
			_ = conn.Close()
		}
		if dlg != nil {
			ctx, cancel := context.WithTimeout(context.Background(), min(s.cfg.InviteTimeout, byeTimeout))
			if dlg.LoadState() != sip.DialogStateEnded {
				_ = dlg.Bye(ctx)
			}
			cancel()
			_ = dlg.Close()
		}
		if feed != nil {
			feed.Close(cause)
		}
	})
}

// run demultiplexes the session's RTP (its one goroutine).
func (ss *session) run() {
	ss.es = newESDemuxer(ss.frame)
	ss.ps = newPSDemuxer(ss.es.pes)
	for {
		select {
		case <-ss.done:
			return
		case b := <-ss.in:
			ss.packet(b)
		}
	}
}

func (ss *session) packet(b []byte) {
	var pkt rtp.Packet
	if err := pkt.Unmarshal(b); err != nil {
		return
	}
	ss.mu.Lock()
	ss.packets++
	ss.mu.Unlock()
	_ = ss.ps.Write(pkt.Payload) // lost sync: continues at the next start code
}

// frame takes a demultiplexed frame: the first video keyframe opens the
// hub's feed (one more recording of the device).
func (ss *session) frame(f *media.Frame) {
	ss.mu.Lock()
	feed, stopped := ss.feed, ss.stopped
	ss.mu.Unlock()
	if stopped {
		return
	}
	if feed == nil {
		if f.Track.Kind != media.Video || !f.Key {
			return
		}
		tracks := []*media.Track{f.Track}
		if ss.es.audio != nil {
			// audio the PS map announces later is recorded from the next session
			tracks = append(tracks, ss.es.audio)
		}
		var err error
		feed, err = ss.s.hub.OpenFeed(ingest.FeedSpec{Device: ss.dev, Source: index.SourceGB, Remote: ss.remote(),
			Tracks: tracks, Close: func() { ss.s.goTracked(func() { ss.stop(errors.New("ended by the ingest")) }) }})
		if err != nil {
			reason := "hub_refused"
			if errors.Is(err, index.ErrDeviceLive) {
				reason = "device_live"
			}
			ss.s.met.media.WithLabelValues(reason).Inc()
			ss.s.log.Warn("GB/T 28181 stream not recorded", "device", ss.devID, "serial", ss.dev.Serial, "reason", reason, "err", err)
			ss.s.goTracked(func() { ss.stop(err) })
			ss.mu.Lock()
			ss.stopped = true
			ss.mu.Unlock()
			return
		}
		ss.mu.Lock()
		ss.feed, ss.keyed, ss.audioOpened = feed, true, len(tracks) > 1
		ss.mu.Unlock()
		ss.s.log.Info("GB/T 28181 stream recording", "device", ss.devID, "serial", ss.dev.Serial, "recording", feed.Recording(),
			"video", f.Track.Codec, "width", f.Track.Width, "height", f.Track.Height)
	}
	if f.Track.Kind == media.Audio && !ss.audioOpened {
		return
	}
	feed.Write(f)
}

func (ss *session) remote() string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.conn != nil {
		return ss.conn.RemoteAddr().String()
	}
	return ss.s.deviceSource(ss.devID)
}

func (s *Server) deviceSource(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.devs[id]; d != nil {
		return d.source
	}
	return ""
}

// acceptMedia takes the devices' TCP media connections (RFC 4571: each
// RTP packet preceded by its 2-byte length).
func (s *Server) acceptMedia() {
	for {
		c, err := s.mediaTCP.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !s.goTracked(func() { s.serveMediaConn(c) }) {
			_ = c.Close()
			return
		}
	}
}

// serveMediaConn reads one TCP media connection: its first packet's SSRC
// names the session.
func (s *Server) serveMediaConn(c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(s.ctx, func() { _ = c.Close() })
	defer stop()
	var ss *session
	hdr := make([]byte, 2)
	for {
		if ss == nil {
			_ = c.SetReadDeadline(time.Now().Add(s.cfg.MediaWait))
		}
		if _, err := io.ReadFull(c, hdr); err != nil {
			if ss != nil {
				ss.dropped(err)
			}
			return
		}
		n := int(binary.BigEndian.Uint16(hdr))
		b := make([]byte, n)
		if _, err := io.ReadFull(c, b); err != nil {
			if ss != nil {
				ss.dropped(err)
			}
			return
		}
		if ss == nil {
			if len(b) < 12 {
				return
			}
			ssrc := binary.BigEndian.Uint32(b[8:12])
			s.mu.Lock()
			ss = s.bySSRC[ssrc]
			s.mu.Unlock()
			if ss == nil || !ss.setConn(c) {
				s.met.media.WithLabelValues("unknown_ssrc").Inc()
				s.log.Warn("GB/T 28181 media connection with an SSRC no session invited: closed", "remote", c.RemoteAddr().String(),
					"ssrc", fmt.Sprintf("%010d", ssrc))
				return
			}
			_ = c.SetReadDeadline(time.Time{})
		}
		select {
		case ss.in <- b:
		case <-ss.done:
			return
		}
	}
}

func (ss *session) setConn(c net.Conn) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.conn != nil || ss.stopped {
		return false
	}
	ss.conn = c
	return true
}

// dropped: the device's TCP media connection ended. The session ends; the
// device is INVITEd again (its recording continues within the grace
// window).
func (ss *session) dropped(err error) {
	ss.mu.Lock()
	stopped := ss.stopped
	ss.mu.Unlock()
	if stopped || ss.s.ctx.Err() != nil {
		return
	}
	ss.s.met.media.WithLabelValues("ended").Inc()
	ss.s.log.Warn("GB/T 28181 media connection dropped: inviting again", "device", ss.devID, "err", err)
	ss.stop(fmt.Errorf("media connection dropped: %w", err))
}

// readMediaUDP reads the UDP media port: each datagram one RTP packet.
func (s *Server) readMediaUDP() {
	buf := make([]byte, 65536)
	for {
		n, _, err := s.mediaUDP.ReadFrom(buf)
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n < 12 {
			continue
		}
		ssrc := binary.BigEndian.Uint32(buf[8:12])
		s.mu.Lock()
		ss := s.bySSRC[ssrc]
		s.mu.Unlock()
		if ss == nil {
			continue
		}
		select {
		case ss.in <- append([]byte(nil), buf[:n]...):
		default: // the session is behind: dropped, never waited for
		}
	}
}

// onBye: the device ended a media session.
func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	callID := ""
	if h := req.CallID(); h != nil {
		callID = h.Value()
	}
	var found *session
	s.mu.Lock()
	for _, ss := range s.bySSRC {
		ss.mu.Lock()
		if ss.callID == callID && callID != "" {
			found = ss
		}
		ss.mu.Unlock()
	}
	s.mu.Unlock()
	if found == nil {
		respond(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	found.mu.Lock()
	dlg := found.dialog
	found.mu.Unlock()
	_ = dlg.ReadBye(req, tx)
	s.met.media.WithLabelValues("ended").Inc()
	s.log.Info("GB/T 28181 device ended its stream (BYE): inviting again", "device", found.devID)
	found.stop(errors.New("device sent BYE"))
}
