// Package mediatest holds the test helpers shared by the platform's
// packages: real media and Eventually. It gives tests real media: the frames of the committed
// capture testdata/sample.ts (2 s of 1280x720 25 fps H.264 Main without
// B-frames, a keyframe every second, 2 Mbit/s, with 48 kHz mono AAC),
// demuxed with mediacommon's MPEG-TS reader, as media.Frames ready to write
// to a media.Stream.
package mediatest

import (
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/bwcplatform/bwc/ingest/media/mediafile"
)

// Sample is the decoded capture.
type Sample = mediafile.Sample

// Decode reads an MPEG-TS file with one H.264 and one AAC track.
func Decode(path string) (*Sample, error) { return mediafile.Decode(path) }

// Path is the absolute path of testdata/sample.ts.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "sample.ts")
}

var (
	once   sync.Once
	cached *Sample
	errLd  error
)

// Load decodes the sample once per test binary.
func Load(tb testing.TB) *Sample {
	tb.Helper()
	once.Do(func() { cached, errLd = Decode(Path()) })
	if errLd != nil {
		tb.Fatalf("load %s: %v", Path(), errLd)
	}
	return cached
}
