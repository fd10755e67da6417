package index_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestTakeOIDCLogin: a sign-in under way is taken once, only by the
// browser that started it, and only before it expires; a refused take
// uses it up too.
func TestTakeOIDCLogin(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	later := time.Now().Add(time.Minute)
	for _, tc := range []struct {
		name    string
		expires time.Time
		browser string
		want    error
	}{
		{"same browser", later, "browser-1", nil},
		{"other browser", later, "browser-2", index.ErrNoLogin},
		{"expired", time.Now().Add(-time.Second), "browser-1", index.ErrNoLogin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := index.OIDCLogin{State: "state-" + tc.name, Browser: "browser-1", Nonce: "n", Verifier: "v", ExpiresAt: tc.expires}
			if err := db.StartOIDCLogin(ctx, l); err != nil {
				t.Fatal(err)
			}
			got, err := db.TakeOIDCLogin(ctx, l.State, tc.browser)
			if !errors.Is(err, tc.want) {
				t.Fatalf("take: %v, want %v", err, tc.want)
			}
			if err == nil && (got.Nonce != "n" || got.Verifier != "v") {
				t.Fatalf("took %+v", got)
			}
			if _, err := db.TakeOIDCLogin(ctx, l.State, "browser-1"); !errors.Is(err, index.ErrNoLogin) {
				t.Fatalf("second take: %v, want ErrNoLogin", err)
			}
		})
	}
}

// TestSignInIdentity: found by (issuer, subject), role and unit set again
// at each sign-in; the same subject at another issuer is another user; a
// local login of the same name is left alone.
func TestSignInIdentity(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	local, err := db.CreateUser(ctx, index.User{Login: "chen", Role: index.RoleAdmin}, "break-glass-password")
	if err != nil {
		t.Fatal(err)
	}
	first, err := db.SignInIdentity(ctx, index.Identity{Issuer: "https://a", Subject: "s1", Login: "chen", Role: index.RoleReviewer, Unit: "north"})
	if err != nil {
		t.Fatal(err)
	}
	if first.ID == local.ID || first.Login == "chen" || first.Role != index.RoleReviewer || first.Unit != "north" {
		t.Fatalf("first sign-in: %+v (local %s)", first, local.ID)
	}
	again, err := db.SignInIdentity(ctx, index.Identity{Issuer: "https://a", Subject: "s1", Login: "chen", Role: index.RoleSupervisor, Unit: "east"})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || again.Login != first.Login || again.Role != index.RoleSupervisor || again.Unit != "east" {
		t.Fatalf("second sign-in: %+v, want user %s as supervisor of east", again, first.ID)
	}
	other, err := db.SignInIdentity(ctx, index.Identity{Issuer: "https://b", Subject: "s1", Login: "wu", Role: index.RoleReviewer})
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == first.ID || other.Login != "wu" {
		t.Fatalf("another issuer's subject: %+v", other)
	}
	if _, err := db.SignInIdentity(ctx, index.Identity{Issuer: "https://a", Subject: "s2", Login: "x", Role: index.RoleOfficer, Badge: "none"}); !errors.Is(err, index.ErrUnknownBadge) {
		t.Fatalf("officer with an unknown badge: %v, want ErrUnknownBadge", err)
	}
	if u, err := db.Authenticate(ctx, "chen", "break-glass-password"); err != nil || u.ID != local.ID {
		t.Fatalf("local login: %v %v", u, err)
	}
}
