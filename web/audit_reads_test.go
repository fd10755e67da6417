package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
	"github.com/bwcplatform/bwc/web"
)

// auditEnv is a running server (Run: the aggregator's goroutine runs) on a
// fresh database, with a client per role.
type auditEnv struct {
	t       *testing.T
	db      *index.DB
	s       *web.Server
	clients map[string]apiClient
	logins  map[string]string
	stop    func() // ends Run and closes the server (flushing the counts)
}

func startAudited(t *testing.T, cfg web.Config, mod func(*web.Options)) *auditEnv {
	t.Helper()
	db := storagetest.NewDB(t)
	opts := testOptions(db)
	opts.Config = cfg
	if mod != nil {
		mod(&opts)
	}
	s := newServer(t, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitReady(t, s, done)
	e := &auditEnv{t: t, db: db, s: s, clients: map[string]apiClient{}, logins: map[string]string{}}
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(e.stop)
	anon := apiClient{t: t, url: s.URL()}
	for _, role := range allRoles {
		c := anon.loginAs(db, role)
		_, sess, _ := c.do("GET", "/api/session", "") // not audited: the principal's own session
		e.clients[role] = c
		e.logins[role] = sess["login"].(string)
	}
	return e
}

// send makes a request as role ("": anonymous) and returns the status; csrf
// false leaves the CSRF header out.
func (e *auditEnv) send(role, method, path string, csrf bool) int {
	e.t.Helper()
	req, err := http.NewRequest(method, e.s.URL()+path, strings.NewReader("{}"))
	if err != nil {
		e.t.Fatal(err)
	}
	if c, ok := e.clients[role]; ok {
		req.AddCookie(c.cookie)
		if csrf {
			req.Header.Set("X-CSRF-Token", c.csrf)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// events are the role's audit events but its login.
func (e *auditEnv) events(role string) []index.AuditEvent {
	e.t.Helper()
	evs, err := e.db.AuditEvents(context.Background(), index.AuditFilter{Actor: e.logins[role], Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []index.AuditEvent
	for _, ev := range evs {
		if ev.Action != "auth.login" {
			out = append(out, ev)
		}
	}
	return out
}

// wantEvent is an expected audit event: count 0 is a first occurrence (no
// count), n > 0 the aggregate of n repeats.
type wantEvent struct {
	action, objectType, objectID, route string
	count                               int
	detail                              map[string]string // further details expected
}

func (w wantEvent) check(t *testing.T, got index.AuditEvent, firstSeq map[string]int64) {
	t.Helper()
	if got.Action != w.action || got.ObjectType != w.objectType || got.ObjectID != w.objectID || got.Details["route"] != w.route {
		t.Errorf("event %d = %s %s %s route %v, want %s %s %s route %s", got.Seq, got.Action, got.ObjectType, got.ObjectID,
			got.Details["route"], w.action, w.objectType, w.objectID, w.route)
		return
	}
	for k, v := range w.detail {
		if fmt.Sprint(got.Details[k]) != v {
			t.Errorf("event %d %s: details[%s] = %v, want %s", got.Seq, got.Action, k, got.Details[k], v)
		}
	}
	key := w.action + " " + w.route + " " + w.objectID
	count, counted := got.Details["count"]
	if w.count == 0 {
		if counted {
			t.Errorf("event %d: a first occurrence with a count %v", got.Seq, count)
		}
		firstSeq[key] = got.Seq
		return
	}
	first, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(got.Details["first"]))
	last, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(got.Details["last"]))
	if fmt.Sprint(count) != fmt.Sprint(w.count) || first.IsZero() || last.Before(first) ||
		fmt.Sprint(got.Details["first_seq"]) != fmt.Sprint(firstSeq[key]) {
		t.Errorf("aggregate event %d: count %v first %v last %v first_seq %v; want count %d after event %d",
			got.Seq, count, got.Details["first"], got.Details["last"], got.Details["first_seq"], w.count, firstSeq[key])
	}
}

// TestReadsAndRefusalsAreAudited: every authenticated read and every
// refusal is in the audit trail, once per user, route and object per
// period: the first at once, the repeats as one event with their count
// (written at Close here: the period is 5 minutes).
func TestReadsAndRefusalsAreAudited(t *testing.T) {
	type step struct {
		role, method, path string
		times, code        int
		noCSRF             bool
	}
	type fixture struct{ officer, device, incident string }
	for _, tc := range []struct {
		name  string
		steps func(f fixture) []step
		want  func(f fixture) map[string][]wantEvent // by role
	}{
		{
			name:  "a listing read is one event",
			steps: func(fixture) []step { return []step{{"admin", "GET", "/api/officers", 1, 200, false}} },
			want: func(fixture) map[string][]wantEvent {
				return map[string][]wantEvent{"admin": {{"api.read", "route", "/api/officers", "GET /api/officers", 0, map[string]string{"status": "200"}}}}
			},
		},
		{
			name: "100 reads of one object in a period: the first and one with the count 99",
			steps: func(f fixture) []step {
				return []step{{"supervisor", "GET", "/api/officers/" + f.officer, 100, 200, false}}
			},
			want: func(f fixture) map[string][]wantEvent {
				r := "GET /api/officers/{id}"
				return map[string][]wantEvent{"supervisor": {{"api.read", "officer", f.officer, r, 0, nil}, {"api.read", "officer", f.officer, r, 99, nil}}}
			},
		},
		{
			name: "each filter of a listing is an object of its own",
			steps: func(f fixture) []step {
				return []step{
					{"reviewer", "GET", "/api/audit?limit=5", 3, 200, false},
					{"reviewer", "GET", "/api/audit?incident=" + f.incident, 1, 200, false},
					{"reviewer", "GET", "/api/audit?limit=5", 1, 200, false},
				}
			},
			want: func(f fixture) map[string][]wantEvent {
				r := "GET /api/audit"
				return map[string][]wantEvent{"reviewer": {
					{"api.read", "route", "/api/audit?limit=5", r, 0, nil},
					{"api.read", "route", "/api/audit?incident=" + f.incident, r, 0, nil},
					{"api.read", "route", "/api/audit?limit=5", r, 3, nil},
				}}
			},
		},
		{
			name: "an admin reading a device secret, a supervisor the device",
			steps: func(f fixture) []step {
				return []step{
					{"admin", "GET", "/api/devices/" + f.device, 3, 200, false},
					{"admin", "GET", "/api/devices", 1, 200, false},
					{"supervisor", "GET", "/api/devices/" + f.device, 1, 200, false},
				}
			},
			want: func(f fixture) map[string][]wantEvent {
				r, secret := "GET /api/devices/{id}", map[string]string{"secret": "device secret"}
				return map[string][]wantEvent{
					"admin": {
						{"secret.read", "device", f.device, r, 0, secret},
						{"secret.read", "route", "/api/devices", "GET /api/devices", 0, secret},
						{"secret.read", "device", f.device, r, 2, secret},
					},
					"supervisor": {{"api.read", "device", f.device, r, 0, map[string]string{"secret": "<nil>"}}},
				}
			},
		},
		{
			name: "role refusals, aggregated",
			steps: func(f fixture) []step {
				return []step{
					{"officer", "GET", "/api/devices", 5, 403, false},
					{"reviewer", "GET", "/api/devices/" + f.device, 1, 403, false},
					{"officer", "GET", "/wall", 1, 403, false},
				}
			},
			want: func(f fixture) map[string][]wantEvent {
				ref := map[string]string{"reason": "role officer", "method": "GET"}
				return map[string][]wantEvent{
					"officer": {
						{"access.refused", "route", "/api/devices", "GET /api/devices", 0, ref},
						{"access.refused", "route", "/wall", "GET /wall", 0, ref},
						{"access.refused", "route", "/api/devices", "GET /api/devices", 4, ref},
					},
					"reviewer": {{"access.refused", "device", f.device, "GET /api/devices/{id}", 0, map[string]string{"reason": "role reviewer"}}},
				}
			},
		},
		{
			name: "a change without the CSRF token is refused and audited, not changed",
			steps: func(fixture) []step {
				return []step{{"admin", "POST", "/api/officers", 1, 403, true}}
			},
			want: func(fixture) map[string][]wantEvent {
				return map[string][]wantEvent{"admin": {{"access.refused", "route", "/api/officers", "POST /api/officers", 0,
					map[string]string{"reason": "missing or wrong X-CSRF-Token", "method": "POST"}}}}
			},
		},
		{
			name: "an incident's timeline: incident.view, aggregated, with the incident",
			steps: func(f fixture) []step {
				return []step{{"supervisor", "GET", "/api/incidents/" + f.incident + "/timeline", 3, 200, false}}
			},
			want: func(f fixture) map[string][]wantEvent {
				r := "GET /api/incidents/{id}/timeline"
				return map[string][]wantEvent{"supervisor": {{"incident.view", "incident", f.incident, r, 0, nil}, {"incident.view", "incident", f.incident, r, 2, nil}}}
			},
		},
		{
			name: "reads that fail and requests without a session are not audited reads",
			steps: func(fixture) []step {
				return []step{
					{"admin", "GET", "/api/officers/" + uuid.NewString(), 2, 404, false},
					{"admin", "GET", "/api/officers/not-a-uuid", 1, 400, false},
					{"", "GET", "/api/officers", 3, 401, false},
				}
			},
			want: func(fixture) map[string][]wantEvent { return map[string][]wantEvent{"admin": nil} },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startAudited(t, testConfig(), nil)
			ctx := context.Background()
			o, err := e.db.CreateOfficer(ctx, index.Officer{Badge: "A-1", Name: "Audit Officer"})
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.db.CreateDevice(ctx, index.Device{Serial: "CAM-AUDIT", Secret: "device-secret-9"})
			if err != nil {
				t.Fatal(err)
			}
			inc, err := e.db.CreateIncident(ctx, index.Incident{Number: "A-15"})
			if err != nil {
				t.Fatal(err)
			}
			f := fixture{officer: o.ID.String(), device: d.ID.String(), incident: inc.ID.String()}
			for _, st := range tc.steps(f) {
				for range st.times {
					if code := e.send(st.role, st.method, st.path, !st.noCSRF); code != st.code {
						t.Fatalf("%s %s as %q = %d, want %d", st.method, st.path, st.role, code, st.code)
					}
				}
			}
			e.stop() // Close writes the counts of the period
			if evs, err := e.db.AuditEvents(ctx, index.AuditFilter{Limit: 1000}); err != nil || len(evs) == 0 {
				t.Fatalf("trail: %d events, %v", len(evs), err)
			}
			for role, want := range tc.want(f) {
				got := e.events(role)
				if len(got) != len(want) {
					for _, g := range got {
						t.Logf("%s: %d %s %s %s %v", role, g.Seq, g.Action, g.ObjectType, g.ObjectID, g.Details)
					}
					t.Fatalf("%s: %d events, want %d", role, len(got), len(want))
				}
				firstSeq := map[string]int64{}
				for i, w := range want {
					w.check(t, got[i], firstSeq)
				}
			}
			if _, problems, err := e.db.VerifyAudit(ctx); err != nil || len(problems) > 0 {
				t.Fatalf("VerifyAudit: %v %v", problems, err)
			}
		})
	}
}

// TestEveryReadRouteIsAudited walks the router: every GET route without a
// path element, read by a role it allows, is an api.read event of that
// route, unless the route is listed as writing its own events; every such
// listed route exists.
func TestEveryReadRouteIsAudited(t *testing.T) {
	e := startAudited(t, testConfig(), nil)
	routes := e.s.Routes()
	registered := map[string]bool{}
	for _, rt := range routes {
		registered[rt.Pattern] = true
	}
	for pattern, why := range web.OwnAudit() {
		if !registered[pattern] || why == "" {
			t.Errorf("OwnAudit lists %q (%q): not a route, or no reason", pattern, why)
		}
	}
	own := web.OwnAudit()
	read := map[string]string{} // route → the role that read it
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		if method != "GET" || rt.Roles == nil || strings.Contains(path, "{") || own[rt.Pattern] != "" {
			continue
		}
		role := rt.Roles[len(rt.Roles)-1]
		if code := e.send(role, "GET", path, true); code != 200 {
			t.Fatalf("%s as %s = %d", rt.Pattern, role, code)
		}
		read[rt.Pattern] = role
	}
	if len(read) < 10 {
		t.Fatalf("only %d listings read: the walk is not seeing the router", len(read))
	}
	e.stop()
	for pattern, role := range read {
		found := false
		for _, ev := range e.events(role) {
			found = found || ev.Details["route"] == pattern && (ev.Action == "api.read" || ev.Action == "secret.read")
		}
		if !found {
			t.Errorf("%s read by %s is not in the audit trail", pattern, role)
		}
	}
}

// TestReadAuditPeriodEnds: with the server running, the counts are
// written when the period ends, without Close, and the next read starts a
// new period with a first event.
func TestReadAuditPeriodEnds(t *testing.T) {
	cfg := testConfig()
	cfg.AuditReadPeriod = 300 * time.Millisecond
	e := startAudited(t, cfg, nil)
	// the occurrences in the trail: 1 per first event, count per aggregate
	occurrences := func() (n, events int) {
		for _, ev := range e.events("admin") {
			events++
			if c, ok := ev.Details["count"].(float64); ok {
				n += int(c)
			} else {
				n++
			}
		}
		return n, events
	}
	for range 10 {
		if code := e.send("admin", "GET", "/api/officers", true); code != 200 {
			t.Fatal(code)
		}
	}
	mediatest.Eventually(t, "the period's count written", func() bool { n, _ := occurrences(); return n == 10 })
	if _, events := occurrences(); events > 4 { // at most one period boundary among 10 quick reads
		t.Fatalf("%d events for 10 reads in at most two periods", events)
	}
	_, before := occurrences()
	if code := e.send("admin", "GET", "/api/officers", true); code != 200 {
		t.Fatal(code)
	}
	if n, events := occurrences(); n != 11 || events != before+1 {
		t.Fatalf("a read in a new period: %d occurrences in %d events, want 11 in %d (a first event at once)", n, events, before+1)
	}
}

// TestReadAuditBound: the keys counted in a period are bounded; at the
// bound the period's counts are written at once rather than kept.
func TestReadAuditBound(t *testing.T) {
	const bound = 3
	e := startAudited(t, testConfig(), nil) // period 5 minutes: only the bound ends it here
	e.s.SetAuditBound(bound)
	ctx := context.Background()
	var officers []string
	for i := range bound + 2 {
		o, err := e.db.CreateOfficer(ctx, index.Officer{Badge: fmt.Sprint("B-", i), Name: "Officer"})
		if err != nil {
			t.Fatal(err)
		}
		officers = append(officers, o.ID.String())
	}
	aggregates := func() int {
		n := 0
		for _, ev := range e.events("admin") {
			if _, ok := ev.Details["count"]; ok {
				n++
			}
		}
		return n
	}
	for i, id := range officers {
		for range 2 { // a first and a repeat
			if code := e.send("admin", "GET", "/api/officers/"+id, true); code != 200 {
				t.Fatal(code)
			}
		}
		if n := e.s.AuditPending(); n > bound {
			t.Fatalf("after %d objects %d keys pending, bound %d", i+1, n, bound)
		}
		if i < bound && aggregates() != 0 {
			t.Fatalf("after %d objects, under the bound, counts were written before the period ended", i+1)
		}
	}
	// the fourth object found the map full: the first three's counts went
	mediatest.Eventually(t, "the counts written at the bound", func() bool { return aggregates() == bound })
	e.stop()
	if n := aggregates(); n != bound+2 {
		t.Fatalf("%d aggregate events after Close, want %d", n, bound+2)
	}
}

// failingAudit is the real trail, made to fail on demand.
type failingAudit struct {
	web.AuditLog
	fail atomic.Bool
}

func (f *failingAudit) Audit(ctx context.Context, e index.AuditEvent) (index.AuditEvent, error) {
	if f.fail.Load() {
		return index.AuditEvent{}, errors.New("audit trail unavailable (test)")
	}
	return f.AuditLog.Audit(ctx, e)
}

// TestReadRefusedWhenNotAudited: a read whose event cannot be written is
// answered 503 without the data, and is not counted as a read.
func TestReadRefusedWhenNotAudited(t *testing.T) {
	trail := &failingAudit{}
	e := startAudited(t, testConfig(), func(o *web.Options) { trail.AuditLog = o.Audit; o.Audit = trail })
	trail.fail.Store(true)
	c := e.clients["supervisor"]
	req, _ := http.NewRequest("GET", e.s.URL()+"/api/officers", nil)
	req.AddCookie(c.cookie)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _ := res.Body.Read(buf)
	res.Body.Close()
	if res.StatusCode != 503 || !strings.Contains(string(buf[:n]), "audit trail unavailable") {
		t.Fatalf("unaudited read = %d %s", res.StatusCode, buf[:n])
	}
	trail.fail.Store(false)
	if code := e.send("supervisor", "GET", "/api/officers", true); code != 200 {
		t.Fatalf("read with the trail back = %d", code)
	}
	e.stop()
	if evs := e.events("supervisor"); len(evs) != 1 || evs[0].Details["count"] != nil {
		t.Fatalf("events = %+v, want the one first read", evs)
	}
}

// TestConcurrentReadsAreCountedOnce: reads of one object at once make one
// first event and one count, whatever their interleaving.
func TestConcurrentReadsAreCountedOnce(t *testing.T) {
	e := startAudited(t, testConfig(), nil)
	const workers, each = 8, 25
	codes := make(chan int, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				codes <- e.send("supervisor", "GET", "/api/live", true)
			}
		})
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != 200 {
			t.Fatalf("GET /api/live = %d", code)
		}
	}
	e.stop()
	evs := e.events("supervisor")
	if len(evs) != 2 || evs[0].Details["count"] != nil || fmt.Sprint(evs[1].Details["count"]) != fmt.Sprint(workers*each-1) {
		t.Fatalf("events = %+v, want a first and a count of %d", evs, workers*each-1)
	}
}
