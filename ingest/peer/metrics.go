package peer

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type metrics struct {
	streamsIn     prometheus.Gauge
	streamsOut    prometheus.Gauge
	bytesIn       prometheus.Counter
	bytesOut      prometheus.Counter
	droppedOut    prometheus.Counter
	reconnects    prometheus.Counter
	refused       prometheus.Counter
	announcements prometheus.Counter
	listening     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		streamsIn: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_peer_streams_in",
			Help: "Inter-node streams pulled by this node from the nodes holding the cameras (one per camera watched here, however many viewers)."}),
		streamsOut: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_peer_streams_out",
			Help: "Inter-node streams this node serves to other nodes (one per camera and pulling node)."}),
		bytesIn:  prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_peer_received_bytes_total", Help: "Bytes of inter-node streams received."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_peer_sent_bytes_total", Help: "Bytes of inter-node streams sent."}),
		droppedOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_peer_dropped_frames_total",
			Help: "Frames an inter-node stream out lost because the pulling node fell behind (it resumes at the next keyframe)."}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_peer_reconnects_total", Help: "Inter-node streams in that broke off and were reconnected."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_peer_refused_total",
			Help: "Pulls of this node's streams refused: a missing, expired or badly signed token."}),
		announcements: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_peer_live_announcements_total",
			Help: "Announcements of live-list changes received from the database (LISTEN bwc_live)."}),
		listening: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_peer_live_listening",
			Help: "1 while this node listens for the cluster's live-list announcements."}),
	}
	if reg != nil {
		reg.MustRegister(m.streamsIn, m.streamsOut, m.bytesIn, m.bytesOut, m.droppedOut, m.reconnects, m.refused, m.announcements, m.listening)
	}
	return m
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return 0
	}
	return m.GetGauge().GetValue()
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
