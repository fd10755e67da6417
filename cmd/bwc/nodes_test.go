package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
)

// TestNodesShareTheDatabase: two wired platforms on one database. A second
// process with a running node's -node refuses to start, naming the node
// and its heartbeat; a second node with its own name starts, and node A's
// live recording stays live (and A's node row says where A is).
func TestNodesShareTheDatabase(t *testing.T) {
	ctx := context.Background()
	cfgA := testConfig(t)
	cfgA.Node = "node-a"
	a := startPlatform(t, cfgA)
	dev := platformDevice(t, a, "NODES-CAM-1")
	cam := platformCamera(t, a, dev.Serial, 100)
	defer cam.stop()
	var live []index.Recording
	mediatest.Eventually(t, "the camera records on node A", func() bool {
		var err error
		live, err = a.db.Recordings(ctx, index.RecordingFilter{Status: "active", DeviceID: &dev.ID})
		return err == nil && len(live) == 1
	})
	if live[0].NodeID != "node-a" {
		t.Fatalf("recording on node %q, want node-a", live[0].NodeID)
	}

	cases := []struct {
		name    string
		node    string
		refused bool
	}{
		{"the same name", "node-a", true},
		{"another name", "node-b", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t) // its own spool, ports and bucket
			cfg.DatabaseURL, cfg.MigrateURL = cfgA.DatabaseURL, cfgA.MigrateURL
			cfg.SigningKey = cfgA.SigningKey // the platform's one key (registered by node A)
			cfg.Node = c.node
			if !c.refused {
				startPlatform(t, cfg)
			} else {
				p, err := build(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
				if err != nil {
					t.Fatal(err)
				}
				err = p.run(ctx)
				if !errors.Is(err, index.ErrNodeRunning) || !strings.Contains(err.Error(), `"node-a"`) || !strings.Contains(err.Error(), "last heartbeat") {
					t.Fatalf("second process as node-a: %v, want a refusal naming the node and its heartbeat", err)
				}
			}
			now, err := a.db.Recordings(ctx, index.RecordingFilter{Status: "active", DeviceID: &dev.ID})
			if err != nil || len(now) != 1 || now[0].ID != live[0].ID {
				t.Fatalf("node A's recording after %s started: %+v %v", c.node, now, err)
			}
		})
	}
	nodes, err := a.db.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].ID != "node-a" || nodes[0].RTSPAddr != cfgA.RTSPAddr || nodes[0].Version == "" {
		t.Fatalf("nodes = %+v %v", nodes, err)
	}
}
