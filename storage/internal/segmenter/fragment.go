package segmenter

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
)

// sample is one sample of a fragment. A video sample keeps its access
// unit's NAL units (the frame's own bytes: frames are immutable once
// written to a media.Stream) and is written in AVCC form (4-byte lengths)
// straight into the fragment; an audio sample keeps its payload.
type sample struct {
	dur     uint32
	ptsOff  int32
	nonSync bool
	size    int      // bytes in mdat
	nalus   [][]byte // video
	payload []byte   // audio
}

func videoSample(dur uint32, ptsOff int32, nonSync bool, au [][]byte) sample {
	n := 0
	for _, nalu := range au {
		n += 4 + len(nalu)
	}
	return sample{dur: dur, ptsOff: ptsOff, nonSync: nonSync, size: n, nalus: au}
}

func audioSample(dur uint32, payload []byte) sample {
	return sample{dur: dur, size: len(payload), payload: payload}
}

// fragment box flags, as mediacommon's fmp4.Part writes them.
const (
	tfhdDefaultBaseIsMoof = 0x020000
	trunDataOffset        = 0x01
	trunDuration          = 0x100
	trunSize              = 0x200
	trunFlags             = 0x400
	trunCTO               = 0x800
	sampleNonSync         = 1 << 16
)

var errFragmentTooLarge = errors.New("fragment larger than 4 GiB")

// appendFragment appends one fragment (moof + mdat) of the tracks'
// samples to b: byte for byte what mediacommon's fmp4.Part.Marshal writes
// for the same samples (TestAppendFragmentMatchesMediacommon), without its
// reflection, its per-sample allocations and its second copy of the media.
// The media is copied once, from the frames into b. Tracks without
// samples are left out.
func appendFragment(b []byte, seq uint32, tracks ...*track) ([]byte, error) {
	moof := 8 + 16 // moof header, mfhd
	data := 0
	for _, t := range tracks {
		if t == nil || len(t.samples) == 0 {
			continue
		}
		moof += 8 + 16 + 20 + trunBoxSize(t.samples)
		for _, s := range t.samples {
			data += s.size
		}
	}
	if uint64(moof)+8+uint64(data) > math.MaxUint32 {
		return b, errFragmentTooLarge
	}
	b = slices.Grow(b, moof+8+data)
	b = box(b, moof, "moof")
	b = box(b, 16, "mfhd")
	b = be32(b, 0) // version, flags
	b = be32(b, seq)
	offset := moof + 8 // of the next track's media, from the start of moof
	for _, t := range tracks {
		if t == nil || len(t.samples) == 0 {
			continue
		}
		trun := trunBoxSize(t.samples)
		b = box(b, 8+16+20+trun, "traf")
		b = box(b, 16, "tfhd")
		b = be32(b, tfhdDefaultBaseIsMoof) // version 0
		b = be32(b, uint32(t.id))
		b = box(b, 20, "tfdt")
		b = be32(b, 1<<24) // version 1
		b = binary.BigEndian.AppendUint64(b, t.base)
		flags := trunFlagsOf(t.samples)
		b = box(b, trun, "trun")
		b = be32(b, 1<<24|flags) // version 1
		b = be32(b, uint32(len(t.samples)))
		b = be32(b, uint32(offset))
		for _, s := range t.samples {
			b = be32(b, s.dur)
			b = be32(b, uint32(s.size))
			if flags&trunFlags != 0 {
				var f uint32
				if s.nonSync {
					f = sampleNonSync
				}
				b = be32(b, f)
			}
			if flags&trunCTO != 0 {
				b = be32(b, uint32(s.ptsOff))
			}
			offset += s.size
		}
	}
	b = box(b, 8+data, "mdat")
	for _, t := range tracks {
		if t == nil {
			continue
		}
		for _, s := range t.samples {
			if s.nalus == nil {
				b = append(b, s.payload...)
				continue
			}
			for _, nalu := range s.nalus {
				b = be32(b, uint32(len(nalu)))
				b = append(b, nalu...)
			}
		}
	}
	return b, nil
}

func trunFlagsOf(samples []sample) uint32 {
	flags := uint32(trunDataOffset | trunDuration | trunSize)
	for _, s := range samples {
		if s.nonSync {
			flags |= trunFlags
		}
		if s.ptsOff != 0 {
			flags |= trunCTO
		}
	}
	return flags
}

func trunBoxSize(samples []sample) int {
	per := 8 // duration, size
	flags := trunFlagsOf(samples)
	if flags&trunFlags != 0 {
		per += 4
	}
	if flags&trunCTO != 0 {
		per += 4
	}
	return 8 + 4 + 4 + 4 + per*len(samples) // header, version+flags, count, data offset, entries
}

func box(b []byte, size int, typ string) []byte {
	return append(be32(b, uint32(size)), typ...)
}

func be32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
