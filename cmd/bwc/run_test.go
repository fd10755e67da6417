package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// stubService is ready at once and runs until its context ends, or fails
// at once with err (never ready).
type stubService struct {
	err     error
	ready   chan struct{}
	stopped chan struct{}
}

func newStub(err error) *stubService {
	return &stubService{err: err, ready: make(chan struct{}), stopped: make(chan struct{})}
}

func (s *stubService) Ready() <-chan struct{} { return s.ready }

func (s *stubService) Run(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	close(s.ready)
	<-ctx.Done()
	close(s.stopped)
	return nil
}

func (s *stubService) Close() error { return nil }

// TestServiceFailureEndsPlatform: a service that stops by itself (the HTTP
// listener dying) ends the whole platform with its error, so that bwc serve
// exits non-zero and its supervisor restarts it; nothing stays half-alive.
func TestServiceFailureEndsPlatform(t *testing.T) {
	other := newStub(nil)
	dead := newStub(errors.New("web: http listener on 127.0.0.1:8080 stopped: accept: use of closed network connection"))
	p := &platform{services: []service{other, dead}}
	done := make(chan error, 1)
	go func() { done <- p.run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "http listener") {
			t.Fatalf("run = %v, want the listener's error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the platform goes on without its HTTP listener")
	}
	select {
	case <-other.stopped:
	default:
		t.Fatal("the other services were not stopped")
	}
}
