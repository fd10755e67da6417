package mediatest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DecodeDuration decodes an MP4 file with ffmpeg (any decode error fails
// the test) and returns the duration ffprobe reports.
func DecodeDuration(tb testing.TB, data []byte) time.Duration {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "concat.mp4")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", p, "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		tb.Fatalf("ffmpeg -v error -i concat.mp4 -f null -: %v\n%s", err, out)
	}
	out, err = exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", p).Output()
	if err != nil {
		tb.Fatalf("ffprobe: %v", err)
	}
	sec, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		tb.Fatalf("ffprobe duration %q: %v", out, err)
	}
	return time.Duration(sec * float64(time.Second))
}
