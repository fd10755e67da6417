package relay

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	viewers     prometheus.Gauge
	packets     prometheus.Counter
	viewerDrops prometheus.Counter
	feedDrops   prometheus.Counter
	plis        prometheus.Counter
	resent      prometheus.Counter
	nackMissed  prometheus.Counter
	latency     prometheus.Histogram
	tcpRefused  prometheus.Counter
	transcoders prometheus.Gauge
	audioDrops  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		viewers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_relay_viewers", Help: "Live viewing sessions (WHEP)."}),
		packets: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_relay_packets_total", Help: "RTP packets sent to viewers."}),
		viewerDrops: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_relay_viewer_dropped_frames_total",
			Help: "Frames a viewer lost because it fell behind (it resumes at the next keyframe)."}),
		feedDrops: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_relay_feed_dropped_frames_total",
			Help: "Frames the relay's reader of a recording lost because it fell behind."}),
		plis: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_relay_plis_total", Help: "Picture loss indications from viewers."}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_relay_retransmitted_packets_total",
			Help: "Video packets sent again on a viewer's NACK, from the feed's shared history."}),
		nackMissed: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_relay_nack_unanswered_total",
			Help: "Packets a viewer asked again for that were no longer in the feed's history, or beyond the viewer's retransmission bound."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bwc_relay_added_latency_seconds",
			Help: "Server-added latency of video frames: packetized to written to the viewer.", Buckets: prometheus.ExponentialBuckets(0.00005, 1.5, 28)}),
		tcpRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_relay_tcp_refused_total",
			Help: "ICE-TCP connections closed at once: over the global or the per-address cap."}),
		transcoders: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_relay_audio_transcoders",
			Help: "Running AAC-to-Opus converters (ffmpeg children): one per watched AAC camera, none without viewers."}),
		audioDrops: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_relay_audio_transcode_dropped_total",
			Help: "AAC access units dropped because the converter was behind (its queue full)."}),
	}
	if reg != nil {
		reg.MustRegister(m.viewers, m.packets, m.viewerDrops, m.feedDrops, m.plis, m.resent, m.nackMissed, m.latency, m.tcpRefused, m.transcoders, m.audioDrops)
	}
	return m
}
