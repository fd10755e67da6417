package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/bwcplatform/bwc/web"
)

// Config is every setting of `bwc serve` (and of the commands that share
// its database and object store). Each field is a flag, and each flag can
// also be set with a BWC_* environment variable (flag -http-addr is
// BWC_HTTP_ADDR); a flag given on the command line wins.
type Config struct {
	HTTPAddr        string
	PprofAddr       string
	DatabaseURL     string
	DatabaseRole    string
	S3Endpoint      string
	S3AccessKey     string
	S3SecretKey     string
	S3Bucket        string
	S3Region        string
	S3UseTLS        bool
	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration
	SessionTTL      time.Duration
	CookieSecure    bool
	SigningKey      string

	// HTTP edge: TLS, proxies, limits
	TLSCert           string
	TLSKey            string
	TrustedProxies    string
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	LoginRate         float64
	LoginBurst        int
	UnauthRate        float64
	UnauthBurst       int
	LoginHashSlots    int
	LoginHashWait     time.Duration

	// live ingest (RTSP)
	RTSPAddr        string
	RTSPUDPRTPAddr  string
	RTSPUDPRTCPAddr string
	ReconnectGrace  time.Duration
	MediaTimeout    time.Duration
	LinkBuffer      time.Duration
	CameraHost      string

	// RTSP limits and RTSPS
	RTSPMaxConns              int
	RTSPMaxConnsPerAddr       int
	RTSPHandshakeTimeout      time.Duration
	RTSPAuthFailuresPerAddr   int
	RTSPAuthFailuresPerDevice int
	RTSPAuthFailureWindow     time.Duration
	RTSPSAddr                 string
	RTSPTLSCert               string
	RTSPTLSKey                string

	// live relay (WebRTC)
	WebRTCUDPAddr    string
	WebRTCTCPAddr    string
	WebRTCPublicIPs  string
	WebRTCICEServers string
	WebRTCTCPMax     int           // ICE-TCP connections in all
	WebRTCTCPPerAddr int           // ICE-TCP connections from one address
	WebRTCSTUNWait   time.Duration // an ICE-TCP connection must send its STUN binding within this

	// archive
	SpoolDir        string
	SegmentDuration time.Duration
	Retention       time.Duration
	SpoolAlarmBytes int64
	StuckAfter      time.Duration
	ExportApproval  bool
	ExportDir       string
	UploadDir       string
	UploadMaxSize   int64

	// uploads as a disk resource, and their completion
	UploadMinFree    int64         // free bytes kept for live recording (upload folder and spool)
	UploadStaleAfter time.Duration // partial uploads idle this long are removed
	UploadStuckAfter time.Duration // a received upload not stored after this long fails /readyz
}

// defaultConfig is safe on a single machine: everything on loopback.
func defaultConfig() Config {
	return Config{
		HTTPAddr:          "127.0.0.1:8080",
		DatabaseURL:       "postgres://postgres@127.0.0.1:5439/bwc?sslmode=disable",
		DatabaseRole:      "bwc_app",
		S3Endpoint:        "127.0.0.1:9100",
		S3AccessKey:       "bwcadmin",
		S3SecretKey:       "bwc-dev-secret-key",
		S3Bucket:          "bwc-evidence",
		S3Region:          "us-east-1",
		LogLevel:          "info",
		LogFormat:         "text",
		ShutdownTimeout:   15 * time.Second,
		SessionTTL:        12 * time.Hour,
		SigningKey:        "/var/lib/bwc/signing-key.pem",
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		LoginRate:         0.2,
		LoginBurst:        10,
		UnauthRate:        20,
		UnauthBurst:       200,
		LoginHashSlots:    2 * runtime.GOMAXPROCS(0),
		LoginHashWait:     2 * time.Second,
		RTSPAddr:          "127.0.0.1:8554",
		ReconnectGrace:    30 * time.Second,
		MediaTimeout:      10 * time.Second,
		LinkBuffer:        5 * time.Minute,
		WebRTCUDPAddr:     "127.0.0.1:8189",
		WebRTCTCPAddr:     "127.0.0.1:8189",
		WebRTCTCPMax:      2000,
		WebRTCTCPPerAddr:  400,
		WebRTCSTUNWait:    5 * time.Second,
		SpoolDir:          "/var/lib/bwc/spool",
		SegmentDuration:   4 * time.Second,
		Retention:         183 * 24 * time.Hour,
		SpoolAlarmBytes:   10 << 30,
		StuckAfter:        5 * time.Minute,
		ExportApproval:    true,
		ExportDir:         os.TempDir(),
		UploadDir:         "/var/lib/bwc/uploads",
		UploadMaxSize:     4 << 30,

		UploadMinFree:    2 << 30,
		UploadStaleAfter: 7 * 24 * time.Hour,
		UploadStuckAfter: 5 * time.Minute,

		RTSPMaxConns:              4096,
		RTSPMaxConnsPerAddr:       32,
		RTSPHandshakeTimeout:      10 * time.Second,
		RTSPAuthFailuresPerAddr:   10,
		RTSPAuthFailuresPerDevice: 30,
		RTSPAuthFailureWindow:     time.Minute,
	}
}

// register binds every field to a flag of fs, with the field's current
// value as default.
func (c *Config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "address of the HTTP server (API, pages, /healthz, /readyz, /metrics)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", c.PprofAddr, "address of the pprof debug server; empty: off")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "PostgreSQL connection URL")
	fs.StringVar(&c.DatabaseRole, "database-role", c.DatabaseRole, "role the server works as after migrating (SET ROLE); empty: the login user")
	fs.StringVar(&c.S3Endpoint, "s3-endpoint", c.S3Endpoint, "S3/MinIO endpoint, host:port")
	fs.StringVar(&c.S3AccessKey, "s3-access-key", c.S3AccessKey, "S3 access key")
	fs.StringVar(&c.S3SecretKey, "s3-secret-key", c.S3SecretKey, "S3 secret key")
	fs.StringVar(&c.S3Bucket, "s3-bucket", c.S3Bucket, "evidence bucket (created with object lock when missing)")
	fs.StringVar(&c.S3Region, "s3-region", c.S3Region, "S3 region")
	fs.BoolVar(&c.S3UseTLS, "s3-tls", c.S3UseTLS, "use HTTPS to reach S3")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long a graceful shutdown may take")
	fs.DurationVar(&c.SessionTTL, "session-ttl", c.SessionTTL, "how long a login lasts")
	fs.BoolVar(&c.CookieSecure, "cookie-secure", c.CookieSecure, "mark the session cookie Secure on plain HTTP too (behind a TLS proxy)")
	fs.StringVar(&c.SigningKey, "signing-key", c.SigningKey, "the platform's Ed25519 key for evidence packages (PEM; created when missing)")

	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate (chain) file: serve the API and pages over HTTPS; with -tls-key")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key file of -tls-cert")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", c.TrustedProxies, "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client; empty: none")
	fs.DurationVar(&c.ReadHeaderTimeout, "http-read-header-timeout", c.ReadHeaderTimeout, "a request's headers (and the TLS handshake) must arrive within this")
	fs.DurationVar(&c.ReadTimeout, "http-read-timeout", c.ReadTimeout, "a request's body must arrive within this (tus upload chunks: 60s without progress instead)")
	fs.DurationVar(&c.WriteTimeout, "http-write-timeout", c.WriteTimeout, "each write of a response must complete within this (long responses go on while the client reads)")
	fs.DurationVar(&c.IdleTimeout, "http-idle-timeout", c.IdleTimeout, "an idle keep-alive connection is closed after this")
	fs.IntVar(&c.MaxHeaderBytes, "http-max-header-bytes", c.MaxHeaderBytes, "largest request header block, in bytes")
	fs.Float64Var(&c.LoginRate, "login-rate", c.LoginRate, "login attempts per second allowed from one address (IPv6: per /64), after the burst; 0: no limit")
	fs.IntVar(&c.LoginBurst, "login-burst", c.LoginBurst, "login attempts one address may make at once")
	fs.Float64Var(&c.UnauthRate, "unauth-rate", c.UnauthRate, "requests per second without a valid session or token allowed from one address; 0: no limit")
	fs.IntVar(&c.UnauthBurst, "unauth-burst", c.UnauthBurst, "requests without a valid session or token one address may make at once")
	fs.IntVar(&c.LoginHashSlots, "login-hash-concurrency", c.LoginHashSlots, "password checks (argon2id, 19 MiB each) running at once")
	fs.DurationVar(&c.LoginHashWait, "login-hash-wait", c.LoginHashWait, "a login waits at most this for a password-check slot, then gets 503")

	fs.StringVar(&c.RTSPAddr, "rtsp-addr", c.RTSPAddr, "address cameras publish to over RTSP (TCP)")
	fs.StringVar(&c.RTSPUDPRTPAddr, "rtsp-udp-rtp-addr", c.RTSPUDPRTPAddr, "UDP address for RTP from cameras (even port); empty: TCP only")
	fs.StringVar(&c.RTSPUDPRTCPAddr, "rtsp-udp-rtcp-addr", c.RTSPUDPRTCPAddr, "UDP address for RTCP from cameras (the RTP port + 1)")
	fs.DurationVar(&c.ReconnectGrace, "reconnect-grace", c.ReconnectGrace, "a camera publishing again within this continues its recording")
	fs.DurationVar(&c.MediaTimeout, "media-timeout", c.MediaTimeout, "a camera sending no media for this long is disconnected")
	fs.DurationVar(&c.LinkBuffer, "link-buffer", c.LinkBuffer, "assignment windows are widened by this on each side when linking recordings to incidents")
	fs.StringVar(&c.CameraHost, "camera-host", c.CameraHost, "host:port cameras use to reach the RTSP server (shown to admins); empty: rtsp-addr")
	fs.IntVar(&c.RTSPMaxConns, "rtsp-max-conns", c.RTSPMaxConns, "RTSP(S) connections at once; at the cap the oldest connection not yet publishing is closed")
	fs.IntVar(&c.RTSPMaxConnsPerAddr, "rtsp-max-conns-per-addr", c.RTSPMaxConnsPerAddr, "RTSP(S) connections not yet publishing from one address (IPv6: one /64); at the cap the address's oldest is closed")
	fs.DurationVar(&c.RTSPHandshakeTimeout, "rtsp-handshake-timeout", c.RTSPHandshakeTimeout, "an RTSP(S) connection that has not started recording within this is closed")
	fs.IntVar(&c.RTSPAuthFailuresPerAddr, "rtsp-auth-failures-per-addr", c.RTSPAuthFailuresPerAddr, "failed camera authentications from one address per window before it is throttled")
	fs.IntVar(&c.RTSPAuthFailuresPerDevice, "rtsp-auth-failures-per-device", c.RTSPAuthFailuresPerDevice, "failed authentications for one device per window before it is throttled")
	fs.DurationVar(&c.RTSPAuthFailureWindow, "rtsp-auth-failure-window", c.RTSPAuthFailureWindow, "window of the failed-authentication throttling")
	fs.StringVar(&c.RTSPSAddr, "rtsps-addr", c.RTSPSAddr, "address cameras publish to over RTSPS (RTSP over TLS); needs -rtsp-tls-cert and -rtsp-tls-key; empty: off")
	fs.StringVar(&c.RTSPTLSCert, "rtsp-tls-cert", c.RTSPTLSCert, "PEM certificate (chain) file of the RTSPS server (re-read when it changes)")
	fs.StringVar(&c.RTSPTLSKey, "rtsp-tls-key", c.RTSPTLSKey, "PEM private key file of -rtsp-tls-cert")

	fs.StringVar(&c.WebRTCUDPAddr, "webrtc-udp-addr", c.WebRTCUDPAddr, "one UDP port for every live viewer (ICE UDP mux); empty: no UDP")
	fs.StringVar(&c.WebRTCTCPAddr, "webrtc-tcp-addr", c.WebRTCTCPAddr, "ICE-TCP port, the fallback for networks that block UDP; empty: none")
	fs.StringVar(&c.WebRTCPublicIPs, "webrtc-public-ips", c.WebRTCPublicIPs, "comma-separated IPs announced to browsers instead of the host's (NAT 1:1)")
	fs.StringVar(&c.WebRTCICEServers, "webrtc-ice-servers", c.WebRTCICEServers, "comma-separated STUN/TURN servers for browsers: stun:host:port, turn:user:pass@host:port")
	fs.IntVar(&c.WebRTCTCPMax, "webrtc-tcp-max-conns", c.WebRTCTCPMax, "ICE-TCP connections in all; more are closed at once")
	fs.IntVar(&c.WebRTCTCPPerAddr, "webrtc-tcp-max-per-addr", c.WebRTCTCPPerAddr, "ICE-TCP connections from one address (a duty room behind one NAT opens one per tile)")
	fs.DurationVar(&c.WebRTCSTUNWait, "webrtc-stun-timeout", c.WebRTCSTUNWait, "an ICE-TCP connection that sends no STUN binding within this is closed")

	fs.StringVar(&c.SpoolDir, "spool-dir", c.SpoolDir, "local folder where segments are fsynced before upload (keep it on durable disk)")
	fs.DurationVar(&c.SegmentDuration, "segment-duration", c.SegmentDuration, "target length of archived segments (cut at the next keyframe)")
	fs.DurationVar(&c.Retention, "retention", c.Retention, "object-lock retention (GOVERNANCE) of every archived object")
	fs.Int64Var(&c.SpoolAlarmBytes, "spool-alarm-bytes", c.SpoolAlarmBytes, "spool size above which /readyz fails and an alarm is logged")
	fs.DurationVar(&c.StuckAfter, "stuck-after", c.StuckAfter, "a segment still in the spool after this long while PostgreSQL and MinIO answer fails /readyz by name")
	fs.BoolVar(&c.ExportApproval, "export-approval", c.ExportApproval, "evidence exports need a supervisor's approval (false: built at once)")
	fs.StringVar(&c.UploadDir, "upload-dir", c.UploadDir, "local folder where resumable uploads wait until complete (durable disk)")
	fs.Int64Var(&c.UploadMaxSize, "upload-max-size", c.UploadMaxSize, "largest file an officer may upload, in bytes")
	fs.Int64Var(&c.UploadMinFree, "upload-min-free", c.UploadMinFree, "free bytes kept for live recording on the upload folder's and the spool's file systems: uploads that would go below are refused (507)")
	fs.DurationVar(&c.UploadStaleAfter, "upload-stale-after", c.UploadStaleAfter, "partial uploads with no byte for this long are removed (audited)")
	fs.DurationVar(&c.UploadStuckAfter, "upload-stuck-after", c.UploadStuckAfter, "a received upload not stored after this long while PostgreSQL and MinIO answer fails /readyz by name")
	fs.StringVar(&c.ExportDir, "export-dir", c.ExportDir, "local folder where export packages are assembled before they go to the bucket")
}

// envName is the environment variable of a flag: -http-addr is BWC_HTTP_ADDR.
func envName(flagName string) string {
	return "BWC_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags fills fs's flags from the environment, then from args.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return fs.Parse(args)
}

// Validate names the first bad field.
func (c Config) Validate() error {
	addr := func(field, v string, optional bool) error {
		if v == "" && optional {
			return nil
		}
		_, port, err := net.SplitHostPort(v)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil || strings.Contains(v, "/") {
			return fmt.Errorf("config %s: %q is not host:port (no scheme, no path)", field, v)
		}
		return nil
	}
	if err := addr("http-addr", c.HTTPAddr, false); err != nil {
		return err
	}
	if err := addr("pprof-addr", c.PprofAddr, true); err != nil {
		return err
	}
	if !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return fmt.Errorf("config database-url: must be a postgres:// URL")
	}
	if c.DatabaseRole != "" && !validIdent(c.DatabaseRole) {
		return fmt.Errorf("config database-role: %q is not a plain role name", c.DatabaseRole)
	}
	if err := addr("s3-endpoint", c.S3Endpoint, false); err != nil {
		return err
	}
	switch {
	case c.S3AccessKey == "":
		return errors.New("config s3-access-key: required")
	case c.S3SecretKey == "":
		return errors.New("config s3-secret-key: required")
	case len(c.S3Bucket) < 3 || len(c.S3Bucket) > 63 || strings.ToLower(c.S3Bucket) != c.S3Bucket:
		return fmt.Errorf("config s3-bucket: %q is not a valid bucket name (3-63 lower-case characters)", c.S3Bucket)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config log-level: %q is not debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("config log-format: %q is not text or json", c.LogFormat)
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("config shutdown-timeout: must be positive")
	}
	if c.SigningKey == "" {
		return errors.New("config signing-key: required")
	}
	if c.SessionTTL < time.Minute {
		return errors.New("config session-ttl: at least 1m")
	}
	if err := c.validateHTTP(); err != nil {
		return err
	}
	if err := addr("rtsp-addr", c.RTSPAddr, false); err != nil {
		return err
	}
	if err := addr("rtsp-udp-rtp-addr", c.RTSPUDPRTPAddr, true); err != nil {
		return err
	}
	if err := addr("rtsp-udp-rtcp-addr", c.RTSPUDPRTCPAddr, true); err != nil {
		return err
	}
	if (c.RTSPUDPRTPAddr == "") != (c.RTSPUDPRTCPAddr == "") {
		return errors.New("config rtsp-udp-rtcp-addr: set both UDP addresses or neither")
	}
	if err := addr("camera-host", c.CameraHost, true); err != nil {
		return err
	}
	if err := addr("rtsps-addr", c.RTSPSAddr, true); err != nil {
		return err
	}
	switch {
	case c.RTSPSAddr != "" && (c.RTSPTLSCert == "" || c.RTSPTLSKey == ""):
		return errors.New("config rtsps-addr: needs rtsp-tls-cert and rtsp-tls-key")
	case c.RTSPSAddr == "" && (c.RTSPTLSCert != "" || c.RTSPTLSKey != ""):
		return errors.New("config rtsp-tls-cert: set rtsps-addr too, or RTSPS stays off")
	case c.RTSPMaxConns < 1:
		return errors.New("config rtsp-max-conns: at least 1")
	case c.RTSPMaxConnsPerAddr < 1:
		return errors.New("config rtsp-max-conns-per-addr: at least 1")
	case c.RTSPHandshakeTimeout < time.Second:
		return errors.New("config rtsp-handshake-timeout: at least 1s")
	case c.RTSPAuthFailuresPerAddr < 1:
		return errors.New("config rtsp-auth-failures-per-addr: at least 1")
	case c.RTSPAuthFailuresPerDevice < 1:
		return errors.New("config rtsp-auth-failures-per-device: at least 1")
	case c.RTSPAuthFailureWindow < time.Second:
		return errors.New("config rtsp-auth-failure-window: at least 1s")
	}
	if err := addr("webrtc-udp-addr", c.WebRTCUDPAddr, true); err != nil {
		return err
	}
	if err := addr("webrtc-tcp-addr", c.WebRTCTCPAddr, true); err != nil {
		return err
	}
	if c.WebRTCUDPAddr == "" && c.WebRTCTCPAddr == "" {
		return errors.New("config webrtc-udp-addr: set it or webrtc-tcp-addr, or viewers cannot connect")
	}
	if c.WebRTCTCPAddr != "" && (c.WebRTCTCPMax <= 0 || c.WebRTCTCPPerAddr <= 0 || c.WebRTCSTUNWait <= 0) {
		return errors.New("config webrtc-tcp-max-conns, webrtc-tcp-max-per-addr, webrtc-stun-timeout: must be positive while webrtc-tcp-addr is set")
	}
	for _, ip := range splitList(c.WebRTCPublicIPs) {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("config webrtc-public-ips: %q is not an IP address", ip)
		}
	}
	for _, u := range splitList(c.WebRTCICEServers) {
		if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			return fmt.Errorf("config webrtc-ice-servers: %q is not a stun:, turn: or turns: URL", u)
		}
	}
	switch {
	case c.ReconnectGrace < time.Second:
		return errors.New("config reconnect-grace: at least 1s")
	case c.MediaTimeout < time.Second:
		return errors.New("config media-timeout: at least 1s")
	case c.LinkBuffer < 0:
		return errors.New("config link-buffer: must not be negative")
	case c.SpoolDir == "":
		return errors.New("config spool-dir: required")
	case c.SegmentDuration < time.Second || c.SegmentDuration > time.Minute:
		return errors.New("config segment-duration: between 1s and 1m")
	case c.Retention < 24*time.Hour:
		return errors.New("config retention: at least 24h")
	case c.SpoolAlarmBytes < 1<<20:
		return errors.New("config spool-alarm-bytes: at least 1 MiB")
	case c.StuckAfter < time.Second:
		return errors.New("config stuck-after: at least 1s")
	case c.ExportDir == "":
		return errors.New("config export-dir: required")
	case c.UploadDir == "":
		return errors.New("config upload-dir: required")
	case c.UploadMaxSize < 1<<20:
		return errors.New("config upload-max-size: at least 1 MiB")
	case c.UploadMinFree < 0:
		return errors.New("config upload-min-free: not negative")
	case c.UploadStaleAfter < time.Hour:
		return errors.New("config upload-stale-after: at least 1h")
	case c.UploadStuckAfter < time.Second:
		return errors.New("config upload-stuck-after: at least 1s")
	case strings.TrimRight(c.UploadDir, "/") == strings.TrimRight(c.SpoolDir, "/"):
		return errors.New("config upload-dir: must not be the spool-dir")
	}
	return nil
}

// validateHTTP checks the HTTP edge's settings.
func (c Config) validateHTTP() error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("config tls-cert, tls-key: set both or neither")
	}
	if _, err := web.ParseTrustedProxies(splitList(c.TrustedProxies)); err != nil {
		return fmt.Errorf("config trusted-proxies: %w", err)
	}
	switch {
	case c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0:
		return errors.New("config http-read-header-timeout, http-read-timeout, http-write-timeout, http-idle-timeout: must be positive")
	case c.MaxHeaderBytes < 4<<10:
		return errors.New("config http-max-header-bytes: at least 4096")
	case c.LoginRate < 0 || c.UnauthRate < 0:
		return errors.New("config login-rate, unauth-rate: must not be negative")
	case c.LoginBurst < 1 || c.UnauthBurst < 1:
		return errors.New("config login-burst, unauth-burst: at least 1")
	case c.LoginHashSlots < 1:
		return errors.New("config login-hash-concurrency: at least 1")
	case c.LoginHashWait <= 0:
		return errors.New("config login-hash-wait: must be positive")
	}
	return nil
}

// loadConfig reads the configuration of the server commands.
func loadConfig(name string, args []string) (Config, error) {
	c := defaultConfig()
	fs := flag.NewFlagSet("bwc "+name, flag.ContinueOnError)
	c.register(fs)
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("bwc %s: unexpected arguments %q", name, fs.Args())
	}
	return c, c.Validate()
}

func validIdent(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != "" && len(s) <= 63
}

// splitList splits a comma-separated setting, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
