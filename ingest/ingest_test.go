package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const secret = "camera-secret-1"

// world is a database with an officer wearing a device, assigned to an
// incident, and a running ingest.
type world struct {
	db       *index.DB
	store    store // what the ingest uses (db, or a fault injector over it)
	srv      *Server
	reg      *prometheus.Registry
	officer  index.Officer
	device   index.Device
	incident index.Incident
	streams  chan *media.Stream
}

type worldOpts struct {
	cfg      Config
	checkout bool
	wrap     func(store) store
}

func newWorld(t *testing.T, o worldOpts) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{db: storagetest.NewDB(t), reg: prometheus.NewRegistry(), streams: make(chan *media.Stream, 16)}
	var err error
	if w.officer, err = w.db.CreateOfficer(ctx, index.Officer{Badge: "2001", Name: "Zhang San", Unit: "Patrol 1"}); err != nil {
		t.Fatal(err)
	}
	if w.device, err = w.db.CreateDevice(ctx, index.Device{Serial: "BWC-" + uuid.NewString()[:8], Secret: secret}); err != nil {
		t.Fatal(err)
	}
	if w.incident, err = w.db.CreateIncident(ctx, index.Incident{Number: "110-" + uuid.NewString()[:6], OpenedAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if o.checkout {
		if _, err := w.db.CheckOut(ctx, w.device.ID, w.officer.ID, time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.db.Assign(ctx, w.incident.ID, w.officer.ID, time.Now().Add(-2*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	w.store = w.db
	if o.wrap != nil {
		w.store = o.wrap(w.db)
	}
	cfg := testConfig(o.cfg)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w.srv, err = New(cfg, w.store, w.reg, log)
	if err != nil {
		t.Fatal(err)
	}
	w.srv.OnStream(func(s *media.Stream) { w.streams <- s })
	t.Cleanup(runServer(t, w.srv))
	return w
}

// runServer runs srv until the returned stop is called (it then waits for
// Run and closes srv); it returns once srv listens.
func runServer(tb testing.TB, srv *Server) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		srv.Close()
		tb.Fatalf("ingest run: %v", err)
	}
	return func() {
		cancel()
		<-done
		srv.Close()
	}
}

// testMaxConns is the connection cap of the tests (the platform's).
const testMaxConns = 4096

// testConfig returns c with every field it leaves zero set to the value
// the platform runs with (cmd/bwc's defaults), on a free loopback port.
func testConfig(c Config) Config {
	set := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	if c.RTSPAddr == "" {
		c.RTSPAddr = "127.0.0.1:0"
	}
	set(&c.Grace, 30*time.Second)
	set(&c.MediaTimeout, 10*time.Second)
	set(&c.LinkBuffer, 5*time.Minute)
	set(&c.LinkInterval, 15*time.Second)
	set(&c.MaxClockSkew, 10*time.Minute)
	set(&c.DevicesReload, 30*time.Second)
	set(&c.HandshakeTimeout, 10*time.Second)
	set(&c.ClaimTimeout, 2*time.Second)
	if c.Node == "" {
		c.Node = "test-node"
	}
	set(&c.AuthFailureWindow, time.Minute)
	setInt(&c.MaxConns, testMaxConns)
	setInt(&c.MaxConnsPerAddr, 32)
	setInt(&c.AuthFailuresPerAddr, 10)
	setInt(&c.AuthFailuresPerDevice, 30)
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func (w *world) url(serial, pass string) string {
	return fmt.Sprintf("rtsp://%s:%s@%s/live/%s", serial, pass, w.srv.Addr(), serial)
}

func (w *world) nextStream(t *testing.T) *media.Stream {
	t.Helper()
	select {
	case s := <-w.streams:
		return s
	case <-time.After(30 * time.Second):
		t.Fatal("no stream started")
		return nil
	}
}

// readAll collects a reader's frames until the stream ends.
func readAll(r *media.Reader) <-chan []*media.Frame {
	out := make(chan []*media.Frame, 1)
	go func() {
		var got []*media.Frame
		for {
			f, err := r.Read(context.Background())
			if err != nil {
				out <- got
				return
			}
			got = append(got, f)
		}
	}()
	return out
}

// TestFFmpegPublishIsBoundAndLinked: a real camera (ffmpeg) publishes over
// TCP; the recording is bound to the officer wearing the device, linked to
// their incident by the assignment rule, carries H.264 and AAC from the
// first keyframe, and ends after the grace window.
func TestFFmpegPublishIsBoundAndLinked(t *testing.T) {
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			cfg := Config{Grace: 500 * time.Millisecond}
			if transport == "udp" {
				cfg.UDPRTPAddr, cfg.UDPRTCPAddr = freeUDPPair(t)
			}
			w := newWorld(t, worldOpts{cfg: cfg, checkout: true})
			ffmpeg := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", mediatest.Path(),
				"-c:v", "copy", "-c:a", "aac", "-f", "rtsp", "-rtsp_transport", transport, w.url(w.device.Serial, secret))
			ffmpeg.Stderr = os.Stderr
			if err := ffmpeg.Start(); err != nil {
				t.Fatal(err)
			}
			st := w.nextStream(t)
			frames := readAll(st.Subscribe(media.ReaderOptions{Name: "test", Size: 4096}))
			if err := ffmpeg.Wait(); err != nil {
				t.Fatalf("ffmpeg: %v", err)
			}
			got := <-frames // the stream closes when the grace window passes
			// every access unit, in order, on the camera's timeline
			var want []time.Duration
			for _, f := range mediatest.Load(t).Frames {
				if f.Track.Kind == media.Video {
					want = append(want, f.PTS)
				}
			}
			var video []*media.Frame
			audio := 0
			var lastAudio time.Duration = -1
			for _, f := range got {
				if f.Track.Kind == media.Video {
					if len(video) > 0 && f.DTS <= video[len(video)-1].DTS {
						t.Fatalf("video DTS not increasing: %v after %v", f.DTS, video[len(video)-1].DTS)
					}
					video = append(video, f)
					continue
				}
				if f.PTS < lastAudio {
					t.Fatalf("audio PTS went back: %v after %v", f.PTS, lastAudio)
				}
				lastAudio = f.PTS
				audio += len(f.AU) // ffmpeg puts several AAC frames in one packet
			}
			if len(video) == 0 || !video[0].Key {
				t.Fatal("no video, or the first video frame is not a keyframe")
			}
			if transport == "tcp" {
				if len(video) != len(want) {
					t.Fatalf("received %d video frames, want all %d", len(video), len(want))
				}
				for i, f := range video {
					if d := (f.PTS - video[0].PTS) - (want[i] - want[0]); d.Abs() > time.Millisecond {
						t.Fatalf("video frame %d at %v, want %v", i, f.PTS-video[0].PTS, want[i]-want[0])
					}
				}
			} else if len(video) < len(want)*8/10 {
				t.Fatalf("received %d of %d video frames over UDP", len(video), len(want))
			}
			if min := map[string]int{"tcp": 90, "udp": 75}[transport]; audio < min { // UDP on a busy machine may lose a few
				t.Fatalf("received %d AAC frames over %s, want about 94", audio, transport)
			}
			info := st.Info()
			if v := info.Video(); v == nil || v.Codec != media.H264 || v.Width != 1280 || v.Height != 720 {
				t.Fatalf("video track = %+v", v)
			}
			ctx := context.Background()
			var rec index.Recording
			mediatest.Eventually(t, "recording ended in the index", func() bool {
				var err error
				rec, err = w.db.Recording(ctx, info.RecordingID)
				return err == nil && rec.Status == index.RecordingEnded
			})
			if rec.OfficerID == nil || *rec.OfficerID != w.officer.ID || rec.VideoCodec != "H264" || rec.AudioCodec != "MPEG4-GENERIC" || rec.Width != 1280 {
				t.Fatalf("recording = %+v", rec)
			}
			if d := rec.EndedAt.Sub(rec.StartedAt); d < time.Second || d > 10*time.Second {
				t.Fatalf("recording spans %v, want about 2 s", d)
			}
			links, err := w.db.RecordingLinks(ctx, rec.ID, false)
			if err != nil || len(links) != 1 || links[0].IncidentID != w.incident.ID || links[0].Method != index.LinkAuto {
				t.Fatalf("links = %+v %v", links, err)
			}
			if n := testutil.ToFloat64(w.srv.met.publishes); n != 1 {
				t.Fatalf("publishes = %v", n)
			}
		})
	}
}

func freeUDPPair(t *testing.T) (string, string) {
	t.Helper()
	for i := 0; i < 50; i++ {
		a, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := a.LocalAddr().(*net.UDPAddr).Port
		a.Close()
		if port%2 == 1 || port > 65000 {
			continue
		}
		b, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port+1))
		if err != nil {
			continue
		}
		b.Close()
		return fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port+1)
	}
	t.Fatal("no free UDP port pair")
	return "", ""
}

// TestRefusedPublishes: bad credentials, unknown or disabled devices, bad
// paths and streams without video are refused with the proper RTSP status
// and counted, and no recording is made.
func TestRefusedPublishes(t *testing.T) {
	w := newWorld(t, worldOpts{checkout: true})
	ctx := context.Background()
	disabled, err := w.db.CreateDevice(ctx, index.Device{Serial: "BWC-OFF-" + uuid.NewString()[:4], Secret: secret, Status: index.DeviceDisabled})
	if err != nil {
		t.Fatal(err)
	}
	addr := w.srv.Addr()
	for _, tc := range []struct {
		name      string
		url       string
		videoOnly bool
		noVideo   bool
		status    base.StatusCode
		reason    string
	}{
		{"wrong secret", w.url(w.device.Serial, "wrong"), false, false, base.StatusUnauthorized, "bad_credentials"},
		{"user is not the device", fmt.Sprintf("rtsp://other:%s@%s/live/%s", secret, addr, w.device.Serial), false, false, base.StatusUnauthorized, "bad_credentials"},
		{"unknown device", w.url("NO-SUCH-CAM", secret), false, false, base.StatusUnauthorized, "unknown_device"},
		{"disabled device", w.url(disabled.Serial, secret), false, false, base.StatusForbidden, "disabled"},
		{"bad path", fmt.Sprintf("rtsp://%s:%s@%s/other/%s", w.device.Serial, secret, addr, w.device.Serial), false, false, base.StatusNotFound, "bad_path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(w.srv.met.authFailures.WithLabelValues(tc.reason))
			c, err := dialCamera(t, tc.url, false, tc.videoOnly)
			if err == nil {
				c.close()
				t.Fatal("publish accepted")
			}
			var bad liberrors.ErrClientBadStatusCode
			if !errors.As(err, &bad) || bad.Code != tc.status {
				t.Fatalf("err = %v, want status %d", err, tc.status)
			}
			if after := testutil.ToFloat64(w.srv.met.authFailures.WithLabelValues(tc.reason)); after != before+1 {
				t.Fatalf("refusals[%s] = %v, want %v", tc.reason, after, before+1)
			}
		})
	}
	if n := len(w.srv.Live()); n != 0 {
		t.Fatalf("%d live recordings after refusals", n)
	}
	recs, err := w.db.Recordings(ctx, index.RecordingFilter{})
	if err != nil || len(recs) != 0 {
		t.Fatalf("recordings after refusals: %d %v", len(recs), err)
	}
}

// TestNoVideoRefused: a camera announcing only audio is refused with a
// clear reason.
func TestNoVideoRefused(t *testing.T) {
	w := newWorld(t, worldOpts{})
	ffmpeg := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", mediatest.Path(), "-vn", "-c:a", "aac",
		"-f", "rtsp", "-rtsp_transport", "tcp", w.url(w.device.Serial, secret))
	out, err := ffmpeg.CombinedOutput()
	if err == nil {
		t.Fatal("audio-only publish accepted")
	}
	if n := testutil.ToFloat64(w.srv.met.authFailures.WithLabelValues("no_video")); n != 1 {
		t.Fatalf("no_video refusals = %v (ffmpeg: %s)", n, out)
	}
}

// ffmpegPublish runs ffmpeg as a camera publishing the sample once, in
// real time, and returns its error and output.
func ffmpegPublish(url string) ([]byte, error) {
	return exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", mediatest.Path(),
		"-c:v", "copy", "-c:a", "aac", "-f", "rtsp", "-rtsp_transport", "tcp", url).CombinedOutput()
}

// TestFFmpegReconnectWithinGrace: a camera (ffmpeg) nobody checked out
// records, flagged unbound; when it drops and publishes again within the
// grace window the recording continues, the gap is recorded and the first
// frame after it is marked; after the window a new recording starts. A
// wrong password is refused.
func TestFFmpegReconnectWithinGrace(t *testing.T) {
	w := newWorld(t, worldOpts{cfg: Config{Grace: 3 * time.Second}})
	ctx := context.Background()
	if out, err := ffmpegPublish(w.url(w.device.Serial, "not-the-secret")); err == nil {
		t.Fatalf("wrong password accepted: %s", out)
	}
	if n := testutil.ToFloat64(w.srv.met.authFailures.WithLabelValues("bad_credentials")); n != 1 {
		t.Fatalf("bad_credentials refusals = %v", n)
	}
	errc := make(chan error, 1)
	go func() {
		out, err := ffmpegPublish(w.url(w.device.Serial, secret))
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
		errc <- err
	}()
	st := w.nextStream(t)
	frames := readAll(st.Subscribe(media.ReaderOptions{Name: "test", Size: 4096}))
	mediatest.Eventually(t, "unbound recording indexed", func() bool {
		l := w.srv.Live()
		return len(l) == 1 && l[0].Indexed && l[0].Unbound
	})
	if err := <-errc; err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	mediatest.Eventually(t, "reconnecting status", func() bool {
		l := w.srv.Live()
		return len(l) == 1 && l[0].Status == index.RecordingReconnecting
	})
	time.Sleep(300 * time.Millisecond) // the link is down a while: the gap
	if out, err := ffmpegPublish(w.url(w.device.Serial, secret)); err != nil {
		t.Fatalf("ffmpeg again: %v: %s", err, out)
	}
	select {
	case s2 := <-w.streams:
		t.Fatalf("a second recording %v started on reconnect", s2.Info().RecordingID)
	default:
	}
	got := <-frames // ends after the grace window
	gapAt := -1
	var last time.Duration
	for i, f := range got {
		if f.Gap && gapAt < 0 {
			gapAt = i
		}
		if f.Track.Kind == media.Video {
			if f.DTS <= last && i > 0 {
				t.Fatalf("video DTS not increasing across the reconnect: %v after %v", f.DTS, last)
			}
			last = f.DTS
		}
	}
	if gapAt < 0 || gapAt < len(got)/3 {
		t.Fatalf("first frame after the gap = %d of %d", gapAt, len(got))
	}
	id := st.Info().RecordingID
	var rec index.Recording
	mediatest.Eventually(t, "recording ended", func() bool {
		var err error
		rec, err = w.db.Recording(ctx, id)
		return err == nil && rec.Status == index.RecordingEnded
	})
	if rec.OfficerID != nil {
		t.Fatalf("unbound recording bound to %v", rec.OfficerID)
	}
	g, err := w.db.Gaps(ctx, id)
	if err != nil || len(g) != 1 || g[0].EndedAt.Sub(g[0].StartedAt) < 300*time.Millisecond {
		t.Fatalf("gaps = %+v %v", g, err)
	}
	// after the grace window: a new recording
	go func() { _, _ = ffmpegPublish(w.url(w.device.Serial, secret)) }()
	st3 := w.nextStream(t)
	if st3.Info().RecordingID == id {
		t.Fatal("publish after the grace window continued the old recording")
	}
	<-readAll(st3.Subscribe(media.ReaderOptions{Name: "test"})) // ffmpeg done, grace passed
}

// TestHalfOpenSessionReplaced: a camera that publishes again while its old
// session is still open (half-open TCP after a cell change) replaces it at
// once, in the same recording.
func TestHalfOpenSessionReplaced(t *testing.T) {
	w := newWorld(t, worldOpts{cfg: Config{Grace: time.Second}, checkout: true})
	s := mediatest.Load(t)
	old, err := dialCamera(t, w.url(w.device.Serial, secret), false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer old.close()
	st := w.nextStream(t)
	if err := old.send(s.Loop(1, time.Now())[:30]); err != nil {
		t.Fatal(err)
	}
	cam, err := dialCamera(t, w.url(w.device.Serial, secret), false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer cam.close()
	if err := cam.send(s.Loop(1, time.Now())); err != nil {
		t.Fatal(err)
	}
	mediatest.Eventually(t, "old session closed by the server", func() bool { return old.client.Wait() != nil })
	l := w.srv.Live()
	if len(l) != 1 || l[0].RecordingID != st.Info().RecordingID || l[0].Reconnects != 1 || l[0].Status != index.RecordingLive {
		t.Fatalf("live = %+v", l)
	}
}

// TestSilentPublisherTimedOut: a camera that stops sending media is closed
// after the media timeout and its recording waits for it.
func TestSilentPublisherTimedOut(t *testing.T) {
	w := newWorld(t, worldOpts{cfg: Config{Grace: time.Minute, MediaTimeout: time.Second}})
	s := mediatest.Load(t)
	cam, err := dialCamera(t, w.url(w.device.Serial, secret), false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer cam.close()
	w.nextStream(t)
	if err := cam.send(s.Loop(1, time.Now())[:20]); err != nil {
		t.Fatal(err)
	}
	mediatest.Eventually(t, "silent camera timed out", func() bool {
		l := w.srv.Live()
		return len(l) == 1 && l[0].Status == index.RecordingReconnecting
	})
	if n := testutil.ToFloat64(w.srv.met.timeouts); n != 1 {
		t.Fatalf("media timeouts = %v, want 1", n)
	}
}

// faultyStore fails every call while down is set: PostgreSQL unreachable.
type faultyStore struct {
	store
	mu   sync.Mutex
	down bool
}

var errDown = errors.New("connection refused (injected)")

func (f *faultyStore) isDown() bool  { f.mu.Lock(); defer f.mu.Unlock(); return f.down }
func (f *faultyStore) set(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }

func (f *faultyStore) DeviceBySerial(ctx context.Context, s string) (index.Device, error) {
	if f.isDown() {
		return index.Device{}, errDown
	}
	return f.store.DeviceBySerial(ctx, s)
}
func (f *faultyStore) WearerAt(ctx context.Context, d uuid.UUID, at time.Time) (index.Checkout, error) {
	if f.isDown() {
		return index.Checkout{}, errDown
	}
	return f.store.WearerAt(ctx, d, at)
}
func (f *faultyStore) CreateRecording(ctx context.Context, r index.Recording, by string) (index.Recording, error) {
	if f.isDown() {
		return index.Recording{}, errDown
	}
	return f.store.CreateRecording(ctx, r, by)
}
func (f *faultyStore) SetHeldStatus(ctx context.Context, id uuid.UUID, node, st, remote string, until time.Time) error {
	if f.isDown() {
		return errDown
	}
	return f.store.SetHeldStatus(ctx, id, node, st, remote, until)
}

// TestDatabaseDownStillRecords: with PostgreSQL unreachable, a known camera
// authenticates from the cache and its media flows at once; the recording
// is written, bound to the officer wearing the camera at its start, when
// the database is back.
func TestDatabaseDownStillRecords(t *testing.T) {
	var fs *faultyStore
	w := newWorld(t, worldOpts{checkout: true, wrap: func(s store) store { fs = &faultyStore{store: s}; return fs }})
	fs.set(true)
	s := mediatest.Load(t)
	cam, err := dialCamera(t, w.url(w.device.Serial, secret), false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer cam.close()
	st := w.nextStream(t)
	r := st.Subscribe(media.ReaderOptions{Name: "test", Size: 4096})
	defer r.Close()
	if err := cam.send(s.Loop(1, time.Now())); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := r.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.Track.Kind == media.Video {
			if !f.Key {
				t.Fatal("first video frame is not a keyframe")
			}
			break
		}
	}
	id := st.Info().RecordingID
	if _, err := w.db.Recording(context.Background(), id); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("recording row while the database is down: %v", err)
	}
	if l := w.srv.Live(); len(l) != 1 || l[0].Indexed || l[0].Unbound {
		t.Fatalf("live while the database is down = %+v", l)
	}
	fs.set(false)
	mediatest.Eventually(t, "recording indexed and bound", func() bool {
		l := w.srv.Live()
		return len(l) == 1 && l[0].Indexed && l[0].Officer != nil && l[0].Officer.ID == w.officer.ID && len(l[0].Incidents) == 1
	})
	rec, err := w.db.Recording(context.Background(), id)
	if err != nil || rec.OfficerID == nil || *rec.OfficerID != w.officer.ID {
		t.Fatalf("recording = %+v %v", rec, err)
	}
}

// FuzzSerialOf: any RTSP path is either a valid device serial under
// live/ or refused.
func FuzzSerialOf(f *testing.F) {
	f.Add("live/BWC-001")
	f.Add("/live/BWC-001/")
	f.Add("live/../etc")
	f.Fuzz(func(t *testing.T, path string) {
		serial, ok := serialOf(path)
		if ok && !index.ValidSerial(serial) {
			t.Fatalf("accepted invalid serial %q from %q", serial, path)
		}
	})
}

// TestFFmpegCodecs: H.265 video and G.711 / Opus audio are taken in as
// they are, with parameter sets from the SDP.
func TestFFmpegCodecs(t *testing.T) {
	for _, tc := range []struct {
		name         string
		args         []string
		video, audio media.Codec
	}{
		{"H.265 + G.711 µ-law", []string{"-c:v", "libx265", "-x265-params", "log-level=error:keyint=10", "-c:a", "pcm_mulaw", "-ar", "8000"}, media.H265, media.PCMU},
		{"H.264 + G.711 A-law", []string{"-c:v", "libx264", "-g", "10", "-c:a", "pcm_alaw", "-ar", "8000"}, media.H264, media.PCMA},
		{"H.264 + Opus", []string{"-c:v", "libx264", "-g", "10", "-c:a", "libopus"}, media.H264, media.Opus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, worldOpts{cfg: Config{Grace: time.Second}})
			args := append([]string{"-hide_banner", "-loglevel", "error", "-re",
				"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=2", "-f", "lavfi", "-i", "sine=duration=2",
				"-preset", "ultrafast", "-pix_fmt", "yuv420p"}, tc.args...)
			args = append(args, "-f", "rtsp", "-rtsp_transport", "tcp", w.url(w.device.Serial, secret))
			errc := make(chan error, 1)
			go func() {
				out, err := exec.Command("ffmpeg", args...).CombinedOutput()
				if err != nil {
					err = fmt.Errorf("%v: %s", err, out)
				}
				errc <- err
			}()
			st := w.nextStream(t)
			got := <-readAll(st.Subscribe(media.ReaderOptions{Name: "test", Size: 4096}))
			if err := <-errc; err != nil {
				t.Fatalf("ffmpeg: %v", err)
			}
			var video, audio int
			for _, f := range got {
				switch {
				case f.Track.Codec == tc.video:
					if video == 0 && !f.Key {
						t.Fatal("first video frame is not a keyframe")
					}
					if f.Track.Width != 320 || f.Track.Height != 240 {
						t.Fatalf("video %dx%d", f.Track.Width, f.Track.Height)
					}
					video++
				case f.Track.Codec == tc.audio:
					audio++
				default:
					t.Fatalf("frame of codec %s", f.Track.Codec)
				}
			}
			if video < 15 || audio < 10 {
				t.Fatalf("received %d video and %d audio frames", video, audio)
			}
		})
	}
}
