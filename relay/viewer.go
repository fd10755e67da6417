package relay

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/relay/internal/udpbatch"
)

// viewer is one WHEP session: a peer connection, a bounded queue of
// packetized frames filled by the feed, and one goroutine writing them.
// A viewer whose queue overflows (its network or browser is behind) loses
// what is queued and resumes at the next keyframe; the feed and the other
// viewers never wait for it.
type viewer struct {
	id        string // the session's ID, held by its opener only
	ref       string // SessionRef(id): what others see
	recording uuid.UUID
	name      string // who watches
	owner     string // whose session it is (Viewer.Owner)
	pc        *webrtc.PeerConnection
	video     *webrtc.TrackLocalStaticRTP
	audio     *webrtc.TrackLocalStaticRTP
	senders   []*webrtc.RTPSender            // their RTCP is read once the session is registered
	feed      atomic.Pointer[feed]           // set when it joins its feed
	remote    atomic.Pointer[netip.AddrPort] // the browser's UDP address (ICE's selected pair); nil over ICE-TCP
	s         *Server
	started   time.Time

	mu       sync.Mutex
	queue    []*frame // ring
	head, n  int
	waitKey  bool // dropped: skip to the next video keyframe
	wake     chan struct{}
	closed   chan struct{}
	closeOne sync.Once
	failed   atomic.Pointer[string] // an inline write failed: the writer closes the viewer

	// The write state is held (wmu) by the viewer's writer goroutine while
	// it flushes the queue, or by the feed's goroutine while it writes a
	// frame inline (send).
	wmu        sync.Mutex
	gone       bool // the writer goroutine has left: no more inline writes
	vseq, aseq uint16
	pkt        rtp.Packet
	tokens     float64 // pacing bucket
	last       time.Time
	vsr, asr   senderReport
	sent       sentMap // which feed packet each recent video sequence number carried (NACKs)

	sentPackets atomic.Uint64
	sentBytes   atomic.Uint64
	dropped     atomic.Uint64 // frames dropped because the viewer fell behind
	plis        atomic.Uint64
	nacks       atomic.Uint64
	resent      atomic.Uint64 // packets retransmitted on NACKs
	lossPermil  atomic.Uint32 // fraction lost (‰) from the latest receiver report
	jitter      atomic.Uint32 // RTP timestamp units, latest receiver report
	latencyNS   atomic.Int64  // frame packetized → written, latest video frame
}

func newViewer(s *Server, rec uuid.UUID, who Viewer, size int) *viewer {
	id := uuid.NewString()
	return &viewer{id: id, ref: SessionRef(id), recording: rec, name: who.Name, owner: who.Owner, s: s, started: time.Now(),
		queue: make([]*frame, size), wake: make(chan struct{}, 1), closed: make(chan struct{}),
		tokens: paceBurst, last: time.Now()}
}

// send writes p at once on the caller's goroutine (the feed's) when that
// cannot make the caller wait: the browser is reached over UDP (a write
// is a copy into the shared socket's batch and one system call, never a
// wait for the browser), nothing is queued before p, the viewer's writer
// is not writing, and the pacing bucket holds the whole frame. Otherwise p
// is queued for the writer goroutine (push). Writing inline saves a
// goroutine wake-up per frame per viewer. A failed write closes the
// viewer from its writer goroutine (the caller holds the feed's lock).
func (v *viewer) send(p *frame) {
	if v.remote.Load() != nil && v.s.batch != nil && v.failed.Load() == nil && v.wmu.TryLock() {
		v.mu.Lock()
		idle := v.n == 0 && !v.waitKey && !v.gone
		v.mu.Unlock()
		if idle {
			v.refill()
			if v.tokens >= float64(p.size) {
				c := v.cork()
				err := v.writeFrame(&c, p)
				if e := c.uncork(); err == nil {
					err = e
				}
				v.wmu.Unlock()
				if err != nil {
					v.fail(err)
				}
				return
			}
		}
		v.wmu.Unlock()
	}
	v.push(p)
}

// fail hands an inline write's error to the writer goroutine, which
// closes the viewer.
func (v *viewer) fail(err error) {
	msg := "write: " + err.Error()
	v.failed.CompareAndSwap(nil, &msg)
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// push queues a frame without blocking (called by the feed, under its lock).
func (v *viewer) push(p *frame) {
	v.mu.Lock()
	if v.waitKey {
		if p.kind != media.Video || !p.key {
			v.mu.Unlock()
			v.dropped.Add(1)
			return
		}
		v.waitKey = false
	}
	if v.n == len(v.queue) { // behind by a whole queue: drop it, resume at a keyframe
		v.dropped.Add(uint64(v.n) + 1)
		v.s.met.viewerDrops.Add(float64(v.n) + 1)
		for i := range v.queue {
			v.queue[i] = nil
		}
		v.head, v.n = 0, 0
		v.waitKey = !(p.kind == media.Video && p.key)
		if v.waitKey {
			v.mu.Unlock()
			return
		}
	}
	v.queue[(v.head+v.n)%len(v.queue)] = p
	v.n++
	v.mu.Unlock()
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

func (v *viewer) pop() *frame {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.n == 0 {
		return nil
	}
	p := v.queue[v.head]
	v.queue[v.head] = nil
	v.head = (v.head + 1) % len(v.queue)
	v.n--
	return p
}

// skipToKeyframe empties the queue and waits for the next keyframe (the
// browser asked for one with a PLI/FIR and the camera cannot be asked).
func (v *viewer) skipToKeyframe() {
	v.mu.Lock()
	for i := range v.queue {
		v.queue[i] = nil
	}
	v.head, v.n = 0, 0
	v.waitKey = true
	v.mu.Unlock()
}

// Pacing: a new viewer gets the whole current GOP at once (instant
// picture), which as one burst would overflow socket buffers and lose the
// keyframe; packets leave at most at paceRate after a paceBurst.
const (
	paceRate  = 20e6 / 8 // bytes per second
	paceBurst = 64 << 10 // bytes
)

// write sends queued frames until the viewer closes.
func (v *viewer) write() {
	defer v.release()
	for {
		select {
		case <-v.closed:
			return
		case <-v.wake:
		}
		if why := v.failed.Load(); why != nil {
			v.close(*why)
			return
		}
		if err := v.flush(); err != nil {
			v.close("write: " + err.Error())
			return
		}
	}
}

// release ends the viewer's writes as its writer goroutine leaves: no
// inline write corks its address after this, so the address's batching
// entry, dropped here, is not made again.
func (v *viewer) release() {
	v.wmu.Lock()
	v.gone = true
	v.wmu.Unlock()
	if a := v.remote.Load(); a != nil && v.s.batch != nil {
		v.s.batch.Forget(*a)
	}
}

// flush writes what is queued. Over UDP the browser's address is corked
// meanwhile, so that what is queued leaves in as few system calls as the
// pacing allows (udpbatch).
func (v *viewer) flush() error {
	v.wmu.Lock()
	defer v.wmu.Unlock()
	c := v.cork()
	defer c.uncork()
	for {
		p := v.pop()
		if p == nil {
			return c.uncork()
		}
		v.refill()
		if err := v.writeFrame(&c, p); err != nil {
			return err
		}
	}
}

// writeFrame writes one frame (with wmu held): one header rewrite per
// packet into the viewer's own packet value (no allocation); the payload
// is the feed's. When the pacing bucket runs out it sends what is held
// and waits (never when called by send, which checked the bucket first).
func (v *viewer) writeFrame(c *corked, p *frame) error {
	track, seq, sr := v.video, &v.vseq, &v.vsr
	if p.kind == media.Audio {
		track, seq, sr = v.audio, &v.aseq, &v.asr
	}
	if track == nil {
		return nil
	}
	for i := range p.pkts {
		if size := float64(len(p.pkts[i].Payload)); v.tokens < size {
			if err := c.uncork(); err != nil { // what is held goes before the wait
				return err
			}
			time.Sleep(time.Duration((size - v.tokens) / paceRate * float64(time.Second)))
			v.refill()
			c.again()
		}
		v.tokens -= float64(len(p.pkts[i].Payload))
		v.pkt.Header = p.pkts[i].Header
		v.pkt.Payload = p.pkts[i].Payload
		v.pkt.SequenceNumber = *seq
		v.pkt.Timestamp = p.ts
		if p.kind == media.Video {
			v.sent.put(*seq, p.seq0+uint64(i))
		}
		*seq++
		if err := track.WriteRTP(&v.pkt); err != nil {
			return err
		}
		v.sentPackets.Add(1)
		v.sentBytes.Add(uint64(len(v.pkt.Payload)))
	}
	sr.packets.Add(uint32(len(p.pkts)))
	sr.octets.Add(uint32(p.size))
	now := time.Now()
	if p.kind == media.Video {
		d := now.Sub(p.at)
		v.latencyNS.Store(int64(d))
		v.s.met.latency.Observe(d.Seconds())
	}
	v.s.met.packets.Add(float64(len(p.pkts)))
	if !now.Before(sr.next) {
		sr.next = now.Add(senderReportInterval)
		v.senderReport(sr, now)
	}
	return nil
}

// refill adds to the pacing bucket what the time since the last refill
// allows (once a frame, and after each wait).
func (v *viewer) refill() {
	now := time.Now()
	v.tokens = min(v.tokens+now.Sub(v.last).Seconds()*paceRate, paceBurst)
	v.last = now
}

// corked is a viewer's address held by flush (a no-op over ICE-TCP or
// without the UDP socket).
type corked struct {
	c    *udpbatch.Conn
	addr netip.AddrPort
	on   bool
}

func (v *viewer) cork() corked {
	a := v.remote.Load()
	if a == nil || v.s.batch == nil {
		return corked{}
	}
	k := corked{c: v.s.batch, addr: *a}
	k.again()
	return k
}

func (k *corked) again() {
	if k.c != nil && !k.on {
		k.c.Cork(k.addr)
		k.on = true
	}
}

func (k *corked) uncork() error {
	if k.c == nil || !k.on {
		return nil
	}
	k.on = false
	return k.c.Uncork(k.addr)
}

// readRTCP handles what the browser says about a track: picture loss
// (resume at the next keyframe), NACKs (answered from the feed's history:
// nack.go), receiver reports (loss, jitter).
func (v *viewer) readRTCP(sender *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	var rt retransmitter
	for {
		n, _, err := sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				v.plis.Add(1)
				v.s.met.plis.Inc()
				if v.sentPackets.Load() > 0 {
					v.skipToKeyframe()
				}
			case *rtcp.TransportLayerNack:
				resent, missed := v.answerNACK(p, &rt)
				v.nacks.Add(uint64(resent + missed))
				v.resent.Add(uint64(resent))
				v.s.met.resent.Add(float64(resent))
				v.s.met.nackMissed.Add(float64(missed))
			case *rtcp.ReceiverReport:
				for _, r := range p.Reports {
					v.lossPermil.Store(uint32(r.FractionLost) * 1000 / 256)
					v.jitter.Store(r.Jitter)
				}
			}
		}
	}
}

// close ends the session once.
func (v *viewer) close(why string) {
	v.closeOne.Do(func() {
		close(v.closed)
		_ = v.pc.Close()
		v.s.viewerClosed(v, why) // its writer goroutine forgets its address (release)
	})
}

// ViewerStats describes one viewer.
type ViewerStats struct {
	Ref         string        `json:"ref"` // SessionRef of the session, never its ID
	RecordingID uuid.UUID     `json:"recording_id"`
	Viewer      string        `json:"viewer"`
	Since       time.Time     `json:"since"`
	Packets     uint64        `json:"packets"`
	Bytes       uint64        `json:"bytes"`
	BitrateKbps float64       `json:"bitrate_kbps"` // average since the start
	Dropped     uint64        `json:"dropped_frames"`
	PLIs        uint64        `json:"plis"`
	NACKs       uint64        `json:"nacks"`        // packets the browser asked again for
	Resent      uint64        `json:"resent"`       // of which retransmitted
	LossPercent float64       `json:"loss_percent"` // from the latest receiver report
	Jitter      uint32        `json:"jitter"`
	Latency     time.Duration `json:"latency_ns"` // server-added: packetized → written, last video frame
}

func (v *viewer) stats() ViewerStats {
	el := time.Since(v.started).Seconds()
	b := v.sentBytes.Load()
	return ViewerStats{Ref: v.ref, RecordingID: v.recording, Viewer: v.name, Since: v.started,
		Packets: v.sentPackets.Load(), Bytes: b, BitrateKbps: float64(b) * 8 / 1000 / max(el, 1e-3),
		Dropped: v.dropped.Load(), PLIs: v.plis.Load(), NACKs: v.nacks.Load(), Resent: v.resent.Load(),
		LossPercent: float64(v.lossPermil.Load()) / 10, Jitter: v.jitter.Load(), Latency: time.Duration(v.latencyNS.Load())}
}
