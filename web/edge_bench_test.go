package web_test

import (
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkLoginFlood: 500 logins at once (BWC_FLOOD_N to change), each for
// an unknown login so that every one costs a password check, with and
// without the bound on concurrent hashing. It reports the process's peak
// heap (sampled every millisecond) and how long the flood took.
//
//	go test -run '^$' -bench LoginFlood -benchtime 1x ./web/
func BenchmarkLoginFlood(b *testing.B) {
	n := 500
	if v, err := strconv.Atoi(os.Getenv("BWC_FLOOD_N")); err == nil && v > 0 {
		n = v
	}
	for _, bc := range []struct {
		name  string
		slots int
	}{{fmt.Sprintf("slots=%d", 2*runtime.GOMAXPROCS(0)), 2 * runtime.GOMAXPROCS(0)}, {"unbounded", -1}} { // bounded first: the runtime keeps what the unbounded run mapped
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig()
			cfg.HashSlots, cfg.HashWait = bc.slots, 10*time.Minute
			e := startEdgeB(b, cfg)
			e.client.Timeout = 10 * time.Minute // 500 argon2id checks on a busy 2-core machine take a while
			var peak, peakTotal atomic.Uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			runtime.GC()
			go func() {
				defer close(sampled)
				s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}}
				tk := time.NewTicker(time.Millisecond)
				defer tk.Stop()
				for {
					metrics.Read(s)
					if v := s[0].Value.Uint64(); v > peak.Load() {
						peak.Store(v)
					}
					if v := s[1].Value.Uint64(); v > peakTotal.Load() {
						peakTotal.Store(v)
					}
					select {
					case <-stop:
						return
					case <-tk.C:
					}
				}
			}()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			codes := map[int]int{}
			var mu sync.Mutex
			for range b.N {
				var wg sync.WaitGroup
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						a := e.post(b, "/api/login", loginBody(fmt.Sprintf("nobody-%d", i), "a wrong password"), nil)
						mu.Lock()
						codes[a.code]++
						mu.Unlock()
					}()
				}
				wg.Wait()
			}
			elapsed := time.Since(start)
			close(stop)
			<-sampled
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(peakTotal.Load())/(1<<20), "peak-go-memory-MiB")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N*n)/(1<<20), "alloc-MiB/login")
			b.ReportMetric(float64(elapsed.Milliseconds())/float64(b.N), "ms/flood")
			fmt.Printf("login flood %s: %d logins at once, answers %v, peak heap %.0f MiB, peak Go memory %.0f MiB, %.1f MiB allocated per login, %v per flood\n",
				bc.name, n, codes, float64(peak.Load())/(1<<20), float64(peakTotal.Load())/(1<<20),
				float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N*n)/(1<<20), elapsed/time.Duration(b.N))
		})
	}
}
