// Package transcode converts audio a browser cannot play into audio it
// can, with ffmpeg (libavcodec's AAC encoder, libopus) run as a supervised
// child process: for replay, a segment's LPCM (the archive's G.711,
// decoded losslessly when archived) into AAC; for live viewing, a camera's
// AAC into Opus for WebRTC while someone watches. Only copies for playback
// are converted: the archived originals are never touched.
//
// Every child is started with a context: it is killed when the context
// ends or the conversion is closed, and its output is read with bounds.
package transcode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// ErrUnavailable: ffmpeg is missing or lacks an encoder the conversion
// needs.
var ErrUnavailable = errors.New("audio conversion unavailable")

// FFmpeg runs the ffmpeg binary at Path.
type FFmpeg struct {
	Path string
}

// Check reports whether ffmpeg runs and has the AAC and Opus encoders
// (Debian's ffmpeg has both: the native aac and libopus).
func (f FFmpeg) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, f.Path, "-hide_banner", "-encoders").Output()
	if err != nil {
		return fmt.Errorf("%w: %s -encoders: %v", ErrUnavailable, f.Path, err)
	}
	var missing []string
	for _, enc := range []string{" aac ", " libopus "} {
		if !bytes.Contains(out, []byte(enc)) {
			missing = append(missing, strings.TrimSpace(enc))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s has no encoder %s", ErrUnavailable, f.Path, strings.Join(missing, ", "))
	}
	return nil
}

// maxOutput bounds what one batch conversion may return (a segment's AAC
// is a few tens of kilobytes).
const maxOutput = 64 << 20

// run runs ffmpeg over in and returns its standard output (bounded); the
// child is killed when ctx ends.
func (f FFmpeg) run(ctx context.Context, in []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, f.Path, append([]string{"-hide_banner", "-loglevel", "error"}, args...)...)
	cmd.WaitDelay = time.Second
	cmd.Stdin = bytes.NewReader(in)
	var out, stderr limitedBuffer
	out.max, stderr.max = maxOutput, 4096
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil { // not there, not executable
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("ffmpeg: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if out.over {
		return nil, fmt.Errorf("ffmpeg: output over %d bytes", maxOutput)
	}
	return out.Bytes(), nil
}

// limitedBuffer keeps the first max bytes written and notes the rest.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

var _ io.Writer = (*limitedBuffer)(nil)
