package web

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/storage/index"
)

// Reads and refusals in the audit trail.
//
// Every authenticated GET (and HEAD) of the API is audited by the router
// (router.handle): api.read, or secret.read when the answer disclosed a
// secret (disclosed). Every refusal is audited as access.refused: the
// router's 403s (role, CSRF token), the pages' and the handlers' scope
// refusals, all through kit.auditRefusal.
//
// A wall refreshing every few seconds must not flood the trail, so both
// are aggregated: one event per (action, principal, route pattern, object)
// and period (-audit-read-period). The first occurrence in a period is
// written at once, before the answer leaves, so it is in the trail even if
// the node crashes right after; a read whose event cannot be written is
// refused (503), as views are. Repeats in the period are counted and
// written as one event with the count and the first and last time when the
// period ends, and at Close.

// maxPendingAudits bounds the keys counted in one period. A key holds its
// first event (about a kilobyte with its details), so the bound is about
// 10 MB; a node's users (a duty room of walls, reviewers paging through
// incidents) make a few thousand keys in a period. A principal walking
// through objects one by one could make more: at the bound the period's
// counts are written at once (more events, never more memory; the request
// that reached it waits until the owner goroutine takes them).
const maxPendingAudits = 10_000

// auditWriteTimeout bounds the write of one aggregated event (at the end of
// a period or at Close, when no request waits for it).
const auditWriteTimeout = 10 * time.Second

// auditText bounds a value taken from the request (a path element, a
// query) before it goes into the trail, and makes it valid text for
// PostgreSQL.
func auditText(s string) string {
	const max = 256
	if len(s) > max {
		s = s[:max]
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// auditKey is what makes repeats of one event.
type auditKey struct {
	action, actor, route, object string
}

// pendingAudit is a key's first event in the current period and its
// repeats since.
type pendingAudit struct {
	written chan struct{} // closed once the first event's write ended
	event   index.AuditEvent
	err     error // of the first event's write

	repeats     int // guarded by auditAggregator.mu until the period ends
	first, last time.Time
	remote      string
}

// auditAggregator writes the first event of each key in a period at once and
// counts repeats; its owner goroutine (start, Server.Run) writes the counts
// when the period ends, and close (Server.Close) writes what is left.
type auditAggregator struct {
	write  func(context.Context, index.AuditEvent) (index.AuditEvent, error)
	period time.Duration
	bound  int
	early  prometheus.Counter // periods ended early at the bound

	mu      sync.Mutex
	pending map[auditKey]*pendingAudit
	running bool // the owner goroutine was started
	closed  bool // every event is written at once

	batches chan map[auditKey]*pendingAudit // full maps handed to the owner
	stop    chan struct{}
	done    chan struct{} // closed when the owner ended
}

func newAuditAggregator(write func(context.Context, index.AuditEvent) (index.AuditEvent, error), period time.Duration, bound int, early prometheus.Counter) *auditAggregator {
	return &auditAggregator{write: write, period: period, bound: bound, early: early,
		pending: map[auditKey]*pendingAudit{},
		batches: make(chan map[auditKey]*pendingAudit), stop: make(chan struct{}), done: make(chan struct{})}
}

// record audits one occurrence of key from the remote address: the first
// of its key in the period is written now (event builds it, only then; its
// error is returned: the caller refuses the read); a repeat is counted
// (and waits for the first's write, sharing its outcome).
func (a *auditAggregator) record(ctx context.Context, key auditKey, remote string, event func() index.AuditEvent) error {
	now := time.Now()
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		_, err := a.write(ctx, event())
		return err
	}
	if p, ok := a.pending[key]; ok {
		p.repeats++
		if p.repeats == 1 {
			p.first = now
		}
		p.last, p.remote = now, remote
		a.mu.Unlock()
		<-p.written
		return p.err
	}
	var full map[auditKey]*pendingAudit
	if len(a.pending) >= a.bound {
		full, a.pending = a.pending, make(map[auditKey]*pendingAudit, len(a.pending))
	}
	p := &pendingAudit{written: make(chan struct{})}
	a.pending[key] = p
	a.mu.Unlock()

	p.event, p.err = a.write(ctx, event())
	if p.err != nil { // not in the trail: the next occurrence is a first again
		a.mu.Lock()
		if a.pending[key] == p {
			delete(a.pending, key)
		}
		a.mu.Unlock()
	}
	close(p.written)
	if full != nil {
		a.early.Inc()
		a.hand(full)
	}
	return p.err
}

// hand gives a full map to the owner goroutine to write, or writes it here
// when there is none (Run never called, or ended).
func (a *auditAggregator) hand(m map[auditKey]*pendingAudit) {
	a.mu.Lock()
	running := a.running
	a.mu.Unlock()
	if running {
		select {
		case a.batches <- m:
			return
		case <-a.done:
		}
	}
	a.flush(m)
}

// start starts the owner goroutine (once; never after close).
func (a *auditAggregator) start() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running || a.closed {
		return
	}
	a.running = true
	go a.run()
}

// run ends a period every a.period, and writes the maps handed to it.
func (a *auditAggregator) run() {
	defer close(a.done)
	t := time.NewTicker(a.period)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.mu.Lock()
			m := a.pending
			a.pending = make(map[auditKey]*pendingAudit, len(m))
			a.mu.Unlock()
			a.flush(m)
		case m := <-a.batches:
			a.flush(m)
		case <-a.stop:
			return
		}
	}
}

// close writes the counts pending and stops the owner goroutine, waiting
// for it; later occurrences are written one by one.
func (a *auditAggregator) close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	m := a.pending
	a.pending = nil
	running := a.running
	a.mu.Unlock()
	if running {
		close(a.stop)
		<-a.done
	}
	a.flush(m)
}

// flush writes one event per key of m that was repeated: the first event's
// fields, with the count of repeats and their first and last time, in the
// order of the first events.
func (a *auditAggregator) flush(m map[auditKey]*pendingAudit) {
	ps := make([]*pendingAudit, 0, len(m))
	for _, p := range m {
		if p.repeats > 0 {
			<-p.written
			if p.err == nil {
				ps = append(ps, p)
			}
		}
	}
	slices.SortFunc(ps, func(x, y *pendingAudit) int { return cmp.Compare(x.event.Seq, y.event.Seq) })
	for _, p := range ps {
		e := p.event
		details := make(map[string]any, len(e.Details)+5)
		for k, v := range e.Details {
			details[k] = v
		}
		details["count"] = p.repeats
		details["first"] = p.first.UTC().Format(time.RFC3339Nano)
		details["last"] = p.last.UTC().Format(time.RFC3339Nano)
		details["period"] = a.period.String()
		details["first_seq"] = e.Seq
		e = index.AuditEvent{Actor: e.Actor, Role: e.Role, Action: e.Action, ObjectType: e.ObjectType, ObjectID: e.ObjectID,
			IncidentID: e.IncidentID, RecordingID: e.RecordingID, RemoteAddr: p.remote, Details: details}
		ctx, cancel := context.WithTimeout(context.Background(), auditWriteTimeout)
		_, _ = a.write(ctx, e) // a failure is logged and counted by the writer
		cancel()
	}
}

// auditRead audits a read by the request's principal, aggregated per
// (action, principal, route, object ID) and period. The router calls it
// for every read; a handler that writes a more telling event of a read
// (its route in ownAudit) calls it with that event. An error means the
// event could not be written: the read must be refused.
func (k *kit) auditRead(r *http.Request, e index.AuditEvent) error {
	return k.aggregate(r, e.Action, e.ObjectID, func() index.AuditEvent { return e })
}

// aggregate records an occurrence of (action, the request's principal,
// its route, object); event builds the event, called only for a first
// occurrence. The route is a detail of every such event.
func (k *kit) aggregate(r *http.Request, action, object string, event func() index.AuditEvent) error {
	key := auditKey{action: action, actor: "anonymous", route: routeOf(r), object: object}
	if p, ok := PrincipalFrom(r.Context()); ok && p.Login != "" {
		key.actor = p.Login
	}
	return k.reads.record(context.WithoutCancel(r.Context()), key, clientAddr(r), func() index.AuditEvent {
		e := stamp(r, event())
		if e.Details == nil {
			e.Details = map[string]any{}
		}
		if _, ok := e.Details["route"]; !ok {
			e.Details["route"] = key.route
		}
		return e
	})
}

// auditRefusal audits a refused request (403), aggregated like reads per
// (principal, route, object, reason) and period: access.refused with the
// route, method and reason. object is the object refused (a path's ID;
// empty: the route itself). Every refusal, the router's (role, CSRF
// token) and the handlers' (scope), is audited through it.
func (k *kit) auditRefusal(r *http.Request, object, reason string) {
	typ, id := "route", r.URL.Path
	if object != "" {
		typ, id = objectType(routeOf(r)), object
	}
	id, reason = auditText(id), auditText(reason)
	_ = k.aggregate(r, "access.refused", id+"\x00"+reason, func() index.AuditEvent {
		return index.AuditEvent{Action: "access.refused", ObjectType: typ, ObjectID: id,
			Details: map[string]any{"method": r.Method, "reason": reason}}
	})
}

// routeOf is the request's route pattern.
func routeOf(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return r.Method + " " + r.URL.Path
}

// objectTypes names the objects of the API's collections.
var objectTypes = map[string]string{
	"recordings": "recording", "incidents": "incident", "devices": "device", "officers": "officer",
	"exports": "export", "live": "recording", "uploads": "upload", "users": "user", "tokens": "token",
}

// objectType is the type of the object a route pattern's {id} names.
func objectType(pattern string) string {
	_, path, _ := strings.Cut(pattern, " ")
	coll, _, _ := strings.Cut(strings.TrimPrefix(path, "/api/"), "/")
	if t, ok := objectTypes[coll]; ok {
		return t
	}
	return coll
}

// readNote is what a handler tells the read's audit event.
type readNote struct {
	secret string // the kind of secret the answer disclosed
}

type readNoteKey struct{}

// disclosed marks the request's answer as disclosing a secret (a camera's
// RTSP secret to an admin): its read is audited as secret.read.
func disclosed(r *http.Request, what string) {
	if n, ok := r.Context().Value(readNoteKey{}).(*readNote); ok {
		n.secret = what
	}
}

// errReadRefused is what a handler's writes get once its read was refused
// because the audit trail could not record it.
var errReadRefused = errors.New("read refused: the audit trail could not record it")

// auditedRead serves a read through h, audited when its answer starts:
// an answer under 400 is a read (a 4xx is not; refusals are audited by
// whoever refuses), written before the status line leaves. When the
// event cannot be written the answer is 503 instead and h's writes fail.
func (k *kit) auditedRead(w http.ResponseWriter, r *http.Request, pattern, typ string, h http.HandlerFunc) {
	note := &readNote{}
	r = r.WithContext(context.WithValue(r.Context(), readNoteKey{}, note))
	h(&readWriter{ResponseWriter: w, k: k, r: r, pattern: pattern, typ: typ, note: note}, r)
}

type readWriter struct {
	http.ResponseWriter
	k       *kit
	r       *http.Request
	pattern string
	typ     string // the type of the path's {id}
	note    *readNote
	state   int // 0: undecided; readServed; readRefused
}

const (
	readServed = 1 + iota
	readRefused
)

// decide audits the read once, when the answer's status is known; false:
// refused.
func (w *readWriter) decide(code int) bool {
	if w.state == 0 {
		w.state = readServed
		if code < 400 && w.audit(code) != nil {
			w.state = readRefused
			clear(w.ResponseWriter.Header())
			refused(w.ResponseWriter, "read")
		}
	}
	return w.state == readServed
}

// audit records the read: of the object the path's {id} names (the query
// in the details), or for a listing of the route's path and canonical
// query (so that each filter of a listing is an object of its own).
func (w *readWriter) audit(code int) error {
	r := w.r
	action, typ, id, q := "api.read", w.typ, r.PathValue("id"), ""
	if w.note.secret != "" {
		action = "secret.read"
	}
	if r.URL.RawQuery != "" {
		q = r.URL.Query().Encode() // keys sorted
	}
	if id == "" {
		typ, id = "route", r.URL.Path
		if q != "" {
			id, q = id+"?"+q, ""
		}
	}
	id = auditText(id)
	return w.k.aggregate(r, action, id, func() index.AuditEvent {
		e := index.AuditEvent{Action: action, ObjectType: typ, ObjectID: id, Details: map[string]any{"route": w.pattern, "status": code}}
		if w.note.secret != "" {
			e.Details["secret"] = w.note.secret
		}
		if q != "" {
			e.Details["query"] = auditText(q)
		}
		return e
	})
}

func (w *readWriter) WriteHeader(code int) {
	if code < 200 { // informational: the answer has not started
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if w.decide(code) {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *readWriter) Write(p []byte) (int, error) {
	if !w.decide(http.StatusOK) {
		return 0, errReadRefused
	}
	return w.ResponseWriter.Write(p)
}

// FlushError: a flush starts the answer too.
func (w *readWriter) FlushError() error {
	if !w.decide(http.StatusOK) {
		return errReadRefused
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *readWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
