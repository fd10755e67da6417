package web

import (
	"net/http"
	"strconv"

	"github.com/bwcplatform/bwc/storage/index"
)

// auditTrail: the audit trail, for reviewers, supervisors and admins.
type auditTrail struct {
	log AuditLog
	az  *authz
	kit *kit
}

func (h *auditTrail) routes(r *router) {
	r.handle("GET /api/audit", []string{index.RoleReviewer, index.RoleSupervisor, index.RoleAdmin}, h.listAudit)
}

// listAudit answers GET /api/audit?incident=&recording=&actor=&after=&limit=
func (h *auditTrail) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f index.AuditFilter
	if err := uuidParams(r, uuidParam{"incident", &f.IncidentID}, uuidParam{"recording", &f.RecordingID}); err != nil {
		h.kit.fail(w, r, err)
		return
	}
	f.Actor = q.Get("actor")
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"after", &f.AfterSeq}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				h.kit.fail(w, r, &index.FieldError{Field: p.name, Reason: "a non-negative integer"})
				return
			}
			*p.dst = n
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			h.kit.fail(w, r, &index.FieldError{Field: "limit", Reason: "1 to 1000"})
			return
		}
		f.Limit = n
	}
	f.Scope = h.az.auditScope(r)
	evs, err := h.log.AuditEvents(r.Context(), f)
	if evs == nil {
		evs = []index.AuditEvent{}
	}
	h.kit.reply(w, r, http.StatusOK, evs, err)
}
