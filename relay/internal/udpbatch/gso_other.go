//go:build !linux

package udpbatch

import (
	"errors"
	"net"
	"net/netip"
)

func gsoSupported(*net.UDPConn) bool { return false }

func sendGSO(*net.UDPConn, []byte, int, netip.AddrPort) error { return errGSO }

var errGSO = errors.New("udpbatch: no GSO on this system")

func gsoRefused(error) bool { return true }
