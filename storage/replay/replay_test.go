package replay

import (
	"strings"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
)

func segs(t0 time.Time, spans ...[2]int) []index.Segment {
	var out []index.Segment
	for i, s := range spans {
		out = append(out, index.Segment{Seq: int64(i), StartedAt: t0.Add(time.Duration(s[0]) * time.Second),
			EndedAt: t0.Add(time.Duration(s[1]) * time.Second), StartDTS: time.Duration(s[0]) * time.Second, EndDTS: time.Duration(s[1]) * time.Second})
	}
	return out
}

// TestPlaylist: version 7 fMP4 playlist, a map per init segment, a
// discontinuity and a program date-time at gaps and at changes of codec
// configuration, ENDLIST only when not live.
func TestPlaylist(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	s := segs(t0, [2]int{0, 4}, [2]int{4, 8}, [2]int{20, 24}, [2]int{24, 27})
	s[2].Gap = true
	s[3].InitN = 1
	p := Playlist{Segments: s, InitURI: func(n int) string { return "init/" + string(rune('0'+n)) + ".mp4" },
		SegmentURI: func(seq int64) string { return "seg" + string(rune('0'+seq)) }}
	got := p.String()
	for _, want := range []string{"#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-MAP:URI=\"init/0.mp4\"",
		"#EXT-X-PROGRAM-DATE-TIME:2026-03-01T10:00:00.000Z", "#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-03-01T10:00:20.000Z",
		"#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init/1.mp4\"", "#EXTINF:3.000,\nseg3", "#EXT-X-ENDLIST"} {
		if !strings.Contains(got, want) {
			t.Fatalf("playlist lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "#EXT-X-DISCONTINUITY\n"); n != 2 {
		t.Fatalf("%d discontinuities, want 2:\n%s", n, got)
	}
	p.Live = true
	if live := p.String(); strings.Contains(live, "ENDLIST") || !strings.Contains(live, "#EXT-X-PLAYLIST-TYPE:EVENT") {
		t.Fatalf("live playlist:\n%s", live)
	}
}

// TestTrimAndSeek: ranges round to the nearest segment boundary; seeking
// gives the offset inside the segment.
func TestTrimAndSeek(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	all := segs(t0, [2]int{0, 4}, [2]int{4, 8}, [2]int{8, 12})
	for _, tc := range []struct {
		from, to int
		want     []int64
	}{
		{1000, 11000, []int64{0, 1, 2}},
		{2500, 5500, []int64{1}},
		{2500, 9000, []int64{1}},
		{1000, 3000, []int64{0}},
	} {
		var in []index.Segment
		for _, s := range all {
			if s.EndedAt.After(at(tc.from)) && s.StartedAt.Before(at(tc.to)) {
				in = append(in, s)
			}
		}
		var got []int64
		for _, s := range Trim(in, at(tc.from), at(tc.to)) {
			got = append(got, s.Seq)
		}
		if len(got) != len(tc.want) || (len(got) > 0 && (got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1])) {
			t.Errorf("Trim(%d..%d ms) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
	off, media := Seek(all[1], at(5500))
	if off != 1500*time.Millisecond || media != 5500*time.Millisecond {
		t.Fatalf("Seek = %v, %v", off, media)
	}
	if off, _ := Seek(all[1], at(3000)); off != 0 {
		t.Fatalf("Seek before the segment = %v", off)
	}
}

// BenchmarkPlaylist24h: the playlist of a 24 h recording (21 600 segments).
func BenchmarkPlaylist24h(b *testing.B) {
	t0 := time.Now()
	s := make([]index.Segment, 21600)
	for i := range s {
		s[i] = index.Segment{Seq: int64(i), StartedAt: t0.Add(time.Duration(i) * 4 * time.Second), EndedAt: t0.Add(time.Duration(i+1) * 4 * time.Second),
			StartDTS: time.Duration(i) * 4 * time.Second, EndDTS: time.Duration(i+1) * 4 * time.Second}
	}
	p := Playlist{Segments: s, InitURI: func(int) string { return "init/0.mp4" }, SegmentURI: func(seq int64) string { return "segments/x.m4s" }}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = p.String()
	}
}
