package web_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind, with
// nothing ignored: the server's own goroutines (connections, handlers,
// event streams) are all waited for by Close, the evidence store's client
// connections are closed with the store (storagetest.NewStore), and the
// tests' own idle client connections here.
func TestMain(m *testing.M) {
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
