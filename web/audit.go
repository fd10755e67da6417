package web

import (
	"context"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
)

// auditLog is what web needs of the audit trail.
type auditLog interface {
	Audit(ctx context.Context, e index.AuditEvent) (index.AuditEvent, error)
	AuditEvents(ctx context.Context, f index.AuditFilter) ([]index.AuditEvent, error)
}

var _ auditLog = (*index.DB)(nil)

// audit appends an event for the request's principal. A failure to audit is
// logged and counted; the caller decides whether the operation may go on
// (views must not be served unaudited: see auditView).
func (s *Server) audit(r *http.Request, e index.AuditEvent) error {
	if s.auditor == nil {
		return nil
	}
	if p, ok := PrincipalFrom(r.Context()); ok {
		e.Actor, e.Role = p.Login, p.Role
	}
	if e.Actor == "" {
		e.Actor = "anonymous"
	}
	e.RemoteAddr = clientAddr(r)
	if _, err := s.auditor.Audit(context.WithoutCancel(r.Context()), e); err != nil {
		s.log.Error("audit trail write failed", "action", e.Action, "actor", e.Actor, "err", err)
		s.auditFailures.Inc()
		return err
	}
	return nil
}

// auditChange records a successful state-changing API request: every
// change made through the API is in the trail, with the route and the
// answer's status.
func (s *Server) auditChange(r *http.Request, pattern string, status int) {
	_ = s.audit(r, index.AuditEvent{
		Action:     "api.change",
		ObjectType: "route",
		ObjectID:   r.URL.Path,
		Details:    map[string]any{"route": pattern, "status": status},
	})
}

func (s *Server) auditRoutes(mux *http.ServeMux) {
	s.handle(mux, "GET /api/audit", []string{index.RoleReviewer, index.RoleSupervisor, index.RoleAdmin}, s.listAudit)
}

// listAudit answers GET /api/audit?incident=&recording=&actor=&after=&limit=
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f index.AuditFilter
	for _, p := range []struct {
		name string
		dst  **uuid.UUID
	}{{"incident", &f.IncidentID}, {"recording", &f.RecordingID}} {
		if v := q.Get(p.name); v != "" {
			id, err := uuid.Parse(v)
			if err != nil {
				s.fail(w, r, &index.FieldError{Field: p.name, Reason: "must be a UUID"})
				return
			}
			*p.dst = &id
		}
	}
	f.Actor = q.Get("actor")
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"after", &f.AfterSeq}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				s.fail(w, r, &index.FieldError{Field: p.name, Reason: "a non-negative integer"})
				return
			}
			*p.dst = n
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.fail(w, r, &index.FieldError{Field: "limit", Reason: "1 to 1000"})
			return
		}
		f.Limit = n
	}
	evs, err := s.auditor.AuditEvents(r.Context(), f)
	if evs == nil {
		evs = []index.AuditEvent{}
	}
	s.reply(w, r, http.StatusOK, evs, err)
}
