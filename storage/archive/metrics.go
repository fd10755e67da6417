package archive

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

	writeFailing prometheus.Gauge   // recordings whose spool writes fail now
	stuck        prometheus.Gauge   // spooled objects stuck past StuckAfter now
	stuckTotal   prometheus.Counter // objects that became stuck
	orphans      *prometheus.GaugeVec
	rebuilt      prometheus.Counter
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
		writeFailing: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_archive_spool_write_failing",
			Help: "Recordings whose spool writes fail now (disk full, I/O error): their media is being lost (alarm)."}),
		stuck: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bwc_archive_stuck",
			Help: "Spooled segments and init segments not archived after the stuck-after setting while PostgreSQL and MinIO answer (alarm)."}),
		stuckTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_archive_stuck_total",
			Help: "Spooled segments and init segments that became stuck."}),
		orphans: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bwc_archive_orphans",
			Help: "Found by the last reconciliation and not repaired: spool directories without a recording row (spool), bucket objects without an index row (object)."}, []string{"kind"}),
		rebuilt: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_archive_rows_rebuilt_total",
			Help: "Recording rows rebuilt from the spool's metadata by reconciliation."}),
	}
	for _, c := range []prometheus.Collector{m.recordings, m.dropped, m.bytesIn, m.sealed, m.uploaded, m.errors, m.recovered, m.lag, m.spoolBytes, m.alarm,
		m.writeFailing, m.stuck, m.stuckTotal, m.orphans, m.rebuilt} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("archive metrics: %w", err)
		}
	}
	return m, nil
}
