package durable

import (
	"context"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("failure %d: wait %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 100*time.Millisecond {
		t.Fatalf("after a success: wait %v, want the minimum", got)
	}
}

func TestSleep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	if !Sleep(ctx, 0) || !Sleep(ctx, time.Millisecond) {
		t.Fatal("Sleep with a live context reported it ended")
	}
	cancel()
	if Sleep(ctx, 0) || Sleep(ctx, time.Hour) {
		t.Fatal("Sleep with an ended context reported its course run")
	}
}
