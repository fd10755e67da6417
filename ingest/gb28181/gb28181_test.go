package gb28181

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/bwcplatform/bwc/ingest"
	"github.com/bwcplatform/bwc/ingest/gb28181/gbtest"
	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	platformID = "34020000002000000001"
	domain     = "3402000000"
	secret     = "gb-secret-12345"
)

// world is a database with an officer wearing a GB/T 28181 device, a
// running ingest and a running GB/T 28181 server.
type world struct {
	db      *index.DB
	ing     *ingest.Server
	gb      *Server
	reg     *prometheus.Registry
	officer index.Officer
	device  index.Device
	streams chan *media.Reader
}

// positions are the device's stored fixes (the real store, index.AddPosition).
func (w *world) positions(t *testing.T) []index.Position {
	t.Helper()
	now := time.Now()
	ps, err := w.db.Positions(context.Background(), w.device.Serial, now.Add(-time.Hour), now.Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// gbID makes a fresh 20-digit device ID (the tests share a database).
func gbID() string {
	return fmt.Sprintf("3402000000132%07d", rand.IntN(10000000))
}

func newWorld(t *testing.T, mediaTransport string, cfg Config) *world {
	t.Helper()
	return newWorldGrace(t, mediaTransport, cfg, 30*time.Second)
}

// newWorldGrace is newWorld with the ingest's reconnect grace window.
func newWorldGrace(t *testing.T, mediaTransport string, cfg Config, grace time.Duration) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{db: storagetest.NewDB(t), reg: prometheus.NewRegistry(), streams: make(chan *media.Reader, 8)}
	var err error
	if w.officer, err = w.db.CreateOfficer(ctx, index.Officer{Badge: "3001", Name: "Li Si", Unit: "Patrol 2"}); err != nil {
		t.Fatal(err)
	}
	if w.device, err = w.db.CreateDevice(ctx, index.Device{Serial: "GB-" + uuid.NewString()[:8], Secret: secret,
		GBID: gbID(), GBTransport: mediaTransport}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.CheckOut(ctx, w.device.ID, w.officer.ID, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w.ing, err = ingest.New(ingest.Config{RTSPAddr: "127.0.0.1:0", Grace: grace, MediaTimeout: 10 * time.Second,
		LinkBuffer: 5 * time.Minute, LinkInterval: 15 * time.Second, MaxClockSkew: 10 * time.Minute, DevicesReload: 30 * time.Second,
		HandshakeTimeout: 10 * time.Second, ClaimTimeout: 2 * time.Second, Node: "gb-test", AuthFailureWindow: time.Minute,
		MaxConns: 64, MaxConnsPerAddr: 32, AuthFailuresPerAddr: 10, AuthFailuresPerDevice: 30}, w.db, w.reg, log.With("component", "ingest"))
	if err != nil {
		t.Fatal(err)
	}
	w.ing.OnStream(func(s *media.Stream) { w.streams <- s.Subscribe(media.ReaderOptions{Name: "test", Size: 4096}) })
	ictx, icancel := context.WithCancel(context.Background())
	idone := make(chan error, 1)
	go func() { idone <- w.ing.Run(ictx) }()
	select {
	case <-w.ing.Ready():
	case err := <-idone:
		t.Fatalf("ingest: %v", err)
	}
	cfg = testConfig(cfg)
	if w.gb, err = New(cfg, w.db, w.ing, w.db, w.reg, log.With("component", "gb28181")); err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithCancel(context.Background())
	gdone := make(chan error, 1)
	go func() { gdone <- w.gb.Run(gctx) }()
	t.Cleanup(func() {
		gcancel()
		<-gdone
		_ = w.gb.Close()
		icancel()
		<-idone
		_ = w.ing.Close()
	})
	return w
}

// testConfig fills what c leaves zero with the platform's defaults
// (cmd/bwc), on free loopback ports.
func testConfig(c Config) Config {
	set := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	c.ID, c.Domain = platformID, domain
	if c.SIPAddr == "" {
		c.SIPAddr = "127.0.0.1:0"
	}
	if c.MediaAddr == "" {
		c.MediaAddr = "127.0.0.1:0"
	}
	set(&c.KeepaliveTimeout, 180*time.Second)
	set(&c.InviteTimeout, 10*time.Second)
	set(&c.MediaWait, 10*time.Second)
	set(&c.RetryInterval, 5*time.Second)
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func (w *world) counter(name, reason string) float64 {
	var c *prometheus.CounterVec
	switch name {
	case "refused":
		c = w.gb.met.refused
	default:
		c = w.gb.met.media
	}
	return testutil.ToFloat64(c.WithLabelValues(reason))
}

func (w *world) nextStream(t *testing.T) *media.Reader {
	t.Helper()
	select {
	case r := <-w.streams:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no recording started")
		return nil
	}
}

// TestDeviceRecords: a simulated body camera registers with digest over
// TCP or UDP, keeps alive, answers the Catalog query and the INVITE, and
// sends H.264 + G.711 in a PS stream over TCP (passive) or UDP; the stream
// becomes a gb28181 recording bound to the officer wearing the device,
// carrying H.264 from a keyframe and G.711 A-law; its position reaches the
// sink; when the device unregisters the recording waits for it.
func TestDeviceRecords(t *testing.T) {
	for _, tc := range []struct{ sip, media string }{
		{"TCP", index.GBTransportTCP},
		{"UDP", index.GBTransportUDP},
	} {
		t.Run(tc.sip+"/"+tc.media, func(t *testing.T) {
			w := newWorld(t, tc.media, Config{})
			dev := gbtest.NewDevice(t, w.gb.SIPAddr(), platformID, domain, w.device.GBID, secret, tc.sip)
			code, err := dev.Register(3600)
			if err != nil || code != 200 {
				t.Fatalf("register: %d %v", code, err)
			}
			dev.KeepAlive(time.Second)
			r := w.nextStream(t)
			defer r.Close()
			info := r.Name()
			_ = info
			var video, audio, keys int
			var lastVideo time.Duration
			var width int
			var audioCodec media.Codec
			deadline := time.Now().Add(30 * time.Second)
			for video < 75 || audio < 50 { // 3 s of both
				ctx, cancel := context.WithDeadline(context.Background(), deadline)
				f, err := r.Read(ctx)
				cancel()
				if err != nil {
					t.Fatalf("read after %d video, %d audio frames: %v", video, audio, err)
				}
				switch f.Track.Kind {
				case media.Video:
					if video == 0 && !f.Key {
						t.Fatal("the first video frame is not a keyframe")
					}
					if f.Track.Codec != media.H264 {
						t.Fatalf("video codec %s", f.Track.Codec)
					}
					if video > 0 && f.PTS <= lastVideo {
						t.Fatalf("video PTS not increasing: %v after %v", f.PTS, lastVideo)
					}
					lastVideo, width = f.PTS, f.Track.Width
					video++
					if f.Key {
						keys++
					}
				case media.Audio:
					audio++
					audioCodec = f.Track.Codec
				}
			}
			if width != 320 || keys < 2 || audioCodec != media.PCMA {
				t.Fatalf("width %d, %d keyframes, audio %s", width, keys, audioCodec)
			}
			if dev.CatalogAsked.Load() == 0 {
				t.Fatal("the platform did not ask for the Catalog")
			}
			live := w.ing.Live()
			if len(live) != 1 || live[0].Device != w.device.Serial {
				t.Fatalf("live = %+v", live)
			}
			rec, err := w.db.Recording(context.Background(), live[0].RecordingID)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Source != index.SourceGB || rec.OfficerID == nil || *rec.OfficerID != w.officer.ID || rec.VideoCodec != "H264" {
				t.Fatalf("recording = source %s officer %v video %s", rec.Source, rec.OfficerID, rec.VideoCodec)
			}
			if st := w.gb.Devices(); len(st) != 1 || !st[0].Streaming || len(st[0].Channels) != 1 || st[0].Channels[0] != dev.Channel() {
				t.Fatalf("devices = %+v", st)
			}

			// a position sent as MESSAGE is stored (device local time, as GB/T 28181 devices send it)
			fix := time.Now().Add(-time.Minute).Truncate(time.Second)
			code, err = dev.Message(fmt.Sprintf("<?xml version=\"1.0\"?>\r\n<Notify>\r\n<CmdType>MobilePosition</CmdType>\r\n<SN>9</SN>\r\n<DeviceID>%s</DeviceID>\r\n<Time>%s</Time>\r\n<Longitude>121.4737</Longitude>\r\n<Latitude>31.2304</Latitude>\r\n<Speed>12.5</Speed>\r\n<Direction>90</Direction>\r\n</Notify>\r\n", w.device.GBID, fix.Format("2006-01-02T15:04:05")))
			if err != nil || code != 200 {
				t.Fatalf("position: %d %v", code, err)
			}
			mediatest.Eventually(t, "position stored", func() bool { return len(w.positions(t)) == 1 })
			if p := w.positions(t)[0]; p.Lat != 31.2304 || p.Lon != 121.4737 || p.Speed == nil || *p.Speed != 12.5 ||
				p.Direction == nil || *p.Direction != 90 || !p.At.Equal(fix) || p.Source != index.PositionGB28181 {
				t.Fatalf("position = %+v", p)
			}

			// unregistering ends the media session: the recording waits
			if code, err := dev.Register(0); err != nil || code != 200 {
				t.Fatalf("unregister: %d %v", code, err)
			}
			mediatest.Eventually(t, "recording reconnecting", func() bool {
				l := w.ing.Live()
				return len(l) == 1 && l[0].Status == index.RecordingReconnecting
			})
			if len(w.gb.Devices()) != 0 {
				t.Fatal("device still registered after unregistering")
			}
		})
	}
}

// TestRefusedRegistrations: a wrong password is refused with 401 and
// counted; an unknown device ID with 403; a keepalive of a device not
// registered with 403; a message naming a registered device from another
// address with 403.
func TestRefusedRegistrations(t *testing.T) {
	w := newWorld(t, index.GBTransportTCP, Config{})
	for _, tc := range []struct {
		name, id, secret, transport string
		want                        int
		reason                      string
	}{
		{"wrong password TCP", w.device.GBID, "not-the-secret", "TCP", 401, "bad_credentials"},
		{"wrong password UDP", w.device.GBID, "not-the-secret", "UDP", 401, "bad_credentials"},
		{"unknown device", gbID(), secret, "TCP", 403, "unknown_device"},
		{"not 20 digits", "3402000000132", secret, "UDP", 403, "bad_device_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.counter("refused", tc.reason)
			dev := gbtest.NewDevice(t, w.gb.SIPAddr(), platformID, domain, tc.id, tc.secret, tc.transport)
			code, err := dev.Register(3600)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.want {
				t.Fatalf("status %d, want %d", code, tc.want)
			}
			if got := w.counter("refused", tc.reason); got != before+1 {
				t.Fatalf("%s counted %v times, want %v", tc.reason, got, before+1)
			}
			code, err = dev.Message(fmt.Sprintf("<?xml version=\"1.0\"?><Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>%s</DeviceID><Status>OK</Status></Notify>", tc.id))
			if err != nil || code != 403 {
				t.Fatalf("keepalive of an unregistered device: %d %v", code, err)
			}
		})
	}
	if len(w.gb.Devices()) != 0 {
		t.Fatal("a refused device is registered")
	}

	// a client naming a registered device from another address is not it
	dev := gbtest.NewDevice(t, w.gb.SIPAddr(), platformID, domain, w.device.GBID, secret, "TCP")
	if code, err := dev.Register(3600); err != nil || code != 200 {
		t.Fatalf("register: %d %v", code, err)
	}
	other := gbtest.NewDevice(t, w.gb.SIPAddr(), platformID, domain, w.device.GBID, "", "UDP")
	before := w.counter("refused", "source_mismatch")
	code, err := other.Message(fmt.Sprintf("<?xml version=\"1.0\"?><Notify><CmdType>MobilePosition</CmdType><SN>1</SN><DeviceID>%s</DeviceID><Longitude>1</Longitude><Latitude>2</Latitude></Notify>", w.device.GBID))
	if err != nil || code != 403 || w.counter("refused", "source_mismatch") != before+1 || len(w.positions(t)) != 0 {
		t.Fatalf("position from another address: %d %v, positions %v", code, err, w.positions(t))
	}
}

// streamingDevice registers the world's device over TCP, keeps it alive
// every 500 ms and waits for its first frame in the hub.
func (w *world) streamingDevice(t *testing.T) *gbtest.Device {
	t.Helper()
	dev := gbtest.NewDevice(t, w.gb.SIPAddr(), platformID, domain, w.device.GBID, secret, "TCP")
	if code, err := dev.Register(3600); err != nil || code != 200 {
		t.Fatalf("register: %d %v", code, err)
	}
	dev.KeepAlive(500 * time.Millisecond)
	r := w.nextStream(t)
	t.Cleanup(r.Close)
	if _, err := r.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	return dev
}

// TestKeepaliveTimeout: a device that stops keeping alive goes offline
// and its media session ends (the recording waits for it); when it
// registers again its recording continues with the gap recorded.
func TestKeepaliveTimeout(t *testing.T) {
	w := newWorld(t, index.GBTransportTCP, Config{KeepaliveTimeout: 3 * time.Second})
	dev := w.streamingDevice(t)
	dev.SetKeepalive(false)
	mediatest.Eventually(t, "device offline", func() bool { return len(w.gb.Devices()) == 0 })
	mediatest.Eventually(t, "recording reconnecting", func() bool {
		l := w.ing.Live()
		return len(l) == 1 && l[0].Status == index.RecordingReconnecting
	})
	first := w.ing.Live()[0].RecordingID

	dev.SetKeepalive(true)
	if code, err := dev.Register(3600); err != nil || code != 200 {
		t.Fatalf("register again: %d %v", code, err)
	}
	mediatest.Eventually(t, "recording live again", func() bool {
		l := w.ing.Live()
		return len(l) == 1 && l[0].Status == index.RecordingLive && l[0].Reconnects == 1
	})
	if id := w.ing.Live()[0].RecordingID; id != first {
		t.Fatalf("a new recording %s, not the continued %s", id, first)
	}
	mediatest.Eventually(t, "the gap recorded", func() bool {
		gaps, err := w.db.Gaps(context.Background(), first)
		return err == nil && len(gaps) == 1
	})
}

// TestOfflineDeviceRecordingEnds: a device that stops its keepalives and
// does not come back has its recording ended once the grace window has
// passed (its row ended, nothing live).
func TestOfflineDeviceRecordingEnds(t *testing.T) {
	w := newWorldGrace(t, index.GBTransportTCP, Config{KeepaliveTimeout: 2 * time.Second}, 2*time.Second)
	dev := w.streamingDevice(t)
	id := w.ing.Live()[0].RecordingID
	dev.SetKeepalive(false)
	mediatest.Eventually(t, "device offline", func() bool { return len(w.gb.Devices()) == 0 })
	mediatest.Eventually(t, "recording ended after the grace window", func() bool {
		rec, err := w.db.Recording(context.Background(), id)
		return err == nil && rec.Status == index.RecordingEnded && len(w.ing.Live()) == 0
	})
}

// TestMediaFailures: a device that answers the INVITE but never reaches
// the media port, and one whose PS carries no video, are each counted by
// reason (media_unreachable, no_video), BYEd and INVITEd again; no
// recording starts.
func TestMediaFailures(t *testing.T) {
	for _, tc := range []struct {
		media, transport, reason string
	}{
		{gbtest.MediaNone, index.GBTransportTCP, "media_unreachable"},
		{gbtest.MediaAudioOnly, index.GBTransportTCP, "no_video"},
	} {
		t.Run(tc.reason+"/"+tc.transport, func(t *testing.T) {
			w := newWorld(t, tc.transport, Config{MediaWait: 2 * time.Second, RetryInterval: time.Second})
			dev := gbtest.NewDevice(t, w.gb.SIPAddr(), platformID, domain, w.device.GBID, secret, "TCP")
			dev.Media = tc.media
			if code, err := dev.Register(3600); err != nil || code != 200 {
				t.Fatalf("register: %d %v", code, err)
			}
			dev.KeepAlive(500 * time.Millisecond)
			mediatest.Eventually(t, "two failed sessions counted", func() bool { return w.counter("media", tc.reason) >= 2 })
			if l := w.ing.Live(); len(l) != 0 {
				t.Fatalf("a recording started: %+v", l)
			}
			if st := w.gb.Devices(); len(st) != 1 || st[0].Streaming {
				t.Fatalf("devices = %+v", st)
			}
		})
	}
}

// TestPositionSubscription: with a position interval set, the platform
// SUBSCRIBEs to each registered device's MobilePosition after its Catalog
// (over TCP and over UDP) and renews the subscription before it expires;
// the device's NOTIFYs, never a MESSAGE of its own, fill the positions
// table. A device that refuses the subscription is counted by reason.
func TestPositionSubscription(t *testing.T) {
	for _, tc := range []struct {
		name, transport string
		refuse          bool
	}{
		{"tcp", "TCP", false},
		{"udp", "UDP", false},
		{"refused", "TCP", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, index.GBTransportTCP, Config{PositionInterval: time.Second, RetryInterval: time.Second})
			dev := gbtest.NewDevice(t, w.gb.SIPAddr(), platformID, domain, w.device.GBID, secret, tc.transport)
			dev.Media = gbtest.MediaNone
			dev.GrantExpires = 2 // renewed after 1.5 s
			dev.RefuseSubscribe = tc.refuse
			if code, err := dev.Register(3600); err != nil || code != 200 {
				t.Fatalf("register: %d %v", code, err)
			}
			dev.KeepAlive(time.Second)
			if tc.refuse {
				mediatest.Eventually(t, "refused SUBSCRIBE counted", func() bool {
					return testutil.ToFloat64(w.gb.met.subscribe.WithLabelValues("unsupported")) >= 2 // retried
				})
				if n := len(w.positions(t)); n != 0 {
					t.Fatalf("%d positions stored without a subscription", n)
				}
				return
			}
			mediatest.Eventually(t, "positions stored from NOTIFYs, subscription renewed", func() bool {
				return len(w.positions(t)) >= 3 && dev.Subscribes.Load() >= 2
			})
			if dev.CatalogAsked.Load() == 0 {
				t.Fatal("subscribed before the Catalog was asked")
			}
			p := w.positions(t)[0]
			if p.Source != index.PositionGB28181 || p.Lat != 31.2304 || p.Lon <= 121.4737 || p.Lon > 121.48 || p.Speed == nil || *p.Speed != 5 {
				t.Fatalf("stored fix %+v", p)
			}
			if n := testutil.ToFloat64(w.gb.met.subscribe.WithLabelValues("unsupported")) + testutil.ToFloat64(w.gb.met.subscribe.WithLabelValues("timeout")); n != 0 {
				t.Fatalf("%v SUBSCRIBE failures counted", n)
			}
		})
	}
}

// TestRetryPair: with port 0 a number taken for the second protocol is
// tried again (a few times); a fixed port or another error is not.
func TestRetryPair(t *testing.T) {
	inUse := &net.OpError{Op: "listen", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	tests := []struct {
		addr string
		err  error
		try  int
		want bool
	}{
		{"127.0.0.1:0", inUse, 0, true},
		{"127.0.0.1:0", inUse, 20, false},
		{"127.0.0.1:5060", inUse, 0, false},
		{"127.0.0.1:0", errors.New("permission denied"), 0, false},
	}
	for _, tc := range tests {
		if got := retryPair(tc.addr, tc.err, tc.try); got != tc.want {
			t.Errorf("retryPair(%s, %v, %d) = %v, want %v", tc.addr, tc.err, tc.try, got, tc.want)
		}
	}
}
