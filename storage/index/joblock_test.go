package index_test

import (
	"context"
	"errors"
	"testing"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestJobLock: one holder at a time; a released lock is free; a lock
// whose session ends (the node's connection dropped) is no longer Held
// and another takes it.
func TestJobLock(t *testing.T) {
	ctx := context.Background()
	db := storagetest.NewDB(t)
	a, err := db.TryJobLock(ctx, "test-job")
	if err != nil || a == nil {
		t.Fatalf("first lock: %v, %v", a, err)
	}
	if b, err := db.TryJobLock(ctx, "test-job"); err != nil || b != nil {
		t.Fatalf("second lock while held: %v, %v; want none", b, err)
	}
	other, err := db.TryJobLock(ctx, "another-job")
	if err != nil || other == nil {
		t.Fatalf("another job's lock: %v, %v", other, err)
	}
	other.Release()
	a.Release()
	a, err = db.TryJobLock(ctx, "test-job")
	if err != nil || a == nil {
		t.Fatalf("lock after release: %v, %v", a, err)
	}
	if err := a.Held(ctx); err != nil {
		t.Fatal(err)
	}
	su := storagetest.Superuser(t, db)
	if _, err := su.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	if err := a.Held(ctx); !errors.Is(err, index.ErrLockLost) {
		t.Fatalf("Held after the session ended: %v, want ErrLockLost", err)
	}
	a.Release()
	b, err := db.TryJobLock(ctx, "test-job")
	if err != nil || b == nil {
		t.Fatalf("lock after the holder's session ended: %v, %v", b, err)
	}
	b.Release()
}
