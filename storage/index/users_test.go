package index_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

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

// TestCheckPassword: the policy's rules, each named by its error.
func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		name, login, password string
		rule                  string // "" when accepted
	}{
		{"long and unusual", "chief", "correct horse battery", ""},
		{"exactly twelve", "chief", "tangerine-42", ""},
		{"twelve multibyte characters", "chief", "警察执法记录仪证据平台安全", ""},
		{"eleven characters", "chief", "tangerine-4", "at least 12 characters"},
		{"empty", "chief", "", "at least 12 characters"},
		{"contains the login", "chief", "my-chief-password", "must not contain the login"},
		{"contains the login in another case", "Chief", "my-CHIEF-password", "must not contain the login"},
		{"common password", "chief", "password1234", "a commonly used password"},
		{"common password in capitals", "chief", "QWERTYUIOP123", "a commonly used password"},
		{"one character repeated", "chief", "aaaaaaaaaaaaaaaa", "not one character repeated"},
		{"one multibyte character repeated", "chief", "密密密密密密密密密密密密", "not one character repeated"},
		{"too long", "chief", strings.Repeat("ab", index.MaxPasswordLen), "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := index.CheckPassword(tc.login, tc.password)
			if tc.rule == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, index.ErrWeakPassword) || !strings.Contains(err.Error(), tc.rule) {
				t.Fatalf("err = %v, want ErrWeakPassword naming %q", err, tc.rule)
			}
		})
	}
}

// TestPasswordPolicyApplies: creation, own change and reset all apply the
// policy, as a field error of "password" that is also ErrWeakPassword.
func TestPasswordPolicyApplies(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	u, err := db.CreateUser(ctx, index.User{Login: "wang", Role: index.RoleReviewer}, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		do   func(pw string) error
	}{
		{"create", func(pw string) error {
			_, err := db.CreateUser(ctx, index.User{Login: "li", Role: index.RoleReviewer}, pw)
			return err
		}},
		{"change", func(pw string) error { _, err := db.ChangePassword(ctx, u.ID, pw, ""); return err }},
		{"reset", func(pw string) error { _, err := db.ResetPassword(ctx, u.ID, pw); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do("short-pw")
			var fe *index.FieldError
			if !errors.Is(err, index.ErrWeakPassword) || !errors.As(err, &fe) || fe.Field != "password" || !errors.Is(err, index.ErrInvalid) {
				t.Fatalf("weak password: %v, want a password field error that is ErrWeakPassword", err)
			}
		})
	}
	// the login rule uses the account's own login on change and reset
	if _, err := db.ResetPassword(ctx, u.ID, "wang-is-my-name"); !errors.Is(err, index.ErrWeakPassword) {
		t.Fatalf("reset to a password containing the login: %v", err)
	}
}

// TestPasswordChangeAndReset: an own change keeps the session that made
// it and ends the others; a reset forces a change, ends every session and
// lifts a lockout; the change clears the force.
func TestPasswordChangeAndReset(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	u, err := db.CreateUser(ctx, index.User{Login: "zhao", Role: index.RoleSupervisor}, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	session := func() index.Session {
		s, err := db.CreateSession(ctx, u, time.Hour, "", index.AuthPassword)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	alive := func(s index.Session) bool {
		_, err := db.SessionByToken(ctx, s.Token)
		if err != nil && !errors.Is(err, index.ErrUnauthenticated) {
			t.Fatal(err)
		}
		return err == nil
	}
	this, other := session(), session()
	got, err := db.ChangePassword(ctx, u.ID, "a new long passphrase", this.Token)
	if err != nil {
		t.Fatal(err)
	}
	if got.MustChangePassword || !alive(this) || alive(other) {
		t.Fatalf("after a change: must change %v, this session alive %v, other alive %v; want false, true, false",
			got.MustChangePassword, alive(this), alive(other))
	}
	if _, err := db.Authenticate(ctx, "zhao", "correct horse battery"); !errors.Is(err, index.ErrBadCredentials) {
		t.Fatalf("old password after a change: %v", err)
	}
	if _, err := db.Authenticate(ctx, "zhao", "a new long passphrase"); err != nil {
		t.Fatalf("new password: %v", err)
	}

	// lock the account, then reset
	for range 6 {
		_, _ = db.Authenticate(ctx, "zhao", "wrong guess of it")
	}
	if _, locked, _ := db.FailedLogins(ctx, "zhao"); locked == nil {
		t.Fatal("account not locked after six failures")
	}
	got, err = db.ResetPassword(ctx, u.ID, "temporary reset pass")
	if err != nil {
		t.Fatal(err)
	}
	if !got.MustChangePassword || alive(this) {
		t.Fatalf("after a reset: must change %v, session alive %v; want true, false", got.MustChangePassword, alive(this))
	}
	in, err := db.Authenticate(ctx, "zhao", "temporary reset pass")
	if err != nil || !in.MustChangePassword {
		t.Fatalf("login after a reset: %+v, %v; want it to succeed with must_change_password", in, err)
	}
	s := session()
	if got, err := db.SessionByToken(ctx, s.Token); err != nil || !got.User.MustChangePassword {
		t.Fatalf("session after a reset: %+v, %v; want must_change_password", got.User, err)
	}
	if got, err := db.ChangePassword(ctx, u.ID, "my own chosen phrase", s.Token); err != nil || got.MustChangePassword {
		t.Fatalf("change after a reset: %+v, %v; want the force cleared", got, err)
	}
	if _, err := db.ResetPassword(ctx, uuid.New(), "temporary reset pass"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("reset of an unknown user: %v, want ErrNotFound", err)
	}
}

// TestAPITokens: expiry, revocation, the creator's disabling (revoked in
// the same change, and refused at lookup even if a row escaped it), and the
// last use written at most once a minute.
func TestAPITokens(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	admin, err := db.CreateUser(ctx, index.User{Login: "chief", Role: index.RoleAdmin}, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	other, err := db.CreateUser(ctx, index.User{Login: "deputy", Role: index.RoleAdmin}, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(by index.User, ttl time.Duration) index.APIToken {
		t.Helper()
		tok, err := db.CreateAPIToken(ctx, "dispatch", index.RoleSupervisor, by, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Pool().Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	valid := mk(admin, time.Hour)
	expired := mk(admin, time.Hour)
	exec(`UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, expired.ID)
	revoked := mk(admin, time.Hour)
	if err := db.RevokeAPIToken(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	byDeputy := mk(other, time.Hour)
	legacy := mk(admin, time.Hour) // as rows from before migration 011: no expiry
	exec(`UPDATE api_tokens SET expires_at = NULL WHERE id = $1`, legacy.ID)

	for _, tc := range []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid", valid.Token, true},
		{"expired", expired.Token, false},
		{"revoked", revoked.Token, false},
		{"no expiry recorded", legacy.Token, false},
		{"unknown", "bwc_not-a-token", false},
		{"other creator", byDeputy.Token, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.APITokenByToken(ctx, tc.token)
			if tc.ok {
				if err != nil || got.Role != index.RoleSupervisor || got.CreatedByID == nil {
					t.Fatalf("lookup: %+v, %v", got, err)
				}
				return
			}
			if !errors.Is(err, index.ErrUnauthenticated) {
				t.Fatalf("lookup: %v, want ErrUnauthenticated", err)
			}
		})
	}
	if _, err := db.CreateAPIToken(ctx, "nobody's", index.RoleSupervisor, index.User{Login: "token:x"}, time.Hour); !errors.Is(err, index.ErrInvalid) {
		t.Fatalf("token without a creating user: %v, want ErrInvalid", err)
	}
	day := mk(admin, 24*time.Hour)
	if day.ExpiresAt == nil || day.ExpiresAt.Sub(day.CreatedAt) != 24*time.Hour {
		t.Fatalf("token with a 24h ttl: created %v, expires %v", day.CreatedAt, day.ExpiresAt)
	}

	// last use: written on the first use, not again within the minute,
	// again after it
	used := func(tok index.APIToken) *time.Time {
		t.Helper()
		var at *time.Time
		if err := db.Pool().QueryRow(ctx, `SELECT last_used_at FROM api_tokens WHERE id = $1`, tok.ID).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	first := used(valid)
	if first == nil {
		t.Fatal("a used token has no last use")
	}
	if _, err := db.APITokenByToken(ctx, valid.Token); err != nil {
		t.Fatal(err)
	}
	if again := used(valid); !again.Equal(*first) {
		t.Fatalf("last use rewritten within the minute: %v then %v", first, again)
	}
	exec(`UPDATE api_tokens SET last_used_at = last_used_at - interval '61 seconds' WHERE id = $1`, valid.ID)
	got, err := db.APITokenByToken(ctx, valid.Token)
	if err != nil {
		t.Fatal(err)
	}
	if later := used(valid); !later.After(first.Add(-61*time.Second).Add(time.Second)) || got.LastUsedAt == nil || !got.LastUsedAt.Equal(*later) {
		t.Fatalf("last use after a minute: stored %v, returned %v; want it rewritten", later, got.LastUsedAt)
	}
	if at := used(expired); at != nil {
		t.Fatalf("a refused (expired) token's use was recorded: %v", at)
	}

	// listing: every token, no secret
	list, err := db.APITokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 6 {
		t.Fatalf("listed %d tokens, want 6", len(list))
	}
	for _, l := range list {
		if l.Token != "" || l.CreatedBy == "" {
			t.Fatalf("listed token %+v: want no secret and a creator", l)
		}
	}

	// disabling the creator revokes their tokens at once, not others'
	if _, err := db.SetUserDisabled(ctx, admin.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := db.APITokenByToken(ctx, valid.Token); !errors.Is(err, index.ErrUnauthenticated) {
		t.Fatalf("token of a disabled creator: %v, want ErrUnauthenticated", err)
	}
	var open int
	if err := db.Pool().QueryRow(ctx, `SELECT count(*) FROM api_tokens WHERE created_by_id = $1 AND revoked_at IS NULL`, admin.ID).Scan(&open); err != nil || open != 0 {
		t.Fatalf("disabled creator's unrevoked tokens: %d, %v; want 0", open, err)
	}
	if _, err := db.APITokenByToken(ctx, byDeputy.Token); err != nil {
		t.Fatalf("another admin's token after disabling chief: %v", err)
	}
	// a token that escaped revocation (written around the Go code) is
	// still refused while its creator is disabled
	exec(`UPDATE api_tokens SET revoked_at = NULL WHERE id = $1`, valid.ID)
	if _, err := db.APITokenByToken(ctx, valid.Token); !errors.Is(err, index.ErrUnauthenticated) {
		t.Fatalf("unrevoked token of a disabled creator: %v, want ErrUnauthenticated", err)
	}
	// re-enabling the creator does not revive revoked tokens
	if _, err := db.SetUserDisabled(ctx, admin.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.APITokenByToken(ctx, day.Token); !errors.Is(err, index.ErrUnauthenticated) {
		t.Fatalf("token revoked by the disabling, after re-enabling: %v, want ErrUnauthenticated", err)
	}
}
