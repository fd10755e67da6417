package main

import (
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServeArgsCarryEverySetting: the flags a cluster node is started with
// parse back into the same settings, empty values included (an empty
// -mfa-required-roles must not fall back to its default).
func TestServeArgsCarryEverySetting(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  func() Config
	}{
		{"defaults", defaultConfig},
		{"filled", func() Config { return filledConfig(t) }},
		{"empty values", func() Config {
			c := defaultConfig()
			c.MFARequiredRoles, c.WebRTCUDPAddr = "", ""
			return c
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := c.cfg()
			args := serveArgs(want)
			got := defaultConfig()
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			got.register(fs)
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			n := 0
			fs.VisitAll(func(*flag.Flag) { n++ })
			if len(args) != n {
				t.Fatalf("%d flags for %d settings", len(args), n)
			}
			if back := serveArgs(got); !slices.Equal(back, args) {
				t.Fatalf("flags do not round-trip:\n%v\n%v", args, back)
			}
			if got.MFARequiredRoles != want.MFARequiredRoles || got.WebRTCUDPAddr != want.WebRTCUDPAddr || got.Node != want.Node {
				t.Fatalf("parsed %q %q %q, want %q %q %q", got.MFARequiredRoles, got.WebRTCUDPAddr, got.Node,
					want.MFARequiredRoles, want.WebRTCUDPAddr, want.Node)
			}
		})
	}
}

// TestReadProc: this process's CPU time and RSS from /proc, a missing
// process an error.
func TestReadProc(t *testing.T) {
	end := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(end) { // spend some CPU
	}
	u, err := readProc(os.Getpid())
	if err != nil || u.CPU <= 0 || u.RSS < 1<<20 {
		t.Fatalf("readProc(self) = %+v %v", u, err)
	}
	if _, err := readProc(1 << 30); err == nil {
		t.Fatal("readProc of no process: no error")
	}
}

// TestHaproxyConfig: every node is a server checked on its HTTP port's
// /readyz; sessions are not cut when a check fails; haproxy accepts it.
func TestHaproxyConfig(t *testing.T) {
	nodes := []*clusterNode{{Name: "n1", RTSP: "127.0.0.1:8554", HTTP: "127.0.0.1:8080"}, {Name: "n2", RTSP: "127.0.0.1:9554", HTTP: "127.0.0.1:9080"}}
	cfg := haproxyConfig("127.0.0.1:5540", nodes, time.Second)
	for _, want := range []string{"bind 127.0.0.1:5540", "balance leastconn", "option httpchk GET /readyz",
		"server n1 127.0.0.1:8554 check port 8080", "server n2 127.0.0.1:9554 check port 9080"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, "shutdown-sessions") {
		t.Errorf("a failed check would cut the node's recordings:\n%s", cfg)
	}
}
