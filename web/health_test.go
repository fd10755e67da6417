package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/bwcplatform/bwc/storage/storagetest"
	"github.com/bwcplatform/bwc/web"
)

// An alarm check (Check.Alarm) that fires is named in /readyz's "alarms"
// and "checks" but leaves the node ready; a failing dependency still makes
// it not ready, alarm or not.
func TestReadyzAlarmIsADetail(t *testing.T) {
	db := storagetest.NewDB(t)
	damaged := errors.New("evidence verification: 1 problem(s), the first: recording r segment 000001 (k): SHA-256 mismatch")
	alarm := web.Check{Name: "evidence verification", Alarm: true, Func: func(context.Context) error { return damaged }}
	quiet := web.Check{Name: "evidence verification", Alarm: true, Func: func(context.Context) error { return nil }}
	down := web.Check{Name: "minio", Func: func(context.Context) error { return errors.New("connection refused") }}
	for _, tc := range []struct {
		name   string
		checks []web.Check
		code   int
		status string
		alarm  bool
	}{
		{"alarm", []web.Check{{Name: "postgres", Func: db.Ping}, alarm}, 200, "ready", true},
		{"no alarm", []web.Check{{Name: "postgres", Func: db.Ping}, quiet}, 200, "ready", false},
		{"alarm and a dependency down", []web.Check{down, alarm}, 503, "not ready", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(db)
			opts.Checks = tc.checks
			s := newServer(t, opts)
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			var body struct {
				Status string
				Checks map[string]string
				Alarms map[string]string
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tc.code || body.Status != tc.status {
				t.Fatalf("readyz = %d %s, want %d %q", rec.Code, rec.Body, tc.code, tc.status)
			}
			want := "ok"
			if tc.alarm {
				want = damaged.Error()
			}
			if body.Checks["evidence verification"] != want || (body.Alarms["evidence verification"] == damaged.Error()) != tc.alarm || (body.Alarms != nil) != tc.alarm {
				t.Fatalf("readyz body %s; want the check %q and alarms %v", rec.Body, want, tc.alarm)
			}
		})
	}
}
