package web

import (
	"context"
	"net/http"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
)

// dashboardStore is what the supervision dashboard needs of the index.
type dashboardStore interface {
	Dashboard(ctx context.Context, from, to time.Time, unit string) (index.Dashboard, error)
}

var _ dashboardStore = (*index.DB)(nil)

func (s *Server) dashboardRoutes(mux *http.ServeMux) {
	s.handle(mux, "GET /api/dashboard", supervisors, s.dashboard)
}

// dashboard answers GET /api/dashboard?from=&to=&unit= (RFC 3339; the last
// 7 days by default): the video-association rate and the incidents without
// or with partial footage first.
func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	ds, ok := s.domain.(dashboardStore)
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "dashboard unavailable"})
		return
	}
	q := r.URL.Query()
	from, to, err := timeRange(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if to.IsZero() {
		to = time.Now().UTC()
	}
	if from.IsZero() {
		from = to.Add(-7 * 24 * time.Hour)
	}
	unit := q.Get("unit")
	if p, _ := PrincipalFrom(r.Context()); p.Role == index.RoleSupervisor && p.Unit != "" && unit == "" {
		unit = p.Unit // a supervisor sees their own unit unless they ask for another
	}
	d, err := ds.Dashboard(r.Context(), from, to, unit)
	s.reply(w, r, http.StatusOK, d, err)
}
