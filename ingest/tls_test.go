package ingest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns the files and the certificate.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// TestFFmpegPublishesOverRTSPS: a camera (ffmpeg) publishes over RTSPS
// with the certificate the test made, its frames reach the hub, the server
// presents that certificate, and plain RTSP on the RTSPS port gets nothing.
// RTSP keeps working next to it.
func TestFFmpegPublishesOverRTSPS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := selfSigned(t, dir, "rtsps")
	w := newWorld(t, worldOpts{cfg: Config{Grace: 500 * time.Millisecond, RTSPSAddr: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile}})
	addr := w.srv.RTSPSAddr()
	if addr == "" || addr == w.srv.Addr() {
		t.Fatalf("RTSPS address %q (RTSP %q)", addr, w.srv.Addr())
	}

	// the certificate served is the one configured, valid for 127.0.0.1
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS handshake with the configured certificate: %v", err)
	}
	tc.Close()

	url := fmt.Sprintf("rtsps://%s:%s@%s/live/%s", w.device.Serial, secret, addr, w.device.Serial)
	ffmpeg := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", mediatest.Path(),
		"-c:v", "copy", "-c:a", "aac", "-f", "rtsp", "-rtsp_transport", "tcp", url)
	out := &strings.Builder{}
	ffmpeg.Stderr = out
	if err := ffmpeg.Start(); err != nil {
		t.Fatal(err)
	}
	st := w.nextStream(t)
	frames := readAll(st.Subscribe(media.ReaderOptions{Name: "test", Size: 4096}))
	// the TLS connection is known as publishing (no handshake deadline)
	mediatest.Eventually(t, "RTSPS connection publishing", func() bool { return counter(w, "conns", "publishing") == 1 })
	if err := ffmpeg.Wait(); err != nil {
		t.Fatalf("ffmpeg over RTSPS: %v: %s", err, out)
	}
	got := <-frames
	var want, video int
	for _, f := range mediatest.Load(t).Frames {
		if f.Track.Kind == media.Video {
			want++
		}
	}
	for _, f := range got {
		if f.Track.Kind == media.Video {
			video++
		}
	}
	if video != want {
		t.Fatalf("received %d video frames over RTSPS, want all %d", video, want)
	}
	if l := st.Info(); l.DeviceSerial != w.device.Serial {
		t.Fatalf("stream of %q", l.DeviceSerial)
	}

	// plain RTSP on the RTSPS port: no RTSP answer
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("OPTIONS rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	if strings.HasPrefix(string(buf[:n]), "RTSP/1.0") {
		t.Fatalf("plain RTSP answered on the RTSPS port: %q", buf[:n])
	}
}

// TestRTSPSConfig: RTSPS needs both files, and they must load.
func TestRTSPSConfig(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir, "a")
	otherCert, _, _ := selfSigned(t, dir, "b")
	for _, tc := range []struct {
		name      string
		cfg       Config
		wantError string
	}{
		{"no key", Config{RTSPSAddr: "127.0.0.1:0", TLSCert: certFile}, "certificate file and a key file"},
		{"missing file", Config{RTSPSAddr: "127.0.0.1:0", TLSCert: filepath.Join(dir, "nope.crt"), TLSKey: keyFile}, "no such file"},
		{"key of another certificate", Config{RTSPSAddr: "127.0.0.1:0", TLSCert: otherCert, TLSKey: keyFile}, "private key does not match"},
		{"certificate without address", Config{TLSCert: certFile, TLSKey: keyFile}, "without an RTSPS address"},
		{"good", Config{RTSPSAddr: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(testConfig(tc.cfg), nil, nil, nil)
			if tc.wantError == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantError) {
				t.Fatalf("err = %v, want %q", err, tc.wantError)
			}
		})
	}
}

// TestConfigInvalidFields: New substitutes no default: it names every
// invalid field at once; a zero link buffer is valid (the window exactly).
func TestConfigInvalidFields(t *testing.T) {
	_, err := New(Config{LinkBuffer: -time.Second}, nil, nil, nil)
	for _, f := range []string{"RTSPAddr", "Grace", "MediaTimeout", "LinkBuffer", "LinkInterval", "MaxClockSkew", "DevicesReload",
		"HandshakeTimeout", "AuthFailureWindow", "MaxConns", "MaxConnsPerAddr", "AuthFailuresPerAddr", "AuthFailuresPerDevice"} {
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), f+" ") {
			t.Errorf("New(bad config) = %v, does not name %s", err, f)
		}
	}
	cfg := testConfig(Config{})
	cfg.LinkBuffer = 0
	if _, err := New(cfg, nil, nil, nil); err != nil {
		t.Fatalf("zero link buffer: %v", err)
	}
}
