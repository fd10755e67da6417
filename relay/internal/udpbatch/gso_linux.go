package udpbatch

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoSupported asks the kernel whether the socket knows UDP_SEGMENT
// (Linux 4.18 and later).
func gsoSupported(c *net.UDPConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = raw.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		ok = err == nil
	})
	return ok
}

var oobSize = unix.CmsgSpace(2)

// sendGSO sends b as segments of seg bytes in one sendmsg.
func sendGSO(c *net.UDPConn, b []byte, seg int, addr netip.AddrPort) error {
	var oob [64]byte
	o := oob[:oobSize]
	h := (*unix.Cmsghdr)(unsafe.Pointer(&o[0]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(o[unix.CmsgLen(0):], uint16(seg))
	_, _, err := c.WriteMsgUDPAddrPort(b, o, addr)
	return err
}

// gsoRefused: the kernel cannot segment on this path (EIO: the device
// lacks checksum offload; EINVAL: it refuses the segment size).
func gsoRefused(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL)
}
