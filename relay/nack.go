package relay

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// Retransmission (RFC 4585 generic NACK) from one buffer per feed.
//
// A feed packetizes each video frame once; every packet it sends gets the
// next feed sequence number and a slot in the feed's history ring. Each
// viewer remembers, for the last nackWindow sequence numbers it wrote,
// which feed packet each one was (8 bytes a packet). A NACK from the
// browser is answered from the feed's history with the viewer's own
// sequence number and timestamp: no viewer keeps a copy of what it sent
// (pion's NACK responder, which this replaces, copied every packet into
// a 1024-packet buffer per viewer: about 1.2 MB each at 2 Mbit/s).

// historySize is how many video packets a feed keeps for retransmission:
// about 5 s at 2 Mbit/s, far beyond a browser's NACK horizon.
const historySize = 1024

// nackWindow is how many of its latest video sequence numbers a viewer can
// answer NACKs for (a power of two: seq % nackWindow picks the slot).
const nackWindow = 1024

// Retransmissions per viewer are bounded (a browser asking again and
// again for everything must not turn the relay into an amplifier):
// retransmitRate packets per second after a burst of retransmitBurst.
const (
	retransmitRate  = 400
	retransmitBurst = 400
)

// history is a feed's ring of recent video packets, by feed sequence
// number. Written by the feed's goroutine, read by the viewers' RTCP
// readers.
type history struct {
	mu    sync.RWMutex
	slots [historySize]histSlot
	next  uint64 // the next feed sequence number; 0 is never used
}

type histSlot struct {
	seq uint64
	fr  *frame
	i   int
}

func newHistory() *history { return &history{next: 1} }

// add gives fr's packets their feed sequence numbers (fr.seq0 onwards).
func (h *history) add(fr *frame) {
	h.mu.Lock()
	fr.seq0 = h.next
	for i := range fr.pkts {
		h.slots[h.next%historySize] = histSlot{seq: h.next, fr: fr, i: i}
		h.next++
	}
	h.mu.Unlock()
}

// get returns the packet with feed sequence number seq and its frame, if
// the ring still holds it.
func (h *history) get(seq uint64) (*frame, int, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	s := h.slots[seq%historySize]
	if seq == 0 || s.seq != seq {
		return nil, 0, false
	}
	return s.fr, s.i, true
}

// sentMap is a viewer's record of which feed packet each of its latest
// video sequence numbers carried: slot seq%nackWindow holds feed
// sequence<<16 | seq, so a slot overwritten since (or never written) does
// not match.
type sentMap [nackWindow]atomic.Uint64

func (m *sentMap) put(seq uint16, feedSeq uint64) {
	m[int(seq)%nackWindow].Store(feedSeq<<16 | uint64(seq))
}

func (m *sentMap) feedSeq(seq uint16) (uint64, bool) {
	e := m[int(seq)%nackWindow].Load()
	if e == 0 || uint16(e) != seq {
		return 0, false
	}
	return e >> 16, true
}

// retransmitter answers one viewer's NACKs (on its RTCP reader's
// goroutine): its own packet value, its own rate bucket.
type retransmitter struct {
	pkt    rtp.Packet
	tokens float64
	last   time.Time
}

// answerNACK resends what the browser lost, as far as the feed's history
// and the viewer's bucket allow; it returns how many packets it resent
// and how many it could not (gone from the history, or over the bound).
func (v *viewer) answerNACK(n *rtcp.TransportLayerNack, r *retransmitter) (resent, missed int) {
	f := v.feed.Load()
	if f == nil || v.video == nil {
		return 0, 0
	}
	now := time.Now()
	if r.last.IsZero() {
		r.tokens, r.last = retransmitBurst, now
	}
	r.tokens = min(r.tokens+now.Sub(r.last).Seconds()*retransmitRate, retransmitBurst)
	r.last = now
	var err error
	for _, pair := range n.Nacks {
		pair.Range(func(seq uint16) bool {
			fseq, ok := v.sent.feedSeq(seq)
			if !ok || r.tokens < 1 {
				missed++
				return true
			}
			fr, i, ok := f.hist.get(fseq)
			if !ok {
				missed++
				return true
			}
			r.tokens--
			r.pkt.Header = fr.pkts[i].Header
			r.pkt.Payload = fr.pkts[i].Payload
			r.pkt.SequenceNumber = seq
			r.pkt.Timestamp = fr.ts
			if err = v.video.WriteRTP(&r.pkt); err != nil {
				return false
			}
			v.vsr.packets.Add(1)
			v.vsr.octets.Add(uint32(len(r.pkt.Payload)))
			resent++
			return true
		})
		if err != nil {
			break
		}
	}
	return resent, missed
}
