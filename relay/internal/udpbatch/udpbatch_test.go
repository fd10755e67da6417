package udpbatch

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pair(t testing.TB) (*Conn, *net.UDPConn) {
	t.Helper()
	s, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = r.SetReadBuffer(4 << 20)
	t.Cleanup(func() { s.Close(); r.Close() })
	return New(s), r
}

// packet i of a burst: its size, and bytes that say which packet it is
func packet(i, size int) []byte {
	b := bytes.Repeat([]byte{byte(i), byte(i >> 8)}, (size+1)/2)
	return b[:size]
}

// TestBurstsArriveAsSent: whatever the mix of sizes, a corked burst
// arrives as the packets written, in order, each whole; with GSO every
// run of equal sizes took one system call.
func TestBurstsArriveAsSent(t *testing.T) {
	rep := func(n, size int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = size
		}
		return out
	}
	tests := []struct {
		name  string
		sizes []int
	}{
		{"one packet", []int{1208}},
		{"a P-frame: equal fragments and a shorter last", append(rep(8, 1208), 517)},
		{"a keyframe: parameter sets then fragments", append([]int{40, 12}, append(rep(70, 1208), 300)...)},
		{"a larger packet after a run", []int{600, 600, 1208, 1208, 90, 1208}},
		{"beyond 64 KiB", rep(200, 1208)},
		{"beyond what is held", rep(maxHeld+10, 100)},
	}
	for _, gso := range []bool{true, false} {
		for _, tc := range tests {
			t.Run(map[bool]string{true: "GSO/", false: "one by one/"}[gso]+tc.name, func(t *testing.T) {
				c, r := pair(t)
				if gso && !c.GSO() {
					t.Skip("no GSO on this kernel")
				}
				c.gso.Store(gso)
				to := r.LocalAddr().(*net.UDPAddr).AddrPort()
				c.Cork(to)
				for i, n := range tc.sizes {
					if _, err := c.WriteToAddrPort(packet(i, n), to); err != nil {
						t.Fatal(err)
					}
				}
				if err := c.Uncork(to); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 70000)
				_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
				for i, n := range tc.sizes {
					got, _, err := r.ReadFromUDPAddrPort(buf)
					if err != nil {
						t.Fatalf("packet %d of %d: %v", i, len(tc.sizes), err)
					}
					if !bytes.Equal(buf[:got], packet(i, n)) {
						t.Fatalf("packet %d: got %d bytes starting %v, want %d bytes of %d", i, got, buf[:min(got, 2)], n, i)
					}
				}
				sends, packets, _ := c.Stats()
				if gso && (sends == 0 || packets <= sends) && len(tc.sizes) > 1 {
					t.Fatalf("%d packets in %d GSO sends", packets, sends)
				}
				if !gso && sends != 0 {
					t.Fatalf("%d GSO sends with GSO off", sends)
				}
			})
		}
	}
}

// TestUncorkedWritesGoAtOnce: writes to an address nobody corked, or
// after its Uncork, are not held.
func TestUncorkedWritesGoAtOnce(t *testing.T) {
	c, r := pair(t)
	to := r.LocalAddr().(*net.UDPAddr).AddrPort()
	other := netip.MustParseAddrPort("127.0.0.1:9")
	c.Cork(other)
	defer c.Uncork(other)
	buf := make([]byte, 2000)
	for i := 0; i < 3; i++ {
		if _, err := c.WriteTo(packet(i, 100), net.UDPAddrFromAddrPort(to)); err != nil {
			t.Fatal(err)
		}
		_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := r.ReadFromUDPAddrPort(buf)
		if err != nil || !bytes.Equal(buf[:n], packet(i, 100)) {
			t.Fatalf("write %d: %v", i, err)
		}
		c.Cork(to)
		_ = c.Uncork(to)
	}
}

// TestForget: a forgotten address's writes go out at once; corked again,
// they are held again. Nested corks of one address: the first Uncork
// sends what is held, writes after it are held until the last.
func TestForget(t *testing.T) {
	c, r := pair(t)
	if !c.GSO() {
		t.Skip("no GSO on this kernel")
	}
	to := r.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 2000)
	arrives := func(i int, want bool) {
		t.Helper()
		_ = r.SetReadDeadline(time.Now().Add(map[bool]time.Duration{true: 5 * time.Second, false: 200 * time.Millisecond}[want]))
		n, _, err := r.ReadFromUDPAddrPort(buf)
		if got := err == nil && bytes.Equal(buf[:n], packet(i, 100)); got != want {
			t.Fatalf("packet %d arrived = %v (%v), want %v", i, got, err, want)
		}
	}
	write := func(i int) {
		t.Helper()
		if _, err := c.WriteToAddrPort(packet(i, 100), to); err != nil {
			t.Fatal(err)
		}
	}
	c.Cork(to)
	c.Cork(to)
	write(1)
	arrives(1, false)
	_ = c.Uncork(to) // the first Uncork sends what is held
	arrives(1, true)
	write(2) // still corked once
	arrives(2, false)
	_ = c.Uncork(to)
	arrives(2, true)
	c.Forget(to)
	if _, ok := c.entries.Load(to); ok {
		t.Fatal("a forgotten address keeps its entry")
	}
	write(3)
	arrives(3, true)
	c.Cork(to)
	write(4)
	arrives(4, false)
	_ = c.Uncork(to)
	arrives(4, true)
}

// BenchmarkBurst: a 2 Mbit/s P-frame (8 packets of 1208 bytes, SRTP
// included) to one viewer over loopback, one system call per packet or
// one GSO send; ns/packet is the sender's and the loopback's cost.
func BenchmarkBurst(b *testing.B) {
	for _, gso := range []bool{false, true} {
		b.Run(map[bool]string{true: "GSO", false: "per-packet"}[gso], func(b *testing.B) {
			c, r := pair(b)
			if gso && !c.GSO() {
				b.Skip("no GSO on this kernel")
			}
			c.gso.Store(gso)
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 70000)
				for {
					if _, _, err := r.ReadFromUDPAddrPort(buf); err != nil {
						return
					}
				}
			}()
			to := r.LocalAddr().(*net.UDPAddr).AddrPort()
			p := packet(1, 1208)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.Cork(to)
				for j := 0; j < 8; j++ {
					if _, err := c.WriteToAddrPort(p, to); err != nil {
						b.Fatal(err)
					}
				}
				if err := c.Uncork(to); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*8), "ns/packet")
			b.StopTimer()
			r.Close()
			<-done
		})
	}
}
