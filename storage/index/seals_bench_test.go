package index_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// benchSealed and benchLive size the archive of BenchmarkUnsealedHeads: a
// city's archive after some months, and a busy shift's live cameras.
const (
	benchSealed = 100_000
	benchLive   = 50
)

// unsealedHeadsBefore is UnsealedHeads as it was before migration 010
// (sealed known only from the audit trail: every rtsp recording ever made
// scanned, each anti-joined with its audit events), kept here only to
// measure what the seals table changed.
const unsealedHeadsBefore = `SELECT r.id, s.seq, s.chain FROM recordings r
	JOIN LATERAL (SELECT seq, chain FROM segments WHERE recording_id = r.id ORDER BY seq DESC LIMIT 1) s ON true
	WHERE r.source = 'rtsp' AND (r.status <> 'ended' OR NOT EXISTS (SELECT 1 FROM audit_events a
		WHERE a.recording_id = r.id AND a.action = $1))
	ORDER BY r.id`

// BenchmarkUnsealedHeads measures the checkpointer's query on an archive of
// benchSealed ended, sealed recordings (one segment each, their seal row
// and recording.sealed event) and benchLive live ones, with the query
// before migration 010 and with UnsealedHeads, and logs the ratio:
//
//	go test -run '^$' -bench UnsealedHeads -benchtime 20x ./storage/index
func BenchmarkUnsealedHeads(b *testing.B) {
	ctx := context.Background()
	db := storagetest.NewDB(b)
	start := time.Now()
	loadArchive(b, db)
	fmt.Printf("loaded %d sealed and %d live recordings in %v\n", benchSealed, benchLive, time.Since(start).Round(time.Millisecond))
	var before, after time.Duration
	b.Run("audit-scan", func(b *testing.B) {
		for b.Loop() {
			rows, err := db.Pool().Query(ctx, unsealedHeadsBefore, index.ActionSealed)
			if err != nil {
				b.Fatal(err)
			}
			if n := countRows(b, rows); n != benchLive {
				b.Fatalf("%d heads, want %d", n, benchLive)
			}
		}
		before = b.Elapsed() / time.Duration(b.N)
	})
	b.Run("seals-index", func(b *testing.B) {
		for b.Loop() {
			hs, err := db.UnsealedHeads(ctx)
			if err != nil || len(hs) != benchLive {
				b.Fatalf("%d heads, %v; want %d", len(hs), err, benchLive)
			}
		}
		after = b.Elapsed() / time.Duration(b.N)
	})
	if after > 0 {
		// printed, not logged: a parent benchmark's log is dropped without -v
		fmt.Printf("UnsealedHeads over %d recordings: %v before (audit scan), %v with the seals index: %.0fx faster\n",
			benchSealed+benchLive, before, after, float64(before)/float64(after))
	}
}

func countRows(b *testing.B, rows pgx.Rows) int {
	b.Helper()
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}

// loadArchive fills db in bulk (generate_series, as the superuser; the
// audit events are not chained: the query does not read the chain) and
// analyses the tables as autovacuum would.
func loadArchive(b *testing.B, db *index.DB) {
	b.Helper()
	ctx := context.Background()
	su := storagetest.Superuser(b, db)
	const recordings = `INSERT INTO recordings (id, source, status, started_at, ended_at, sealed)
		SELECT gen_random_uuid(), 'rtsp', $2, now() - interval '183 days' + i * interval '1 minute',
			CASE WHEN $2 = 'ended' THEN now() - interval '183 days' + i * interval '1 minute' + interval '10 minutes' END, $2 = 'ended'
		FROM generate_series(1, $1) i`
	for _, n := range []struct {
		n      int
		status string
	}{{benchSealed, "ended"}, {benchLive, "live"}} {
		if _, err := su.Exec(ctx, recordings, n.n, n.status); err != nil {
			b.Fatalf("recordings: %v", err)
		}
	}
	for _, sql := range []string{
		`INSERT INTO init_segments (recording_id, n, object_key, sha256, size)
			SELECT id, 0, id || '/init-0.mp4', sha256(id::text::bytea), 1000 FROM recordings`,
		`INSERT INTO segments (recording_id, seq, init_n, object_key, sha256, prev_chain, chain, size,
				started_at, ended_at, start_dts_ns, end_dts_ns, sealed_at)
			SELECT id, 0, 0, id || '/000000.m4s', sha256(id::text::bytea), sha256(('p' || id)::bytea), sha256(('c' || id)::bytea),
				4000000, started_at, started_at + interval '2 seconds', 0, 2000000000, started_at FROM recordings`,
		`INSERT INTO seals (recording_id, object_key, version_id, sha256, sealed_at)
			SELECT id, 'seals/' || id || '.json', 'v', sha256(('s' || id)::bytea), ended_at FROM recordings WHERE status = 'ended'`,
		`INSERT INTO audit_events (seq, id, at, actor, role, action, object_type, object_id, recording_id, details, prev_hash, hash)
			SELECT row_number() OVER (ORDER BY id), gen_random_uuid(), ended_at, 'system', 'system', 'recording.sealed', 'recording',
				id::text, id, '{"key":"seals/' || id || '.json"}', sha256('p'::bytea), sha256('h'::bytea)
			FROM recordings WHERE status = 'ended'`,
		`ANALYZE`,
	} {
		if _, err := su.Exec(ctx, sql); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
}
