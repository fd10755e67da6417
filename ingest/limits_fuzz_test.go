package ingest

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/bwcplatform/bwc/storage/index"
)

// deviceless is a store without devices: enough for a server that nobody
// can authenticate to (the fuzzer cannot answer a digest challenge for a
// random secret). Any other call panics through the nil store.
type deviceless struct{ store }

func (deviceless) Devices(context.Context) ([]index.Device, error) { return nil, nil }
func (deviceless) DeviceBySerial(context.Context, string) (index.Device, error) {
	return index.Device{}, index.ErrNotFound
}
func (deviceless) EndNodeRecordings(context.Context, string, string) (int64, error) { return 0, nil }

// startBare runs an ingest on a deviceless store on a free port.
func startBare(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	srv, err := New(testConfig(cfg), deviceless{}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(runServer(tb, srv))
	return srv
}

// FuzzRTSPConnection: whatever bytes a client sends, the server answers or
// closes the connection, and keeps serving: Check stays nil and a new
// connection gets an answer to OPTIONS.
func FuzzRTSPConnection(f *testing.F) {
	for _, m := range malformed {
		f.Add(m)
	}
	f.Add([]byte("OPTIONS rtsp://127.0.0.1/ RTSP/1.0\r\nCSeq: 1\r\n\r\n"))
	f.Add([]byte("ANNOUNCE rtsp://127.0.0.1/live/CAM-1 RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic Q0FNLTE6eA==\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"))
	srv := startBare(f, Config{HandshakeTimeout: time.Second})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(data)
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		buf := make([]byte, 1024)
		_, _ = c.Read(buf)
		c.Close()
		if err := srv.Check(context.Background()); err != nil {
			t.Fatalf("Check after %q: %v", data, err)
		}
		if err := optionsOK(srv.Addr()); err != nil {
			t.Fatalf("server after %q: %v", data, err)
		}
	})
}

// optionsOK asks the server OPTIONS on a new connection.
func optionsOK(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("OPTIONS rtsp://" + addr + "/ RTSP/1.0\r\nCSeq: 1\r\n\r\n")); err != nil {
		return err
	}
	var res base.Response
	if err := res.Unmarshal(bufio.NewReader(c)); err != nil {
		return err
	}
	if res.StatusCode != base.StatusOK {
		return errors.New(res.StatusMessage)
	}
	return nil
}
