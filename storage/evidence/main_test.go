package evidence_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind (the
// archives the tests run, the store's connections).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
