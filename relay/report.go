package relay

import (
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
)

// RTCP sender reports (RFC 3550 6.4.1): the browser lines up video and
// audio by them (lip sync) and measures the round trip. The relay writes
// them itself from the write path, at most once per senderReportInterval
// per track, instead of with pion's report interceptor, which wrapped
// every packet write (a lock and a clock read per packet) and ran a
// ticker goroutine per viewer.

const senderReportInterval = time.Second

// senderReport is one outgoing track's report state.
type senderReport struct {
	ssrc    uint32        // the track's, from its sender (addTracks)
	clock   int64         // its RTP clock rate
	packets atomic.Uint32 // RTP packets sent, retransmissions included (wrapping, as the field does)
	octets  atomic.Uint32 // their payload bytes
	next    time.Time     // when the next report is due (with the viewer's wmu held)
}

// timeline maps a feed's presentation times to the wall clock: the PTS
// of the first frame the feed packetized and when that was. Video and
// audio share it, so their reports agree with each other whatever the
// network did to either.
type timeline struct {
	wall time.Time
	pts  time.Duration
}

// ptsAt is the recording's presentation time at the wall-clock time now,
// once the feed has packetized a frame.
func (f *feed) ptsAt(now time.Time) (time.Duration, bool) {
	t := f.timeline.Load()
	if t == nil {
		return 0, false
	}
	return t.pts + now.Sub(t.wall), true
}

// senderReport tells the browser which RTP time of the track the
// wall-clock time now is. A failed write is not an error of the viewer:
// the next packet write reports that.
func (v *viewer) senderReport(sr *senderReport, now time.Time) {
	f := v.feed.Load()
	if f == nil || sr.ssrc == 0 {
		return
	}
	pts, ok := f.ptsAt(now)
	if !ok {
		return
	}
	_ = v.pc.WriteRTCP([]rtcp.Packet{&rtcp.SenderReport{SSRC: sr.ssrc, NTPTime: ntpTime(now),
		RTPTime: rtpTime(pts, sr.clock), PacketCount: sr.packets.Load(), OctetCount: sr.octets.Load()}})
}

// rtpTime is a presentation time in units of an RTP clock, wrapped to 32
// bits as RTP timestamps are (split into seconds and the rest so that a
// recording of days does not overflow int64).
func rtpTime(pts time.Duration, clock int64) uint32 {
	sec, rest := int64(pts/time.Second), int64(pts%time.Second)
	return uint32(sec*clock + rest*clock/int64(time.Second))
}

// ntpTime is t as a 64-bit NTP timestamp: seconds since 1900 in the high
// 32 bits, the fraction of a second in the low 32.
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800 // seconds from 1900 to 1970
	ns := uint64(t.UnixNano())
	sec := ns/uint64(time.Second) + unixToNTP
	frac := (ns % uint64(time.Second)) << 32 / uint64(time.Second)
	return sec<<32 | frac
}
