package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
)

// raiseFileLimit lifts RLIMIT_NOFILE to the hard limit and returns the
// soft limit now in force.
func raiseFileLimit(t testing.TB) uint64 {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < rl.Max {
		old := rl.Cur
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			t.Logf("cannot raise the file limit from %d: %v", old, err)
			rl.Cur = old
		}
	}
	return rl.Cur
}

// procFigures reads the process's resident memory (now and peak) and its
// open file descriptors (client and server sides: one process).
func procFigures() (rssMB, peakMB float64, fds int) {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		var kb float64
		if _, err := fmt.Sscanf(line, "VmRSS: %f kB", &kb); err == nil {
			rssMB = kb / 1024
		}
		if _, err := fmt.Sscanf(line, "VmHWM: %f kB", &kb); err == nil {
			peakMB = kb / 1024
		}
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fds = len(ents)
	}
	return
}

// malformed are requests that are not RTSP, or break its limits; each is
// sent on a fresh connection.
var malformed = [][]byte{
	[]byte("GARBAGE\r\n\r\n"),
	[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
	[]byte("OPTIONS rtsp://x/ RTSP/1.0\r\n\r\n"), // no CSeq
	[]byte("ANNOUNCE rtsp://x/live/CAM RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: 999999999\r\n\r\n"),
	[]byte("ANNOUNCE rtsp://x/live/CAM RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"),
	append([]byte("DESCRIBE rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\nX: "), bytes.Repeat([]byte("a"), 4096)...),
	[]byte("$\x00\x00\x10aaaaaaaaaaaaaaaa"),      // an interleaved frame before any session
	[]byte("RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"), // a response, not a request
	bytes.Repeat([]byte{0xff, 0x00, 0x13, 0x37}, 256),
	[]byte(strings.Repeat("OPTIONS", 20) + " rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
	[]byte("SETUP rtsp://x/live/CAM/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: garbage;;;\r\nSession: nosuch\r\n\r\n"),
	[]byte("RECORD rtsp://x/live/CAM RTSP/1.0\r\nCSeq: 1\r\nSession: 12345678\r\n\r\n"),
}

// TestAttackIdleFloodAndMalformedRequests: 5 000 idle TCP connections from
// 200 addresses, then 10 000 malformed requests, while an honest camera
// publishes: every one of its frames reaches the hub, Check stays healthy,
// the listener keeps accepting (a second camera, ffmpeg, starts publishing
// in the middle of the flood and every frame of it arrives too), and the
// connections stay within the cap.
func TestAttackIdleFloodAndMalformedRequests(t *testing.T) {
	limit := raiseFileLimit(t)
	idle := 5000
	if max := int(limit) - 5000; idle > max/2 { // both ends of every connection are in this process
		idle = max / 2
		t.Logf("file limit %d: %d idle connections", limit, idle)
	}
	w := newWorld(t, worldOpts{cfg: Config{Grace: time.Second}})
	ctx := context.Background()
	second, err := w.db.CreateDevice(ctx, index.Device{Serial: "BWC-SECOND-1", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	lc := startLiveCamera(t, w, 8) // 16 s of video: the floods happen meanwhile
	lc.flowing(t, "before the flood")
	rss0, _, fds0 := procFigures()
	start := time.Now()

	// 5 000 idle connections, 25 per address
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var dialErrs atomic.Int64
	var wg sync.WaitGroup
	for wk := 0; wk < 20; wk++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := wk; i < idle; i += 20 {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: srcIP(i / 25)}, Timeout: 10 * time.Second}
				c, err := d.Dial("tcp", w.srv.Addr())
				if err != nil {
					dialErrs.Add(1)
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n := dialErrs.Load(); n > 0 {
		t.Fatalf("%d of %d connections not even accepted by the kernel", n, idle)
	}
	mediatest.Eventually(t, "the flood accepted", func() bool {
		return counter(w, "conns", "handshake")+counter(w, "conns_closed", "evicted") >= float64(idle)
	})
	rss1, _, fds1 := procFigures()
	t.Logf("idle flood: %d connections in %v; open on the server %v (cap %d), evicted %v; process RSS %.0f → %.0f MB, fds %d → %d",
		idle, time.Since(start).Round(time.Millisecond), counter(w, "conns", "handshake"), testMaxConns,
		counter(w, "conns_closed", "evicted"), rss0, rss1, fds0, fds1)
	if n := counter(w, "conns", "handshake") + counter(w, "conns", "publishing"); n > testMaxConns {
		t.Fatalf("%v connections open, cap %d", n, testMaxConns)
	}
	lc.flowing(t, "during the idle flood")
	if err := w.srv.Check(ctx); err != nil {
		t.Fatalf("Check during the idle flood: %v", err)
	}
	// a second camera (ffmpeg) connects in the middle of the flood and
	// publishes while the malformed requests come
	ffmpegErr := make(chan error, 1)
	go func() {
		out, err := ffmpegPublish(w.url(second.Serial, secret))
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
		ffmpegErr <- err
	}()
	st2 := w.nextStream(t)
	frames2 := readAll(st2.Subscribe(media.ReaderOptions{Name: "test", Size: 4096}))

	// 10 000 malformed requests, each on its own connection, 100 senders;
	// a sender waits 300 ms for an answer (some get none: the server holds
	// an incomplete request until the handshake deadline), then leaves
	start = time.Now()
	var sent, answered atomic.Int64
	for wk := 0; wk < 100; wk++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: srcIP(300 + wk)}, Timeout: 10 * time.Second}
			buf := make([]byte, 4096)
			for i := 0; i < 100; i++ {
				c, err := d.Dial("tcp", w.srv.Addr())
				if err != nil {
					continue
				}
				_, _ = c.Write(malformed[(wk+i)%len(malformed)])
				sent.Add(1)
				// read until the server answers or closes (bounded)
				_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				if n, _ := c.Read(buf); n > 0 {
					answered.Add(1)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	rss2, peak, fds2 := procFigures()
	t.Logf("malformed: %d requests in %v (%d answered, the others closed at once or held to the deadline); process RSS %.0f MB (peak %.0f MB), fds %d",
		sent.Load(), time.Since(start).Round(time.Millisecond), answered.Load(), rss2, peak, fds2)
	if sent.Load() < 9900 {
		t.Fatalf("only %d malformed requests could be sent", sent.Load())
	}
	if err := w.srv.Check(ctx); err != nil {
		t.Fatalf("Check after the floods: %v", err)
	}
	// every frame of both cameras reached the hub
	if err := <-ffmpegErr; err != nil {
		t.Fatalf("ffmpeg camera during the floods: %v", err)
	}
	want := 0
	for _, f := range mediatest.Load(t).Frames {
		if f.Track.Kind == media.Video {
			want++
		}
	}
	got := 0
	for _, f := range <-frames2 { // ends after the grace window
		if f.Track.Kind == media.Video {
			got++
		}
	}
	if got != want {
		t.Fatalf("ffmpeg camera: %d video frames reached the hub, it sent %d", got, want)
	}
	lc.finish(t)
	if err := w.srv.Check(ctx); err != nil {
		t.Fatalf("Check at the end: %v", err)
	}
}
