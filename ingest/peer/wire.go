package peer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest/media"
)

// The link's wire format: a sequence of messages, each a type byte, a
// 4-byte big-endian payload length and the payload. Every length is
// bounded; a message that breaks a bound ends the link (ErrWire).
//
//	'T' track:     id, kind, codec, clock rate, payload type, fmtp, VPS, SPS, PPS, width, height, sample rate, channels, audio config
//	'I' info:      recording, device, officer (16 bytes each), started (unix ns), serial, the current tracks' ids
//	'F' frame:     track id, flags (1 key, 2 gap), PTS, DTS, wall (unix ns, 0: none), access units (count, then each sized)
//	'K' keepalive: empty (sent when no frame went for KeepAlive)
//	'E' end:       empty: the recording ended on the holding node
//
// Integers are varints; strings and byte strings are a length varint then
// the bytes. A track is defined ('T') before an info or frame names it.
const (
	msgTrack = 'T'
	msgInfo  = 'I'
	msgFrame = 'F'
	msgKeep  = 'K'
	msgEnd   = 'E'
)

// Bounds of the wire format.
const (
	MaxMessage = 8 << 20  // a message's payload (a 4K keyframe is well under)
	maxField   = 64 << 10 // a string or parameter set
	maxTracks  = 64       // tracks defined on one link (a new configuration is a new track)
	maxInfo    = 16       // tracks in one info
	maxAUs     = 4096     // access units (NAL units) in one frame
)

// ErrWire: the peer sent something the format does not allow.
var ErrWire = errors.New("bad inter-node stream")

func wireErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrWire, fmt.Sprintf(format, args...))
}

// encoder writes a stream's messages.
type encoder struct {
	w    io.Writer
	ids  map[*media.Track]uint64
	next uint64
	buf  []byte
	msg  []byte
}

func newEncoder(w io.Writer) *encoder {
	return &encoder{w: w, ids: map[*media.Track]uint64{}}
}

// send writes one message.
func (e *encoder) send(typ byte, payload []byte) (int, error) {
	if len(payload) > MaxMessage {
		return 0, fmt.Errorf("%w: a %c message of %d bytes (at most %d)", ErrWire, typ, len(payload), MaxMessage)
	}
	e.msg = append(e.msg[:0], typ, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(e.msg[1:], uint32(len(payload)))
	e.msg = append(e.msg, payload...)
	return e.w.Write(e.msg)
}

// track returns the track's id, defining it first when it is new.
func (e *encoder) track(t *media.Track) (uint64, int, error) {
	if id, ok := e.ids[t]; ok {
		return id, 0, nil
	}
	if len(e.ids) >= maxTracks {
		return 0, 0, fmt.Errorf("%w: more than %d track configurations on one link", ErrWire, maxTracks)
	}
	id := e.next
	e.next++
	e.ids[t] = id
	b := binary.AppendUvarint(e.buf[:0], id)
	kind := byte(0)
	if t.Kind == media.Audio {
		kind = 1
	}
	b = append(b, kind)
	b = appendBytes(b, []byte(t.Codec))
	b = binary.AppendUvarint(b, uint64(max(t.ClockRate, 0)))
	b = append(b, t.PayloadType)
	b = appendBytes(b, []byte(t.FMTP))
	b = appendBytes(b, t.VPS)
	b = appendBytes(b, t.SPS)
	b = appendBytes(b, t.PPS)
	b = binary.AppendUvarint(b, uint64(max(t.Width, 0)))
	b = binary.AppendUvarint(b, uint64(max(t.Height, 0)))
	b = binary.AppendUvarint(b, uint64(max(t.SampleRate, 0)))
	b = binary.AppendUvarint(b, uint64(max(t.Channels, 0)))
	b = appendBytes(b, t.AudioConfig)
	e.buf = b
	n, err := e.send(msgTrack, b)
	return id, n, err
}

// info writes the stream's description (its tracks defined first).
func (e *encoder) info(in media.Info) (int, error) {
	total := 0
	var ids []uint64
	for _, t := range in.Tracks {
		if len(ids) == maxInfo {
			break
		}
		id, n, err := e.track(t)
		total += n
		if err != nil {
			return total, err
		}
		ids = append(ids, id)
	}
	b := append(e.buf[:0], in.RecordingID[:]...)
	b = append(b, in.DeviceID[:]...)
	b = append(b, in.OfficerID[:]...)
	b = binary.AppendVarint(b, unixNano(in.StartedAt))
	b = appendBytes(b, []byte(in.DeviceSerial))
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendUvarint(b, id)
	}
	e.buf = b
	n, err := e.send(msgInfo, b)
	return total + n, err
}

// frame writes a frame (its track defined first when new).
func (e *encoder) frame(f *media.Frame) (int, error) {
	id, total, err := e.track(f.Track)
	if err != nil {
		return total, err
	}
	if len(f.AU) > maxAUs {
		return total, fmt.Errorf("%w: a frame of %d access units (at most %d)", ErrWire, len(f.AU), maxAUs)
	}
	b := binary.AppendUvarint(e.buf[:0], id)
	flags := byte(0)
	if f.Key {
		flags |= 1
	}
	if f.Gap {
		flags |= 2
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, int64(f.PTS))
	b = binary.AppendVarint(b, int64(f.DTS))
	b = binary.AppendVarint(b, unixNano(f.Wall))
	b = binary.AppendUvarint(b, uint64(len(f.AU)))
	for _, au := range f.AU {
		b = appendBytes(b, au)
	}
	e.buf = b
	n, err := e.send(msgFrame, b)
	return total + n, err
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// message is one decoded message: Info for 'I', Frame for 'F'; a 'T'
// message is absorbed by the decoder.
type message struct {
	typ   byte
	info  *media.Info
	frame *media.Frame
	size  int // bytes on the wire
}

// decoder reads a stream's messages. It is a parser of another node's
// output: every length is checked before anything is allocated.
type decoder struct {
	r      *bufio.Reader
	tracks map[uint64]*media.Track
	buf    []byte
}

func newDecoder(r io.Reader) *decoder {
	return &decoder{r: bufio.NewReaderSize(r, 64<<10), tracks: map[uint64]*media.Track{}}
}

// next returns the next info, frame, keepalive or end message.
func (d *decoder) next() (message, error) {
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(d.r, hdr[:]); err != nil {
			return message{}, err
		}
		size := binary.BigEndian.Uint32(hdr[1:])
		if size > MaxMessage {
			return message{}, wireErr("a %q message of %d bytes (at most %d)", hdr[0], size, MaxMessage)
		}
		if cap(d.buf) < int(size) {
			d.buf = make([]byte, size)
		}
		d.buf = d.buf[:size]
		if _, err := io.ReadFull(d.r, d.buf); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return message{}, err
		}
		m := message{typ: hdr[0], size: 5 + int(size)}
		p := &parser{b: d.buf}
		switch hdr[0] {
		case msgTrack:
			if err := d.track(p); err != nil {
				return message{}, err
			}
			continue
		case msgInfo:
			in, err := d.info(p)
			if err != nil {
				return message{}, err
			}
			m.info = &in
		case msgFrame:
			f, err := d.frame(p)
			if err != nil {
				return message{}, err
			}
			m.frame = f
		case msgKeep, msgEnd:
		default:
			return message{}, wireErr("unknown message type %q", hdr[0])
		}
		if p.err == nil && len(p.b) > 0 {
			return message{}, wireErr("%d bytes after a %q message", len(p.b), hdr[0])
		}
		return m, nil
	}
}

func (d *decoder) track(p *parser) error {
	id := p.uvarint()
	t := &media.Track{Kind: media.Video}
	switch p.byte() {
	case 0:
	case 1:
		t.Kind = media.Audio
	default:
		return wireErr("track kind")
	}
	t.Codec = media.Codec(p.bytes())
	t.ClockRate = p.int()
	t.PayloadType = p.byte()
	t.FMTP = string(p.bytes())
	t.VPS, t.SPS, t.PPS = p.bytes(), p.bytes(), p.bytes()
	t.Width, t.Height = p.int(), p.int()
	t.SampleRate, t.Channels = p.int(), p.int()
	t.AudioConfig = p.bytes()
	if p.err != nil {
		return p.err
	}
	if _, ok := d.tracks[id]; ok {
		return wireErr("track %d defined twice", id)
	}
	if len(d.tracks) >= maxTracks {
		return wireErr("more than %d tracks", maxTracks)
	}
	t.ID = len(d.tracks)
	d.tracks[id] = t
	return nil
}

func (d *decoder) info(p *parser) (media.Info, error) {
	var in media.Info
	in.RecordingID, in.DeviceID, in.OfficerID = p.uuid(), p.uuid(), p.uuid()
	in.StartedAt = fromUnixNano(p.varint())
	in.DeviceSerial = string(p.bytes())
	n := p.uvarint()
	if p.err == nil && n > maxInfo {
		return in, wireErr("an info of %d tracks (at most %d)", n, maxInfo)
	}
	for i := uint64(0); i < n && p.err == nil; i++ {
		id := p.uvarint()
		t, ok := d.tracks[id]
		if p.err == nil && !ok {
			return in, wireErr("info names undefined track %d", id)
		}
		in.Tracks = append(in.Tracks, t)
	}
	return in, p.err
}

func (d *decoder) frame(p *parser) (*media.Frame, error) {
	id := p.uvarint()
	t, ok := d.tracks[id]
	if p.err == nil && !ok {
		return nil, wireErr("frame of undefined track %d", id)
	}
	flags := p.byte()
	f := &media.Frame{Track: t, Key: flags&1 != 0, Gap: flags&2 != 0}
	f.PTS, f.DTS = time.Duration(p.varint()), time.Duration(p.varint())
	f.Wall = fromUnixNano(p.varint())
	n := p.uvarint()
	if p.err == nil && n > maxAUs {
		return nil, wireErr("a frame of %d access units (at most %d)", n, maxAUs)
	}
	if p.err == nil && n > uint64(len(p.b)) {
		return nil, wireErr("a frame of %d access units in %d bytes", n, len(p.b))
	}
	if p.err == nil {
		f.AU = make([][]byte, 0, n)
	}
	for i := uint64(0); i < n && p.err == nil; i++ {
		f.AU = append(f.AU, p.payload())
	}
	return f, p.err
}

// parser reads the fields of one message; the first error sticks.
type parser struct {
	b   []byte
	err error
}

func (p *parser) fail(what string) {
	if p.err == nil {
		p.err = wireErr("truncated or invalid %s", what)
	}
}

func (p *parser) byte() byte {
	if p.err != nil || len(p.b) < 1 {
		p.fail("byte")
		return 0
	}
	v := p.b[0]
	p.b = p.b[1:]
	return v
}

func (p *parser) uvarint() uint64 {
	if p.err != nil {
		return 0
	}
	v, n := binary.Uvarint(p.b)
	if n <= 0 {
		p.fail("integer")
		return 0
	}
	p.b = p.b[n:]
	return v
}

func (p *parser) varint() int64 {
	if p.err != nil {
		return 0
	}
	v, n := binary.Varint(p.b)
	if n <= 0 {
		p.fail("integer")
		return 0
	}
	p.b = p.b[n:]
	return v
}

// int reads a non-negative integer that fits a field (sizes, rates).
func (p *parser) int() int {
	v := p.uvarint()
	if v > 1<<31 {
		p.fail("integer range")
		return 0
	}
	return int(v)
}

func (p *parser) uuid() uuid.UUID {
	var u uuid.UUID
	if p.err != nil || len(p.b) < 16 {
		p.fail("ID")
		return u
	}
	copy(u[:], p.b)
	p.b = p.b[16:]
	return u
}

// bytes reads a bounded field and copies it (tracks outlive the buffer).
func (p *parser) bytes() []byte {
	n := p.uvarint()
	if p.err == nil && (n > maxField || n > uint64(len(p.b))) {
		p.fail("field length")
	}
	if p.err != nil {
		return nil
	}
	v := append([]byte(nil), p.b[:n]...)
	p.b = p.b[n:]
	return v
}

// payload reads an access unit and copies it (frames outlive the buffer).
func (p *parser) payload() []byte {
	n := p.uvarint()
	if p.err == nil && n > uint64(len(p.b)) {
		p.fail("access unit length")
	}
	if p.err != nil {
		return nil
	}
	v := append([]byte(nil), p.b[:n]...)
	p.b = p.b[n:]
	return v
}
