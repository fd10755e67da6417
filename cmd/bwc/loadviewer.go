package main

import (
	"sync/atomic"

	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// countingViewer is the load commands' (and tests') WebRTC viewer: a pion
// peer connection receiving video only, counting the RTP packets it gets
// and the sequence numbers it misses. answer sends the complete offer (no
// trickle: it carries every candidate) and returns the SDP answer: through
// WHEP over HTTP (whepViewer) or to a relay in the same process
// (loadViewer).
func countingViewer(got, lost *atomic.Uint64, answer func(offer string) (string, error)) (*webrtc.PeerConnection, error) {
	return recvViewer(func() func(*rtp.Packet) {
		var last uint16
		first := true
		return func(p *rtp.Packet) {
			if d := int16(p.SequenceNumber - last - 1); !first && d > 0 {
				lost.Add(uint64(d))
			}
			first, last = false, p.SequenceNumber
			got.Add(1)
		}
	}, answer)
}

// recvViewer is a pion peer connection receiving video only; for each
// track it gets, onTrack returns the function that sees its RTP packets
// (on the track's reading goroutine).
func recvViewer(onTrack func() func(*rtp.Packet), answer func(offer string) (string, error)) (*webrtc.PeerConnection, error) {
	se := webrtc.SettingEngine{}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	se.LoggerFactory = lf
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*webrtc.PeerConnection, error) { pc.Close(); return nil, err }
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		return fail(err)
	}
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		see := onTrack()
		for {
			p, _, err := t.ReadRTP()
			if err != nil {
				return
			}
			see(p)
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fail(err)
	}
	<-gathered
	sdp, err := answer(pc.LocalDescription().SDP)
	if err != nil {
		return fail(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return fail(err)
	}
	return pc, nil
}
