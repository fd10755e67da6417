package export_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
)

// builds counts the exporter's "export ready" records: one per package
// built and recorded.
type builds struct {
	slog.Handler
	n *atomic.Int64
}

func (b builds) Enabled(context.Context, slog.Level) bool { return true }
func (b builds) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "export ready" {
		b.n.Add(1)
	}
	return nil
}
func (b builds) WithAttrs([]slog.Attr) slog.Handler { return b }
func (b builds) WithGroup(string) slog.Handler      { return b }

// node is a second exporter ("node") over the same database and bucket,
// signing with the same key.
func node(t *testing.T, db *index.DB, store *blob.Store, key ed25519.PrivateKey, name string, lease time.Duration, n *atomic.Int64) *export.Exporter {
	t.Helper()
	x, err := export.NewExporter(export.ExporterConfig{Dir: t.TempDir(), Retention: time.Hour, Node: name, Lease: lease},
		db, store, key, slog.New(builds{n: n}))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func versions(t *testing.T, store *blob.Store, key string) int {
	t.Helper()
	n := 0
	for o := range store.Client().ListObjects(context.Background(), store.Bucket(), minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		n++
	}
	return n
}

// waitReady waits until every export is ready (or fails the test).
func waitReady(t *testing.T, db *index.DB, ids []uuid.UUID, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, id := range ids {
		for {
			e, err := db.Export(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if e.Status == index.ExportReady {
				break
			}
			if e.Status != index.ExportApproved || time.Now().After(deadline) {
				t.Fatalf("export %s is %s (%s), want ready", id, e.Status, e.Error)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestTwoNodesBuildEachExportOnce: two exporters ("nodes") on one database
// and bucket, both queueing every approved export (the approving node's
// Enqueue and the other's look for unclaimed exports at start), build each
// exactly once: one version of each package in the bucket, one build
// event per export in all; Build of an export another node holds is
// ErrClaimed.
func TestTwoNodesBuildEachExportOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, store, _, inc := newExporter(t, "claim")
	_, key, _ := ed25519.GenerateKey(nil)
	var n atomic.Int64
	a := node(t, db, store, key, "node-a", time.Minute, &n)
	b := node(t, db, store, key, "node-b", time.Minute, &n)

	var ids []uuid.UUID
	for range 6 {
		e, err := db.RequestExport(ctx, index.Export{IncidentID: inc.ID, RequestedBy: "reviewer", Reason: "court"}, false)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	// two direct builds of one export at once: one builds, one is refused
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, x := range []*export.Exporter{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = x.Build(ctx, ids[0]) }()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), index.ErrClaimed) {
		t.Fatalf("two builds of one export: %v, %v; want one built, one ErrClaimed", errs[0], errs[1])
	}

	for _, x := range []*export.Exporter{a, b} {
		for _, id := range ids {
			x.Enqueue(id)
		}
	}
	for _, x := range []*export.Exporter{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = x.Run(ctx) }()
	}
	waitReady(t, db, ids, 30*time.Second)
	time.Sleep(300 * time.Millisecond) // a second build, if any, would be under way
	cancel()
	wg.Wait()
	a.Close()
	b.Close()
	for _, id := range ids {
		if v := versions(t, store, "exports/"+id.String()+".zip"); v != 1 {
			t.Errorf("export %s: %d versions of its package, want 1", id, v)
		}
	}
	if got := n.Load(); got != int64(len(ids)) {
		t.Errorf("%d builds of %d exports, want one each", got, len(ids))
	}
}

// TestExpiredClaimIsTakenOver: an export claimed by a node that died
// mid-build is not built while the claim's lease runs, and is built by
// another node (its look for unclaimed exports) once the lease has
// expired.
func TestExpiredClaimIsTakenOver(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, store, _, inc := newExporter(t, "lease")
	_, key, _ := ed25519.GenerateKey(nil)
	var n atomic.Int64
	b := node(t, db, store, key, "node-b", 100*time.Millisecond, &n)
	e, err := db.RequestExport(ctx, index.Export{IncidentID: inc.ID, RequestedBy: "reviewer", Reason: "court"}, false)
	if err != nil {
		t.Fatal(err)
	}
	const lease = 1500 * time.Millisecond
	claimed := time.Now()
	if err := db.ClaimExport(ctx, e.ID, "node-dead", lease); err != nil {
		t.Fatal(err)
	}
	if err := b.Build(ctx, e.ID); !errors.Is(err, index.ErrClaimed) {
		t.Fatalf("build of an export another node holds: %v, want ErrClaimed", err)
	}
	if err := db.RenewExportClaim(ctx, e.ID, "node-b", lease); !errors.Is(err, index.ErrClaimed) {
		t.Fatalf("renewal by a node that does not hold the claim: %v, want ErrClaimed", err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = b.Run(ctx) }()
	waitReady(t, db, []uuid.UUID{e.ID}, 20*time.Second)
	if since := time.Since(claimed); since < lease {
		t.Fatalf("export built %v after another node's claim of %v", since, lease)
	}
	cancel()
	<-done
	b.Close()
	if v := versions(t, store, "exports/"+e.ID.String()+".zip"); v != 1 || n.Load() != 1 {
		t.Fatalf("%d versions, %d builds; want 1, 1", v, n.Load())
	}
}

// TestClaimRenewAndRelease: the holder renews its claim, another node
// cannot; a released claim is taken at once; a built export is claimed
// by nobody.
func TestClaimRenewAndRelease(t *testing.T) {
	ctx := context.Background()
	db, _, x, inc := newExporter(t, "renew")
	e, err := db.RequestExport(ctx, index.Export{IncidentID: inc.ID, RequestedBy: "reviewer", Reason: "court"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.ClaimExport(ctx, e.ID, "node-x", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := db.ClaimExport(ctx, e.ID, "node-y", time.Minute); !errors.Is(err, index.ErrClaimed) {
		t.Fatalf("second claim: %v, want ErrClaimed", err)
	}
	if ids, err := db.ClaimableExports(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("claimable while held: %v, %v", ids, err)
	}
	if err := db.RenewExportClaim(ctx, e.ID, "node-x", time.Minute); err != nil {
		t.Fatalf("renewal by the holder: %v", err)
	}
	if err := db.ReleaseExportClaim(ctx, e.ID, "node-y"); err != nil {
		t.Fatal(err)
	}
	if err := x.Build(ctx, e.ID); !errors.Is(err, index.ErrClaimed) {
		t.Fatalf("build after another node's release attempt: %v, want ErrClaimed (node-x still holds it)", err)
	}
	if err := db.ReleaseExportClaim(ctx, e.ID, "node-x"); err != nil {
		t.Fatal(err)
	}
	if ids, err := db.ClaimableExports(ctx); err != nil || len(ids) != 1 || ids[0] != e.ID {
		t.Fatalf("claimable after release: %v, %v", ids, err)
	}
	if err := x.Build(ctx, e.ID); err != nil {
		t.Fatalf("build after release: %v", err)
	}
	if ids, err := db.ClaimableExports(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("claimable after build: %v, %v", ids, err)
	}
	if err := db.ClaimExport(ctx, e.ID, "node-y", time.Minute); !errors.Is(err, index.ErrClaimed) {
		t.Fatalf("claim of a built export: %v, want ErrClaimed", err)
	}
}
