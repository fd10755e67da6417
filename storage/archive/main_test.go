package archive

import (
	"crypto/ed25519"
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// sealKey signs the seals of the tests' archives (sealPub checks them).
var sealPub, sealKey, _ = ed25519.GenerateKey(nil)

// TestMain fails the package when a test leaves a goroutine behind. A test
// binary started with crashChildEnv set is the child of the crash test: it
// archives until its parent SIGKILLs it.
func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	code := m.Run()
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
