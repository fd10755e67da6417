package upload

import (
	"errors"
	"fmt"
	"io"
	"time"

	mp4 "github.com/abema/go-mp4"
)

// ErrNotVideo: the file is not an MP4/MOV with media, or is truncated or
// corrupt.
var ErrNotVideo = errors.New("not a playable MP4/MOV video")

// fileInfo is what an uploaded file says about itself.
type fileInfo struct {
	Container  string // mp4 or mov
	Video      string // H264, or the sample entry's type
	Audio      string
	Width      int
	Height     int
	Duration   time.Duration
	Created    time.Time // zero when the file does not say
	Fragmented bool
}

var mp4Epoch = time.Date(1904, 1, 1, 0, 0, 0, 0, time.UTC)

// probe reads an MP4/MOV's boxes (github.com/abema/go-mp4): codecs,
// picture size, duration, creation time. A file whose boxes do not parse,
// or that holds no media, is ErrNotVideo with the reason.
func probe(r io.ReadSeeker, size int64) (fi fileInfo, err error) {
	defer func() {
		if p := recover(); p != nil { // a parser must not take the server down on a hostile file
			err = fmt.Errorf("%w: %v", ErrNotVideo, p)
		}
	}()
	info, err := mp4.Probe(r)
	if err != nil {
		return fi, fmt.Errorf("%w: %v", ErrNotVideo, err)
	}
	fi.Container = "mp4"
	if string(info.MajorBrand[:]) == "qt  " {
		fi.Container = "mov"
	}
	fi.Fragmented = len(info.Segments) > 0
	if info.Timescale > 0 {
		fi.Duration = time.Duration(float64(info.Duration) / float64(info.Timescale) * float64(time.Second))
	}
	for _, t := range info.Tracks {
		switch {
		case t.Codec == mp4.CodecAVC1 && fi.Video == "":
			fi.Video = "H264"
			if t.AVC != nil {
				fi.Width, fi.Height = int(t.AVC.Width), int(t.AVC.Height)
			}
		case t.Codec == mp4.CodecMP4A && fi.Audio == "":
			fi.Audio = "AAC"
		}
		if fi.Duration == 0 && t.Timescale > 0 {
			fi.Duration = time.Duration(float64(t.Duration) / float64(t.Timescale) * float64(time.Second))
		}
	}
	if len(info.Tracks) == 0 {
		return fi, fmt.Errorf("%w: no audio or video track", ErrNotVideo)
	}
	if fi.Video == "" {
		return fi, fmt.Errorf("%w: no H.264 video track", ErrNotVideo)
	}
	if !fi.Fragmented && !hasSamples(info) {
		return fi, fmt.Errorf("%w: no media samples (truncated?)", ErrNotVideo)
	}
	if end := mediaEnd(info); end > uint64(size) {
		return fi, fmt.Errorf("%w: truncated: its media runs to byte %d of a %d-byte file", ErrNotVideo, end, size)
	}
	if _, err := r.Seek(0, io.SeekStart); err == nil {
		if boxes, err := mp4.ExtractBoxWithPayload(r, nil, mp4.BoxPath{mp4.BoxTypeMoov(), mp4.BoxTypeMvhd()}); err == nil && len(boxes) == 1 {
			if m, ok := boxes[0].Payload.(*mp4.Mvhd); ok {
				secs := uint64(m.CreationTimeV0)
				if m.GetVersion() == 1 {
					secs = m.CreationTimeV1
				}
				if secs > 0 {
					fi.Created = mp4Epoch.Add(time.Duration(secs) * time.Second)
				}
			}
		}
	}
	return fi, nil
}

func hasSamples(info *mp4.ProbeInfo) bool {
	for _, t := range info.Tracks {
		if len(t.Samples) > 0 {
			return true
		}
	}
	return false
}

// mediaEnd is the end of the last sample the index points to.
func mediaEnd(info *mp4.ProbeInfo) uint64 {
	var end uint64
	for _, t := range info.Tracks {
		i := 0
		for _, c := range t.Chunks {
			off := c.DataOffset
			for k := uint32(0); k < c.SamplesPerChunk && i < len(t.Samples); k++ {
				off += uint64(t.Samples[i].Size)
				i++
			}
			end = max(end, off)
		}
	}
	return end
}
