package evidence_test

import (
	"crypto/ed25519"
	"testing"

	"go.uber.org/goleak"
)

// sealKey signs the seals and checkpoints of the tests (sealPub checks them).
var sealPub, sealKey, _ = ed25519.GenerateKey(nil)

// TestMain fails the package when a test leaves a goroutine behind (the
// archives the tests run, the store's connections).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
