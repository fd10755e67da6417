package gbtest

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// TestSimulate is the device simulator as a command, for the browser
// tests (web/e2e/gb28181.test.mjs builds it with `go test -c` and runs
// `-test.run ^TestSimulate$`): with BWC_GBSIM_SIP (the platform's SIP
// host:port), BWC_GBSIM_SERVER_ID, BWC_GBSIM_DOMAIN, BWC_GBSIM_ID and
// BWC_GBSIM_SECRET set, a body camera registers over TCP, prints
// "registered", keeps alive, answers the platform until SIGTERM. Without
// them it is skipped (it is a command, not a test of this package).
func TestSimulate(t *testing.T) {
	platform := os.Getenv("BWC_GBSIM_SIP")
	if platform == "" {
		t.Skip("the simulator command: set BWC_GBSIM_SIP and the others")
	}
	d := NewDevice(t, platform, os.Getenv("BWC_GBSIM_SERVER_ID"), os.Getenv("BWC_GBSIM_DOMAIN"), os.Getenv("BWC_GBSIM_ID"),
		os.Getenv("BWC_GBSIM_SECRET"), "TCP")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	if code, err := d.Register(3600); err != nil || code != 200 {
		t.Fatalf("register: %d %v", code, err)
	}
	d.KeepAlive(time.Second)
	fmt.Println("registered")
	<-sig
}
