package ingest

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
)

// rawClient speaks RTSP by hand over one TCP connection from a chosen
// loopback source address (Linux routes all of 127.0.0.0/8 to lo), so that
// tests play many clients on many addresses, honest or not.
type rawClient struct {
	c    net.Conn
	br   *bufio.Reader
	cseq int
	sess string
}

// srcIP is the i-th test source address, 127.0.1.0 + i (never 127.0.0.1,
// where the honest cameras connect from).
func srcIP(i int) net.IP {
	return net.IPv4(127, 0, byte(1+i/250), byte(1+i%250))
}

func dialFrom(src net.IP, addr string) (*rawClient, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &rawClient{c: c, br: bufio.NewReader(c)}, nil
}

func (r *rawClient) close() { r.c.Close() }

// do sends a request and reads its response.
func (r *rawClient) do(req *base.Request) (*base.Response, error) {
	r.cseq++
	if req.Header == nil {
		req.Header = base.Header{}
	}
	req.Header["CSeq"] = base.HeaderValue{strconv.Itoa(r.cseq)}
	if r.sess != "" {
		req.Header["Session"] = base.HeaderValue{r.sess}
	}
	b, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	_ = r.c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		return nil, err
	}
	var res base.Response
	if err := res.Unmarshal(r.br); err != nil {
		return nil, err
	}
	return &res, nil
}

// sampleSDP is the SDP of an H.264 camera (the committed sample).
func sampleSDP(t testing.TB) []byte {
	t.Helper()
	s := mediatest.Load(t)
	desc := description.Session{Medias: []*description.Media{{Type: description.MediaTypeVideo, Control: "trackID=0",
		Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: s.Video.SPS, PPS: s.Video.PPS}}}}}
	b, err := desc.Marshal(false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// announce sends an ANNOUNCE with credentials: digest (answering the
// server's challenge), or Basic when basic is set (sent at once).
func (r *rawClient) announce(url string, user, pass string, basic bool, sdp []byte) (*base.Response, error) {
	u, err := base.ParseURL(url)
	if err != nil {
		return nil, err
	}
	req := func() *base.Request {
		return &base.Request{Method: base.Announce, URL: u, Header: base.Header{"Content-Type": base.HeaderValue{"application/sdp"}}, Body: sdp}
	}
	if basic {
		q := req()
		q.Header["Authorization"] = base.HeaderValue{"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
		return r.do(q)
	}
	res, err := r.do(req())
	if err != nil || res.StatusCode != base.StatusUnauthorized {
		return res, err
	}
	snd := auth.Sender{WWWAuth: res.Header["WWW-Authenticate"], User: user, Pass: pass}
	if err := snd.Initialize(); err != nil {
		return nil, fmt.Errorf("challenge %v: %w", res.Header["WWW-Authenticate"], err)
	}
	q := req()
	snd.AddAuthorization(q)
	return r.do(q)
}

// publish announces, sets up the video over TCP and records: the session
// is then live on the server (no media is sent).
func (r *rawClient) publish(t testing.TB, url, user, pass string) error {
	res, err := r.announce(url, user, pass, false, sampleSDP(t))
	if err != nil {
		return err
	}
	if res.StatusCode != base.StatusOK {
		return fmt.Errorf("ANNOUNCE: %d", res.StatusCode)
	}
	u, _ := base.ParseURL(url + "/trackID=0")
	res, err = r.do(&base.Request{Method: base.Setup, URL: u,
		Header: base.Header{"Transport": base.HeaderValue{"RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"}}})
	if err != nil {
		return err
	}
	if res.StatusCode != base.StatusOK {
		return fmt.Errorf("SETUP: %d", res.StatusCode)
	}
	if v := res.Header["Session"]; len(v) == 1 {
		r.sess = v[0]
		for i := 0; i < len(r.sess); i++ {
			if r.sess[i] == ';' {
				r.sess = r.sess[:i]
				break
			}
		}
	}
	u, _ = base.ParseURL(url)
	res, err = r.do(&base.Request{Method: base.Record, URL: u})
	if err != nil {
		return err
	}
	if res.StatusCode != base.StatusOK {
		return fmt.Errorf("RECORD: %d", res.StatusCode)
	}
	return nil
}

// closedByServer waits until the server closes the connection (a read
// ends in EOF or a reset); it fails the test if the connection stays open
// for the whole bound (a deadline for a hung test, not a timing assertion).
func closedByServer(c net.Conn, bound time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(bound))
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			return !(asNetErr(err, &ne) && ne.Timeout())
		}
	}
}

func asNetErr(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

func counter(w *world, vec string, label string) float64 {
	m := w.srv.met
	switch vec {
	case "refused":
		return testutil.ToFloat64(m.authFailures.WithLabelValues(label))
	case "conns_refused":
		return testutil.ToFloat64(m.connsRefused.WithLabelValues(label))
	case "conns_closed":
		return testutil.ToFloat64(m.connsClosed.WithLabelValues(label))
	case "conns":
		return testutil.ToFloat64(m.conns.WithLabelValues(label))
	}
	panic(vec)
}

// liveCamera publishes the sample in real time with gortsplib's client
// from 127.0.0.1 (an honest camera) and counts the video frames that reach
// the hub's stream.
type liveCamera struct {
	cam    *testCamera
	frames atomic.Int64
	want   int64 // video frames sent in all
	sent   chan error
	read   chan struct{}
	// finish waits for the camera to have sent everything and checks that
	// every video frame reached the hub
	finish func(t *testing.T)
}

func startLiveCamera(t *testing.T, w *world, passes int) *liveCamera {
	t.Helper()
	cam, err := dialCamera(t, w.url(w.device.Serial, secret), false, false)
	if err != nil {
		t.Fatal(err)
	}
	st := w.nextStream(t)
	lc := &liveCamera{cam: cam, sent: make(chan error, 1), read: make(chan struct{})}
	rd := st.Subscribe(media.ReaderOptions{Name: "test", Size: 4096})
	go func() {
		defer close(lc.read)
		for {
			f, err := rd.Read(context.Background())
			if err != nil {
				return
			}
			if f.Track.Kind == media.Video {
				lc.frames.Add(1)
			}
		}
	}()
	s := mediatest.Load(t)
	for _, f := range s.Frames {
		if f.Track.Kind == media.Video {
			lc.want += int64(passes)
		}
	}
	go func() { lc.sent <- cam.play(context.Background(), passes) }()
	done := false
	t.Cleanup(func() {
		cam.close()
		if !done {
			<-lc.sent
		}
	})
	lc.finish = func(t *testing.T) {
		t.Helper()
		done = true
		if err := <-lc.sent; err != nil {
			t.Fatalf("honest camera: %v", err)
		}
		mediatest.Eventually(t, "every frame of the honest camera", func() bool { return lc.frames.Load() >= lc.want })
		if n := lc.frames.Load(); n != lc.want {
			t.Fatalf("the hub received %d video frames, the camera sent %d", n, lc.want)
		}
	}
	return lc
}

// flowing waits until more video frames than n reached the hub.
func (lc *liveCamera) flowing(t *testing.T, what string) int64 {
	t.Helper()
	n := lc.frames.Load()
	mediatest.Eventually(t, "camera frames keep arriving "+what, func() bool { return lc.frames.Load() > n+10 })
	return lc.frames.Load()
}
