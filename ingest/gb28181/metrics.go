package gb28181

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	refused   *prometheus.CounterVec // registrations and messages refused, by reason
	media     *prometheus.CounterVec // media sessions that failed, by reason
	subscribe *prometheus.CounterVec // MobilePosition SUBSCRIBEs that failed, by reason
	online    prometheus.Gauge
	registers prometheus.Counter
	positions prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bwc_gb28181_refused_total",
			Help: "GB/T 28181 SIP requests refused, by reason (bad_credentials: wrong password, 401; unknown_device: device ID not registered on the platform, 403; disabled; bad_device_id; stale_nonce; not_registered)."}, []string{"reason"}),
		media: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bwc_gb28181_media_failures_total",
			Help: "GB/T 28181 media sessions that failed, by reason (invite_refused, invite_timeout, media_unreachable: the device never reached the media port, no_video: PS without H.264/H.265, device_live, ended: the stream stopped)."}, []string{"reason"}),
		subscribe: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bwc_gb28181_subscribe_failures_total",
			Help: "GB/T 28181 MobilePosition SUBSCRIBEs that failed, by reason (timeout: no answer; unreachable: not sent; unsupported: 489/405/501, the device offers no MobilePosition; refused: another error status)."}, []string{"reason"}),
		online: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_gb28181_devices_online",
			Help: "GB/T 28181 devices registered and keeping alive."}),
		registers: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_gb28181_registrations_total",
			Help: "Successful GB/T 28181 registrations (and refreshes)."}),
		positions: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_gb28181_positions_total",
			Help: "MobilePosition reports received."}),
	}
	if reg != nil {
		reg.MustRegister(m.refused, m.media, m.subscribe, m.online, m.registers, m.positions)
	}
	return m
}
