package index_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
)

// TestTakeOverRecording: another node continues a device's live recording
// only while its holder waits for the camera (within its grace window) or
// is dead (lock free) and was alive within the grace; the holder's writes
// are compare-and-sets that then fail with ErrNotHeld.
func TestTakeOverRecording(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		setup  func(t *testing.T, db *index.DB, rec index.Recording) // rec.NodeID holds rec (its lease held) before
		grace  time.Duration
		taken  bool
		killed bool // the holder's process is gone (its lease released) before setup
	}{
		{"holder alive, camera connected", func(*testing.T, *index.DB, index.Recording) {}, time.Minute, false, false},
		{"holder waits for its camera", func(t *testing.T, db *index.DB, rec index.Recording) {
			if err := db.SetHeldStatus(ctx, rec.ID, rec.NodeID, index.RecordingReconnecting, "", time.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}, time.Minute, true, false},
		{"holder's grace window passed", func(t *testing.T, db *index.DB, rec index.Recording) {
			if err := db.SetHeldStatus(ctx, rec.ID, rec.NodeID, index.RecordingReconnecting, "", time.Now().Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
		}, time.Minute, false, false},
		{"camera back on its holder", func(t *testing.T, db *index.DB, rec index.Recording) {
			if err := db.SetHeldStatus(ctx, rec.ID, rec.NodeID, index.RecordingReconnecting, "", time.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := db.SetHeldStatus(ctx, rec.ID, rec.NodeID, index.RecordingLive, "", time.Time{}); err != nil {
				t.Fatal(err)
			}
		}, time.Minute, false, false},
		{"holder killed", func(t *testing.T, db *index.DB, rec index.Recording) {}, time.Minute, true, true},
		{"holder killed longer ago than the grace", func(t *testing.T, db *index.DB, rec index.Recording) {
			time.Sleep(1100 * time.Millisecond)
		}, time.Second, false, true},
	}
	db := newFixture(t).db // one database: each case its own device and holder
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := db.CreateDevice(ctx, index.Device{Serial: fmt.Sprintf("CAM-T%d", i), Secret: "s3cret-pass"})
			if err != nil {
				t.Fatal(err)
			}
			dev, holder := d.ID, fmt.Sprintf("node-a%d", i)
			lease := acquire(t, db, holder)
			rec, err := db.CreateRecording(ctx, index.Recording{DeviceID: dev, NodeID: holder}, "")
			if err != nil {
				t.Fatal(err)
			}
			if c.killed {
				lease.Release()
				waitLockFree(t, db, holder)
			}
			c.setup(t, db, rec)
			got, err := db.TakeOverRecording(ctx, index.TakeOver{Device: dev, Node: "node-b", Grace: c.grace})
			if !c.taken {
				var live *index.DeviceLiveError
				if !errors.As(err, &live) || live.Node != holder || live.Recording != rec.ID {
					t.Fatalf("takeover: %+v %v, want refused naming the holder's %s", got, err, rec.ID)
				}
				if err := db.EndHeld(ctx, rec.ID, holder, time.Now()); err != nil {
					t.Fatalf("holder ends its recording: %v", err)
				}
				return
			}
			if err != nil || got.Recording.ID != rec.ID || got.Part != 1 || got.From != holder || got.Recording.NodeID != "node-b" ||
				got.Recording.Status != index.RecordingLive {
				t.Fatalf("takeover: %+v %v", got, err)
			}
			for what, err := range map[string]error{
				"status": db.SetHeldStatus(ctx, rec.ID, holder, index.RecordingLive, "", time.Time{}),
				"end":    db.EndHeld(ctx, rec.ID, holder, time.Now()),
			} {
				if !errors.Is(err, index.ErrNotHeld) {
					t.Errorf("old holder's %s write: %v, want ErrNotHeld", what, err)
				}
			}
			if r, _ := db.Recording(ctx, rec.ID); r.Status != index.RecordingLive || r.NodeID != "node-b" {
				t.Fatalf("after the old holder's writes: %+v", r)
			}
		})
	}
}

// waitLockFree waits until node's advisory lock is gone: a closed
// connection's backend exits a moment after the client closes it.
func waitLockFree(t *testing.T, db *index.DB, node string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var held bool
		if err := db.Pool().QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.objsubid = 1
			AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('bwc-node:' || $1, 0))`, node).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if !held {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s's lock still held", node)
		}
	}
}

// TestTakeOverRaceOneWins: nodes racing for one released recording: one
// takes it, the others are refused naming the winner; one part recorded.
func TestTakeOverRaceOneWins(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	db, dev := f.db, f.devices[0].ID
	rec, err := db.CreateRecording(ctx, index.Recording{DeviceID: dev, NodeID: "node-a"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetHeldStatus(ctx, rec.ID, "node-a", index.RecordingReconnecting, "", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = db.TakeOverRecording(ctx, index.TakeOver{Device: dev, Node: fmt.Sprintf("node-%d", i), Grace: time.Minute})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else if !errors.Is(err, index.ErrDeviceLive) {
			t.Errorf("loser: %v, want ErrDeviceLive", err)
		}
	}
	parts, err := db.RecordingParts(ctx, rec.ID)
	if won != 1 || err != nil || len(parts) != 1 {
		t.Fatalf("%d winners, parts %+v (%v): want one", won, parts, err)
	}
	if r, _ := db.Recording(ctx, rec.ID); r.NodeID != parts[0].Node {
		t.Fatalf("held by %s, part by %s", r.NodeID, parts[0].Node)
	}
}
