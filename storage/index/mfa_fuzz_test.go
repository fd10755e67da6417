package index

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pquerna/otp/hotp"
)

// FuzzSecondFactorCode: whatever a login sends as its code, telling a TOTP
// code from a recovery code, normalizing and hashing it, and matching it
// against a secret answer without panicking, and only the code of a time
// step within the skew matches.
func FuzzSecondFactorCode(f *testing.F) {
	for _, s := range []string{"123456", "12345", "1234567", "abcde-fghjk", " ABCDE FGHJK ", "", "１２３４５６", "12345\x00", strings.Repeat("9", 70)} {
		f.Add(s)
	}
	const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	now := time.Unix(1_800_000_000, 0)
	id := uuid.MustParse("01a2312e-4a35-7462-9534-6894454cb03e")
	for d := int64(-2); d <= 2; d++ { // the codes around now: matched within the skew only
		c, err := hotp.GenerateCodeCustom(secret, uint64(now.Unix()/totpPeriod+d), totpOpts)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, code string) {
		if isTOTPCode(code) {
			if len(code) != 6 || strings.Trim(code, "0123456789") != "" {
				t.Fatalf("%q taken for a TOTP code", code)
			}
		}
		n := normalizeRecovery(code)
		if normalizeRecovery(n) != n || strings.ContainsAny(n, "- ") {
			t.Fatalf("normalizeRecovery(%q) = %q is not stable", code, n)
		}
		if string(recoveryHash(id, code)) != string(recoveryHash(id, n)) {
			t.Fatalf("%q and its normal form %q hash apart", code, n)
		}
		step, ok := matchTOTP(secret, code, now)
		if !ok {
			return
		}
		if d := step - now.Unix()/totpPeriod; d < -totpSkew || d > totpSkew {
			t.Fatalf("%q matched step %d, %d from now", code, step, d)
		}
		want, err := hotp.GenerateCodeCustom(secret, uint64(step), totpOpts)
		if err != nil || want != code {
			t.Fatalf("%q matched step %d, whose code is %q (%v)", code, step, want, err)
		}
	})
}
