package index

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// The second factor of local accounts: TOTP (RFC 6238) with single-use
// recovery codes (migration 014). Logins check it after the password
// (CheckSecondFactor); a wrong code counts as a failed login, by the same
// counter and lock as a wrong password.

// Second-factor errors.
var (
	// ErrBadSecondFactor: the code is neither the current TOTP code nor an
	// unused recovery code. It counts as a failed login.
	ErrBadSecondFactor = errors.New("wrong second-factor code")
	// ErrCodeReused: a TOTP code of a time step already accepted (a
	// replay); it is also ErrBadSecondFactor.
	ErrCodeReused = fmt.Errorf("%w: that code was already used; wait for the next one", ErrBadSecondFactor)
	// ErrNoSecondFactor: the user has no second factor enabled (or no
	// enrolment waiting, for ConfirmTOTP).
	ErrNoSecondFactor = errors.New("no second factor enrolled")
	// ErrSecretsKey: no key to seal second-factor secrets was set, or a
	// stored secret does not open with it (the key was replaced).
	ErrSecretsKey = errors.New("second-factor secrets key")
)

// SetSecretsKey sets the 32-byte key TOTP secrets are sealed with at rest
// (AES-256-GCM, the user's ID as additional data: a sealed secret copied
// to another user's row does not open). bwc serve derives it from the
// platform's signing key; without one, enrolments and second-factor
// checks fail with ErrSecretsKey.
func (db *DB) SetSecretsKey(key []byte) error {
	block, err := aes.NewCipher(key)
	if err == nil && len(key) != 32 {
		err = fmt.Errorf("%d bytes, want 32", len(key))
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSecretsKey, err)
	}
	db.secrets, err = cipher.NewGCM(block)
	return err
}

// sealedPrefix marks a sealed secret: version 1, AES-256-GCM.
const sealedPrefix = "v1:"

// sealSecret encrypts a base32 TOTP secret for a user's row.
func (db *DB) sealSecret(userID uuid.UUID, secret string) (string, error) {
	if db.secrets == nil {
		return "", fmt.Errorf("%w: none set (SetSecretsKey)", ErrSecretsKey)
	}
	nonce := make([]byte, db.secrets.NonceSize())
	_, _ = rand.Read(nonce)
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(db.secrets.Seal(nonce, nonce, []byte(secret), userID[:])), nil
}

// openSecret decrypts a user's stored TOTP secret.
func (db *DB) openSecret(userID uuid.UUID, stored string) (string, error) {
	if db.secrets == nil {
		return "", fmt.Errorf("%w: none set (SetSecretsKey)", ErrSecretsKey)
	}
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(stored, sealedPrefix))
	if err != nil || !strings.HasPrefix(stored, sealedPrefix) || len(raw) < db.secrets.NonceSize() {
		return "", fmt.Errorf("%w: the stored secret of user %s is not sealed", ErrSecretsKey, userID)
	}
	n := db.secrets.NonceSize()
	plain, err := db.secrets.Open(nil, raw[:n], raw[n:], userID[:])
	if err != nil {
		return "", fmt.Errorf("%w: the secret of user %s does not open with this key (was the signing key replaced? an administrator resets the user's second factor): %w", ErrSecretsKey, userID, err)
	}
	return string(plain), nil
}

// TOTP parameters: what every authenticator app understands.
const (
	totpPeriod = 30 // seconds per time step
	totpSkew   = 1  // steps accepted either side of now (clock drift)
	// RecoveryCodes is how many recovery codes an enrolment gives.
	RecoveryCodes = 10
	// MaxSecondFactorLen caps a submitted code (a recovery code with
	// spaces), checked before anything is looked up.
	MaxSecondFactorLen = 64
)

var totpOpts = hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// SecondFactor is a user's second-factor state.
type SecondFactor struct {
	Enrolled      bool       `json:"enrolled"`       // TOTP enabled: logins need a code
	EnabledAt     *time.Time `json:"enabled_at"`     //
	Pending       bool       `json:"pending"`        // an enrolment waits for its first code
	RecoveryCodes int        `json:"recovery_codes"` // unused recovery codes left
}

// TOTPEnrolment is a started enrolment: the secret to put into an
// authenticator app, as text and as an otpauth:// URL (for a QR code).
type TOTPEnrolment struct {
	Secret string `json:"secret"`
	URL    string `json:"otpauth_url"`
}

// SecondFactorOf returns a user's second-factor state.
func (db *DB) SecondFactorOf(ctx context.Context, userID uuid.UUID) (SecondFactor, error) {
	var (
		s       SecondFactor
		enabled *time.Time
		exists  bool
	)
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM user_totp WHERE user_id = $1),
			(SELECT enabled_at FROM user_totp WHERE user_id = $1),
			(SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL)`, userID).
		Scan(&exists, &enabled, &s.RecoveryCodes)
	if err != nil {
		return SecondFactor{}, mapErr("second factor of "+userID.String(), err)
	}
	s.Enrolled, s.EnabledAt, s.Pending = enabled != nil, enabled, exists && enabled == nil
	return s, nil
}

// StartTOTP begins (or begins again) an enrolment: a new random secret
// (160 bits), stored but not enabled until ConfirmTOTP gets a code made
// with it. A user whose TOTP is enabled must disable it first
// (ErrConflict).
func (db *DB) StartTOTP(ctx context.Context, userID uuid.UUID, login, issuer string) (TOTPEnrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: login, Period: totpPeriod,
		Digits: totpOpts.Digits, Algorithm: totpOpts.Algorithm})
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("generate TOTP secret for %s: %w", login, err)
	}
	sealed, err := db.sealSecret(userID, key.Secret())
	if err != nil {
		return TOTPEnrolment{}, err
	}
	tag, err := db.pool.Exec(ctx, `INSERT INTO user_totp (user_id, secret) VALUES ($1, $2)
		ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret, created_at = now(), last_step = NULL
		WHERE user_totp.enabled_at IS NULL`, userID, sealed)
	if err != nil {
		return TOTPEnrolment{}, mapErr("start TOTP enrolment of "+login, err)
	}
	if tag.RowsAffected() == 0 {
		return TOTPEnrolment{}, fmt.Errorf("start TOTP enrolment of %s: %w: a second factor is enabled; disable it first", login, ErrConflict)
	}
	return TOTPEnrolment{Secret: key.Secret(), URL: key.URL()}, nil
}

// matchTOTP returns the time step of now±skew whose code is code, or
// false.
func matchTOTP(secret, code string, now time.Time) (int64, bool) {
	step := now.Unix() / totpPeriod
	for _, s := range []int64{step - totpSkew, step, step + totpSkew} {
		if ok, err := hotp.ValidateCustom(code, uint64(s), secret, totpOpts); err == nil && ok {
			return s, true
		}
	}
	return 0, false
}

// ConfirmTOTP enables a waiting enrolment when code is a current code of
// its secret, and returns RecoveryCodes new recovery codes (shown once;
// only their hashes are kept). A wrong code is ErrBadSecondFactor (not a
// failed login: the user is logged in); no enrolment waiting is
// ErrNoSecondFactor.
func (db *DB) ConfirmTOTP(ctx context.Context, userID uuid.UUID, code string) ([]string, error) {
	code = strings.TrimSpace(code)
	var recovery []string
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var secret string
		err := tx.QueryRow(ctx, `SELECT secret FROM user_totp WHERE user_id = $1 AND enabled_at IS NULL FOR UPDATE`, userID).Scan(&secret)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: start an enrolment first (POST /api/mfa/totp)", ErrNoSecondFactor)
		}
		if err != nil {
			return err
		}
		if secret, err = db.openSecret(userID, secret); err != nil {
			return err
		}
		step, ok := matchTOTP(secret, code, db.now())
		if !ok {
			return ErrBadSecondFactor
		}
		if _, err := tx.Exec(ctx, `UPDATE user_totp SET enabled_at = now(), last_step = $2 WHERE user_id = $1`, userID, step); err != nil {
			return err
		}
		recovery, err = replaceRecoveryCodes(ctx, tx, userID)
		return err
	})
	if err != nil {
		return nil, mapErr("confirm TOTP of "+userID.String(), err)
	}
	return recovery, nil
}

// recoveryAlphabet: lower-case letters and digits without 0/o, 1/l/i.
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// newRecoveryCode is 10 random characters of recoveryAlphabet (about 49
// bits), written xxxxx-xxxxx.
func newRecoveryCode() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = recoveryAlphabet[int(b[i])%len(recoveryAlphabet)]
	}
	return string(b[:5]) + "-" + string(b[5:])
}

// normalizeRecovery drops what people type around a recovery code
// (spaces, dashes, capitals).
func normalizeRecovery(code string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, strings.ToLower(code))
}

// recoveryHash: a code is stored as SHA-256 of the user's ID and the
// normalized code (random codes: no slow hash needed; the ID keeps equal
// codes of two users apart).
func recoveryHash(userID uuid.UUID, code string) []byte {
	h := sha256.New()
	h.Write(userID[:])
	h.Write([]byte(normalizeRecovery(code)))
	return h.Sum(nil)
}

// replaceRecoveryCodes deletes a user's recovery codes and makes new ones.
func replaceRecoveryCodes(ctx context.Context, tx pgx.Tx, userID uuid.UUID) ([]string, error) {
	if _, err := tx.Exec(ctx, `DELETE FROM recovery_codes WHERE user_id = $1`, userID); err != nil {
		return nil, err
	}
	codes := make([]string, RecoveryCodes)
	for i := range codes {
		codes[i] = newRecoveryCode()
		if _, err := tx.Exec(ctx, `INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)`, userID, recoveryHash(userID, codes[i])); err != nil {
			return nil, err
		}
	}
	return codes, nil
}

// Second-factor methods CheckSecondFactor reports.
const (
	MethodTOTP     = "totp"
	MethodRecovery = "recovery_code"
)

// CheckSecondFactor checks the second factor of a login whose password
// was right: code is a TOTP code of a time step later than the last one
// accepted (within one step of now), or an unused recovery code, which is
// used up. Six digits are a TOTP code, anything else a recovery code.
//
// A right code resets the failed-login counter (which Authenticate leaves
// alone for users with a second factor) and returns the method. A wrong or
// reused one is ErrBadSecondFactor (ErrCodeReused) and counts as a failed
// login, locking the account by the same rule as wrong passwords.
func (db *DB) CheckSecondFactor(ctx context.Context, u User, code string) (string, error) {
	code = strings.TrimSpace(code)
	if len(code) > MaxSecondFactorLen {
		code = ""
	}
	var secret string
	var last *int64
	err := db.pool.QueryRow(ctx, `SELECT secret, last_step FROM user_totp WHERE user_id = $1 AND enabled_at IS NOT NULL`, u.ID).Scan(&secret, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%s: %w", u.Login, ErrNoSecondFactor)
	}
	if err != nil {
		return "", mapErr("second factor of "+u.Login, err)
	}
	if secret, err = db.openSecret(u.ID, secret); err != nil {
		return "", err
	}
	method, bad := MethodTOTP, ErrBadSecondFactor
	ok := false
	if isTOTPCode(code) {
		if step, match := matchTOTP(secret, code, db.now()); match {
			// the step must be newer than the last accepted one, decided
			// by the UPDATE: a racing login with the same code finds it
			// taken
			err := db.pool.QueryRow(ctx, `UPDATE user_totp SET last_step = $2
				WHERE user_id = $1 AND (last_step IS NULL OR last_step < $2) RETURNING user_id`, u.ID, step).Scan(&u.ID)
			switch {
			case err == nil:
				ok = true
			case errors.Is(err, pgx.ErrNoRows):
				bad = ErrCodeReused
			default:
				return "", mapErr("accept TOTP code of "+u.Login, err)
			}
		}
	} else if code != "" {
		method = MethodRecovery
		tag, err := db.pool.Exec(ctx, `UPDATE recovery_codes SET used_at = now()
			WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL`, u.ID, recoveryHash(u.ID, code))
		if err != nil {
			return "", mapErr("use recovery code of "+u.Login, err)
		}
		ok = tag.RowsAffected() == 1
	}
	if !ok {
		if err := db.countFailedLogin(ctx, u.Login); err != nil {
			return "", err
		}
		return "", bad
	}
	// reset the counter unless a parallel failure locked the account
	// meanwhile (as Authenticate does)
	err = db.pool.QueryRow(ctx, `UPDATE users SET failed_logins = 0, locked_until = NULL
		WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $2) RETURNING id`, u.ID, db.now()).Scan(&u.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrLocked
	}
	if err != nil {
		return "", mapErr("reset failed logins", err)
	}
	return method, nil
}

// isTOTPCode: six ASCII digits.
func isTOTPCode(code string) bool {
	if len(code) != int(totpOpts.Digits) {
		return false
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// DisableTOTP removes a user's own second factor, given their password
// and a current code (TOTP or recovery). A wrong password or code counts
// as a failed login and is ErrBadCredentials or ErrBadSecondFactor.
func (db *DB) DisableTOTP(ctx context.Context, u User, password, code string) error {
	var hash string
	var locked *time.Time
	err := db.pool.QueryRow(ctx, `SELECT password_hash, locked_until FROM users WHERE id = $1`, u.ID).Scan(&hash, &locked)
	if err != nil {
		return mapErr("disable second factor of "+u.Login, err)
	}
	if locked != nil && db.now().Before(*locked) {
		return fmt.Errorf("%w until %s", ErrLocked, locked.UTC().Format(time.RFC3339))
	}
	if len(password) > MaxPasswordLen || !checkPassword(hash, password) {
		if err := db.countFailedLogin(ctx, u.Login); err != nil {
			return err
		}
		return ErrBadCredentials
	}
	if _, err := db.CheckSecondFactor(ctx, u, code); err != nil {
		return err
	}
	return db.removeSecondFactor(ctx, u.ID)
}

// ResetSecondFactor removes another user's second factor (an
// administrator, for a lost phone) and ends that user's sessions: they log
// in with the password alone and, when their role requires one, enrol
// again. ErrNoSecondFactor when there was none.
func (db *DB) ResetSecondFactor(ctx context.Context, userID uuid.UUID) (User, error) {
	u, err := scanUser(db.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, userID))
	if err != nil {
		return User{}, mapErr("user "+userID.String(), err)
	}
	st, err := db.SecondFactorOf(ctx, userID)
	if err != nil {
		return User{}, err
	}
	if !st.Enrolled && !st.Pending {
		return User{}, fmt.Errorf("reset second factor of %s: %w", u.Login, ErrNoSecondFactor)
	}
	if err := db.removeSecondFactor(ctx, userID); err != nil {
		return User{}, err
	}
	if _, err := db.pool.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID); err != nil {
		return User{}, mapErr("end sessions of "+u.Login, err)
	}
	return u, nil
}

// removeSecondFactor deletes a user's TOTP secret and recovery codes.
func (db *DB) removeSecondFactor(ctx context.Context, userID uuid.UUID) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM recovery_codes WHERE user_id = $1`, userID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM user_totp WHERE user_id = $1`, userID)
		return err
	})
	return mapErr("remove second factor of "+userID.String(), err)
}

// keepFailuresWithSecondFactor is the failed-login counter after a right
// password: reset, unless the user has a second factor, whose code is
// still to be checked (CheckSecondFactor resets it then). Otherwise each
// right password would wipe the count of wrong codes before it, and a
// guesser holding the password could try codes for ever.
const keepFailuresWithSecondFactor = `CASE WHEN EXISTS (SELECT 1 FROM user_totp t
	WHERE t.user_id = users.id AND t.enabled_at IS NOT NULL) THEN failed_logins ELSE 0 END`

// SecondFactorEnrolled reports whether a user has TOTP enabled: one
// primary-key lookup, made on every request of the roles that must have a
// second factor.
func (db *DB) SecondFactorEnrolled(ctx context.Context, userID uuid.UUID) (bool, error) {
	var ok bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM user_totp WHERE user_id = $1 AND enabled_at IS NOT NULL)`, userID).Scan(&ok)
	return ok, mapErr("second factor of "+userID.String(), err)
}
