package index_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// withSegment indexes one init and one media segment of rec (seq 0).
func withSegment(t *testing.T, db *index.DB, rec uuid.UUID, start time.Time) index.Segment {
	t.Helper()
	ctx := context.Background()
	in := index.InitSegment{RecordingID: rec, N: 0, Key: rec.String() + "/init-0.mp4", SHA256: sum("init"), Size: 10}
	if err := db.PutInitSegment(ctx, in); err != nil {
		t.Fatal(err)
	}
	seg := index.Segment{RecordingID: rec, Seq: 0, Key: rec.String() + "/000000.m4s", SHA256: sum("seg" + rec.String()),
		PrevChain: sum("prev"), Chain: sum("chain" + rec.String()), Size: 20, StartedAt: start, EndedAt: start.Add(time.Second),
		EndDTS: time.Second, SealedAt: start.Add(time.Second)}
	if err := db.PutSegment(ctx, seg); err != nil {
		t.Fatal(err)
	}
	return seg
}

func heads(t *testing.T, db *index.DB) []uuid.UUID {
	t.Helper()
	hs, err := db.UnsealedHeads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []uuid.UUID
	for _, h := range hs {
		out = append(out, h.RecordingID)
	}
	return out
}

// A recording is "not sealed yet" until its seal row is recorded: live or
// ended, it is in UnsealedHeads (with its latest segment), an ended one in
// EndedUnsealed; RecordSeal takes it out of both, appends one
// recording.sealed event in the same transaction, and a second call
// changes nothing.
func TestRecordSealTakesTheRecordingOutOfTheWorkLists(t *testing.T) {
	ctx := context.Background()
	db := storagetest.NewDB(t)
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	live, ended, empty := archivedRecording(t, db, start), archivedRecording(t, db, start), archivedRecording(t, db, start)
	seg := withSegment(t, db, live, start)
	withSegment(t, db, ended, start)
	for _, r := range []uuid.UUID{ended, empty} {
		if err := db.EndRecording(ctx, r, start.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	hs, err := db.UnsealedHeads(ctx)
	if err != nil || len(hs) != 2 || !slices.ContainsFunc(hs, func(h index.ChainHead) bool {
		return h.RecordingID == live && h.Seq == 0 && string(h.Chain) == string(seg.Chain)
	}) {
		t.Fatalf("UnsealedHeads = %+v, %v; want the live and the ended recording with their segment", hs, err)
	}
	if got, err := db.EndedUnsealed(ctx, "self", time.Minute); err != nil || !slices.Equal(got, []uuid.UUID{ended}) {
		t.Fatalf("EndedUnsealed = %v, %v; want only %s (the empty one has nothing to seal)", got, err, ended)
	}
	if _, err := db.Seal(ctx, ended); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("Seal before sealing: %v, want ErrNotFound", err)
	}

	row := index.SealRow{RecordingID: ended, Key: "seals/" + ended.String() + ".json", VersionID: "v1", SHA256: sum("seal")}
	added, err := db.RecordSeal(ctx, row, map[string]any{"segments": 1})
	if err != nil || !added {
		t.Fatalf("RecordSeal = %v, %v", added, err)
	}
	again := row
	again.VersionID = "v2" // a retry keeps the row as first written
	if added, err := db.RecordSeal(ctx, again, nil); err != nil || added {
		t.Fatalf("second RecordSeal = %v, %v; want nothing written", added, err)
	}
	got, err := db.Seal(ctx, ended)
	if err != nil || got.Key != row.Key || got.VersionID != "v1" || string(got.SHA256) != string(row.SHA256) || got.SealedAt.IsZero() {
		t.Fatalf("Seal = %+v, %v", got, err)
	}
	if h := heads(t, db); !slices.Equal(h, []uuid.UUID{live}) {
		t.Fatalf("UnsealedHeads after the seal: %v, want only the live %s", h, live)
	}
	if got, err := db.EndedUnsealed(ctx, "self", time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("EndedUnsealed after the seal = %v, %v", got, err)
	}
	evs, err := db.AuditEvents(ctx, index.AuditFilter{RecordingID: &ended})
	if err != nil || len(evs) != 1 || evs[0].Action != index.ActionSealed || evs[0].Details["key"] != row.Key ||
		evs[0].Details["version_id"] != "v1" || evs[0].Details["segments"] != float64(1) {
		t.Fatalf("audit events of the sealed recording: %+v, %v; want one recording.sealed with key and version", evs, err)
	}
	if _, probs, err := db.VerifyAudit(ctx); err != nil || len(probs) != 0 {
		t.Fatalf("audit chain after RecordSeal: %v %v", probs, err)
	}
}

// The application may add seal rows but not change or remove one, nor
// record a seal of a recording that does not exist.
func TestSealsAreWriteOnceForTheApplication(t *testing.T) {
	ctx := context.Background()
	db := storagetest.NewDB(t)
	rec := archivedRecording(t, db, time.Now().UTC())
	if _, err := db.RecordSeal(ctx, index.SealRow{RecordingID: rec, Key: "seals/" + rec.String() + ".json", VersionID: "v1"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{`UPDATE seals SET version_id = 'forged'`, `DELETE FROM seals`, `TRUNCATE seals`} {
		if _, err := db.Pool().Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "denied") {
			t.Errorf("%s as the application: err = %v, want permission denied", sql, err)
		}
	}
	ghost := uuid.New()
	if _, err := db.RecordSeal(ctx, index.SealRow{RecordingID: ghost, Key: "seals/" + ghost.String() + ".json"}, nil); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("seal of an unknown recording: %v, want ErrNotFound", err)
	}
	if _, err := db.RecordSeal(ctx, index.SealRow{RecordingID: rec}, nil); !errors.Is(err, index.ErrInvalid) {
		t.Errorf("seal without a key: %v, want ErrInvalid", err)
	}
}

// Migration 010 indexes the seals audited before it (key and version from
// the recording.sealed events) and marks those recordings sealed; the
// others stay in the work lists.
func TestMigrationBackfillsSealsFromTheAuditTrail(t *testing.T) {
	ctx := context.Background()
	db := storagetest.NewDB(t)
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	sealed, unsealed := archivedRecording(t, db, start), archivedRecording(t, db, start)
	for _, r := range []uuid.UUID{sealed, unsealed} {
		withSegment(t, db, r, start)
		if err := db.EndRecording(ctx, r, start.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	// the schema before 010, as it was: sealed only in the audit trail
	su := storagetest.Superuser(t, db)
	for _, sql := range []string{`DROP TABLE seals`, `ALTER TABLE recordings DROP COLUMN sealed`, `UPDATE schema_version SET version = 9`} {
		if _, err := su.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	r := sealed
	key := "seals/" + sealed.String() + ".json"
	for i := range 2 { // a repeated event: the first one counts
		if _, err := db.Audit(ctx, index.AuditEvent{Actor: "system", Role: "system", Action: index.ActionSealed, ObjectType: "recording",
			ObjectID: r.String(), RecordingID: &r, Details: map[string]any{"key": key, "version_id": []string{"v-old", "v-later"}[i]}}); err != nil {
			t.Fatal(err)
		}
	}
	owner, err := index.Open(ctx, ownerURL(t, db))
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if v, err := owner.Migrate(ctx); err != nil || v != index.LatestSchema() {
		t.Fatalf("migrate: %d %v", v, err)
	}
	got, err := db.Seal(ctx, sealed)
	if err != nil || got.Key != key || got.VersionID != "v-old" || got.SHA256 != nil {
		t.Fatalf("back-filled seal = %+v, %v", got, err)
	}
	if h := heads(t, db); !slices.Equal(h, []uuid.UUID{unsealed}) {
		t.Fatalf("UnsealedHeads after the back-fill = %v, want only %s", h, unsealed)
	}
	if _, err := db.Pool().Exec(ctx, `DELETE FROM seals`); err == nil {
		t.Fatal("the application may delete back-filled seals")
	}
}

// remigrate runs sqls as the superuser (to put the schema back as an
// older version had it), then migrates db's database to the latest
// version as the schema owner, as `bwc migrate` does.
func remigrate(t *testing.T, db *index.DB, sqls ...string) {
	t.Helper()
	ctx := context.Background()
	su := storagetest.Superuser(t, db)
	for _, sql := range sqls {
		if _, err := su.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	owner, err := index.Open(ctx, ownerURL(t, db))
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if v, err := owner.Migrate(ctx); err != nil || v != index.LatestSchema() {
		t.Fatalf("migrate: %d %v", v, err)
	}
}

// ownerURL is the schema owner's URL for db's database.
func ownerURL(t *testing.T, db *index.DB) string {
	t.Helper()
	u, err := url.Parse(storagetest.Env(t, "BWC_TEST_DATABASE_OWNER_URL"))
	if err != nil {
		t.Fatal(err)
	}
	app, err := url.Parse(db.URL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = app.Path
	return u.String()
}

// EndedUnsealed leaves a live node's ended recordings to it (its spool may
// still hold segments to upload): a node may seal its own, those of no
// node, and those of nodes whose heartbeat is older than deadAfter.
func TestEndedUnsealedLeavesLiveNodesRecordingsToThem(t *testing.T) {
	ctx := context.Background()
	db := storagetest.NewDB(t)
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	for _, n := range []struct {
		id  string
		age time.Duration
	}{{"self", 0}, {"alive", 5 * time.Second}, {"dead", 10 * time.Minute}} {
		if _, err := db.Pool().Exec(ctx, `INSERT INTO nodes (id, started_at, heartbeat_at, start_token)
			VALUES ($1, now() - interval '1 hour', now() - make_interval(secs => $2), gen_random_uuid())`, n.id, n.age.Seconds()); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{"self": true, "": true, "dead": true, "gone": true, "alive": false}
	byNode := map[uuid.UUID]string{}
	for node := range want {
		r := archivedRecording(t, db, start)
		withSegment(t, db, r, start)
		if err := db.EndRecording(ctx, r, start.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if node != "" {
			if _, err := db.Pool().Exec(ctx, `UPDATE recordings SET node_id = $2 WHERE id = $1`, r, node); err != nil {
				t.Fatal(err)
			}
		}
		byNode[r] = node
	}
	got, err := db.EndedUnsealed(ctx, "self", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for r, node := range byNode {
		if slices.Contains(got, r) != want[node] {
			t.Errorf("recording of node %q listed: %v, want %v", node, slices.Contains(got, r), want[node])
		}
	}
}
