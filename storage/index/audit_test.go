package index_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

func appendEvents(t *testing.T, db *index.DB, n int) []index.AuditEvent {
	t.Helper()
	inc := uuid.New()
	var out []index.AuditEvent
	for i := 0; i < n; i++ {
		e, err := db.Audit(context.Background(), index.AuditEvent{
			Actor: "reviewer1", Role: "reviewer", Action: "recording.view", ObjectType: "recording",
			ObjectID: uuid.NewString(), IncidentID: &inc, RemoteAddr: "127.0.0.1:5000",
			Details: map[string]any{"range": "08:00-08:05", "n": i},
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestAuditChainVerifies(t *testing.T) {
	db := storagetest.NewDB(t)
	evs := appendEvents(t, db, 5)
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		if i > 0 && string(e.PrevHash) != string(evs[i-1].Hash) {
			t.Fatalf("event %d does not link to the one before", e.Seq)
		}
	}
	n, problems, err := db.VerifyAudit(context.Background())
	if err != nil || n != 5 || len(problems) != 0 {
		t.Fatalf("VerifyAudit = %d, %v, %v; want 5 clean", n, problems, err)
	}
	got, err := db.AuditEvents(context.Background(), index.AuditFilter{IncidentID: evs[0].IncidentID})
	if err != nil || len(got) != 5 || got[2].Details["range"] != "08:00-08:05" {
		t.Fatalf("AuditEvents = %+v, %v", got, err)
	}
}

// The application's role cannot change or remove audit events: the
// database refuses.
func TestAuditIsAppendOnlyForTheApplication(t *testing.T) {
	db := storagetest.NewDB(t)
	appendEvents(t, db, 2)
	ctx := context.Background()
	var role string
	if err := db.Pool().QueryRow(ctx, `SELECT current_user`).Scan(&role); err != nil || role != index.AppRole {
		t.Fatalf("the pool works as %q, want %q", role, index.AppRole)
	}
	for _, sql := range []string{
		`UPDATE audit_events SET actor = 'someone else' WHERE seq = 1`,
		`DELETE FROM audit_events WHERE seq = 2`,
		`TRUNCATE audit_events`,
	} {
		if _, err := db.Pool().Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "denied") {
			t.Errorf("%s as the application: err = %v, want permission denied", sql, err)
		}
	}
	// even the superuser meets the trigger unless it disables it
	su := storagetest.Superuser(t, db)
	if _, err := su.Exec(ctx, `UPDATE audit_events SET actor = 'x' WHERE seq = 1`); err == nil {
		t.Error("UPDATE by the superuser with the trigger on succeeded")
	}
}

// TestAppLoginCannotWidenItsRights: the server's login is bwc_app itself,
// not a superuser that SET ROLE'd: RESET ROLE, SET ROLE or SET SESSION
// AUTHORIZATION on one of its connections gives it nothing more, so it
// still cannot change or remove audit events or indexed segments.
func TestAppLoginCannotWidenItsRights(t *testing.T) {
	db := storagetest.NewDB(t)
	appendEvents(t, db, 2)
	ctx := context.Background()
	conn, err := db.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	var session, current string
	var super, createRole bool
	if err := conn.QueryRow(ctx, `SELECT session_user, current_user, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = session_user`).
		Scan(&session, &current, &super, &createRole); err != nil || session != index.AppRole || current != index.AppRole || super || createRole {
		t.Fatalf("login %q working as %q (superuser %v, createrole %v), %v; want %s, neither", session, current, super, createRole, err, index.AppRole)
	}
	if _, err := conn.Exec(ctx, `RESET ROLE`); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{`SET ROLE postgres`, `SET ROLE ` + index.OwnerRole, `SET SESSION AUTHORIZATION postgres`} {
		if _, err := conn.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "denied") {
			t.Errorf("%s as the application: err = %v, want permission denied", sql, err)
		}
	}
	if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&current); err != nil || current != index.AppRole {
		t.Fatalf("after RESET ROLE the connection works as %q, %v; want %s", current, err, index.AppRole)
	}
	start := time.Now().UTC().Truncate(time.Second)
	id := archivedRecording(t, db, start)
	if err := db.PutInitSegment(ctx, index.InitSegment{RecordingID: id, Key: id.String() + "/init-0.mp4", SHA256: sum("init"), Size: 100}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutSegment(ctx, index.Segment{RecordingID: id, Key: id.String() + "/000000.m4s", SHA256: sum("seg"),
		PrevChain: sum("prev"), Chain: sum("chain"), Size: 200, StartedAt: start, EndedAt: start.Add(2 * time.Second),
		EndDTS: 2 * time.Second, SealedAt: start.Add(3 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	rec := id.String()
	for _, sql := range []string{
		`UPDATE audit_events SET actor = 'someone else' WHERE seq = 1`,
		`DELETE FROM audit_events WHERE seq = 2`,
		`TRUNCATE audit_events`,
		`ALTER TABLE audit_events DISABLE TRIGGER USER`,
		`UPDATE segments SET size = size + 1 WHERE recording_id = '` + rec + `'`,
		`DELETE FROM segments WHERE recording_id = '` + rec + `'`,
		`DELETE FROM init_segments WHERE recording_id = '` + rec + `'`,
		`UPDATE schema_version SET version = 1`,
	} {
		if _, err := conn.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "denied") && !strings.Contains(err.Error(), "must be owner") {
			t.Errorf("%s as the application after RESET ROLE: err = %v, want permission denied", sql, err)
		}
	}
	var events, segs int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM audit_events), (SELECT count(*) FROM segments)`).Scan(&events, &segs); err != nil || events != 2 || segs != 1 {
		t.Fatalf("after the refused statements: %d events, %d segments, %v; want 2 and 1", events, segs, err)
	}
}

// An edit or a deletion made with superuser rights (trigger disabled) is
// found by VerifyAudit, which names the event.
func TestVerifyAuditFindsSuperuserTampering(t *testing.T) {
	cases := []struct {
		name string
		sql  string
		seq  int64
		want string
	}{
		{"edit", `UPDATE audit_events SET actor = 'nobody' WHERE seq = 3`, 3, "edited"},
		{"delete", `DELETE FROM audit_events WHERE seq = 2`, 3, "missing"},
		{"edit details", `UPDATE audit_events SET details = '{"range":"09:00-09:05","n":1}' WHERE seq = 2`, 2, "edited"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := storagetest.NewDB(t)
			appendEvents(t, db, 5)
			ctx := context.Background()
			su := storagetest.Superuser(t, db)
			for _, sql := range []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`, tc.sql, `ALTER TABLE audit_events ENABLE TRIGGER USER`} {
				if _, err := su.Exec(ctx, sql); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			_, problems, err := db.VerifyAudit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, p := range problems {
				if p.Seq == tc.seq && strings.Contains(p.Reason, tc.want) {
					found = true
				}
			}
			if !found {
				t.Fatalf("VerifyAudit problems %v do not name event %d as %q", problems, tc.seq, tc.want)
			}
		})
	}
}
