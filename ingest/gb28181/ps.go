package gb28181

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MPEG-2 program stream (ISO/IEC 13818-1), as GB/T 28181 devices send it
// in RTP: a byte stream of packs (pack header, optional system header and
// program stream map, PES packets). The demuxer takes the stream in any
// chunking (an RTP payload may end mid-packet) and hands out each PES
// payload with its stream's type and timestamps. It never panics and keeps
// at most maxPSBuffer bytes: input from a device is untrusted.

// PS stream types (the program stream map's stream_type), per GB/T 28181.
const (
	streamH264 = 0x1b
	streamH265 = 0x24
	streamAAC  = 0x0f
	streamPCMA = 0x90 // G.711 A-law
	streamPCMU = 0x91 // G.711 µ-law
)

// maxPSBuffer bounds the bytes kept between two writes: a PES packet is at
// most 6+65535 bytes, a pack header 14+7.
const maxPSBuffer = 1 << 18

// errPSSync: bytes that are not a start code where one was due (skipped
// up to the next start code; counted).
var errPSSync = errors.New("PS: lost sync, bytes skipped")

// pes is one PES packet's payload with its stream.
type pes struct {
	streamID   byte
	streamType byte // from the program stream map; 0 when none was seen
	pts, dts   int64
	hasPTS     bool
	payload    []byte // valid until the next Write
}

type psDemuxer struct {
	buf   []byte
	types map[byte]byte // stream_id -> stream_type (program stream map)
	onPES func(pes)
	mpeg1 bool
}

func newPSDemuxer(onPES func(pes)) *psDemuxer {
	return &psDemuxer{types: map[byte]byte{}, onPES: onPES}
}

// Write takes the next chunk of the stream. It returns errPSSync when it
// had to skip bytes (the stream continues at the next start code).
func (d *psDemuxer) Write(b []byte) error {
	d.buf = append(d.buf, b...)
	var skipped bool
	off := 0
	for {
		n, err := d.unit(d.buf[off:])
		if err != nil { // not a start code: resync
			skipped = true
			next := findStartCode(d.buf[off+1:])
			if next < 0 {
				// keep the last 3 bytes: a start code may straddle writes
				off = max(off, len(d.buf)-3)
				break
			}
			off += 1 + next
			continue
		}
		if n == 0 {
			break // more bytes needed
		}
		off += n
	}
	rest := len(d.buf) - off
	copy(d.buf, d.buf[off:])
	d.buf = d.buf[:rest]
	if len(d.buf) > maxPSBuffer {
		d.buf = d.buf[:0]
		skipped = true
	}
	if skipped {
		return errPSSync
	}
	return nil
}

func findStartCode(b []byte) int {
	for i := 0; i+3 <= len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			return i
		}
	}
	return -1
}

// unit parses the unit at the start of b: its length, 0 when b holds only
// part of it, or an error when b does not start with a start code.
func (d *psDemuxer) unit(b []byte) (int, error) {
	if len(b) < 4 {
		if len(b) > 0 && b[0] != 0 || len(b) > 1 && b[1] != 0 || len(b) > 2 && b[2] != 1 {
			return 0, errPSSync
		}
		return 0, nil
	}
	if b[0] != 0 || b[1] != 0 || b[2] != 1 {
		return 0, errPSSync
	}
	id := b[3]
	switch {
	case id == 0xba: // pack header
		if len(b) < 5 {
			return 0, nil
		}
		if b[4]>>6 == 0b01 { // MPEG-2: 14 bytes + stuffing
			if len(b) < 14 {
				return 0, nil
			}
			n := 14 + int(b[13]&0x07) // with its stuffing bytes
			if len(b) < n {
				return 0, nil
			}
			d.mpeg1 = false
			return n, nil
		}
		if len(b) < 12 {
			return 0, nil
		}
		d.mpeg1 = true // MPEG-1: 12 bytes
		return 12, nil
	case id == 0xb9: // program end
		return 4, nil
	case id < 0xb9:
		return 0, errPSSync // a video start code outside a PES: not PS
	}
	if len(b) < 6 {
		return 0, nil
	}
	n := 6 + int(binary.BigEndian.Uint16(b[4:6]))
	if len(b) < n {
		return 0, nil
	}
	body := b[6:n]
	switch {
	case id == 0xbc:
		d.psm(body)
	case id >= 0xc0 && id <= 0xef:
		d.pes(id, body)
	}
	// system header, padding, private streams, directory: skipped
	return n, nil
}

// psm reads a program stream map: the type of each elementary stream.
func (d *psDemuxer) psm(b []byte) {
	if len(b) < 4 {
		return
	}
	info := int(binary.BigEndian.Uint16(b[2:4]))
	b = b[4:]
	if len(b) < info+2 {
		return
	}
	b = b[info:]
	mapLen := int(binary.BigEndian.Uint16(b[:2]))
	b = b[2:]
	if mapLen < len(b) {
		b = b[:mapLen]
	}
	for len(b) >= 4 {
		st, sid := b[0], b[1]
		il := int(binary.BigEndian.Uint16(b[2:4]))
		d.types[sid] = st
		if len(b) < 4+il {
			return
		}
		b = b[4+il:]
	}
}

// pes reads one PES packet's header (MPEG-2 or MPEG-1 syntax).
func (d *psDemuxer) pes(id byte, b []byte) {
	p := pes{streamID: id, streamType: d.types[id]}
	if len(b) >= 3 && b[0]>>6 == 0b10 { // MPEG-2 PES header
		flags, hl := b[1]>>6, int(b[2])
		if len(b) < 3+hl {
			return
		}
		h := b[3 : 3+hl]
		if flags&0b10 != 0 && len(h) >= 5 {
			p.pts, p.hasPTS = readTS(h), true
			p.dts = p.pts
			if flags == 0b11 && len(h) >= 10 {
				p.dts = readTS(h[5:])
			}
		}
		p.payload = b[3+hl:]
	} else {
		// MPEG-1: stuffing, optional STD buffer, timestamps
		for len(b) > 0 && b[0] == 0xff {
			b = b[1:]
		}
		if len(b) >= 2 && b[0]>>6 == 0b01 {
			b = b[2:]
		}
		switch {
		case len(b) >= 5 && b[0]>>4 == 0b0010:
			p.pts, p.hasPTS = readTS(b), true
			p.dts = p.pts
			b = b[5:]
		case len(b) >= 10 && b[0]>>4 == 0b0011:
			p.pts, p.hasPTS = readTS(b), true
			p.dts = readTS(b[5:])
			b = b[10:]
		case len(b) >= 1 && b[0] == 0x0f:
			b = b[1:]
		}
		p.payload = b
	}
	if len(p.payload) > 0 {
		d.onPES(p)
	}
}

// readTS reads a 33-bit PTS/DTS (90 kHz) from its 5-byte field.
func readTS(b []byte) int64 {
	return int64(b[0]>>1&0x07)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
}

func (p pes) String() string {
	return fmt.Sprintf("PES %#x type %#x pts %d (%v) %d bytes", p.streamID, p.streamType, p.pts, p.hasPTS, len(p.payload))
}
