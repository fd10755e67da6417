package ingest

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
)

// nodeIngest runs another node's ingest on w's database, its new streams
// sent to the returned channel.
func nodeIngest(t *testing.T, w *world, node string) (*Server, <-chan *media.Stream) {
	t.Helper()
	srv, err := New(testConfig(Config{Node: node, LinkInterval: 100 * time.Millisecond}), w.db, prometheus.NewRegistry(),
		slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	streams := make(chan *media.Stream, 4)
	srv.OnStream(func(s *media.Stream) { streams <- s })
	t.Cleanup(runServer(t, srv))
	return srv, streams
}

// TestRecordingContinuesOnAnotherNode: a camera on node A reconnects to
// node B within the grace window, after A's camera disconnected (A let it
// go, waiting) or after A died (its lease released, its session still
// open): B continues the same recording (same ID and start, part 1, the
// gap recorded with its reason, counted), and A lets go of it without
// ending it or writing its row again.
func TestRecordingContinuesOnAnotherNode(t *testing.T) {
	cases := []struct {
		name   string
		killed bool // A's node dies (lease released) while its camera session is open
	}{
		{"camera disconnected from A", false},
		{"node A killed", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			journal := t.TempDir()
			w := newWorld(t, worldOpts{cfg: Config{Node: "node-a", Grace: time.Minute, LinkInterval: 100 * time.Millisecond, JournalDir: journal},
				checkout: true})
			nodeA := startNode(t, w.db, "node-a", time.Second, time.Minute)
			startNode(t, w.db, "node-b", time.Second, time.Minute)
			b, bStreams := nodeIngest(t, w, "node-b")

			camA, err := dialCamera(t, w.url(w.device.Serial, secret), false, true)
			if err != nil {
				t.Fatal(err)
			}
			defer camA.close()
			stA := w.nextStream(t)
			if err := camA.send(mediatest.Load(t).Frames[:30]); err != nil {
				t.Fatal(err)
			}
			rec := stA.Info().RecordingID
			mediatest.Eventually(t, "A's recording indexed", func() bool {
				r, err := w.db.Recording(ctx, rec)
				return err == nil && r.NodeID == "node-a"
			})
			if _, err := os.Stat(filepath.Join(journal, rec.String()+".jsonl")); err != nil {
				t.Fatalf("A's journal of the recording: %v", err)
			}
			if c.killed {
				nodeA.Close() // the process is gone: its advisory lock is free
			} else {
				camA.close()
				mediatest.Eventually(t, "A waits for its camera (reconnecting in the database)", func() bool {
					r, err := w.db.Recording(ctx, rec)
					return err == nil && r.Status == index.RecordingReconnecting
				})
			}

			// a killed node's lock goes a moment after its connection closes:
			// until then B refuses (409) and the camera retries, as cameras do
			var camB *testCamera
			mediatest.Eventually(t, "camera admitted on node B", func() bool {
				camB, err = dialCamera(t, strings.Replace(w.url(w.device.Serial, secret), w.srv.Addr(), b.Addr(), 1), false, true)
				return err == nil
			})
			defer camB.close()
			var stB *media.Stream
			select {
			case stB = <-bStreams:
			case <-time.After(10 * time.Second):
				t.Fatal("no stream on node B")
			}
			if got := stB.Info(); got.RecordingID != rec || got.Part != 1 || !got.StartedAt.Equal(stA.Info().StartedAt) {
				t.Fatalf("B's stream %v part %d started %v, want %v part 1 started %v", got.RecordingID, got.Part, got.StartedAt, rec, stA.Info().StartedAt)
			}
			if err := camB.send(mediatest.Load(t).Frames[:30]); err != nil {
				t.Fatal(err)
			}
			mediatest.Eventually(t, "the gap recorded", func() bool {
				gaps, err := w.db.Gaps(ctx, rec)
				return err == nil && len(gaps) == 1 && strings.Contains(gaps[0].Reason, "continued on node node-b")
			})
			mediatest.Eventually(t, "node A lets go", func() bool { return len(w.srv.Live()) == 0 })
			mediatest.Eventually(t, "node A's journal of the recording removed", func() bool {
				_, err := os.Stat(filepath.Join(journal, rec.String()+".jsonl"))
				return errors.Is(err, os.ErrNotExist)
			})

			r, err := w.db.Recording(ctx, rec)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != index.RecordingLive || r.NodeID != "node-b" || r.OfficerID == nil || *r.OfficerID != w.officer.ID {
				t.Fatalf("recording after the takeover: %+v, want live on node-b, bound to the officer", r)
			}
			parts, err := w.db.RecordingParts(ctx, rec)
			if err != nil || len(parts) != 1 || parts[0].Part != 1 || parts[0].Node != "node-b" || parts[0].FromNode != "node-a" {
				t.Fatalf("parts %+v (%v), want part 1 on node-b from node-a", parts, err)
			}
			if l := b.Live(); len(l) != 1 || l[0].RecordingID != rec || l[0].Officer == nil {
				t.Fatalf("B's live list %+v, want the recording, bound", l)
			}
			if n := testutil.ToFloat64(b.met.continued); n != 1 {
				t.Fatalf("B's takeovers = %v, want 1", n)
			}
			if n := testutil.ToFloat64(w.srv.met.letGo); n != 1 {
				t.Fatalf("A's recordings let go = %v, want 1", n)
			}
			// A's late writes change nothing of B's recording
			if err := w.db.EndHeld(ctx, rec, "node-a", time.Now()); err == nil || !strings.Contains(err.Error(), "node-b") {
				t.Fatalf("A ending B's recording: %v, want ErrNotHeld naming node-b", err)
			}
			if n, err := w.db.EndNodeRecordings(ctx, "node-a", index.SourceRTSP); err != nil || n != 0 {
				t.Fatalf("node A's start ended %d recordings (%v), want 0", n, err)
			}
			if r, _ := w.db.Recording(ctx, rec); r.Status != index.RecordingLive {
				t.Fatalf("recording %s after A's writes, want live", r.Status)
			}
		})
	}
}
