package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
)

func ffprobeDuration(t *testing.T, args ...string) float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", append([]string{"-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %v: %v\n%s", args, err, out)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("ffprobe duration %q", out)
	}
	return d
}

// TestReplayHLS: standard players replay the archive through the server.
// ffprobe reads a finished recording's HLS and reports its duration;
// ffmpeg copies a wall-clock range into an MP4 as long as the range
// (within a segment); seeking answers the segment that holds an instant;
// a still-live recording's playlist is an open EVENT playlist; playback is
// audited once per session, not per segment.
func TestReplayHLS(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	p := startPlatform(t, cfg)
	dev := platformDevice(t, p, "CAM-HLS-1")
	admin, err := p.db.CreateUser(ctx, index.User{Login: "hls-admin", Role: index.RoleAdmin}, "long-enough-password")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p.db.CreateAPIToken(ctx, "player", index.RoleReviewer, admin, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	auth := "Authorization: Bearer " + tok.Token + "\r\n"
	base := "http://" + p.web.Addr()

	// a live recording: EVENT playlist without ENDLIST while it runs
	liveDev := platformDevice(t, p, "CAM-HLS-LIVE")
	if err := platformCamera(t, p, dev.Serial, 4).wait(); err != nil { // 8 s
		t.Fatal(err)
	}
	rec := archivedRecording(t, p, dev)
	liveCam := platformCamera(t, p, liveDev.Serial, 5)
	playlist := base + "/api/recordings/" + rec.ID.String() + "/hls.m3u8"

	if d := ffprobeDuration(t, "-headers", auth, playlist); d < 7.5 || d > 8.5 {
		t.Fatalf("ffprobe: finished recording lasts %.2f s, want about 8", d)
	}
	checkRangeAndSeek(t, p, rec, base, auth, tok.Token)
	checkLivePlaylist(t, p, liveDev, base, auth, tok.Token)
	if err := liveCam.wait(); err != nil {
		t.Fatal(err)
	}

	// audited once per playback session, though many segments were read
	events, err := p.db.AuditEvents(ctx, index.AuditFilter{RecordingID: &rec.ID})
	if err != nil {
		t.Fatal(err)
	}
	views := 0
	for _, e := range events {
		if e.Action == "evidence.view" {
			views++
			if e.Actor != "token:player" {
				t.Fatalf("view audited as %q", e.Actor)
			}
		}
	}
	if views != 1 {
		t.Fatalf("%d evidence.view events for one playback session, want 1", views)
	}
}

// checkRangeAndSeek: ffmpeg copies a 3 s range in the middle of the
// finished recording (as long as the range, within a segment); seeking to
// +5 s answers the segment that holds it.
func checkRangeAndSeek(t *testing.T, p *platform, rec index.Recording, base, auth, token string) {
	t.Helper()
	ctx := context.Background()
	playlist := base + "/api/recordings/" + rec.ID.String() + "/hls.m3u8"
	from, to := rec.StartedAt.Add(2500*time.Millisecond), rec.StartedAt.Add(5500*time.Millisecond)
	q := "?from=" + from.UTC().Format(time.RFC3339Nano) + "&to=" + to.UTC().Format(time.RFC3339Nano)
	out := filepath.Join(t.TempDir(), "range.mp4")
	if b, err := exec.Command("ffmpeg", "-v", "error", "-headers", auth, "-i", playlist+strings.ReplaceAll(q, "+", "%2B"), "-c", "copy", out).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg range copy: %v\n%s", err, b)
	}
	segs, _ := p.db.Segments(ctx, rec.ID)
	var maxSeg float64
	for _, s := range segs {
		maxSeg = max(maxSeg, (s.EndDTS - s.StartDTS).Seconds())
	}
	if d := ffprobeDuration(t, out); d < 3-maxSeg || d > 3+maxSeg {
		t.Fatalf("range copy lasts %.2f s, want 3 s within a segment (%.1f s)", d, maxSeg)
	}

	// seek to an instant: the segment that holds it
	at := rec.StartedAt.Add(5 * time.Second)
	var sk struct {
		Seq       int64     `json:"seq"`
		StartedAt time.Time `json:"segment_started_at"`
		Offset    float64   `json:"offset"`
	}
	getJSON(t, base+"/api/recordings/"+rec.ID.String()+"/seek?at="+at.UTC().Format(time.RFC3339Nano), token, &sk)
	seg, err := p.db.Segment(ctx, rec.ID, sk.Seq)
	if err != nil || at.Before(seg.StartedAt) || !at.Before(seg.EndedAt) || sk.Offset < 0 || sk.Offset > maxSeg {
		t.Fatalf("seek to +5 s = %+v (segment %v..%v) %v", sk, seg.StartedAt, seg.EndedAt, err)
	}
}

// checkLivePlaylist: mid-publish, a live recording's playlist is an open
// EVENT playlist (no ENDLIST) with program dates, and ffprobe reads it.
func checkLivePlaylist(t *testing.T, p *platform, liveDev index.Device, base, auth, token string) {
	t.Helper()
	ctx := context.Background()
	var live index.Recording
	mediatest.Eventually(t, "a segment of the live recording", func() bool {
		recs, _ := p.db.Recordings(ctx, index.RecordingFilter{DeviceID: &liveDev.ID})
		if len(recs) != 1 {
			return false
		}
		live = recs[0]
		s, _ := p.db.Segments(ctx, live.ID)
		return len(s) >= 1 && live.Status != index.RecordingEnded
	})
	body := getText(t, base+"/api/recordings/"+live.ID.String()+"/hls.m3u8", token)
	if !strings.Contains(body, "#EXT-X-PLAYLIST-TYPE:EVENT") || strings.Contains(body, "#EXT-X-ENDLIST") || !strings.Contains(body, "#EXT-X-PROGRAM-DATE-TIME:") {
		t.Fatalf("live playlist:\n%s", body)
	}
	if b, err := exec.Command("ffprobe", "-v", "error", "-headers", auth, "-show_entries", "stream=codec_name", "-of", "csv=p=0",
		base+"/api/recordings/"+live.ID.String()+"/hls.m3u8").CombinedOutput(); err != nil || !strings.Contains(string(b), "h264") {
		t.Fatalf("ffprobe of the live playlist: %v\n%s", err, b)
	}
}

func getText(t *testing.T, url, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v %s", url, res.StatusCode, err, b)
	}
	return string(b)
}

func getJSON(t *testing.T, url, token string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(getText(t, url, token)), v); err != nil {
		t.Fatal(err)
	}
}
