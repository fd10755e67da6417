package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/storage/index"
)

// nullTrail accepts every event and keeps none: the benchmark measures the
// aggregator, not PostgreSQL.
type nullTrail struct{}

func (nullTrail) Audit(_ context.Context, e index.AuditEvent) (index.AuditEvent, error) {
	return e, nil
}
func (nullTrail) AuditEvents(context.Context, index.AuditFilter) ([]index.AuditEvent, error) {
	return nil, nil
}

// BenchmarkAuditedRead is the router's per-request cost of auditing a read
// (the answer's status intercepted, the event built, the aggregator's
// lookup), on parallel requests: "repeat" is a wall refreshing one object
// (counted), "first" a new object every time (written at once, to a trail
// that costs nothing here; at the bound the period is handed to the owner
// goroutine), "unaudited" the same request and answer without the audit,
// for the difference.
func BenchmarkAuditedRead(b *testing.B) {
	ok := func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, []string{}) }
	for _, bc := range []struct {
		name    string
		audited bool
		objects int64
	}{{"unaudited", false, 1}, {"repeat", true, 1}, {"first", true, 1 << 62}} {
		b.Run(bc.name, func(b *testing.B) {
			k := newKit(nullTrail{}, time.Hour, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
			k.reads.start()
			defer k.reads.close()
			p := Principal{Login: "sup-1", Role: index.RoleSupervisor}
			var n atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := httptest.NewRequest("GET", "/api/officers/x", nil)
					r.Pattern = "GET /api/officers/{id}"
					r.SetPathValue("id", strconv.FormatInt(n.Add(1)%bc.objects, 10))
					r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
					if bc.audited {
						k.auditedRead(httptest.NewRecorder(), r, r.Pattern, "officer", ok)
					} else {
						ok(httptest.NewRecorder(), r)
					}
				}
			})
		})
	}
}
