package web

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness check: a dependency the platform cannot work
// without (PostgreSQL, MinIO, ...), or with Alarm an alarm /readyz shows
// without failing readiness.
type Check struct {
	Name string
	Func func(ctx context.Context) error
	// Alarm: an error is shown (in "checks" and in "alarms") but leaves the
	// node ready. For alarms about state every node shares (damaged
	// evidence in the one bucket), where taking nodes out of the load
	// balancer would stop every camera and fix nothing.
	Alarm bool
}

// health answers the probes (/healthz, /readyz) and serves the metrics.
type health struct {
	checks      []Check
	metrics     *prometheus.Registry
	listenerErr atomic.Pointer[error] // set when the listener stopped by itself

	mu   sync.Mutex // one round of readiness checks at a time, shared for a second
	at   time.Time
	code int
	body map[string]any
}

func newHealth(checks []Check, metrics *prometheus.Registry) *health {
	return &health{checks: checks, metrics: metrics}
}

func (h *health) routes(r *router) {
	r.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	r.mux.HandleFunc("GET /readyz", h.readyz)
	r.mux.Handle("GET /metrics", promhttp.HandlerFor(h.metrics, promhttp.HandlerOpts{Registry: h.metrics}))
}

// listenerFailed makes /readyz name the listener's error.
func (h *health) listenerFailed(err error) { h.listenerErr.Store(&err) }

// readyz answers 200 when every dependency answers, 503 naming each that
// does not; alarms (Check.Alarm) that fire are named under "alarms" and
// leave the answer 200.
//
// Probes are exempt from the per-address limit (a load balancer shares its
// address with everyone behind it), so the answer is computed at most once
// a second and shared: a flood of probes costs one round of checks.
func (h *health) readyz(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	if time.Since(h.at) >= time.Second {
		h.code, h.body = h.check(r.Context())
		h.at = time.Now()
	}
	code, body := h.code, h.body
	h.mu.Unlock()
	writeJSON(w, code, body)
}

func (h *health) check(ctx context.Context) (int, map[string]any) {
	type result struct {
		name  string
		alarm bool
		err   error
	}
	results := make(chan result, len(h.checks))
	for _, c := range h.checks {
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			defer cancel()
			results <- result{c.Name, c.Alarm, c.Func(ctx)}
		}()
	}
	status, alarms := map[string]string{}, map[string]string{}
	ready := true
	if err := h.listenerErr.Load(); err != nil {
		ready = false
		status["http listener"] = (*err).Error()
	}
	for range h.checks {
		res := <-results
		switch {
		case res.err != nil && res.alarm:
			status[res.name], alarms[res.name] = res.err.Error(), res.err.Error()
		case res.err != nil:
			ready = false
			status[res.name] = res.err.Error()
		default:
			status[res.name] = "ok"
		}
	}
	code, word := http.StatusOK, "ready"
	if !ready {
		code, word = http.StatusServiceUnavailable, "not ready"
	}
	body := map[string]any{"status": word, "checks": status}
	if len(alarms) > 0 {
		body["alarms"] = alarms
	}
	return code, body
}

// instrument counts requests and their latency per route pattern.
func instrument(reg *prometheus.Registry, next http.Handler) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bwc_http_requests_total", Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "bwc_http_request_seconds", Help: "HTTP request latency by route.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
	}, []string{"route"})
	reg.MustRegister(requests, latency)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		requests.WithLabelValues(route, fmt.Sprint(sw.code)).Inc()
		latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush for server-sent events.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
