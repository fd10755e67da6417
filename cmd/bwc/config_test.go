package main

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

func TestValidateNamesTheBadField(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"", func(*Config) {}},
		{"http-addr", func(c *Config) { c.HTTPAddr = "8080" }},
		{"pprof-addr", func(c *Config) { c.PprofAddr = "localhost" }},
		{"database-url", func(c *Config) { c.DatabaseURL = "mysql://x" }},
		{"database-role", func(c *Config) { c.DatabaseRole = "bwc; DROP" }},
		{"s3-endpoint", func(c *Config) { c.S3Endpoint = "http://minio" }},
		{"s3-access-key", func(c *Config) { c.S3AccessKey = "" }},
		{"s3-secret-key", func(c *Config) { c.S3SecretKey = "" }},
		{"s3-bucket", func(c *Config) { c.S3Bucket = "Evidence" }},
		{"log-level", func(c *Config) { c.LogLevel = "loud" }},
		{"log-format", func(c *Config) { c.LogFormat = "xml" }},
		{"shutdown-timeout", func(c *Config) { c.ShutdownTimeout = 0 }},
		{"session-ttl", func(c *Config) { c.SessionTTL = time.Second }},
		{"rtsp-addr", func(c *Config) { c.RTSPAddr = "rtsp://0.0.0.0:8554" }},
		{"rtsp-udp-rtcp-addr", func(c *Config) { c.RTSPUDPRTPAddr = ":8000" }},
		{"camera-host", func(c *Config) { c.CameraHost = "cams.example" }},
		{"reconnect-grace", func(c *Config) { c.ReconnectGrace = 0 }},
		{"media-timeout", func(c *Config) { c.MediaTimeout = time.Millisecond }},
		{"link-buffer", func(c *Config) { c.LinkBuffer = -time.Minute }},
		{"spool-dir", func(c *Config) { c.SpoolDir = "" }},
		{"segment-duration", func(c *Config) { c.SegmentDuration = time.Hour }},
		{"retention", func(c *Config) { c.Retention = time.Hour }},
		{"spool-alarm-bytes", func(c *Config) { c.SpoolAlarmBytes = 1 }},
		{"webrtc-udp-addr", func(c *Config) { c.WebRTCUDPAddr = "udp://x" }},
		{"webrtc-udp-addr", func(c *Config) { c.WebRTCUDPAddr, c.WebRTCTCPAddr = "", "" }},
		{"webrtc-public-ips", func(c *Config) { c.WebRTCPublicIPs = "203.0.113.7,host.example" }},
		{"webrtc-ice-servers", func(c *Config) { c.WebRTCICEServers = "http://stun.example" }},
		{"tls-key", func(c *Config) { c.TLSCert = "/etc/bwc/cert.pem" }},
		{"trusted-proxies", func(c *Config) { c.TrustedProxies = "10.0.0.0/8,proxy.example" }},
		{"http-read-timeout", func(c *Config) { c.ReadTimeout = 0 }},
		{"http-write-timeout", func(c *Config) { c.WriteTimeout = -time.Second }},
		{"http-max-header-bytes", func(c *Config) { c.MaxHeaderBytes = 100 }},
		{"login-rate", func(c *Config) { c.LoginRate = -1 }},
		{"unauth-burst", func(c *Config) { c.UnauthBurst = 0 }},
		{"login-hash-concurrency", func(c *Config) { c.LoginHashSlots = 0 }},
		{"login-hash-wait", func(c *Config) { c.LoginHashWait = 0 }},
	}
	for _, tc := range cases {
		c := defaultConfig()
		tc.edit(&c)
		err := c.Validate()
		if tc.field == "" {
			if err != nil {
				t.Errorf("default config: %v", err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("bad %s: Validate() = %v, want an error naming it", tc.field, err)
		}
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	env := map[string]string{"BWC_HTTP_ADDR": "127.0.0.1:9999", "BWC_LOG_LEVEL": "debug", "BWC_SHUTDOWN_TIMEOUT": "3s"}
	c := defaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.register(fs)
	if err := parseFlags(fs, []string{"-log-level", "warn"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:9999" || c.LogLevel != "warn" || c.ShutdownTimeout != 3*time.Second {
		t.Fatalf("config = %+v; want env for http-addr and shutdown-timeout, flag for log-level", c)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	c.register(fs)
	err := parseFlags(fs, nil, func(k string) string {
		if k == "BWC_SHUTDOWN_TIMEOUT" {
			return "soon"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "BWC_SHUTDOWN_TIMEOUT") {
		t.Fatalf("bad env value: err = %v, want one naming BWC_SHUTDOWN_TIMEOUT", err)
	}
}

// Every setting is documented in the README, by flag and by variable.
func TestReadmeListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	c := defaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.register(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(string(readme), "`-"+f.Name+"`") || !strings.Contains(string(readme), "`"+envName(f.Name)+"`") {
			t.Errorf("README does not list -%s / %s", f.Name, envName(f.Name))
		}
	})
}
