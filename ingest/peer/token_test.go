package peer

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestToken: a pull's token is good for its recording, from its node, until
// it expires; anything else is ErrRefused.
func TestToken(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	other := bytes.Repeat([]byte{2}, 32)
	rec := uuid.New()
	now := time.Unix(1700000000, 0)
	good := token(key, "node-a", rec, now.Add(time.Minute))
	cases := []struct {
		name   string
		header string
		rec    uuid.UUID
		at     time.Time
		ok     bool
	}{
		{"good", good, rec, now, true},
		{"another recording", good, uuid.New(), now, false},
		{"expired", good, rec, now.Add(2 * time.Minute), false},
		{"another key", token(other, "node-a", rec, now.Add(time.Minute)), rec, now, false},
		{"too long-lived", token(key, "node-a", rec, now.Add(time.Hour)), rec, now, false},
		{"no scheme", good[len(AuthScheme)+1:], rec, now, false},
		{"bearer", "Bearer " + good[len(AuthScheme)+1:], rec, now, false},
		{"empty", "", rec, now, false},
		{"garbage", AuthScheme + " x.y", rec, now, false},
		{"signature swapped", good[:len(good)-4] + "AAAA", rec, now, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			from, err := verify(key, c.header, c.rec, c.at, 2*time.Minute)
			if c.ok != (err == nil) || (c.ok && from != "node-a") || (!c.ok && !errors.Is(err, ErrRefused)) {
				t.Fatalf("verify = %q %v, want ok %v", from, err, c.ok)
			}
		})
	}
}
