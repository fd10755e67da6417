package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHTTPFloodsWhileACameraRecords: the wired platform under the HTTP
// attacks of issue 12 — 500 parallel logins, 1 MB login strings, upload IDs
// that try to leave the upload folder, garbage requests — while ffmpeg
// publishes as a camera. Every attack gets a refusal (never a 5xx other
// than the hashing slots' 503), /readyz stays ready throughout, and the
// camera's recording is archived whole. (The RTSP floods run against the
// ingest in ingest/limits_attack_test.go, the crafted uploads in
// cmd/bwc/upload_test.go.)
func TestHTTPFloodsWhileACameraRecords(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	// the attackers come through a trusted proxy, each request from its own
	// address, so that every check is reached instead of the per-address
	// limit refusing nearly all of them first
	cfg.TrustedProxies = "127.0.0.1/32"
	p := startPlatform(t, cfg)
	base := "http://" + p.web.Addr()
	dev := platformDevice(t, p, "CAM-FLOOD-1")

	cam := platformCamera(t, p, "CAM-FLOOD-1", 3)
	stopPoll := pollReady(t, base)
	statuses := flood(base)
	if err := cam.wait(); err != nil {
		t.Fatal(err)
	}
	polls, notReady := stopPoll()

	for attack, codes := range statuses {
		t.Logf("%s: %v", attack, codes)
		for code, n := range codes {
			ok := code == http.StatusUnauthorized || code == http.StatusTooManyRequests || code == http.StatusBadRequest ||
				code == http.StatusRequestEntityTooLarge || code == http.StatusNotFound || code == http.StatusForbidden ||
				(code == http.StatusServiceUnavailable && attack == "parallel login")
			if !ok {
				t.Errorf("%s: %d answered %d", attack, n, code)
			}
		}
	}
	if notReady > 0 {
		t.Errorf("/readyz not ready %d times of %d during the floods", notReady, polls)
	}

	rec := archivedRecording(t, p, dev)
	segs, err := p.db.Segments(ctx, rec.ID)
	if err != nil || len(segs) < 2 {
		t.Fatalf("segments: %d %v", len(segs), err)
	}
	var ms int64
	for i, sg := range segs {
		if sg.Seq != int64(i) {
			t.Fatalf("segment %d has seq %d: a segment is missing", i, sg.Seq)
		}
		ms += (sg.EndDTS - sg.StartDTS).Milliseconds()
	}
	if ms < 5500 {
		t.Fatalf("archived %d ms of the camera's 6 s (%d segments)", ms, len(segs))
	}
	if res, err := http.Get(base + "/readyz"); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("readyz after the floods: %v %v", res, err)
	}
}

// pollReady polls /readyz every 250 ms until the returned stop is called
// and it has polled at least 5 times; stop returns the polls and how many
// were not ready.
func pollReady(t *testing.T, base string) (stop func() (polls, notReady int64)) {
	var nPolls, nNotReady atomic.Int64
	stopping := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopping:
				if nPolls.Load() >= 5 {
					return
				}
				<-tick.C
			case <-tick.C:
			}
			res, err := http.Get(base + "/readyz")
			nPolls.Add(1)
			if err != nil || res.StatusCode != http.StatusOK {
				nNotReady.Add(1)
				if err == nil {
					b, _ := io.ReadAll(res.Body)
					t.Logf("readyz %d: %s", res.StatusCode, b)
				}
			}
			if res != nil {
				res.Body.Close()
			}
		}
	}()
	return func() (int64, int64) {
		close(stopping)
		<-done
		return nPolls.Load(), nNotReady.Load()
	}
}

// flood runs the HTTP attacks at once, each request from its own address
// (X-Forwarded-For through the trusted proxy), and returns the status
// codes answered per attack (-1: no answer).
func flood(base string) map[string]map[int]int {
	client := &http.Client{Timeout: 60 * time.Second}
	var mu sync.Mutex
	statuses := map[string]map[int]int{}
	var addrs atomic.Int64
	do := func(attack string, req *http.Request) {
		n := addrs.Add(1)
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.18.%d.%d", n/250, 1+n%250))
		code := -1
		if res, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			code = res.StatusCode
		}
		mu.Lock()
		defer mu.Unlock()
		if statuses[attack] == nil {
			statuses[attack] = map[int]int{}
		}
		statuses[attack][code]++
	}
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", base+"/api/login", strings.NewReader(`{"login":"guess-`+string(rune('a'+i%26))+`","password":"wrong-password"}`))
			req.Header.Set("Content-Type", "application/json")
			do("parallel login", req)
		})
	}
	huge := strings.Repeat("x", 1<<20)
	for range 10 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", base+"/api/login", strings.NewReader(`{"login":"`+huge+`","password":"p"}`))
			req.Header.Set("Content-Type", "application/json")
			do("1 MB login", req)
		})
	}
	for _, id := range []string{"..%2F..%2Fetc%2Fpasswd", "..%2Fspool", "%2E%2E%2F", "abc%2Fdef"} {
		for _, m := range []string{"HEAD", "PATCH", "DELETE"} {
			wg.Go(func() {
				req, _ := http.NewRequest(m, base+"/api/uploads/"+id, nil)
				req.Header.Set("Tus-Resumable", "1.0.0")
				do("upload id with %2F", req)
			})
		}
	}
	for range 200 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", base+"/api/recordings?from=garbage&to=%ff%fe", nil)
			req.Header.Set("Cookie", "bwc_session="+strings.Repeat("z", 4000))
			do("garbage", req)
		})
	}
	wg.Wait()
	return statuses
}
