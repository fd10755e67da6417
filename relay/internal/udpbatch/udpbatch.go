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
type Conn struct {
	*net.UDPConn
	gso      atomic.Bool // GSO sends work here (until the kernel refuses one)
	mu       sync.RWMutex
	corked   map[netip.AddrPort]*held
	sends    atomic.Uint64 // system calls that sent more than one packet
	batched  atomic.Uint64 // packets sent by them
	fallback atomic.Uint64 // GSO sends refused, resent one by one
}

// held is what waits for one address's Uncork.
type held struct {
	refs int // Cork calls not yet uncorked (under Conn.mu)
	mu   sync.Mutex
	buf  []byte // the packets, back to back
	lens []int  // their sizes
}

// New wraps c. GSO is used when the system supports it.
func New(c *net.UDPConn) *Conn {
	b := &Conn{UDPConn: c, corked: map[netip.AddrPort]*held{}}
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
	c.mu.Lock()
	h := c.corked[addr]
	if h == nil {
		h = heldPool.Get().(*held)
		c.corked[addr] = h
	}
	h.refs++
	c.mu.Unlock()
}

// Uncork sends what was held for addr since Cork.
func (c *Conn) Uncork(addr netip.AddrPort) error {
	addr = unmap(addr)
	c.mu.Lock()
	h := c.corked[addr]
	if h == nil {
		c.mu.Unlock()
		return nil
	}
	last := false
	if h.refs--; h.refs <= 0 {
		delete(c.corked, addr)
		last = true
	}
	c.mu.Unlock()
	h.mu.Lock()
	err := c.flush(h, addr)
	h.mu.Unlock()
	if last {
		// no write holds h: they append under c.mu's read lock, and h
		// left the map under its write lock
		heldPool.Put(h)
	}
	return err
}

// heldPool keeps the buffers of uncorked addresses for the next Cork
// (a frame's burst: no allocation once warm).
// Sized for a viewer's largest burst between pacing waits (the relay's
// 64 KiB bucket and a packet) so that a held buffer does not grow.
var heldPool = sync.Pool{New: func() any { return &held{buf: make([]byte, 0, 66<<10), lens: make([]int, 0, 64)} }}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// WriteToAddrPort sends b to addr, or holds a copy while addr is corked.
func (c *Conn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	c.mu.RLock()
	h := c.corked[unmap(addr)]
	if h == nil {
		c.mu.RUnlock()
		return c.UDPConn.WriteToUDPAddrPort(b, addr)
	}
	defer c.mu.RUnlock() // Uncork cannot recycle h meanwhile
	h.mu.Lock()
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
