package peer

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/bwcplatform/bwc/ingest"
	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
)

// local is a node's ingest: its live streams.
type local struct {
	mu      sync.Mutex
	streams map[uuid.UUID]*media.Stream
	ch      chan struct{}
}

func (l *local) Stream(id uuid.UUID) (*media.Stream, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.streams[id]
	return st, ok
}
func (l *local) Live() []ingest.Live              { return nil }
func (l *local) Watch() (<-chan struct{}, func()) { return l.ch, func() {} }

// directory says that every recording is held by node-b at addr.
type directory struct {
	mu   sync.Mutex
	addr string
	live bool
}

func (d *directory) LiveHolder(context.Context, uuid.UUID) (index.Node, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.live {
		return index.Node{}, index.ErrNotFound
	}
	return index.Node{ID: "node-b", HTTPAddr: d.addr}, nil
}
func (d *directory) LiveElsewhere(context.Context, string) ([]index.LiveRecording, error) {
	return nil, nil
}
func (d *directory) AdvertiseHTTP(context.Context, string, string) error { return nil }
func (d *directory) ListenLive(context.Context) (*index.LiveListener, error) {
	return nil, errors.New("no database in this test")
}

var testKey = bytes.Repeat([]byte{7}, 32)

func newLink(t *testing.T, node string, key []byte, dir Directory, loc Local) *Link {
	t.Helper()
	l, err := New(Config{Node: node, Key: key, Linger: 200 * time.Millisecond, KeepAlive: 100 * time.Millisecond, TokenTTL: time.Minute},
		dir, loc, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	<-l.Ready()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		l.Close()
	})
	return l
}

// serve is the holder's internal route, as web mounts it.
func serve(l *Link) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := uuid.Parse(strings.TrimPrefix(r.URL.Path, "/internal/live/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		o, err := l.Open(id, r.Header.Get("Authorization"))
		switch {
		case errors.Is(err, ErrRefused):
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		case err != nil:
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		_ = o.Send(r.Context(), w, rc.Flush)
	})
}

type cluster struct {
	holder, puller *Link
	srv            *httptest.Server
	dir            *directory
	stream         *media.Stream
	info           media.Info
}

func newCluster(t *testing.T, pullerKey []byte) *cluster {
	info := testInfo()
	st := media.NewStream(info)
	b := newLink(t, "node-b", testKey, &directory{}, &local{streams: map[uuid.UUID]*media.Stream{info.RecordingID: st}, ch: make(chan struct{})})
	srv := httptest.NewServer(serve(b))
	t.Cleanup(srv.Close)
	dir := &directory{addr: srv.Listener.Addr().String(), live: true}
	a := newLink(t, "node-a", pullerKey, dir, &local{streams: map[uuid.UUID]*media.Stream{}, ch: make(chan struct{})})
	return &cluster{holder: b, puller: a, srv: srv, dir: dir, stream: st, info: info}
}

func keyframe(info media.Info, n int) *media.Frame {
	return &media.Frame{Track: info.Tracks[0], Key: true, PTS: time.Duration(n) * 40 * time.Millisecond,
		DTS: time.Duration(n) * 40 * time.Millisecond, AU: [][]byte{{0x67, 1}, {0x68, 2}, {0x65, byte(n)}}}
}

func delta(info media.Info, n int) *media.Frame {
	return &media.Frame{Track: info.Tracks[0], PTS: time.Duration(n) * 40 * time.Millisecond,
		DTS: time.Duration(n) * 40 * time.Millisecond, AU: [][]byte{{0x41, byte(n)}}}
}

// TestPullOncePerRecording: ten viewers of node A pull node B's camera
// through one inter-node stream; they get B's frames from the last
// keyframe on, byte for byte; the pull stops Linger after the last reader.
func TestPullOncePerRecording(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the links' and server's cleanups
	c := newCluster(t, testKey)
	c.stream.Write(keyframe(c.info, 0))
	c.stream.Write(delta(c.info, 1))

	ctx := context.Background()
	var readers []*media.Reader
	var st *media.Stream
	for i := 0; i < 10; i++ {
		s, err := c.puller.Pull(ctx, c.info.RecordingID)
		if err != nil {
			t.Fatal(err)
		}
		if st != nil && s != st {
			t.Fatal("a second stream for the same recording")
		}
		st = s
		readers = append(readers, st.Subscribe(media.ReaderOptions{FromKeyframe: true}))
	}
	if in, _ := c.puller.Streams(); in != 1 {
		t.Fatalf("streams in on A = %d, want 1", in)
	}
	if _, out := c.holder.Streams(); out != 1 {
		t.Fatalf("streams out on B = %d, want 1", out)
	}
	if v := st.Info().Video(); v == nil || v.Codec != media.H264 || !bytes.Equal(v.SPS, c.info.Tracks[0].SPS) || st.Info().RecordingID != c.info.RecordingID {
		t.Fatalf("pulled info = %+v", st.Info())
	}
	c.stream.Write(delta(c.info, 2))
	for i, r := range readers {
		for n := 0; n < 3; n++ {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			f, err := r.Read(rctx)
			cancel()
			if err != nil {
				t.Fatalf("reader %d frame %d: %v", i, n, err)
			}
			want := delta(c.info, n)
			if n == 0 {
				want = keyframe(c.info, 0)
			}
			if f.Key != want.Key || f.DTS != want.DTS || !bytes.Equal(bytes.Join(f.AU, nil), bytes.Join(want.AU, nil)) {
				t.Fatalf("reader %d frame %d = %+v, want %+v", i, n, f, want)
			}
		}
	}
	for _, r := range readers {
		r.Close()
	}
	mediatest.Eventually(t, "the pull stops after the last reader", func() bool {
		in, _ := c.puller.Streams()
		_, out := c.holder.Streams()
		select {
		case <-st.Done():
			return in == 0 && out == 0
		default:
			return false
		}
	})
}

// TestPullReconnects: a connection that drops is reconnected while a
// reader remains; the frames the holder sends again (its GOP) are not
// written twice and the first new one is marked as a gap. The recording's
// end reaches the puller.
func TestPullReconnects(t *testing.T) {
	c := newCluster(t, testKey)
	c.stream.Write(keyframe(c.info, 0))
	st, err := c.puller.Pull(context.Background(), c.info.RecordingID)
	if err != nil {
		t.Fatal(err)
	}
	r := st.Subscribe(media.ReaderOptions{FromKeyframe: true})
	defer r.Close()
	read := func() *media.Frame {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f, err := r.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	if f := read(); !f.Key || f.DTS != 0 {
		t.Fatalf("first frame %+v", f)
	}
	c.srv.CloseClientConnections()
	mediatest.Eventually(t, "the pull reconnects", func() bool {
		return gaugeValue(c.puller.met.streamsIn) == 1 && c.holder.met.streamsOut != nil && counterValue(c.puller.met.reconnects) >= 1
	})
	c.stream.Write(delta(c.info, 1))
	if f := read(); f.DTS != 40*time.Millisecond || !f.Gap {
		t.Fatalf("after the reconnect: %+v, want the next frame, marked as a gap", f)
	}
	c.stream.Close()
	mediatest.Eventually(t, "the end reaches node A", func() bool {
		select {
		case <-st.Done():
			return true
		default:
			return false
		}
	})
}

// TestPullRefused: a node with another key is refused (403) and told so;
// a recording not live anywhere is ErrNotLive.
func TestPullRefused(t *testing.T) {
	c := newCluster(t, bytes.Repeat([]byte{8}, 32))
	c.stream.Write(keyframe(c.info, 0))
	if _, err := c.puller.Pull(context.Background(), c.info.RecordingID); !errors.Is(err, ErrRefused) {
		t.Fatalf("pull with another key: %v, want ErrRefused", err)
	}
	if counterValue(c.holder.met.refused) != 1 {
		t.Fatal("refusal not counted")
	}
	resp, err := http.Get(c.srv.URL + "/internal/live/" + c.info.RecordingID.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("pull without a token: %d, want 403", resp.StatusCode)
	}
	c.dir.mu.Lock()
	c.dir.live = false
	c.dir.mu.Unlock()
	if _, err := c.puller.Pull(context.Background(), uuid.New()); !errors.Is(err, media.ErrNotLive) {
		t.Fatalf("pull of a recording not live: %v, want ErrNotLive", err)
	}
}

// downDirectory is a database that is down for the first adverts.
type downDirectory struct {
	directory
	mu       sync.Mutex
	failures int
	got      string
}

func (d *downDirectory) AdvertiseHTTP(_ context.Context, _, addr string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failures > 0 {
		d.failures--
		return errors.New("database down")
	}
	d.got = addr
	return nil
}

// TestAdvertiseWhileTheDatabaseIsDown: the node runs (Ready) with the
// database down, and advertises its address once it is back.
func TestAdvertiseWhileTheDatabaseIsDown(t *testing.T) {
	d := &downDirectory{failures: 2}
	l, err := New(Config{Node: "node-a", Key: testKey, Linger: 200 * time.Millisecond, KeepAlive: 100 * time.Millisecond, TokenTTL: time.Minute,
		Advertise: func() string { return "10.0.0.1:8080" }}, d, &local{ch: make(chan struct{})}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	<-l.Ready()
	mediatest.Eventually(t, "the address advertised", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.got == "10.0.0.1:8080"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	l.Close()
}
