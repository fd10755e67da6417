package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestBackgroundVerificationAlarm: the wired platform's scrubber finds a
// segment whose index row was edited (superuser SQL): /metrics shows the
// problems gauge, /readyz names the segment under "alarms" and stays 200
// (ready); once the row is restored both clear.
func TestBackgroundVerificationAlarm(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.VerifyPerHour = 36 << 30 // the test's few MB several times a second
	p := startPlatform(t, cfg)
	s := mediatest.Load(t)
	start := time.Now().UTC()
	info := storagetest.NewRecording(t, p.db, s, start)
	st := media.NewStream(info)
	p.archive.Attach(st)
	storagetest.Feed(st, s.Loop(2, start))
	st.Close()
	storagetest.WaitSpoolEmpty(t, cfg.SpoolDir, info.RecordingID)
	seg, err := p.db.Segment(ctx, info.RecordingID, 0)
	if err != nil {
		t.Fatal(err)
	}
	base := p.web.URL()
	mediatest.Eventually(t, "a verified pass", func() bool { return scrapeMetric(t, base, "bwc_evidence_verify_passes_total") >= 1 })
	if code, body := readyz(t, base); code != 200 || body.Alarms != nil {
		t.Fatalf("intact: readyz %d %+v", code, body)
	}

	su := storagetest.Superuser(t, p.db)
	setSHA := func(sha []byte) {
		if _, err := su.Exec(ctx, `UPDATE segments SET sha256 = $1 WHERE recording_id = $2 AND seq = 0`, sha, info.RecordingID); err != nil {
			t.Fatal(err)
		}
	}
	setSHA(bytes.Repeat([]byte{0xee}, 32))
	mediatest.Eventually(t, "the alarm on /metrics", func() bool { return scrapeMetric(t, base, "bwc_evidence_verify_problems") >= 1 })
	var body readyBody
	var code int
	mediatest.Eventually(t, "the alarm on /readyz", func() bool {
		code, body = readyz(t, base)
		return body.Alarms["evidence verification"] != ""
	})
	if code != 200 || body.Status != "ready" || !strings.Contains(body.Alarms["evidence verification"], "segment 000000 ("+seg.Key+")") {
		t.Fatalf("readyz %d %+v; want 200, ready, with an alarm naming segment 0 (%s)", code, body, seg.Key)
	}

	setSHA(seg.SHA256)
	mediatest.Eventually(t, "the alarm cleared", func() bool {
		code, body = readyz(t, base)
		return scrapeMetric(t, base, "bwc_evidence_verify_problems") == 0 && body.Alarms == nil
	})
	if code != 200 || body.Checks["evidence verification"] != "ok" {
		t.Fatalf("after the row is restored: readyz %d %+v", code, body)
	}
}

type readyBody struct {
	Status string
	Checks map[string]string
	Alarms map[string]string
}

func readyz(t *testing.T, base string) (int, readyBody) {
	t.Helper()
	res, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b readyBody
	if err := json.NewDecoder(res.Body).Decode(&b); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// scrapeMetric reads a metric without labels from /metrics (-1 if absent).
func scrapeMetric(t *testing.T, base, name string) float64 {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return -1
}
