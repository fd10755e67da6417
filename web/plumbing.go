package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/storage/index"
)

// The request plumbing every handler group shares: JSON bodies and
// errors, the mapping of the platform's errors to statuses, and the audit
// helper.

// AuditLog is what web needs of the audit trail.
type AuditLog interface {
	Audit(ctx context.Context, e index.AuditEvent) (index.AuditEvent, error)
	AuditEvents(ctx context.Context, f index.AuditFilter) ([]index.AuditEvent, error)
}

// kit answers errors (logging the unexpected ones) and writes the audit
// trail; every handler group holds the one kit.
type kit struct {
	log           *slog.Logger
	auditor       AuditLog
	auditFailures prometheus.Counter
	reads         *auditAggregator // reads and refusals (audit_reads.go)
}

// newKit: reads and refusals are aggregated per readPeriod.
func newKit(a AuditLog, readPeriod time.Duration, reg *prometheus.Registry, log *slog.Logger) *kit {
	k := &kit{log: log, auditor: a, auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bwc_audit_write_failures_total", Help: "Audit events that could not be written (alarm).",
	})}
	early := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bwc_audit_read_early_flushes_total",
		Help: "Periods of aggregated read and refusal audit events ended early: too many distinct keys.",
	})
	k.reads = newAuditAggregator(k.appendEvent, readPeriod, maxPendingAudits, early)
	reg.MustRegister(k.auditFailures, early)
	return k
}

// apiError is the body of every error response.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

const maxJSONBody = 1 << 20

// decode reads a JSON body strictly: unknown fields, trailing data and
// oversized bodies are 400s that say what is wrong. An empty body is an
// empty object.
func decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if errors.Is(err, io.EOF) {
		return true
	}
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		return true
	}
	e := apiError{Error: "invalid JSON body: " + err.Error()}
	var typeErr *json.UnmarshalTypeError
	var timeErr *time.ParseError
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &typeErr):
		e.Field = typeErr.Field
		e.Error = fmt.Sprintf("invalid JSON body: field %q must be a %s", typeErr.Field, typeErr.Type)
	case errors.As(err, &timeErr):
		e.Error = "invalid JSON body: times are RFC 3339, e.g. 2026-11-22T08:30:00Z: " + err.Error()
	case errors.As(err, &maxErr):
		e.Error = fmt.Sprintf("request body larger than %d bytes", maxErr.Limit)
		writeJSON(w, http.StatusRequestEntityTooLarge, e)
		return false
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		e.Field = strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		e.Error = "unknown field " + e.Field
	}
	writeJSON(w, http.StatusBadRequest, e)
	return false
}

// pathID reads a UUID path element; a malformed one is answered 400.
func pathID(w http.ResponseWriter, r *http.Request, name string) (uuid.UUID, bool) {
	id, err := uuid.Parse(r.PathValue(name))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: name + " in the path must be a UUID", Field: name})
		return uuid.Nil, false
	}
	return id, true
}

// reasonOf reads the reason of a DELETE: the reason query parameter, or a
// JSON body {"reason": ...}.
func reasonOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	var in struct {
		Reason string `json:"reason"`
	}
	in.Reason = r.URL.Query().Get("reason")
	if r.ContentLength > 0 && !decode(w, r, &in) {
		return "", false
	}
	return in.Reason, true
}

// requiredReason is reasonOf for changes that need one: an empty reason is
// 400 naming what it is required for.
func requiredReason(w http.ResponseWriter, r *http.Request, forWhat string) (string, bool) {
	reason, ok := reasonOf(w, r)
	if ok && reason == "" {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "reason: required " + forWhat, Field: "reason"})
		return "", false
	}
	return reason, ok
}

// timeRange reads from/to (RFC 3339); zero when absent.
func timeRange(r *http.Request) (from, to time.Time, err error) {
	q := r.URL.Query()
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := q.Get(p.name); v != "" {
			t, perr := time.Parse(time.RFC3339Nano, v)
			if perr != nil {
				return from, to, &index.FieldError{Field: p.name, Reason: "must be an RFC 3339 time"}
			}
			*p.dst = t
		}
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		return from, to, &index.FieldError{Field: "to", Reason: "must be after from"}
	}
	return from, to, nil
}

// uuidParam is an optional UUID query parameter and its filter field.
type uuidParam struct {
	name string
	dst  **uuid.UUID
}

// uuidParams reads optional UUID query parameters, in order; the first
// malformed one is a field error.
func uuidParams(r *http.Request, params ...uuidParam) error {
	q := r.URL.Query()
	for _, p := range params {
		if v := q.Get(p.name); v != "" {
			id, err := uuid.Parse(v)
			if err != nil {
				return &index.FieldError{Field: p.name, Reason: "must be a UUID"}
			}
			*p.dst = &id
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// list answers a whole list ([] rather than null when empty).
func list[T any](k *kit, f func(context.Context) ([]T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		items, err := f(r.Context())
		if err != nil {
			k.fail(w, r, err)
			return
		}
		if items == nil {
			items = []T{}
		}
		writeJSON(w, http.StatusOK, items)
	}
}

func (k *kit) reply(w http.ResponseWriter, r *http.Request, code int, v any, err error) {
	if err != nil {
		k.fail(w, r, err)
		return
	}
	writeJSON(w, code, v)
}

// fail maps the platform's error sentinels to HTTP statuses. Unexpected
// errors are logged and answered 500 without internals.
func (k *kit) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *index.FieldError
	switch {
	case errors.As(err, &fe):
		writeJSON(w, http.StatusBadRequest, apiError{Error: fe.Error(), Field: fe.Field})
	case errors.Is(err, index.ErrInvalid):
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
	case errors.Is(err, index.ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{Error: err.Error()})
	case errors.Is(err, index.ErrConflict):
		writeJSON(w, http.StatusConflict, apiError{Error: err.Error()})
	case errors.Is(err, context.Canceled):
		// the client went away; nothing to answer
	default:
		k.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusInternalServerError, apiError{Error: "internal error; see the server log"})
	}
}

// audit appends an event for the request's principal. A failure to audit is
// logged and counted; the caller decides whether the operation may go on
// (views must not be served unaudited).
func (k *kit) audit(r *http.Request, e index.AuditEvent) error {
	return k.auditEvent(context.WithoutCancel(r.Context()), stamp(r, e))
}

// stamp fills in who made the request and from where.
func stamp(r *http.Request, e index.AuditEvent) index.AuditEvent {
	if p, ok := PrincipalFrom(r.Context()); ok {
		e.Actor, e.Role = p.Login, p.Role
	}
	if e.Actor == "" {
		e.Actor = "anonymous"
	}
	e.RemoteAddr = clientAddr(r)
	return e
}

// auditEvent appends an event as it is (one without a request: the end
// of a live view).
func (k *kit) auditEvent(ctx context.Context, e index.AuditEvent) error {
	_, err := k.appendEvent(ctx, e)
	return err
}

// appendEvent is the one write to the audit trail: a failure is logged and
// counted (an alarm).
func (k *kit) appendEvent(ctx context.Context, e index.AuditEvent) (index.AuditEvent, error) {
	written, err := k.auditor.Audit(ctx, e)
	if err != nil {
		k.log.Error("audit trail write failed", "action", e.Action, "actor", e.Actor, "err", err)
		k.auditFailures.Inc()
	}
	return written, err
}

// auditChange records a successful state-changing API request: every
// change made through the API is in the trail, with the route and the
// answer's status.
func (k *kit) auditChange(r *http.Request, pattern string, status int) {
	_ = k.audit(r, index.AuditEvent{
		Action:     "api.change",
		ObjectType: "route",
		ObjectID:   r.URL.Path,
		Details:    map[string]any{"route": pattern, "status": status},
	})
}

// refused answers 503 when the audit trail could not record an access:
// evidence is never served unaudited.
func refused(w http.ResponseWriter, what string) {
	writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "audit trail unavailable: " + what + " refused"})
}
