package web_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/ingest"
	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/relay"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/web"
)

// testConfig is a valid configuration with the platform's defaults.
func testConfig() web.Config {
	return web.Config{
		Addr: "127.0.0.1:0", ShutdownTimeout: 10 * time.Second, SessionTTL: 12 * time.Hour, TokenTTL: 90 * 24 * time.Hour, LinkBuffer: 5 * time.Minute,
		ReadHeaderTimeout: 10 * time.Second, HashSlots: 2 * runtime.GOMAXPROCS(0), HashWait: 2 * time.Second,
		AuditReadPeriod: 5 * time.Minute,
	}
}

// testOptions serves the database db (and its audit trail), with stand-ins
// for the services a test does not exercise: nothing is live, the archive
// holds no object, uploads are refused.
func testOptions(db *index.DB) web.Options {
	return web.Options{
		Config: testConfig(), Index: db, Audit: db,
		Ingest: &fakeLive{ch: make(chan struct{})}, Relay: noRelay{}, Holds: noHolds{}, Objects: noObjects{},
		Exports: noExports{}, Uploads: noUploads{},
		Metrics: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
	}
}

// newServer builds a server for opts, closed when the test ends.
func newServer(t testing.TB, opts web.Options) *web.Server {
	t.Helper()
	s, err := web.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fakeLive is a live list that changes when told.
type fakeLive struct{ ch chan struct{} }

func (f *fakeLive) Live() []ingest.Live              { return []ingest.Live{} }
func (f *fakeLive) Watch() (<-chan struct{}, func()) { return f.ch, func() {} }
func (f *fakeLive) Refresh(uuid.UUID) error          { return nil }
func (f *fakeLive) CameraURL() string                { return "rtsp://127.0.0.1:8554/live/" }

// noRelay has no live recording to show.
type noRelay struct{}

func (noRelay) Offer(_ context.Context, rec uuid.UUID, _, _ string) (relay.Answer, error) {
	return relay.Answer{}, fmt.Errorf("recording %s: %w", rec, media.ErrNotLive)
}
func (noRelay) Patch(string, string) error                  { return relay.ErrNoSession }
func (noRelay) Delete(string) error                         { return relay.ErrNoSession }
func (noRelay) Session(string) (uuid.UUID, bool)            { return uuid.Nil, false }
func (noRelay) Viewers(uuid.UUID) int                       { return 0 }
func (noRelay) LinkHeaders() []string                       { return nil }
func (noRelay) OnViewerEnd(func(relay.ViewerStats, string)) {}

// noHolds knows no hold.
type noHolds struct{}

func (noHolds) Hold(_ context.Context, rec uuid.UUID, _, _, _ string) (index.LegalHold, error) {
	return index.LegalHold{}, fmt.Errorf("recording %s: %w", rec, index.ErrNotFound)
}
func (noHolds) Release(_ context.Context, rec uuid.UUID, _, _ string) (index.LegalHold, error) {
	return index.LegalHold{}, fmt.Errorf("recording %s: %w", rec, index.ErrNotFound)
}
func (noHolds) Holds(context.Context, uuid.UUID) ([]index.LegalHold, error) { return nil, nil }

// noObjects is an empty archive.
type noObjects struct{}

func (noObjects) OpenVersion(_ context.Context, key, _ string) (*blob.Object, error) {
	return nil, fmt.Errorf("%s: %w", key, blob.ErrNoObject)
}

// noExports builds nothing.
type noExports struct{}

func (noExports) Enqueue(uuid.UUID) {}
func (noExports) PublicKey() ed25519.PublicKey {
	return ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
}

// noUploads admits no upload.
type noUploads struct{}

func (noUploads) Handler() http.Handler { return http.NotFoundHandler() }
func (noUploads) Admit(context.Context, string, string, int64) error {
	return errors.New("uploads: none in this test")
}

// waitReady waits until s listens (Run closed Ready), failing the test if
// Run ends first.
func waitReady(t testing.TB, s *web.Server, done <-chan error) {
	t.Helper()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run ended before the server was ready: %v", err)
	}
}
