// Package udpbatch sends a burst of UDP packets to one address in one
// system call. The relay's viewers all share one UDP socket (pion's ICE
// UDP mux); a viewer writing a video frame (8 packets at 2 Mbit/s, 40 or
// more for a keyframe) "corks" its address, pion writes the packets as
// usual, and Uncork sends what was held with UDP generic segmentation
// offload (GSO: one sendmsg, the kernel or the network card cuts the
// segments), runs of equal-size packets at a time. Without GSO (not
// Linux, or the kernel refused it once) every packet is sent on its own,
// exactly as without this package.
package udpbatch

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Bounds of one GSO send: the kernel takes at most 64 segments (older
// kernels) and one UDP datagram's 64 KiB.
const (
	maxSegments = 64
	maxBytes    = 65000
	maxHeld     = 256 // packets held for one address: beyond, held ones are sent first
)

// Conn is a UDP socket whose writes to a corked address are held until
// Uncork. It implements net.PacketConn and pion's AddrPortReaderWriter
// (ReadFromAddrPort, WriteToAddrPort), so ice.UDPMuxDefault uses it as it
// would the socket.
//
// Every write looks its address up, so the lookup is read-mostly: an
// address's entry lives from its first Cork until Forget (its viewer
// leaves), Cork and Uncork only count under the entry's own lock, and
// the buffer is taken from a pool while the address is corked.
type Conn struct {
	*net.UDPConn
	gso      atomic.Bool   // GSO sends work here (until the kernel refuses one)
	entries  sync.Map      // netip.AddrPort → *held
	sends    atomic.Uint64 // system calls that sent more than one packet
	batched  atomic.Uint64 // packets sent by them
	fallback atomic.Uint64 // GSO sends refused, resent one by one
}

// held is one address's state: how many Corks are open and what waits
// for the Uncork.
type held struct {
	mu   sync.Mutex
	refs int      // Cork calls not yet uncorked
	buf  []byte   // the packets, back to back (from heldPool while corked)
	lens []int    // their sizes
	box  *buffers // what buf and lens came in, to go back to the pool
}

// New wraps c. GSO is used when the system supports it.
func New(c *net.UDPConn) *Conn {
	b := &Conn{UDPConn: c}
	b.gso.Store(gsoSupported(c))
	return b
}

// GSO reports whether bursts go out as GSO sends.
func (c *Conn) GSO() bool { return c.gso.Load() }

// Stats: system calls that carried several packets, the packets they
// carried, and GSO sends the kernel refused (then sent one by one).
func (c *Conn) Stats() (sends, packets, refused uint64) {
	return c.sends.Load(), c.batched.Load(), c.fallback.Load()
}

// Cork holds the writes to addr until the matching Uncork. Corks of one
// address nest (two sessions of one remote socket); the first Uncork
// sends what is held so far.
func (c *Conn) Cork(addr netip.AddrPort) {
	if !c.gso.Load() {
		return
	}
	addr = unmap(addr)
	e, ok := c.entries.Load(addr)
	if !ok {
		e, _ = c.entries.LoadOrStore(addr, &held{})
	}
	h := e.(*held)
	h.mu.Lock()
	if h.refs++; h.box == nil {
		h.box = heldPool.Get().(*buffers)
		h.buf, h.lens = h.box.buf[:0], h.box.lens[:0]
	}
	h.mu.Unlock()
}

// Uncork sends what was held for addr since Cork.
func (c *Conn) Uncork(addr netip.AddrPort) error {
	addr = unmap(addr)
	e, ok := c.entries.Load(addr)
	if !ok {
		return nil
	}
	h := e.(*held)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refs == 0 {
		return nil
	}
	err := c.flush(h, addr)
	if h.refs--; h.refs == 0 && h.box != nil {
		h.box.buf, h.box.lens = h.buf[:0], h.lens[:0]
		heldPool.Put(h.box)
		h.box, h.buf, h.lens = nil, nil, nil
	}
	return err
}

// Forget drops addr's entry (its session ended). Writes to it go out
// one by one until it is corked again.
func (c *Conn) Forget(addr netip.AddrPort) {
	addr = unmap(addr)
	e, ok := c.entries.Load(addr)
	if !ok {
		return
	}
	h := e.(*held)
	h.mu.Lock()
	if h.refs == 0 { // another session of the same socket may still cork it
		c.entries.Delete(addr)
	}
	h.mu.Unlock()
}

// buffers are a held entry's while it is corked: sized for a viewer's
// largest burst between pacing waits (the relay's 64 KiB bucket and a
// packet) so that they do not grow.
type buffers struct {
	buf  []byte
	lens []int
}

var heldPool = sync.Pool{New: func() any { return &buffers{buf: make([]byte, 0, 66<<10), lens: make([]int, 0, 64)} }}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// WriteToAddrPort sends b to addr, or holds a copy while addr is corked.
func (c *Conn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	e, ok := c.entries.Load(unmap(addr))
	if !ok {
		return c.UDPConn.WriteToUDPAddrPort(b, addr)
	}
	h := e.(*held)
	h.mu.Lock()
	if h.refs == 0 {
		h.mu.Unlock()
		return c.UDPConn.WriteToUDPAddrPort(b, addr)
	}
	defer h.mu.Unlock()
	if len(h.lens) >= maxHeld {
		if err := c.flush(h, unmap(addr)); err != nil {
			return 0, err
		}
	}
	h.buf = append(h.buf, b...)
	h.lens = append(h.lens, len(b))
	return len(b), nil
}

// WriteTo is WriteToAddrPort for a net.Addr.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok {
		return c.WriteToAddrPort(b, ua.AddrPort())
	}
	return c.UDPConn.WriteTo(b, addr)
}

// ReadFromAddrPort reads as the socket does.
func (c *Conn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.UDPConn.ReadFromUDPAddrPort(b)
}

// flush sends h's packets (with h.mu held): each run of equal-size
// packets, with at most one shorter one ending it, as one GSO send.
func (c *Conn) flush(h *held, addr netip.AddrPort) error {
	var first error
	off := 0
	for i := 0; i < len(h.lens); {
		seg := h.lens[i]
		n, size := 1, seg
		for i+n < len(h.lens) && n < maxSegments && size+h.lens[i+n] <= maxBytes && h.lens[i+n] <= seg {
			size += h.lens[i+n]
			n++
			if h.lens[i+n-1] < seg {
				break // a shorter segment ends a GSO send
			}
		}
		if err := c.send(h.buf[off:off+size], seg, n, addr); err != nil && first == nil {
			first = err
		}
		off += size
		i += n
	}
	h.buf, h.lens = h.buf[:0], h.lens[:0]
	return first
}

// send writes n packets of seg bytes (the last may be shorter) from b.
func (c *Conn) send(b []byte, seg, n int, addr netip.AddrPort) error {
	if n == 1 {
		_, err := c.UDPConn.WriteToUDPAddrPort(b, addr)
		return err
	}
	if c.gso.Load() {
		err := sendGSO(c.UDPConn, b, seg, addr)
		if err == nil {
			c.sends.Add(1)
			c.batched.Add(uint64(n))
			return nil
		}
		if !gsoRefused(err) {
			return err
		}
		// the path cannot segment (no checksum offload): one by one from now on
		c.gso.Store(false)
		c.fallback.Add(1)
	}
	var first error
	for off := 0; off < len(b); off += seg {
		end := min(off+seg, len(b))
		if _, err := c.UDPConn.WriteToUDPAddrPort(b[off:end], addr); err != nil && first == nil {
			first = err
		}
	}
	return first
}
