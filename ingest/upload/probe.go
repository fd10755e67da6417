package upload

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"time"
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

// Limits of the probe. Everything else it keeps is a fixed size: the
// sample tables are streamed from the file, never loaded.
const (
	maxTracks   = 64   // more tracks than any camera or phone writes
	maxDepth    = 12   // box nesting
	tableBuffer = 4096 // bytes buffered per sample table being read
)

// probe reads an MP4/MOV's boxes: codecs, picture size, duration, creation
// time, and checks that its sample index points inside the file. A file
// whose boxes do not parse, or that holds no media, is ErrNotVideo with the
// reason.
//
// It is written for hostile input (an upload can be anything): every box's
// size is checked against the box that contains it and the file before it
// is read; a table's entry count is checked against the bytes of its box
// before any entry is read; sample tables are streamed with a few small
// buffers, so what the probe allocates does not grow with the counts a file
// declares (a 228-byte file declaring 4×2³² samples costs what a normal
// file's probe costs). See TestProbeMemoryIsBounded.
func probe(r io.ReaderAt, size int64) (fi fileInfo, err error) {
	defer func() {
		if p := recover(); p != nil { // a parser must not take the server down on a hostile file
			err = fmt.Errorf("%w: %v", ErrNotVideo, p)
		}
	}()
	p := &prober{r: r, size: size}
	if err := p.walk(0, size, 0, ""); err != nil {
		return fi, fmt.Errorf("%w: %v", ErrNotVideo, err)
	}
	if !p.sawMoov {
		return fi, fmt.Errorf("%w: no moov box", ErrNotVideo)
	}
	fi.Container = "mp4"
	if p.majorBrand == "qt  " {
		fi.Container = "mov"
	}
	fi.Fragmented = p.fragmented
	if p.timescale > 0 {
		fi.Duration = time.Duration(float64(p.duration) / float64(p.timescale) * float64(time.Second))
	}
	if p.created > 0 && p.created < 1<<40 {
		fi.Created = mp4Epoch.Add(time.Duration(p.created) * time.Second)
	}
	var samples uint64
	var end uint64
	for i := range p.tracks {
		t := &p.tracks[i]
		switch {
		case t.codec == "avc1" && fi.Video == "":
			fi.Video = "H264"
			fi.Width, fi.Height = t.width, t.height
		case t.codec == "mp4a" && fi.Audio == "":
			fi.Audio = "AAC"
		}
		if fi.Duration == 0 && t.timescale > 0 {
			fi.Duration = time.Duration(float64(t.duration) / float64(t.timescale) * float64(time.Second))
		}
		e, n, err := p.index(t)
		if err != nil {
			return fi, fmt.Errorf("%w: track %d: %v", ErrNotVideo, i+1, err)
		}
		samples += n
		end = max(end, e)
	}
	if len(p.tracks) == 0 {
		return fi, fmt.Errorf("%w: no audio or video track", ErrNotVideo)
	}
	if fi.Video == "" {
		return fi, fmt.Errorf("%w: no H.264 video track", ErrNotVideo)
	}
	if !fi.Fragmented && samples == 0 {
		return fi, fmt.Errorf("%w: no media samples (truncated?)", ErrNotVideo)
	}
	if end > uint64(size) {
		return fi, fmt.Errorf("%w: truncated: its media runs to byte %d of a %d-byte file", ErrNotVideo, end, size)
	}
	return fi, nil
}

// span is a box's payload in the file.
type span struct{ off, n int64 }

func (s span) ok() bool { return s.n > 0 }

// track is what the probe keeps of a trak box: fixed-size, the tables are
// only located.
type track struct {
	codec              string
	width, height      int
	timescale          uint32
	duration           uint64
	stts, stsc, stsz   span
	stco, co64, ctts   span
	haveMdhd, haveStsd bool
}

type prober struct {
	r          io.ReaderAt
	size       int64
	hdr        [16]byte
	sawFtyp    bool
	sawMoov    bool
	majorBrand string
	fragmented bool
	timescale  uint32
	duration   uint64
	created    uint64
	tracks     []track
	cur        *track
}

// box reads the header of the box at off inside [off, end): its type, where
// its payload starts and the box's end, checked against end.
func (p *prober) box(off, end int64) (typ string, payload, boxEnd int64, err error) {
	if end-off < 8 {
		return "", 0, 0, fmt.Errorf("truncated: %d stray bytes at %d", end-off, off)
	}
	if _, err := p.r.ReadAt(p.hdr[:8], off); err != nil {
		return "", 0, 0, fmt.Errorf("box header at %d: %w", off, err)
	}
	sz := int64(binary.BigEndian.Uint32(p.hdr[:4]))
	typ = string(p.hdr[4:8])
	hl := int64(8)
	switch sz {
	case 0: // to the end of what contains it
		sz = end - off
	case 1:
		if end-off < 16 {
			return "", 0, 0, fmt.Errorf("truncated: box %q at %d has no room for its 64-bit size", typ, off)
		}
		if _, err := p.r.ReadAt(p.hdr[8:16], off+8); err != nil {
			return "", 0, 0, fmt.Errorf("box header at %d: %w", off, err)
		}
		u := binary.BigEndian.Uint64(p.hdr[8:16])
		if u > uint64(end-off) {
			return "", 0, 0, fmt.Errorf("truncated: box %q at %d declares %d bytes, %d are left", typ, off, u, end-off)
		}
		sz, hl = int64(u), 16
	}
	if typ == "uuid" {
		hl += 16
	}
	if sz < hl {
		return "", 0, 0, fmt.Errorf("box %q at %d: size %d is smaller than its header", typ, off, sz)
	}
	if sz > end-off {
		return "", 0, 0, fmt.Errorf("truncated: box %q at %d declares %d bytes, %d are left", typ, off, sz, end-off)
	}
	return typ, off + hl, off + sz, nil
}

// walk visits the boxes in [off, end) whose parent is parent.
func (p *prober) walk(off, end int64, depth int, parent string) error {
	if depth > maxDepth {
		return fmt.Errorf("boxes nested deeper than %d", maxDepth)
	}
	for off < end {
		if parent == "" && end-off < 8 && p.sawMoov {
			return nil // trailing padding after a complete file
		}
		typ, pl, be, err := p.box(off, end)
		if err != nil {
			return err
		}
		if err := p.visit(parent, typ, pl, be, depth); err != nil {
			return err
		}
		off = be
	}
	return nil
}

func (p *prober) visit(parent, typ string, pl, end int64, depth int) error {
	n := end - pl
	switch {
	case parent == "" && typ == "ftyp":
		if n < 4 {
			return errors.New("ftyp box too small")
		}
		var b [4]byte
		if err := p.read(b[:], pl); err != nil {
			return err
		}
		p.sawFtyp, p.majorBrand = true, string(b[:])
	case parent == "" && typ == "moof":
		p.fragmented = true
	case parent == "" && typ == "moov":
		if p.sawMoov {
			return errors.New("more than one moov box")
		}
		p.sawMoov = true
		return p.walk(pl, end, depth+1, typ)
	case parent == "moov" && typ == "mvhd":
		ts, dur, created, err := p.header(pl, n)
		if err != nil {
			return fmt.Errorf("mvhd: %w", err)
		}
		p.timescale, p.duration, p.created = ts, dur, created
	case parent == "moov" && typ == "trak":
		if len(p.tracks) == maxTracks {
			return fmt.Errorf("more than %d tracks", maxTracks)
		}
		p.tracks = append(p.tracks, track{})
		p.cur = &p.tracks[len(p.tracks)-1]
		err := p.walk(pl, end, depth+1, typ)
		if err == nil && !p.cur.haveMdhd {
			err = errors.New("mdhd box not found")
		}
		p.cur = nil
		return err
	case p.cur != nil && (parent == "trak" && typ == "mdia" || parent == "mdia" && typ == "minf" || parent == "minf" && typ == "stbl"):
		return p.walk(pl, end, depth+1, typ)
	case p.cur != nil && parent == "mdia" && typ == "mdhd":
		ts, dur, _, err := p.header(pl, n)
		if err != nil {
			return fmt.Errorf("mdhd: %w", err)
		}
		p.cur.timescale, p.cur.duration, p.cur.haveMdhd = ts, dur, true
	case p.cur != nil && parent == "stbl":
		return p.table(typ, pl, n)
	}
	return nil
}

func (p *prober) read(b []byte, off int64) error {
	if _, err := p.r.ReadAt(b, off); err != nil {
		return fmt.Errorf("read at %d: %w", off, err)
	}
	return nil
}

// header reads an mvhd or mdhd: timescale, duration, creation time.
func (p *prober) header(pl, n int64) (timescale uint32, duration, created uint64, err error) {
	var b [32]byte
	if n < 4 {
		return 0, 0, 0, errors.New("box too small")
	}
	if err := p.read(b[:1], pl); err != nil {
		return 0, 0, 0, err
	}
	if b[0] == 1 {
		if n < 32 {
			return 0, 0, 0, errors.New("box too small")
		}
		if err := p.read(b[:32], pl); err != nil {
			return 0, 0, 0, err
		}
		return binary.BigEndian.Uint32(b[20:]), binary.BigEndian.Uint64(b[24:]), binary.BigEndian.Uint64(b[4:]), nil
	}
	if n < 20 {
		return 0, 0, 0, errors.New("box too small")
	}
	if err := p.read(b[:20], pl); err != nil {
		return 0, 0, 0, err
	}
	return binary.BigEndian.Uint32(b[12:]), uint64(binary.BigEndian.Uint32(b[16:])), uint64(binary.BigEndian.Uint32(b[4:])), nil
}

// table checks a sample table box: its entry count must fit in its bytes.
// Nothing is read beyond the count; the entries are streamed by index.
func (p *prober) table(typ string, pl, n int64) error {
	t := p.cur
	switch typ {
	case "stsd":
		return p.stsd(pl, n)
	case "stsz":
		if n < 12 {
			return errors.New("stsz box too small")
		}
		var b [12]byte
		if err := p.read(b[:], pl); err != nil {
			return err
		}
		if binary.BigEndian.Uint32(b[4:]) == 0 { // one size per sample follows
			if c := int64(binary.BigEndian.Uint32(b[8:])); c > (n-12)/4 {
				return fmt.Errorf("stsz declares %d sample sizes, its %d bytes hold %d", c, n, (n-12)/4)
			}
		}
		t.stsz = span{pl, n}
	case "stts", "stsc", "stco", "co64", "ctts":
		if n < 8 {
			return fmt.Errorf("%s box too small", typ)
		}
		var b [8]byte
		if err := p.read(b[:], pl); err != nil {
			return err
		}
		if c, w := int64(binary.BigEndian.Uint32(b[4:])), entrySize(typ); c > (n-8)/w {
			return fmt.Errorf("%s declares %d entries, its %d bytes hold %d", typ, c, n, (n-8)/w)
		}
		s := span{pl, n}
		switch typ {
		case "stts":
			t.stts = s
		case "stsc":
			t.stsc = s
		case "stco":
			t.stco = s
		case "co64":
			t.co64 = s
		case "ctts":
			t.ctts = s
		}
	}
	return nil
}

// entrySize is the bytes of one entry of a sample table.
func entrySize(typ string) int64 {
	switch typ {
	case "stsc":
		return 12
	case "stco":
		return 4
	}
	return 8 // stts, ctts, co64
}

// stsd: the first sample entry names the codec; a visual one has the
// picture size.
func (p *prober) stsd(pl, n int64) error {
	if n < 8 {
		return errors.New("stsd box too small")
	}
	var b [8]byte
	if err := p.read(b[:], pl); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(b[4:]) == 0 {
		return errors.New("stsd has no sample entry")
	}
	typ, epl, eend, err := p.box(pl+8, pl+n)
	if err != nil {
		return fmt.Errorf("stsd: %w", err)
	}
	p.cur.codec, p.cur.haveStsd = typ, true
	if typ == "avc1" || typ == "avc3" || typ == "hvc1" || typ == "hev1" {
		var v [28]byte // SampleEntry (8) + VisualSampleEntry up to height
		if eend-epl < int64(len(v)) {
			return fmt.Errorf("%s sample entry too small", typ)
		}
		if err := p.read(v[:], epl); err != nil {
			return err
		}
		p.cur.width, p.cur.height = int(binary.BigEndian.Uint16(v[24:])), int(binary.BigEndian.Uint16(v[26:]))
	}
	return nil
}

// tableReader streams a table's entries through a small buffer.
type tableReader struct {
	br    *bufio.Reader
	left  uint32
	entry [12]byte
}

func (p *prober) open(s span, skip int64, count uint32) *tableReader {
	return &tableReader{br: bufio.NewReaderSize(io.NewSectionReader(p.r, s.off+skip, s.n-skip), tableBuffer), left: count}
}

func (p *prober) count(s span, at int64) (uint32, error) {
	var b [4]byte
	if err := p.read(b[:], s.off+at); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b[:]), nil
}

func (t *tableReader) next(n int) ([]byte, error) {
	if t.left == 0 {
		return nil, io.EOF
	}
	t.left--
	if _, err := io.ReadFull(t.br, t.entry[:n]); err != nil {
		return nil, err
	}
	return t.entry[:n], nil
}

// index walks a track's sample tables together, chunk by chunk, without
// keeping any entry: the number of samples, and the end of the last byte
// the index points to. The work is bounded by the tables' entries (bytes
// of the file), never by a count the file declares: samples of a constant
// size are added up by multiplication.
func (p *prober) index(t *track) (end, samples uint64, err error) {
	if err := t.checkTables(); err != nil {
		return 0, 0, err
	}
	if samples, err = p.sampleCount(t); err != nil {
		return 0, 0, err
	}
	sizes, err := p.sampleSizes(t, samples)
	if err != nil {
		return 0, 0, err
	}
	chunks, err := p.chunkOffsets(t)
	if err != nil {
		return 0, 0, err
	}
	runs, err := p.chunkRuns(t)
	if err != nil {
		return 0, 0, err
	}
	var done uint64 // samples placed in chunks so far
	for c := uint64(1); c <= uint64(chunks.n); c++ {
		perChunk, err := runs.samplesIn(c)
		if err != nil {
			return 0, 0, err
		}
		off, err := chunks.next()
		if err != nil {
			return 0, 0, err
		}
		k := min(uint64(perChunk), samples-done)
		done += k
		if off, err = sizes.skip(off, k); err != nil {
			return 0, 0, err
		}
		end = max(end, off)
		if done == samples {
			break
		}
	}
	return end, samples, nil
}

// checkTables names the first sample table the track lacks.
func (t *track) checkTables() error {
	switch {
	case !t.haveStsd:
		return errors.New("stsd box not found")
	case !t.stts.ok():
		return errors.New("stts box not found")
	case !t.stsc.ok():
		return errors.New("stsc box not found")
	case !t.stco.ok() && !t.co64.ok():
		return errors.New("stco/co64 box not found")
	case !t.stsz.ok():
		return errors.New("stsz box not found")
	}
	return nil
}

// sampleCount is the sum of stts's counts (each up to 2^32-1, added, never
// expanded).
func (p *prober) sampleCount(t *track) (samples uint64, err error) {
	n, err := p.count(t.stts, 4)
	if err != nil {
		return 0, err
	}
	stts := p.open(t.stts, 8, n)
	for {
		e, err := stts.next(8)
		if err == io.EOF {
			return samples, nil
		}
		if err != nil {
			return 0, fmt.Errorf("stts: %w", err)
		}
		samples += uint64(binary.BigEndian.Uint32(e)) // at most 2^29 entries of < 2^32: no overflow
	}
}

// sizeTable is stsz: one size for every sample, or a size per sample.
type sizeTable struct {
	constant uint32
	sizes    *tableReader // nil when constant
}

// sampleSizes opens stsz, which must declare as many samples as stts.
func (p *prober) sampleSizes(t *track, samples uint64) (sizeTable, error) {
	constSize, err := p.count(t.stsz, 4)
	if err != nil {
		return sizeTable{}, err
	}
	nsizes, err := p.count(t.stsz, 8)
	if err != nil {
		return sizeTable{}, err
	}
	if uint64(nsizes) != samples {
		return sizeTable{}, fmt.Errorf("stts declares %d samples, stsz %d", samples, nsizes)
	}
	z := sizeTable{constant: constSize}
	if constSize == 0 {
		z.sizes = p.open(t.stsz, 12, nsizes)
	}
	return z, nil
}

// skip adds the sizes of the next k samples to off (saturating).
func (z sizeTable) skip(off, k uint64) (uint64, error) {
	if z.sizes == nil {
		hi, lo := bits.Mul64(k, uint64(z.constant))
		if hi != 0 {
			return math.MaxUint64, nil
		}
		return addSat(off, lo), nil
	}
	for ; k > 0; k-- {
		e, err := z.sizes.next(4)
		if err != nil {
			return 0, fmt.Errorf("stsz: %w", err)
		}
		off = addSat(off, uint64(binary.BigEndian.Uint32(e)))
	}
	return off, nil
}

// offsetTable is stco (32-bit) or co64 (64-bit): each chunk's offset.
type offsetTable struct {
	r     *tableReader
	width int
	n     uint32
}

func (p *prober) chunkOffsets(t *track) (offsetTable, error) {
	table, width := t.stco, 4
	if !table.ok() {
		table, width = t.co64, 8
	}
	n, err := p.count(table, 4)
	if err != nil {
		return offsetTable{}, err
	}
	return offsetTable{r: p.open(table, 8, n), width: width, n: n}, nil
}

func (o offsetTable) next() (uint64, error) {
	e, err := o.r.next(o.width)
	if err != nil {
		return 0, fmt.Errorf("chunk offsets: %w", err)
	}
	if o.width == 8 {
		return binary.BigEndian.Uint64(e), nil
	}
	return uint64(binary.BigEndian.Uint32(e)), nil
}

// runTable walks stsc's runs: [first chunk, samples per chunk), the
// current one and the first chunk of the next.
type runTable struct {
	stsc      *tableReader
	perChunk  uint32
	nextFirst uint64
	nextPer   uint32
	haveNext  bool
}

func (p *prober) chunkRuns(t *track) (*runTable, error) {
	n, err := p.count(t.stsc, 4)
	if err != nil {
		return nil, err
	}
	r := &runTable{stsc: p.open(t.stsc, 8, n), nextFirst: 1, haveNext: true}
	return r, r.advance()
}

// advance reads the next run (in order of first chunk).
func (r *runTable) advance() error {
	e, err := r.stsc.next(12)
	if err == io.EOF {
		r.haveNext = false
		return nil
	}
	if err != nil {
		return fmt.Errorf("stsc: %w", err)
	}
	first := uint64(binary.BigEndian.Uint32(e))
	if first < r.nextFirst {
		return fmt.Errorf("stsc: first chunk %d out of order", first)
	}
	r.nextFirst, r.nextPer = first, binary.BigEndian.Uint32(e[4:])
	return nil
}

// samplesIn is the number of samples in chunk c (chunks asked in order).
func (r *runTable) samplesIn(c uint64) (uint32, error) {
	for r.haveNext && r.nextFirst <= c {
		r.perChunk = r.nextPer
		if err := r.advance(); err != nil {
			return 0, err
		}
	}
	return r.perChunk, nil
}

// addSat adds without wrapping around: an offset past 2^64 is past the end
// of any file.
func addSat(a, b uint64) uint64 {
	if s, c := bits.Add64(a, b, 0); c == 0 {
		return s
	}
	return math.MaxUint64
}
