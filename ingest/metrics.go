package ingest

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	authFailures *prometheus.CounterVec
	publishes    prometheus.Counter
	reconnects   prometheus.Counter
	live         prometheus.Gauge
	frames       prometheus.Counter
	bytes        prometheus.Counter
	dropped      *prometheus.CounterVec
	// the per-packet counters, resolved once (no label lookup per packet)
	droppedWaiting, droppedDecode prometheus.Counter
	timeouts                      prometheus.Counter
	dbQueue                       prometheus.Gauge
	dbRetries                     prometheus.Counter
	dbDropped                     prometheus.Counter
	// connection limits and listeners
	conns            *prometheus.GaugeVec
	connsRefused     *prometheus.CounterVec
	connsClosed      *prometheus.CounterVec
	listenerUp       *prometheus.GaugeVec
	listenerErrors   *prometheus.CounterVec
	listenerRestarts *prometheus.CounterVec
	takeovers        prometheus.Counter
	continued        prometheus.Counter
	letGo            prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bwc_ingest_refused_total",
			Help: "Publish attempts refused, by reason (bad_credentials, unknown_device, basic_auth, throttled_addr, throttled_device, disabled, bad_path, no_video)."}, []string{"reason"}),
		publishes: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_ingest_publishes_total",
			Help: "Camera sessions that started publishing."}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_ingest_reconnects_total",
			Help: "Publishes that continued a recording (within the grace window, or replacing a half-open session)."}),
		live: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_ingest_recordings_live",
			Help: "Recordings live or waiting for their camera to reconnect."}),
		frames: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_ingest_frames_total",
			Help: "Access units received from cameras."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_ingest_bytes_total",
			Help: "Access-unit payload bytes received from cameras."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bwc_ingest_frames_dropped_total",
			Help: "Access units that could not be used, by reason (waiting_keyframe, decode)."}, []string{"reason"}),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_ingest_media_timeouts_total",
			Help: "Camera sessions closed because no media arrived in time."}),
		dbQueue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_ingest_db_queue",
			Help: "Database writes of the ingest waiting (PostgreSQL slow or down)."}),
		dbRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_ingest_db_retries_total",
			Help: "Database writes of the ingest retried."}),
		dbDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_ingest_db_dropped_total",
			Help: "Database writes of the ingest dropped because the queue was full."}),
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bwc_ingest_conns",
			Help: "RTSP connections open, by state (handshake: not publishing yet; publishing)."}, []string{"state"}),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bwc_ingest_conns_refused_total",
			Help: "RTSP connections closed at accept, by reason (max_conns: every connection publishes; throttled: address throttled for failed authentications)."}, []string{"reason"}),
		connsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bwc_ingest_conns_closed_total",
			Help: "RTSP connections closed by the limits, by reason (handshake_timeout; evicted, evicted_addr: the oldest connection not yet publishing closed at the global or the per-address cap)."}, []string{"reason"}),
		listenerUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bwc_ingest_listener_up",
			Help: "1 while the RTSP (RTSPS) listener accepts connections."}, []string{"listener"}),
		listenerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bwc_ingest_listener_errors_total",
			Help: "Accept errors of the RTSP (RTSPS) listener, by kind (temporary: retried; fatal: listener restarted)."}, []string{"listener", "kind"}),
		listenerRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bwc_ingest_listener_restarts_total",
			Help: "Times the RTSP (RTSPS) listener listened again after it stopped."}, []string{"listener"}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_ingest_takeovers_total",
			Help: "Publishes that replaced a device's session that was still open (audited)."}),
		continued: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_ingest_node_takeovers_total",
			Help: "Recordings this node continued after another node held them (the camera reconnected here within the grace window, or its node died)."}),
		letGo: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_ingest_recordings_let_go_total",
			Help: "Recordings this node let go of because another node took them over."}),
	}
	m.droppedWaiting = m.dropped.WithLabelValues("waiting_keyframe")
	m.droppedDecode = m.dropped.WithLabelValues("decode")
	if reg != nil {
		reg.MustRegister(m.authFailures, m.publishes, m.reconnects, m.live, m.frames, m.bytes, m.dropped,
			m.timeouts, m.dbQueue, m.dbRetries, m.dbDropped,
			m.conns, m.connsRefused, m.connsClosed, m.listenerUp, m.listenerErrors, m.listenerRestarts, m.takeovers,
			m.continued, m.letGo)
	}
	return m
}
