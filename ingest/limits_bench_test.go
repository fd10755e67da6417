package ingest

import (
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
)

// BenchmarkRTSPFloods prints what floods cost the server, next to an idle
// baseline: the process's peak RSS and open fds (both ends of the
// connections live in this process, so fds count twice), and the Go
// memory (heap + stacks) per connection held by the server.
//
//	go test -run XXX -bench RTSPFloods -benchtime 1x ./ingest/
func BenchmarkRTSPFloods(b *testing.B) {
	raiseFileLimit(b)
	for _, tc := range []struct {
		name  string
		conns int
		send  []byte
	}{
		{"idle baseline", 0, nil},
		{"5000 idle connections (cap 4096)", 5000, nil},
		{"4000 half requests", 4000, []byte("ANNOUNCE rtsp://x/live/CAM RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 100000\r\n\r\nv=0")},
		{"4000 2 KiB headers", 4000, append([]byte("OPTIONS rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\nX: "), make([]byte, 2000)...)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				srv := startBare(b, Config{HandshakeTimeout: time.Minute, MaxConnsPerAddr: 100000})
				runtime.GC()
				m0 := goMem()
				var conns []net.Conn
				var mu sync.Mutex
				var wg sync.WaitGroup
				for wk := 0; wk < 16; wk++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for j := wk; j < tc.conns; j += 16 {
							c, err := net.Dial("tcp", srv.Addr())
							if err != nil {
								continue
							}
							if tc.send != nil {
								_, _ = c.Write(tc.send)
							}
							mu.Lock()
							conns = append(conns, c)
							mu.Unlock()
						}
					}()
				}
				wg.Wait()
				mediatest.Eventually(b, "connections held", func() bool { return srv.limits.open() >= min(tc.conns, testMaxConns) })
				time.Sleep(200 * time.Millisecond) // let the server read what was sent
				runtime.GC()
				m1 := goMem()
				_, peak, fds := procFigures()
				held := srv.limits.open()
				per := 0.0
				if held > 0 {
					per = float64(m1-m0) / float64(held) / 1024
				}
				b.ReportMetric(float64(held), "server-conns")
				b.ReportMetric(per, "KiB/conn")
				b.ReportMetric(peak, "peak-RSS-MB")
				b.ReportMetric(float64(fds), "fds")
				b.Logf("%s: server holds %d connections, %.1f KiB Go memory each, process peak RSS %.0f MB, %d fds", tc.name, held, per, peak, fds)
				for _, c := range conns {
					c.Close()
				}
			}
		})
	}
}

func goMem() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}
