package storage

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	recordings prometheus.Gauge
	dropped    prometheus.Counter
	bytesIn    prometheus.Counter
	sealed     prometheus.Counter
	uploaded   *prometheus.CounterVec
	errors     *prometheus.CounterVec
	recovered  prometheus.Counter
	lag        prometheus.Histogram
	spoolBytes prometheus.Gauge
	alarm      prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		recordings: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_archive_recordings", Help: "Recordings being archived now."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_archive_frames_lost_total",
			Help: "Frames the archive lost because its reader fell a full ring behind (alarm: should stay 0)."}),
		bytesIn:   prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_archive_spooled_bytes_total", Help: "fMP4 bytes written to the spool."}),
		sealed:    prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_archive_segments_sealed_total", Help: "Media segments sealed in the spool."}),
		uploaded:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bwc_archive_uploaded_total", Help: "Objects stored in MinIO and indexed."}, []string{"kind"}),
		errors:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bwc_archive_errors_total", Help: "Archive errors by stage."}, []string{"stage"}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_archive_recovered_segments_total", Help: "Segments sealed by spool recovery after an unclean stop."}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bwc_archive_upload_lag_seconds",
			Help:    "From a segment sealed in the spool to durable in MinIO and indexed.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16)}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_archive_spool_bytes", Help: "Bytes waiting in the spool."}),
		alarm:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_archive_spool_alarm", Help: "1 while the spool is above its alarm size."}),
	}
	for _, c := range []prometheus.Collector{m.recordings, m.dropped, m.bytesIn, m.sealed, m.uploaded, m.errors, m.recovered, m.lag, m.spoolBytes, m.alarm} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("archive metrics: %w", err)
		}
	}
	return m, nil
}
