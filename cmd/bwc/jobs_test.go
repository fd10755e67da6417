package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
)

// readyLog counts the "export ready" records of every node it is given to.
type readyLog struct {
	mu sync.Mutex
	n  map[string]int // by export
}

func (l *readyLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *readyLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "export ready" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "export" {
			l.mu.Lock()
			l.n[a.Value.String()]++
			l.mu.Unlock()
		}
		return true
	})
	return nil
}
func (l *readyLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *readyLog) WithGroup(string) slog.Handler      { return l }

// startNode runs a wired platform ("node") with its own logger until the
// test ends.
func startNode(t *testing.T, cfg Config, log *slog.Logger) *platform {
	t.Helper()
	p, err := build(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.run(ctx) }()
	select {
	case <-p.ready:
	case err := <-done:
		cancel()
		t.Fatalf("node %s: %v", cfg.Node, err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %s: %v", cfg.Node, err)
		}
	})
	return p
}

// TestThreeNodesBuildEachExportOnce: three `bwc serve` platforms on one
// database and bucket, each looking for unclaimed approved exports at
// start and every ExportLease, build every approved export exactly once:
// one package version each in the bucket, one build in the nodes' logs.
func TestThreeNodesBuildEachExportOnce(t *testing.T) {
	ctx := context.Background()
	builds := &readyLog{n: map[string]int{}}
	log := slog.New(builds)
	cfg := testConfig(t)
	cfg.ExportLease = time.Second
	var nodes []*platform
	for i, name := range []string{"node-a", "node-b", "node-c"} {
		c := cfg
		c.Node = name
		c.SpoolDir, c.UploadDir, c.ExportDir = t.TempDir(), t.TempDir(), t.TempDir()
		nodes = append(nodes, startNode(t, c, log.With("node", name)))
		if i > 0 {
			continue
		}
		// approved exports before the other nodes start: the first node
		// finds them at its next look, the others at start
		inc, err := nodes[0].db.CreateIncident(ctx, index.Incident{Number: "110-" + uuid.NewString()[:8]})
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if _, err := nodes[0].db.RequestExport(ctx, index.Export{IncidentID: inc.ID, RequestedBy: "reviewer", Reason: "court"}, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	db := nodes[0].db
	mediatest.Eventually(t, "every export ready", func() bool {
		es, err := db.Exports(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Status != index.ExportReady {
				return false
			}
		}
		return len(es) == 5
	})
	time.Sleep(2 * cfg.ExportLease) // every node looked again
	versions := map[string]int{}
	for o := range nodes[0].blobs.Client().ListObjects(ctx, cfg.S3Bucket, minio.ListObjectsOptions{Prefix: "exports/", Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		versions[strings.TrimSuffix(filepath.Base(o.Key), ".zip")]++
	}
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if len(versions) != 5 || len(builds.n) != 5 {
		t.Fatalf("packages %v, builds %v; want 5 exports", versions, builds.n)
	}
	for id, n := range versions {
		if n != 1 || builds.n[id] != 1 {
			t.Errorf("export %s: %d package versions, %d builds; want 1, 1", id, n, builds.n[id])
		}
	}
}
