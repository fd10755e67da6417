package peer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// A pull is authorized by a token the pulling node makes with the link
// key (derived from the platform's signing key, which every node holds):
// it names the pulling node, the one recording and an expiry, and is
// HMAC-SHA256 signed. A holder serves a recording's stream only to a
// request carrying a valid, unexpired token for that recording.

// AuthScheme is the scheme of the Authorization header of a pull.
const AuthScheme = "BWC-Peer"

// maxToken bounds the Authorization header read.
const maxToken = 512

// tokenLabel separates the link's MACs from any other use of the key.
const tokenLabel = "bwc inter-node live v1"

// ErrRefused: a pull's token is missing, malformed, for another recording,
// expired or not signed with the platform's link key.
var ErrRefused = errors.New("inter-node pull refused")

// token makes the Authorization header value for pulling rec.
func token(key []byte, from string, rec uuid.UUID, expires time.Time) string {
	body := from + "\n" + rec.String() + "\n" + strconv.FormatInt(expires.Unix(), 10)
	return AuthScheme + " " + base64.RawURLEncoding.EncodeToString([]byte(body)) + "." +
		base64.RawURLEncoding.EncodeToString(mac(key, body))
}

func mac(key []byte, body string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(tokenLabel + "\n" + body))
	return h.Sum(nil)
}

// verify checks the Authorization header of a pull of rec at now; it
// returns the pulling node's name. A token may not claim to live longer
// than maxAge (a stolen one is useful only that long).
func verify(key []byte, header string, rec uuid.UUID, now time.Time, maxAge time.Duration) (string, error) {
	if len(header) > maxToken {
		return "", fmt.Errorf("%w: token too long", ErrRefused)
	}
	tok, ok := strings.CutPrefix(header, AuthScheme+" ")
	if !ok {
		return "", fmt.Errorf("%w: no %s token", ErrRefused, AuthScheme)
	}
	b64, sig64, ok := strings.Cut(tok, ".")
	if !ok {
		return "", fmt.Errorf("%w: malformed token", ErrRefused)
	}
	body, err1 := base64.RawURLEncoding.DecodeString(b64)
	sig, err2 := base64.RawURLEncoding.DecodeString(sig64)
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("%w: malformed token", ErrRefused)
	}
	if !hmac.Equal(sig, mac(key, string(body))) {
		return "", fmt.Errorf("%w: bad signature (another platform key?)", ErrRefused)
	}
	parts := strings.Split(string(body), "\n")
	if len(parts) != 3 {
		return "", fmt.Errorf("%w: malformed token", ErrRefused)
	}
	if parts[1] != rec.String() {
		return "", fmt.Errorf("%w: token of node %s for another recording", ErrRefused, parts[0])
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return "", fmt.Errorf("%w: malformed token", ErrRefused)
	}
	if until := time.Unix(exp, 0); now.After(until) || until.Sub(now) > maxAge {
		return "", fmt.Errorf("%w: token of node %s expired or too long-lived", ErrRefused, parts[0])
	}
	return parts[0], nil
}
