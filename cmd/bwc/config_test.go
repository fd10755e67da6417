package main

import (
	"errors"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// badFields lists the fields err reports (Validate joins one error per
// field).
func badFields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var fields []string
	for _, e := range errs {
		var fe *fieldError
		if !errors.As(e, &fe) {
			t.Fatalf("Validate error %q is not a field error", e)
		}
		if !strings.Contains(e.Error(), "config "+fe.field+": ") {
			t.Errorf("error %q does not name its field %s", e, fe.field)
		}
		fields = append(fields, fe.field)
	}
	return fields
}

// sso turns single sign-on on with valid settings.
func sso(c *Config) {
	c.OIDCIssuer, c.OIDCClientID, c.OIDCRedirectURL = "https://idp.example/realms/police", "bwc", "https://bwc.example/auth/oidc/callback"
}

func TestValidateNamesTheBadField(t *testing.T) {
	cases := []struct {
		field string // "": valid
		edit  func(*Config)
	}{
		{"", func(*Config) {}},
		{"", func(c *Config) { c.LinkBuffer = 0 }}, // exactly the assignment window
		{"", func(c *Config) { c.MapTiles = "https://tiles.police.example/{z}/{x}/{y}.png" }},
		{"", func(c *Config) { c.LoginRate, c.UnauthRate, c.UploadMinFree = 0, 0, 0 }},
		{"http-addr", func(c *Config) { c.HTTPAddr = "8080" }},
		{"pprof-addr", func(c *Config) { c.PprofAddr = "localhost" }},
		{"database-url", func(c *Config) { c.DatabaseURL = "mysql://x" }},
		{"migrate-database-url", func(c *Config) { c.MigrateURL = "mysql://x" }},
		{"s3-endpoint", func(c *Config) { c.S3Endpoint = "http://minio" }},
		{"s3-access-key", func(c *Config) { c.S3AccessKey = "" }},
		{"s3-secret-key", func(c *Config) { c.S3SecretKey = "" }},
		{"s3-bucket", func(c *Config) { c.S3Bucket = "Evidence" }},
		{"log-level", func(c *Config) { c.LogLevel = "loud" }},
		{"log-format", func(c *Config) { c.LogFormat = "xml" }},
		{"shutdown-timeout", func(c *Config) { c.ShutdownTimeout = 0 }},
		{"signing-key", func(c *Config) { c.SigningKey = "" }},
		{"session-ttl", func(c *Config) { c.SessionTTL = time.Second }},
		{"token-ttl", func(c *Config) { c.TokenTTL = time.Minute }},
		{"rtsp-addr", func(c *Config) { c.RTSPAddr = "rtsp://0.0.0.0:8554" }},
		{"rtsp-udp-rtcp-addr", func(c *Config) { c.RTSPUDPRTPAddr = ":8000" }},
		{"camera-host", func(c *Config) { c.CameraHost = "cams.example" }},
		{"", func(c *Config) { c.GBSIPAddr = "0.0.0.0:5060" }},
		{"", func(c *Config) { c.GBID = "short" }}, // GB/T 28181 off: its settings are not read
		{"gb-id", func(c *Config) { c.GBSIPAddr, c.GBID = ":5060", "3402000000200000000" }},
		{"gb-media-addr", func(c *Config) { c.GBSIPAddr, c.GBMediaAddr = ":5060", "15060" }},
		{"gb-keepalive-timeout", func(c *Config) { c.GBSIPAddr, c.GBKeepaliveTimeout = ":5060", 0 }},
		{"gb-position-interval", func(c *Config) { c.GBSIPAddr, c.GBPositionInterval = ":5060", 1500*time.Millisecond }},
		{"rtsps-addr", func(c *Config) { c.RTSPSAddr = ":8322" }},
		{"rtsp-tls-cert", func(c *Config) { c.RTSPTLSCert = "/etc/bwc/rtsp.pem" }},
		{"rtsp-max-conns", func(c *Config) { c.RTSPMaxConns = 0 }},
		{"rtsp-max-conns-per-addr", func(c *Config) { c.RTSPMaxConnsPerAddr = 0 }},
		{"rtsp-handshake-timeout", func(c *Config) { c.RTSPHandshakeTimeout = time.Millisecond }},
		{"rtsp-auth-failures-per-addr", func(c *Config) { c.RTSPAuthFailuresPerAddr = 0 }},
		{"rtsp-auth-failures-per-device", func(c *Config) { c.RTSPAuthFailuresPerDevice = 0 }},
		{"rtsp-auth-failure-window", func(c *Config) { c.RTSPAuthFailureWindow = 0 }},
		{"reconnect-grace", func(c *Config) { c.ReconnectGrace = 0 }},
		{"media-timeout", func(c *Config) { c.MediaTimeout = time.Millisecond }},
		{"link-buffer", func(c *Config) { c.LinkBuffer = -time.Minute }},
		{"spool-dir", func(c *Config) { c.SpoolDir = "" }},
		{"segment-duration", func(c *Config) { c.SegmentDuration = time.Hour }},
		{"retention", func(c *Config) { c.Retention = time.Hour }},
		{"spool-alarm-bytes", func(c *Config) { c.SpoolAlarmBytes = 1 }},
		{"stuck-after", func(c *Config) { c.StuckAfter = 0 }},
		{"export-dir", func(c *Config) { c.ExportDir = "" }},
		{"upload-dir", func(c *Config) { c.UploadDir = "" }},
		{"upload-dir", func(c *Config) { c.UploadDir = c.SpoolDir + "/" }},
		{"upload-max-size", func(c *Config) { c.UploadMaxSize = 1 }},
		{"upload-min-free", func(c *Config) { c.UploadMinFree = -1 }},
		{"upload-stale-after", func(c *Config) { c.UploadStaleAfter = time.Minute }},
		{"upload-stuck-after", func(c *Config) { c.UploadStuckAfter = 0 }},
		{"webrtc-udp-addr", func(c *Config) { c.WebRTCUDPAddr = "udp://x" }},
		{"webrtc-udp-addr", func(c *Config) { c.WebRTCUDPAddr, c.WebRTCTCPAddr = "", "" }},
		{"webrtc-tcp-max-conns, webrtc-tcp-max-per-addr, webrtc-stun-timeout", func(c *Config) { c.WebRTCSTUNWait = 0 }},
		{"webrtc-public-ips", func(c *Config) { c.WebRTCPublicIPs = "203.0.113.7,host.example" }},
		{"webrtc-ice-servers", func(c *Config) { c.WebRTCICEServers = "http://stun.example" }},
		{"tls-cert, tls-key", func(c *Config) { c.TLSCert = "/etc/bwc/cert.pem" }},
		{"trusted-proxies", func(c *Config) { c.TrustedProxies = "10.0.0.0/8,proxy.example" }},
		{"map-tiles", func(c *Config) { c.MapTiles = "https://tiles.example/tile.png" }}, // no {z}/{x}/{y}
		{"map-tiles", func(c *Config) { c.MapTiles = "file:///srv/tiles/{z}/{x}/{y}.png" }},
		{"http-read-header-timeout, http-read-timeout, http-write-timeout, http-idle-timeout", func(c *Config) { c.ReadTimeout = 0 }},
		{"http-read-header-timeout, http-read-timeout, http-write-timeout, http-idle-timeout", func(c *Config) { c.WriteTimeout = -time.Second }},
		{"http-max-header-bytes", func(c *Config) { c.MaxHeaderBytes = 100 }},
		{"login-rate, unauth-rate", func(c *Config) { c.LoginRate = -1 }},
		{"login-burst, unauth-burst", func(c *Config) { c.UnauthBurst = 0 }},
		{"login-hash-concurrency", func(c *Config) { c.LoginHashSlots = 0 }},
		{"login-hash-wait", func(c *Config) { c.LoginHashWait = 0 }},
		{"mfa-required-roles", func(c *Config) { c.MFARequiredRoles = "admin,chief" }},
		{"", func(c *Config) { c.MFARequiredRoles = "" }}, // nobody held: allowed (tests, demo)
		{"", func(c *Config) { sso(c) }},
		{"oidc-issuer", func(c *Config) { sso(c); c.OIDCIssuer = "idp.example" }},
		{"oidc-client-id", func(c *Config) { sso(c); c.OIDCClientID = "" }},
		{"oidc-redirect-url", func(c *Config) { sso(c); c.OIDCRedirectURL = "" }},
		{"oidc-role-claim", func(c *Config) { sso(c); c.OIDCRoleClaim = "" }},
		{"oidc-role-map", func(c *Config) { sso(c); c.OIDCRoleMap = "bwc-admins=root" }},
		{"oidc-role-map", func(c *Config) { sso(c); c.OIDCRoleMap = "" }},
		{"", func(c *Config) { c.OIDCRoleMap = "" }}, // single sign-on off: not checked
		{"LinkInterval", func(c *Config) { c.LinkInterval = 0 }},
		{"MaxClockSkew", func(c *Config) { c.MaxClockSkew = 0 }},
		{"DevicesReload", func(c *Config) { c.DevicesReload = 0 }},
		{"FragmentDuration", func(c *Config) { c.FragmentDuration = 0 }},
		{"ArchiveWorkers", func(c *Config) { c.ArchiveWorkers = 0 }},
		{"ArchiveRingFrames", func(c *Config) { c.ArchiveRingFrames = 0 }},
		{"ArchiveBackoffMax", func(c *Config) { c.ArchiveBackoffMax = time.Millisecond }},
		{"ArchiveScanInterval", func(c *Config) { c.ArchiveScanInterval = 0 }},
		{"ArchiveReconcileEvery", func(c *Config) { c.ArchiveReconcileEvery = 0 }},
		{"ArchiveRetryWrite", func(c *Config) { c.ArchiveRetryWrite = -time.Second }},
		{"RelayQueueFrames", func(c *Config) { c.RelayQueueFrames = 0 }},
		{"RelayMaxViewers", func(c *Config) { c.RelayMaxViewers = 0 }},
		{"UploadRetryMax", func(c *Config) { c.UploadRetryMax = time.Millisecond }},
		{"UploadReconcileEvery", func(c *Config) { c.UploadReconcileEvery = 0 }},
	}
	for _, tc := range cases {
		c := defaultConfig()
		tc.edit(&c)
		got := badFields(t, c.Validate())
		var want []string
		if tc.field != "" {
			want = []string{tc.field}
		}
		if !slices.Equal(got, want) {
			t.Errorf("bad %q: Validate() reports %q, want %q", tc.field, got, want)
		}
	}
}

// Validate reports every bad field at once, not only the first.
func TestValidateReportsEveryBadField(t *testing.T) {
	c := defaultConfig()
	c.HTTPAddr = "8080"
	c.S3Bucket = "Evidence"
	c.LinkBuffer = -time.Second
	c.UploadMaxSize = 1
	c.RelayMaxViewers = 0
	got := badFields(t, c.Validate())
	want := []string{"http-addr", "s3-bucket", "link-buffer", "upload-max-size", "RelayMaxViewers"}
	if !slices.Equal(got, want) {
		t.Fatalf("Validate() reports %q, want %q", got, want)
	}
}

// A link buffer of 0 set by flag stays 0: it passes Validate and is not
// replaced by the default.
func TestZeroLinkBufferIsKept(t *testing.T) {
	c, err := loadConfig("serve", []string{"-link-buffer", "0"})
	if err != nil {
		t.Fatal(err)
	}
	if c.LinkBuffer != 0 {
		t.Fatalf("LinkBuffer = %v, want 0", c.LinkBuffer)
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
