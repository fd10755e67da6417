package index_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// enrolTOTP creates a user and enables TOTP for them; it returns the user,
// the secret and the recovery codes.
func enrolTOTP(t *testing.T, db *index.DB, login, role string) (index.User, string, []string) {
	t.Helper()
	ctx := context.Background()
	u, err := db.CreateUser(ctx, index.User{Login: login, Role: role}, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	enr, err := db.StartTOTP(ctx, u.ID, u.Login, "BWC test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enr.URL, "otpauth://totp/") || !strings.Contains(enr.URL, "secret="+enr.Secret) {
		t.Fatalf("enrolment URL %q does not carry the secret %q", enr.URL, enr.Secret)
	}
	// the code of the previous step: the tests' logins use the current one
	code, err := totp.GenerateCode(enr.Secret, time.Now().Add(-30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	codes, err := db.ConfirmTOTP(ctx, u.ID, code)
	if err != nil {
		t.Fatal(err)
	}
	return u, enr.Secret, codes
}

// TestSecondFactorCodes: a code of the current step passes once (replay
// refused), a wrong code and a used recovery code are refused, each
// recovery code passes once; refusals count as failed logins.
func TestSecondFactorCodes(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	u, secret, recovery := enrolTOTP(t, db, "chief", index.RoleAdmin)
	if len(recovery) != index.RecoveryCodes {
		t.Fatalf("%d recovery codes, want %d", len(recovery), index.RecoveryCodes)
	}
	now, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	wrong := "000000"
	if wrong == now {
		wrong = "111111"
	}
	for _, tc := range []struct {
		name       string
		code       string
		wantMethod string
		wantErr    error
		failures   int // failed_logins after
	}{
		{"wrong code", wrong, "", index.ErrBadSecondFactor, 1},
		{"empty code", "", "", index.ErrBadSecondFactor, 2},
		{"right code resets the count", now, index.MethodTOTP, nil, 0},
		{"the same code again (replay)", now, "", index.ErrCodeReused, 1},
		{"recovery code", recovery[0], index.MethodRecovery, nil, 0},
		{"the same recovery code again", recovery[0], "", index.ErrBadSecondFactor, 1},
		{"another recovery code, typed in capitals without the dash", strings.ToUpper(strings.ReplaceAll(recovery[1], "-", "")), index.MethodRecovery, nil, 0},
		{"a made-up recovery code", "abcde-fghjk", "", index.ErrBadSecondFactor, 1},
	} {
		method, err := db.CheckSecondFactor(ctx, u, tc.code)
		if method != tc.wantMethod || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
			t.Errorf("%s: %q %v, want %q %v", tc.name, method, err, tc.wantMethod, tc.wantErr)
		}
		if n, _, err := db.FailedLogins(ctx, u.Login); err != nil || n != tc.failures {
			t.Errorf("%s: failed_logins %d %v, want %d", tc.name, n, err, tc.failures)
		}
	}
	st, err := db.SecondFactorOf(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Enrolled || st.Pending || st.RecoveryCodes != index.RecoveryCodes-2 {
		t.Fatalf("state %+v: want enrolled with %d recovery codes left", st, index.RecoveryCodes-2)
	}
}

// TestSecondFactorLockout: wrong codes lock the account like wrong
// passwords, and a right password does not wipe their count (else a
// guesser holding the password could try codes for ever).
func TestSecondFactorLockout(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	u, secret, _ := enrolTOTP(t, db, "sv", index.RoleSupervisor)
	for i := range 5 {
		if _, err := db.Authenticate(ctx, "sv", "correct horse battery"); err != nil {
			t.Fatalf("attempt %d: password: %v", i, err)
		}
		if _, err := db.CheckSecondFactor(ctx, u, "abc"); !errors.Is(err, index.ErrBadSecondFactor) {
			t.Fatalf("attempt %d: wrong code: %v", i, err)
		}
	}
	n, locked, err := db.FailedLogins(ctx, "sv")
	if err != nil || n != 5 || locked == nil || !locked.After(time.Now()) {
		t.Fatalf("after 5 wrong codes: failed_logins %d, locked until %v (%v); want a lock", n, locked, err)
	}
	if _, err := db.Authenticate(ctx, "sv", "correct horse battery"); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("right password while locked: %v, want ErrLocked", err)
	}
	code, _ := totp.GenerateCode(secret, time.Now())
	if _, err := db.CheckSecondFactor(ctx, u, code); !errors.Is(err, index.ErrLocked) {
		t.Fatalf("right code while locked: %v, want ErrLocked", err)
	}

	// without a second factor a right password still resets the count
	if _, err := db.CreateUser(ctx, index.User{Login: "plain", Role: index.RoleReviewer}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	_, _ = db.Authenticate(ctx, "plain", "wrong password!")
	if _, err := db.Authenticate(ctx, "plain", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := db.FailedLogins(ctx, "plain"); n != 0 {
		t.Fatalf("failed_logins %d after a right password without second factor, want 0", n)
	}
}

// TestSecondFactorEnrolment: an enrolment is only enabled by a right code;
// an enabled one cannot be restarted; disabling needs the password and a
// code; an administrator's reset removes it and ends the sessions.
func TestSecondFactorEnrolment(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	u, err := db.CreateUser(ctx, index.User{Login: "sv2", Role: index.RoleSupervisor}, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ConfirmTOTP(ctx, u.ID, "123456"); !errors.Is(err, index.ErrNoSecondFactor) {
		t.Fatalf("confirm without enrolment: %v, want ErrNoSecondFactor", err)
	}
	first, err := db.StartTOTP(ctx, u.ID, u.Login, "BWC")
	if err != nil {
		t.Fatal(err)
	}
	second, err := db.StartTOTP(ctx, u.ID, u.Login, "BWC") // restarted: a new secret
	if err != nil || second.Secret == first.Secret {
		t.Fatalf("restart: %v, secret %q then %q", err, first.Secret, second.Secret)
	}
	if st, _ := db.SecondFactorOf(ctx, u.ID); st.Enrolled || !st.Pending {
		t.Fatalf("waiting enrolment: %+v", st)
	}
	if _, err := db.CheckSecondFactor(ctx, u, "123456"); !errors.Is(err, index.ErrNoSecondFactor) {
		t.Fatalf("login check of a waiting enrolment: %v, want ErrNoSecondFactor", err)
	}
	old, _ := totp.GenerateCode(first.Secret, time.Now())
	if _, err := db.ConfirmTOTP(ctx, u.ID, old); !errors.Is(err, index.ErrBadSecondFactor) {
		t.Fatalf("confirm with the replaced secret's code: %v", err)
	}
	code, _ := totp.GenerateCode(second.Secret, time.Now())
	codes, err := db.ConfirmTOTP(ctx, u.ID, code)
	if err != nil || len(codes) != index.RecoveryCodes {
		t.Fatalf("confirm: %v, %d codes", err, len(codes))
	}
	if _, err := db.StartTOTP(ctx, u.ID, u.Login, "BWC"); !errors.Is(err, index.ErrConflict) {
		t.Fatalf("restart while enabled: %v, want ErrConflict", err)
	}
	// the confirming code's step is taken: it does not log in again
	if _, err := db.CheckSecondFactor(ctx, u, code); !errors.Is(err, index.ErrCodeReused) {
		t.Fatalf("the confirming code at login: %v, want ErrCodeReused", err)
	}

	for _, tc := range []struct {
		name, password, code string
		want                 error
	}{
		{"wrong password", "wrong password!", codes[0], index.ErrBadCredentials},
		{"wrong code", "correct horse battery", "abcde-abcde", index.ErrBadSecondFactor},
	} {
		if err := db.DisableTOTP(ctx, u, tc.password, tc.code); !errors.Is(err, tc.want) {
			t.Errorf("disable with %s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := db.DisableTOTP(ctx, u, "correct horse battery", codes[0]); err != nil {
		t.Fatalf("disable: %v", err)
	}
	if st, _ := db.SecondFactorOf(ctx, u.ID); st.Enrolled || st.Pending || st.RecoveryCodes != 0 {
		t.Fatalf("after disabling: %+v", st)
	}

	// an administrator's reset
	v, _, _ := enrolTOTP(t, db, "sv3", index.RoleSupervisor)
	sess, err := db.CreateSession(ctx, v, time.Hour, "127.0.0.1", index.AuthPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ResetSecondFactor(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.SecondFactorOf(ctx, v.ID); st.Enrolled || st.RecoveryCodes != 0 {
		t.Fatalf("after reset: %+v", st)
	}
	if _, err := db.SessionByToken(ctx, sess.Token); !errors.Is(err, index.ErrUnauthenticated) {
		t.Fatalf("session after reset: %v, want ended", err)
	}
	if _, err := db.ResetSecondFactor(ctx, v.ID); !errors.Is(err, index.ErrNoSecondFactor) {
		t.Fatalf("second reset: %v, want ErrNoSecondFactor", err)
	}
}

// TestSecondFactorSecretsSealed: the TOTP secret is not in the database as
// is; it opens only with the key it was sealed with and only in its own
// user's row.
func TestSecondFactorSecretsSealed(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	u, secret, _ := enrolTOTP(t, db, "a1", index.RoleAdmin)
	v, _, _ := enrolTOTP(t, db, "a2", index.RoleAdmin)
	var stored string
	if err := db.Pool().QueryRow(ctx, `SELECT secret FROM user_totp WHERE user_id = $1`, u.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, secret) || !strings.HasPrefix(stored, "v1:") {
		t.Fatalf("stored secret %q: want it sealed, not %q", stored, secret)
	}

	other, err := index.Open(ctx, db.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.CheckSecondFactor(ctx, u, codeNow(t, secret)); !errors.Is(err, index.ErrSecretsKey) {
		t.Fatalf("check without a key: %v, want ErrSecretsKey", err)
	}
	if _, err := other.StartTOTP(ctx, v.ID, v.Login, "BWC"); err == nil {
		t.Fatal("enrolment without a key: no error")
	}
	key := make([]byte, 32)
	key[0] = 1
	if err := other.SetSecretsKey(key); err != nil {
		t.Fatal(err)
	}
	if err := other.SetSecretsKey(key[:16]); !errors.Is(err, index.ErrSecretsKey) {
		t.Fatalf("a 16-byte key: %v, want ErrSecretsKey", err)
	}
	if _, err := other.CheckSecondFactor(ctx, u, codeNow(t, secret)); !errors.Is(err, index.ErrSecretsKey) {
		t.Fatalf("check with another key: %v, want ErrSecretsKey", err)
	}
	// u's sealed secret copied into v's row does not open there
	if _, err := db.Pool().Exec(ctx, `UPDATE user_totp SET secret = $1 WHERE user_id = $2`, stored, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckSecondFactor(ctx, v, codeNow(t, secret)); !errors.Is(err, index.ErrSecretsKey) {
		t.Fatalf("u's secret in v's row: %v, want ErrSecretsKey", err)
	}
	if m, err := db.CheckSecondFactor(ctx, u, codeNow(t, secret)); err != nil || m != index.MethodTOTP {
		t.Fatalf("u with the right key: %q %v", m, err)
	}
}

func codeNow(t *testing.T, secret string) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
