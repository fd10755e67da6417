package index_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestParallelFailedLoginsAllCount: wrong passwords guessed in parallel
// each count (one atomic UPDATE per failure); the account locks after five
// and then refuses even the right password.
func TestParallelFailedLoginsAllCount(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	if _, err := db.CreateUser(ctx, index.User{Login: "chief", Role: index.RoleAdmin}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	const n = 12
	var (
		wg                    sync.WaitGroup
		mu                    sync.Mutex
		verified, lockedCount int
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.Authenticate(ctx, "chief", "wrong password!")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, index.ErrBadCredentials):
				verified++
			case errors.Is(err, index.ErrLocked):
				lockedCount++
			default:
				t.Errorf("wrong password: %v", err)
			}
		}()
	}
	wg.Wait()
	failed, locked, err := db.FailedLogins(ctx, "chief")
	if err != nil {
		t.Fatal(err)
	}
	if failed != verified || verified+lockedCount != n {
		t.Fatalf("failed_logins = %d after %d verified failures (%d refused as locked of %d)", failed, verified, lockedCount, n)
	}
	if failed < 5 || locked == nil || !locked.After(time.Now()) {
		t.Fatalf("after %d failures: locked until %v, want a lock", failed, locked)
	}
	if _, err := db.Authenticate(ctx, "chief", "correct horse battery"); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("right password while locked: %v, want ErrLocked", err)
	}
}

func TestAuthenticate(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	u, err := db.CreateUser(ctx, index.User{Login: "sv1", Role: index.RoleSupervisor}, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateUser(ctx, index.User{Login: "gone", Role: index.RoleSupervisor}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	gone, _ := db.UserByLogin(ctx, "gone")
	if _, err := db.SetUserDisabled(ctx, gone.ID, true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, login, password string
		want                  error
	}{
		{"right", "sv1", "correct horse battery", nil},
		{"wrong password", "sv1", "correct horse battery!", index.ErrBadCredentials},
		{"unknown login", "nobody", "correct horse battery", index.ErrUnknownLogin},
		{"disabled account", "gone", "correct horse battery", index.ErrBadCredentials},
		{"login too long", strings.Repeat("a", index.MaxLoginLen+1), "correct horse battery", index.ErrBadCredentials},
		{"password too long", "sv1", strings.Repeat("p", index.MaxPasswordLen+1), index.ErrBadCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Authenticate(ctx, tc.login, tc.password)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == nil && got.ID != u.ID {
				t.Fatalf("user %v, want %v", got.ID, u.ID)
			}
		})
	}
	if err := index.ErrUnknownLogin; !errors.Is(err, index.ErrBadCredentials) || err.Error() != index.ErrBadCredentials.Error() {
		t.Fatalf("ErrUnknownLogin %q must be and read as ErrBadCredentials", err)
	}
	// the lock the database applies is LockoutFor's
	for i := 1; i <= 6; i++ {
		before := time.Now()
		_, _ = db.Authenticate(ctx, "sv1", "wrong horse battery")
		n, locked, err := db.FailedLogins(ctx, "sv1")
		if err != nil {
			t.Fatal(err)
		}
		want := index.LockoutFor(n)
		if (locked == nil) != (want == 0) || locked != nil && (locked.Before(before.Add(want-time.Second)) || locked.After(time.Now().Add(want+time.Second))) {
			t.Fatalf("after %d failures: locked until %v, want now + %v", n, locked, want)
		}
		if locked != nil {
			break // the next attempt is refused as locked, not counted
		}
	}
	if _, err := db.Pool().Exec(ctx, `UPDATE users SET failed_logins = 0, locked_until = NULL WHERE login = 'sv1'`); err != nil {
		t.Fatal(err)
	}
	// a success resets the count
	if _, err := db.Authenticate(ctx, "sv1", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	if n, locked, err := db.FailedLogins(ctx, "sv1"); err != nil || n != 0 || locked != nil {
		t.Fatalf("after a success: %d failures, locked %v, %v", n, locked, err)
	}
}
