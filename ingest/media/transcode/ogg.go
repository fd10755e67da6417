package transcode

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// maxPacket bounds one Ogg packet (an Opus packet is at most a few
// kilobytes).
const maxPacket = 64 << 10

// errOgg: the stream is not Ogg as expected.
var errOgg = errors.New("ogg")

// oggReader splits an Ogg stream (RFC 3533) into its packets: ffmpeg's
// Opus output, one page per packet. It reads one logical stream and does
// not check page CRCs (the stream is a pipe from a child process).
type oggReader struct {
	r       *bufio.Reader
	hdr     [27]byte
	table   [255]byte
	pending []byte // a packet continued on the next page
	packets [][]byte
}

func newOggReader(r io.Reader) *oggReader { return &oggReader{r: bufio.NewReaderSize(r, 16<<10)} }

// next returns the next packet; io.EOF at the end of the stream.
func (o *oggReader) next() ([]byte, error) {
	for len(o.packets) == 0 {
		if err := o.page(); err != nil {
			return nil, err
		}
	}
	p := o.packets[0]
	o.packets = o.packets[1:]
	return p, nil
}

// page reads one page into o.packets (and o.pending).
func (o *oggReader) page() error {
	if _, err := io.ReadFull(o.r, o.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: truncated page header", errOgg)
		}
		return err
	}
	if !bytes.Equal(o.hdr[:4], []byte("OggS")) || o.hdr[4] != 0 {
		return fmt.Errorf("%w: no page at %x", errOgg, o.hdr[:5])
	}
	if o.hdr[5]&1 == 0 { // not a continuation: whatever was pending is lost
		o.pending = nil
	}
	_ = binary.LittleEndian.Uint64(o.hdr[6:14]) // granule position: durations come from the packets
	n := int(o.hdr[26])
	if _, err := io.ReadFull(o.r, o.table[:n]); err != nil {
		return fmt.Errorf("%w: truncated segment table: %v", errOgg, err)
	}
	for _, l := range o.table[:n] {
		if len(o.pending)+int(l) > maxPacket {
			return fmt.Errorf("%w: packet over %d bytes", errOgg, maxPacket)
		}
		start := len(o.pending)
		o.pending = append(o.pending, make([]byte, l)...)
		if _, err := io.ReadFull(o.r, o.pending[start:]); err != nil {
			return fmt.Errorf("%w: truncated page body: %v", errOgg, err)
		}
		if l < 255 {
			o.packets = append(o.packets, o.pending)
			o.pending = nil
		}
	}
	return nil
}
