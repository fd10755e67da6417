package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/ingest/peer"
	"github.com/bwcplatform/bwc/storage/index"
)

// liveEntry is what the tests read of the live list.
type liveEntry struct {
	RecordingID uuid.UUID `json:"recording_id"`
	Device      string    `json:"device"`
	Node        string    `json:"node"`
	Status      string    `json:"status"`
}

// liveEvents reads the server-sent events of GET /api/live/events as the
// session, handing each event's list to the channel, until the test ends.
func liveEvents(t *testing.T, s *session) <-chan []liveEntry {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/api/live/events", nil)
	req.AddCookie(s.cookie)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		cancel()
		t.Fatalf("live events: %v %v", res, err)
	}
	out := make(chan []liveEntry, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var l []liveEntry
			if json.Unmarshal([]byte(data), &l) == nil {
				select {
				case out <- l:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return out
}

// TestClusterLiveView: two wired platforms on one database, a camera
// (ffmpeg) publishing to node B. A supervisor on node A sees it in the
// live list and gets an event when it starts, naming node B; ten viewers
// on node A play it through one inter-node stream (A pulls once, B serves
// once); B refuses a pull without a valid token (403).
func TestClusterLiveView(t *testing.T) {
	ctx := context.Background()
	cfgA := testConfig(t)
	cfgA.Node = "live-a"
	var logA syncBuffer
	a := startNode(t, cfgA, slog.New(slog.NewTextHandler(&logA, nil)))
	cfgB := testConfig(t)
	cfgB.DatabaseURL, cfgB.MigrateURL = cfgA.DatabaseURL, cfgA.MigrateURL
	cfgB.SigningKey = cfgA.SigningKey // the platform's one key: the link key is derived from it
	cfgB.Node = "live-b"
	b := startPlatform(t, cfgB)

	if _, err := a.db.CreateUser(ctx, index.User{Login: "sup-live", Role: index.RoleSupervisor, Unit: "Patrol 1"}, "long-enough-password"); err != nil {
		t.Fatal(err)
	}
	sup := loginAs(t, "http://"+a.web.Addr(), "sup-live", "long-enough-password")
	events := liveEvents(t, sup)

	// the camera (unbound: every supervisor's) publishes to node B
	dev := platformDevice(t, b, "LIVE-CAM-B")
	cam := platformCamera(t, b, dev.Serial, 100)
	defer cam.stop()
	var rec uuid.UUID
	mediatest.Eventually(t, "an event on node A lists node B's camera", func() bool {
		select {
		case l := <-events:
			for _, x := range l {
				if x.Device == dev.Serial && x.Node == "live-b" {
					rec = x.RecordingID
					return true
				}
			}
		default:
		}
		return false
	})
	var list []liveEntry
	if code := sup.do("GET", "/api/live", "", &list); code != 200 || len(list) != 1 || list[0].RecordingID != rec ||
		list[0].Node != "live-b" || list[0].Status != index.RecordingLive {
		t.Fatalf("live list on node A: %d %+v", code, list)
	}
	mediatest.Eventually(t, "node B's ingest has the camera's video", func() bool {
		st, ok := b.ingest.Stream(rec)
		return ok && st.Info().Video() != nil
	})

	got := make([]atomic.Uint64, 10)
	defer func() {
		if t.Failed() {
			in, _ := a.link.Streams()
			_, out := b.link.Streams()
			counts := make([]uint64, len(got))
			for i := range got {
				counts[i] = got[i].Load()
			}
			t.Logf("node A's log:\n%s", logA.String())
			t.Logf("packets per viewer %v; streams into A %d, out of B %d; viewers on A %d", counts, in, out, a.relay.Viewers(rec))
		}
	}()
	streams := func() {
		t.Helper()
		if in, _ := a.link.Streams(); in != 1 {
			t.Fatalf("inter-node streams into node A: %d, want 1 for ten viewers", in)
		}
		if _, out := b.link.Streams(); out != 1 {
			t.Fatalf("inter-node streams out of node B: %d, want 1", out)
		}
	}
	// ten viewing sessions on node A, one inter-node stream (pulled at the
	// first offer, shared by the others)
	ws, err := webLogin("http://"+a.web.Addr(), "sup-live", "long-enough-password")
	if err != nil {
		t.Fatal(err)
	}
	var lost atomic.Uint64
	for i := range got {
		pc, err := whepViewer(ctx, ws, rec, &got[i], &lost) // the load command's viewer (clusterload.go)
		if err != nil {
			t.Fatalf("WHEP offer on node A: %v", err)
		}
		t.Cleanup(func() { pc.Close() })
		streams()
	}
	// they play it (on this loaded 2-core machine, with the race detector, a
	// pion viewer's ICE may time out: the relay's own tests cover every
	// viewer; here the video has to cross from B to A)
	mediatest.Eventually(t, "viewers on node A receive node B's camera", func() bool {
		playing := 0
		for i := range got {
			if got[i].Load() >= 50 {
				playing++
			}
		}
		return playing >= 3
	})
	streams()

	// node B serves its cameras only to a valid token of the link key
	for _, auth := range []string{"", peer.AuthScheme + " bm9kZQ.c2ln", "Bearer something"} {
		req, _ := http.NewRequest("GET", "http://"+b.web.Addr()+"/internal/live/"+rec.String(), nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("pull with %q: %d, want 403", auth, res.StatusCode)
		}
	}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
