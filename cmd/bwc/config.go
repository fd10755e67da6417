package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/seal"
	"github.com/bwcplatform/bwc/web"
)

// Config is every setting of `bwc serve` (and of the commands that share
// its database and object store), and the one place the platform's defaults
// are set: defaultConfig gives each field its default, build passes every
// field to its component explicitly, and the components substitute nothing
// (0 is taken literally where 0 means something, and refused where not).
//
// The settings an operator changes are flags (and BWC_* environment
// variables: flag -http-addr is BWC_HTTP_ADDR; a flag on the command line
// wins); the tuning values below them have no flag.
type Config struct {
	HTTPAddr        string        // -http-addr: the API, pages, probes and metrics
	PprofAddr       string        // -pprof-addr: pprof debug server; empty: off
	DatabaseURL     string        // -database-url: PostgreSQL, as the application's login (bwc_app); bwc migrate: the schema owner's
	MigrateURL      string        // -migrate-database-url: the schema owner's URL; when set, serve (and seed-demo, useradd) migrate with it first
	S3Endpoint      string        // -s3-endpoint: MinIO/S3, host:port
	S3AccessKey     string        // -s3-access-key
	S3SecretKey     string        // -s3-secret-key
	S3Bucket        string        // -s3-bucket: the evidence bucket (object lock)
	S3Region        string        // -s3-region
	S3UseTLS        bool          // -s3-tls
	LogLevel        string        // -log-level: debug, info, warn, error
	LogFormat       string        // -log-format: text or json
	ShutdownTimeout time.Duration // -shutdown-timeout: how long a graceful shutdown may take
	SessionTTL      time.Duration // -session-ttl: how long a login lasts
	TokenTTL        time.Duration // -token-ttl: the longest (and default) life of an API token
	CookieSecure    bool          // -cookie-secure: Secure cookie on plain HTTP too (behind a TLS proxy)
	SigningKey      string        // -signing-key: Ed25519 key of evidence packages (created when missing by the first node; every node needs the one registered)

	// HTTP edge: TLS, proxies, limits
	TLSCert           string        // -tls-cert: HTTPS with -tls-key; empty: plain HTTP
	TLSKey            string        // -tls-key
	TrustedProxies    string        // -trusted-proxies: CIDRs whose X-Forwarded-For is believed
	ReadHeaderTimeout time.Duration // -http-read-header-timeout
	ReadTimeout       time.Duration // -http-read-timeout
	WriteTimeout      time.Duration // -http-write-timeout
	IdleTimeout       time.Duration // -http-idle-timeout
	MaxHeaderBytes    int           // -http-max-header-bytes
	LoginRate         float64       // -login-rate: per address per second; 0: no limit
	LoginBurst        int           // -login-burst
	UnauthRate        float64       // -unauth-rate: per address per second; 0: no limit
	UnauthBurst       int           // -unauth-burst
	LoginHashSlots    int           // -login-hash-concurrency: password checks at once
	LoginHashWait     time.Duration // -login-hash-wait: wait for a password-check slot, then 503
	AuditReadPeriod   time.Duration // -audit-read-period: reads and refusals audited once per user, route and object per period, with a count
	MFARequiredRoles  string        // -mfa-required-roles: roles that must have a second factor (comma-separated); empty: none
	MapTiles          string        // -map-tiles: the map's tile server URL template ({z}/{x}/{y}); empty: no tiles, a plain background

	// single sign-on (OpenID Connect); off without an issuer
	OIDCIssuer      string // -oidc-issuer: the identity provider's issuer URL; empty: off
	OIDCName        string // -oidc-name: shown as "Sign in with <name>"
	OIDCClientID    string // -oidc-client-id
	OIDCSecretFile  string // -oidc-client-secret-file: a file holding the client secret (empty: a public client, PKCE only)
	OIDCRedirectURL string // -oidc-redirect-url: this server's /auth/oidc/callback as browsers reach it
	OIDCRoleClaim   string // -oidc-role-claim: the ID token claim holding the user's groups
	OIDCRoleMap     string // -oidc-role-map: group=role,...; the first of the user's groups in this order wins
	OIDCUnitClaim   string // -oidc-unit-claim: the claim holding the unit; empty: no unit
	OIDCBadgeClaim  string // -oidc-badge-claim: the claim holding an officer's badge

	// live ingest (RTSP)
	RTSPAddr        string        // -rtsp-addr
	RTSPUDPRTPAddr  string        // -rtsp-udp-rtp-addr; empty: TCP only
	RTSPUDPRTCPAddr string        // -rtsp-udp-rtcp-addr
	ReconnectGrace  time.Duration // -reconnect-grace: a camera back within this continues its recording
	MediaTimeout    time.Duration // -media-timeout: a camera silent this long is disconnected
	LinkBuffer      time.Duration // -link-buffer: assignment windows widened by this on each side; 0: exactly the window
	CameraHost      string        // -camera-host: host:port cameras reach the RTSP server at; empty: the bound -rtsp-addr

	// GB/T 28181 device access (SIP); empty GBSIPAddr: off
	GBSIPAddr          string        // -gb-sip-addr: SIP over UDP and TCP
	GBMediaAddr        string        // -gb-media-addr: RTP/PS over TCP and UDP, one port
	GBMediaHost        string        // -gb-media-host: the address devices reach the media port at (put in the INVITE); empty: the bound host
	GBID               string        // -gb-id: the platform's 20-digit SIP server ID
	GBDomain           string        // -gb-domain: the SIP domain and digest realm
	GBKeepaliveTimeout time.Duration // -gb-keepalive-timeout: a device silent this long is offline
	GBPositionInterval time.Duration // -gb-position-interval: MobilePosition SUBSCRIBE interval; 0: no SUBSCRIBE

	// RTSP limits and RTSPS
	RTSPMaxConns              int           // -rtsp-max-conns
	RTSPMaxConnsPerAddr       int           // -rtsp-max-conns-per-addr
	RTSPHandshakeTimeout      time.Duration // -rtsp-handshake-timeout
	RTSPAuthFailuresPerAddr   int           // -rtsp-auth-failures-per-addr
	RTSPAuthFailuresPerDevice int           // -rtsp-auth-failures-per-device
	RTSPAuthFailureWindow     time.Duration // -rtsp-auth-failure-window
	RTSPProxyProtocolFrom     string        // -rtsp-proxy-protocol-from: CIDRs of TCP balancers sending a PROXY header; empty: none
	RTSPSAddr                 string        // -rtsps-addr; empty: off
	RTSPTLSCert               string        // -rtsp-tls-cert
	RTSPTLSKey                string        // -rtsp-tls-key

	// live relay (WebRTC)
	WebRTCUDPAddr    string        // -webrtc-udp-addr; empty: no UDP
	WebRTCTCPAddr    string        // -webrtc-tcp-addr; empty: no ICE-TCP
	WebRTCPublicIPs  string        // -webrtc-public-ips
	WebRTCICEServers string        // -webrtc-ice-servers
	WebRTCTCPMax     int           // -webrtc-tcp-max-conns: ICE-TCP connections in all
	FFmpeg           string        // -ffmpeg: converts audio browsers cannot play (replay, live AAC); empty: no conversion
	WebRTCTCPPerAddr int           // -webrtc-tcp-max-per-addr: ICE-TCP connections from one address
	WebRTCSTUNWait   time.Duration // -webrtc-stun-timeout: an ICE-TCP connection must send its STUN binding within this

	// archive
	SpoolDir        string        // -spool-dir
	SegmentDuration time.Duration // -segment-duration
	Retention       time.Duration // -retention: object lock of recordings, uploads and export packages
	RetentionMode   string        // -retention-mode: compliance (nobody deletes before the date) or governance
	Checkpoint      time.Duration // -checkpoint-interval: a signed checkpoint of live recordings and the audit head this often
	Node            string        // -node: this node's name among the nodes sharing the database, and in its checkpoints (default: the host name)
	NodeHeartbeat   time.Duration // -node-heartbeat: how often the node says it is alive
	NodeDeadAfter   time.Duration // -node-dead-after: a node silent this long is dead; a live node ends its recordings
	NodeCapacity    int           // -node-capacity: cameras the node takes, advertised; 0: not said
	NodeHTTPAddr    string        // -node-http-addr: where the other nodes reach this node's HTTP server (live views of its cameras); empty: -http-addr as bound
	VerifyPerHour   int64         // -verify-bytes-per-hour: background re-verification of stored evidence; 0: off
	SpoolAlarmBytes int64         // -spool-alarm-bytes
	StuckAfter      time.Duration // -stuck-after
	ExportApproval  bool          // -export-approval
	ExportDir       string        // -export-dir
	UploadDir       string        // -upload-dir
	UploadMaxSize   int64         // -upload-max-size

	// uploads as a disk resource, and their completion
	UploadMinFree    int64         // -upload-min-free: free bytes kept for live recording; 0: no reserve
	UploadStaleAfter time.Duration // -upload-stale-after: partial uploads idle this long are removed
	UploadStuckAfter time.Duration // -upload-stuck-after: a received upload not stored after this fails /readyz

	// Tuning, no flag: values the components need, set here once.
	GBInviteTimeout       time.Duration // gb28181: an INVITE or Catalog query unanswered this long failed
	GBMediaWait           time.Duration // gb28181: an INVITEd device sending no video within this: retried
	GBRetryInterval       time.Duration // gb28181: an online device without media is INVITEd again this often
	LinkInterval          time.Duration // ingest: live recordings are re-linked this often (new assignments)
	MaxClockSkew          time.Duration // ingest: a camera clock further off than this is not trusted
	DevicesReload         time.Duration // ingest: device secrets cache refresh
	FragmentDuration      time.Duration // archive: fragment length, the most a crash loses
	ArchiveWorkers        int           // archive: recordings uploaded in parallel
	ArchiveRingFrames     int           // archive: per-recording reader ring, in frames
	ArchiveBackoffMin     time.Duration // archive: first retry delay after a failed upload
	ArchiveBackoffMax     time.Duration // archive: cap of the upload retry backoff
	ArchiveScanInterval   time.Duration // archive: spool rescan period
	ArchiveReconcileEvery time.Duration // archive: spool, index and bucket reconciled this often
	ArchiveRetryWrite     time.Duration // archive: after a spool write error, writing is tried again after this (0: at the next keyframe)
	RelayQueueFrames      int           // relay: per-viewer queue; a viewer this far behind skips to a keyframe
	RelayMaxViewers       int           // relay: live viewers in all
	UploadRetryMin        time.Duration // uploads: first retry delay of a completion
	UploadRetryMax        time.Duration // uploads: cap of the completion retry backoff
	UploadReconcileEvery  time.Duration // uploads: the bucket is checked for objects without a row this often
	VerifyRetryMin        time.Duration // background verification: first retry delay after it could not check
	VerifyRetryMax        time.Duration // background verification: cap of that backoff
	OIDCLoginTTL          time.Duration // single sign-on: how long a sign-in at the provider may take
	OIDCHTTPTimeout       time.Duration // single sign-on: each request to the provider
	ClaimTimeout          time.Duration // ingest: a new recording's row is written at once within this, else queued (the camera is admitted)
	ExportLease           time.Duration // exports: a node's claim on the export it builds (renewed every third); a dead node's export is taken over after it
	PeerLinger            time.Duration // live views across nodes: a camera pulled from another node stops this long after its last viewer here left
	PeerKeepAlive         time.Duration // live views across nodes: a holder's keepalive when no frame went this long; a pull silent 3× as long reconnects
	PeerTokenTTL          time.Duration // live views across nodes: lifetime of a pull's token
}

// defaultConfig is the one table of defaults, safe on a single machine:
// everything on loopback. Fields left out default to their zero value
// (empty address: off; false).
func defaultConfig() Config {
	return Config{
		HTTPAddr:        "127.0.0.1:8080",
		DatabaseURL:     "postgres://bwc_app@127.0.0.1:5439/bwc?sslmode=disable",
		S3Endpoint:      "127.0.0.1:9100",
		S3AccessKey:     "bwc-server", // the least-privilege user bwc setup-storage makes (scripts/services.sh), never the root user
		S3SecretKey:     "bwc-server-dev-secret",
		S3Bucket:        "bwc-evidence",
		S3Region:        "us-east-1",
		LogLevel:        "info",
		LogFormat:       "text",
		ShutdownTimeout: 15 * time.Second,
		SessionTTL:      12 * time.Hour, // a shift
		TokenTTL:        90 * 24 * time.Hour,
		SigningKey:      "/var/lib/bwc/signing-key.pem",

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
		AuditReadPeriod:   5 * time.Minute,
		MFARequiredRoles:  "admin,supervisor", // CJIS: multi-factor for those who see every unit's evidence

		OIDCName:       "single sign-on",
		OIDCRoleClaim:  "groups",
		OIDCRoleMap:    "bwc-admins=admin,bwc-supervisors=supervisor,bwc-reviewers=reviewer,bwc-officers=officer",
		OIDCUnitClaim:  "unit",
		OIDCBadgeClaim: "badge",

		RTSPAddr:       "127.0.0.1:8554",
		ReconnectGrace: 30 * time.Second,
		MediaTimeout:   10 * time.Second,
		LinkBuffer:     5 * time.Minute,

		GBMediaAddr:        "127.0.0.1:15060",
		GBID:               "34020000002000000001",
		GBDomain:           "3402000000",
		GBKeepaliveTimeout: 3 * time.Minute, // three missed keepalives at the devices' usual 60 s
		GBPositionInterval: 5 * time.Second,

		RTSPMaxConns:              4096,
		RTSPMaxConnsPerAddr:       32,
		RTSPHandshakeTimeout:      10 * time.Second,
		RTSPAuthFailuresPerAddr:   10,
		RTSPAuthFailuresPerDevice: 30,
		RTSPAuthFailureWindow:     time.Minute,

		WebRTCUDPAddr:    "127.0.0.1:8189",
		WebRTCTCPAddr:    "127.0.0.1:8189",
		WebRTCTCPMax:     2000,
		WebRTCTCPPerAddr: 400,
		WebRTCSTUNWait:   5 * time.Second,
		FFmpeg:           "ffmpeg",

		SpoolDir:        "/var/lib/bwc/spool",
		SegmentDuration: 4 * time.Second,
		Retention:       183 * 24 * time.Hour,
		RetentionMode:   "compliance",
		Checkpoint:      time.Minute,
		Node:            defaultNode(),
		NodeHeartbeat:   5 * time.Second,
		NodeDeadAfter:   30 * time.Second,
		VerifyPerHour:   1 << 30,
		SpoolAlarmBytes: 10 << 30,
		StuckAfter:      5 * time.Minute,
		ExportApproval:  true,
		ExportDir:       os.TempDir(),
		UploadDir:       "/var/lib/bwc/uploads",
		UploadMaxSize:   4 << 30,

		UploadMinFree:    2 << 30,
		UploadStaleAfter: 7 * 24 * time.Hour,
		UploadStuckAfter: 5 * time.Minute,

		LinkInterval:          15 * time.Second,
		MaxClockSkew:          10 * time.Minute,
		DevicesReload:         30 * time.Second,
		FragmentDuration:      time.Second,
		ArchiveWorkers:        4,
		ArchiveRingFrames:     4096, // about 50 s of 30 fps video with audio
		ArchiveBackoffMin:     500 * time.Millisecond,
		ArchiveBackoffMax:     30 * time.Second,
		ArchiveScanInterval:   time.Second,
		ArchiveReconcileEvery: 10 * time.Minute,
		ArchiveRetryWrite:     time.Second,
		RelayQueueFrames:      256,
		RelayMaxViewers:       500,
		UploadRetryMin:        time.Second,
		UploadRetryMax:        time.Minute,
		UploadReconcileEvery:  time.Hour,
		VerifyRetryMin:        time.Second,
		VerifyRetryMax:        time.Minute,
		OIDCLoginTTL:          10 * time.Minute,
		OIDCHTTPTimeout:       10 * time.Second,
		ClaimTimeout:          2 * time.Second,
		GBInviteTimeout:       10 * time.Second,
		GBMediaWait:           15 * time.Second,
		GBRetryInterval:       10 * time.Second,
		ExportLease:           2 * time.Minute,
		PeerLinger:            10 * time.Second,
		PeerKeepAlive:         2 * time.Second,
		PeerTokenTTL:          time.Minute,
	}
}

// uploadSweepEvery is how often partial uploads are checked for staleness:
// a 24th of -upload-stale-after, between 1s and an hour.
func (c Config) uploadSweepEvery() time.Duration {
	return min(max(c.UploadStaleAfter/24, time.Second), time.Hour)
}

// register binds every field to a flag of fs, with the field's current
// value as default.
func (c *Config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "address of the HTTP server (API, pages, /healthz, /readyz, /metrics)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", c.PprofAddr, "address of the pprof debug server; empty: off")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "PostgreSQL connection URL of the application's login (bwc migrate: of the schema owner)")
	fs.StringVar(&c.MigrateURL, "migrate-database-url", c.MigrateURL, "the schema owner's PostgreSQL URL: migrate with it before opening -database-url (empty: only check the schema version)")
	fs.StringVar(&c.S3Endpoint, "s3-endpoint", c.S3Endpoint, "S3/MinIO endpoint, host:port")
	fs.StringVar(&c.S3AccessKey, "s3-access-key", c.S3AccessKey, "S3 access key")
	fs.StringVar(&c.S3SecretKey, "s3-secret-key", c.S3SecretKey, "S3 secret key")
	fs.StringVar(&c.S3Bucket, "s3-bucket", c.S3Bucket, "evidence bucket (with object lock; bwc setup-storage creates it)")
	fs.StringVar(&c.S3Region, "s3-region", c.S3Region, "S3 region")
	fs.BoolVar(&c.S3UseTLS, "s3-tls", c.S3UseTLS, "use HTTPS to reach S3")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long a graceful shutdown may take")
	fs.DurationVar(&c.SessionTTL, "session-ttl", c.SessionTTL, "how long a login lasts")
	fs.DurationVar(&c.TokenTTL, "token-ttl", c.TokenTTL, "the longest (and default) life of an API token; a token may be created with a shorter ttl")
	fs.BoolVar(&c.CookieSecure, "cookie-secure", c.CookieSecure, "mark the session cookie Secure on plain HTTP too (behind a TLS proxy)")
	fs.StringVar(&c.SigningKey, "signing-key", c.SigningKey, "the platform's Ed25519 key for evidence packages (PEM; created when missing by the first node only: every node must hold the key registered in the database)")

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
	fs.DurationVar(&c.AuditReadPeriod, "audit-read-period", c.AuditReadPeriod, "reads and refusals are audited once per user, route and object per period at once, and their repeats as one event with a count when it ends")
	fs.StringVar(&c.MFARequiredRoles, "mfa-required-roles", c.MFARequiredRoles, "comma-separated roles that must have a second factor (TOTP): until they enrol, their sessions may only enrol; empty: none")
	fs.StringVar(&c.MapTiles, "map-tiles", c.MapTiles, "the map's tile server, a URL template such as https://tiles.example/{z}/{x}/{y}.png (the police network's own); empty: no tiles, units and incidents on a plain background")

	fs.StringVar(&c.OIDCIssuer, "oidc-issuer", c.OIDCIssuer, "single sign-on: the OpenID Connect provider's issuer URL; empty: off (local accounts only)")
	fs.StringVar(&c.OIDCName, "oidc-name", c.OIDCName, "single sign-on: the provider's name on the login page (\"Sign in with <name>\")")
	fs.StringVar(&c.OIDCClientID, "oidc-client-id", c.OIDCClientID, "single sign-on: this server's client ID at the provider")
	fs.StringVar(&c.OIDCSecretFile, "oidc-client-secret-file", c.OIDCSecretFile, "single sign-on: file holding the client secret; empty: a public client (PKCE only)")
	fs.StringVar(&c.OIDCRedirectURL, "oidc-redirect-url", c.OIDCRedirectURL, "single sign-on: this server's /auth/oidc/callback URL as browsers reach it (registered at the provider)")
	fs.StringVar(&c.OIDCRoleClaim, "oidc-role-claim", c.OIDCRoleClaim, "single sign-on: the ID token claim holding the user's groups (a string or a list)")
	fs.StringVar(&c.OIDCRoleMap, "oidc-role-map", c.OIDCRoleMap, "single sign-on: group=role,...; the first entry whose group the user is in gives the role; none: refused")
	fs.StringVar(&c.OIDCUnitClaim, "oidc-unit-claim", c.OIDCUnitClaim, "single sign-on: the ID token claim holding the user's unit; empty: no unit")
	fs.StringVar(&c.OIDCBadgeClaim, "oidc-badge-claim", c.OIDCBadgeClaim, "single sign-on: the ID token claim holding an officer's badge (the roster's officer the account belongs to)")

	fs.StringVar(&c.RTSPAddr, "rtsp-addr", c.RTSPAddr, "address cameras publish to over RTSP (TCP)")
	fs.StringVar(&c.RTSPUDPRTPAddr, "rtsp-udp-rtp-addr", c.RTSPUDPRTPAddr, "UDP address for RTP from cameras (even port); empty: TCP only")
	fs.StringVar(&c.RTSPUDPRTCPAddr, "rtsp-udp-rtcp-addr", c.RTSPUDPRTCPAddr, "UDP address for RTCP from cameras (the RTP port + 1)")
	fs.DurationVar(&c.ReconnectGrace, "reconnect-grace", c.ReconnectGrace, "a camera publishing again within this continues its recording")
	fs.DurationVar(&c.MediaTimeout, "media-timeout", c.MediaTimeout, "a camera sending no media for this long is disconnected")
	fs.DurationVar(&c.LinkBuffer, "link-buffer", c.LinkBuffer, "assignment windows are widened by this on each side when linking recordings to incidents; 0: exactly the window")
	fs.StringVar(&c.CameraHost, "camera-host", c.CameraHost, "host:port cameras use to reach the RTSP server (shown to admins); empty: rtsp-addr")
	fs.IntVar(&c.RTSPMaxConns, "rtsp-max-conns", c.RTSPMaxConns, "RTSP(S) connections at once; at the cap the oldest connection not yet publishing is closed")
	fs.IntVar(&c.RTSPMaxConnsPerAddr, "rtsp-max-conns-per-addr", c.RTSPMaxConnsPerAddr, "RTSP(S) connections not yet publishing from one address (IPv6: one /64); at the cap the address's oldest is closed")
	fs.DurationVar(&c.RTSPHandshakeTimeout, "rtsp-handshake-timeout", c.RTSPHandshakeTimeout, "an RTSP(S) connection that has not started recording within this is closed")
	fs.IntVar(&c.RTSPAuthFailuresPerAddr, "rtsp-auth-failures-per-addr", c.RTSPAuthFailuresPerAddr, "failed camera authentications from one address per window before it is throttled")
	fs.IntVar(&c.RTSPAuthFailuresPerDevice, "rtsp-auth-failures-per-device", c.RTSPAuthFailuresPerDevice, "failed authentications for one device per window before it is throttled")
	fs.DurationVar(&c.RTSPAuthFailureWindow, "rtsp-auth-failure-window", c.RTSPAuthFailureWindow, "window of the failed-authentication throttling")
	fs.StringVar(&c.RTSPProxyProtocolFrom, "rtsp-proxy-protocol-from", c.RTSPProxyProtocolFrom, "comma-separated CIDRs of TCP load balancers in front of the RTSP(S) listeners whose connections open with a PROXY protocol header (HAProxy send-proxy-v2) naming the camera's address; a connection from them without one is refused; empty: none")
	fs.StringVar(&c.RTSPSAddr, "rtsps-addr", c.RTSPSAddr, "address cameras publish to over RTSPS (RTSP over TLS); needs -rtsp-tls-cert and -rtsp-tls-key; empty: off")
	fs.StringVar(&c.RTSPTLSCert, "rtsp-tls-cert", c.RTSPTLSCert, "PEM certificate (chain) file of the RTSPS server (re-read when it changes)")
	fs.StringVar(&c.RTSPTLSKey, "rtsp-tls-key", c.RTSPTLSKey, "PEM private key file of -rtsp-tls-cert")

	fs.StringVar(&c.GBSIPAddr, "gb-sip-addr", c.GBSIPAddr, "GB/T 28181: address of the SIP server (UDP and TCP) devices register with, e.g. 0.0.0.0:5060; empty: off")
	fs.StringVar(&c.GBMediaAddr, "gb-media-addr", c.GBMediaAddr, "GB/T 28181: address devices send RTP/PS media to (TCP and UDP, one port)")
	fs.StringVar(&c.GBMediaHost, "gb-media-host", c.GBMediaHost, "GB/T 28181: the IP devices reach -gb-media-addr at (sent in the INVITE); empty: its bound host")
	fs.StringVar(&c.GBID, "gb-id", c.GBID, "GB/T 28181: the platform's 20-digit SIP server ID (the camera's \"server ID\")")
	fs.StringVar(&c.GBDomain, "gb-domain", c.GBDomain, "GB/T 28181: the SIP domain and digest realm (the camera's \"server domain\", usually the ID's first 10 digits)")
	fs.DurationVar(&c.GBKeepaliveTimeout, "gb-keepalive-timeout", c.GBKeepaliveTimeout, "GB/T 28181: a device sending no keepalive or registration for this long is offline")
	fs.DurationVar(&c.GBPositionInterval, "gb-position-interval", c.GBPositionInterval, "GB/T 28181: the MobilePosition interval the platform SUBSCRIBEs to after a device registers (whole seconds); 0: no SUBSCRIBE")

	fs.StringVar(&c.WebRTCUDPAddr, "webrtc-udp-addr", c.WebRTCUDPAddr, "one UDP port for every live viewer (ICE UDP mux); empty: no UDP")
	fs.StringVar(&c.WebRTCTCPAddr, "webrtc-tcp-addr", c.WebRTCTCPAddr, "ICE-TCP port, the fallback for networks that block UDP; empty: none")
	fs.StringVar(&c.WebRTCPublicIPs, "webrtc-public-ips", c.WebRTCPublicIPs, "comma-separated IPs announced to browsers instead of the host's (NAT 1:1)")
	fs.StringVar(&c.WebRTCICEServers, "webrtc-ice-servers", c.WebRTCICEServers, "comma-separated STUN/TURN servers for browsers: stun:host:port, turn:user:pass@host:port")
	fs.StringVar(&c.FFmpeg, "ffmpeg", c.FFmpeg, "ffmpeg binary that converts audio browsers cannot play (G.711 in replay, live AAC to Opus); empty: none, such audio is not heard")
	fs.IntVar(&c.WebRTCTCPMax, "webrtc-tcp-max-conns", c.WebRTCTCPMax, "ICE-TCP connections in all; more are closed at once")
	fs.IntVar(&c.WebRTCTCPPerAddr, "webrtc-tcp-max-per-addr", c.WebRTCTCPPerAddr, "ICE-TCP connections from one address (a duty room behind one NAT opens one per tile)")
	fs.DurationVar(&c.WebRTCSTUNWait, "webrtc-stun-timeout", c.WebRTCSTUNWait, "an ICE-TCP connection that sends no STUN binding within this is closed")

	fs.StringVar(&c.SpoolDir, "spool-dir", c.SpoolDir, "local folder where segments are fsynced before upload (keep it on durable disk)")
	fs.DurationVar(&c.SegmentDuration, "segment-duration", c.SegmentDuration, "target length of archived segments (cut at the next keyframe)")
	fs.DurationVar(&c.Retention, "retention", c.Retention, "object-lock retention of every evidence object (segments, upload originals, export packages, seals)")
	fs.StringVar(&c.RetentionMode, "retention-mode", c.RetentionMode, "object-lock mode: compliance (nobody, not even the MinIO root user, deletes a version before its retention ends) or governance (a user granted s3:BypassGovernanceRetention can)")
	fs.DurationVar(&c.Checkpoint, "checkpoint-interval", c.Checkpoint, "how often a signed checkpoint of the live recordings' hash chains and the audit head is written (what verify can prove since)")
	fs.StringVar(&c.Node, "node", c.Node, "this node's name among the nodes sharing the database and in the checkpoints it writes, unique per process (letters, digits, '.', '_', '-')")
	fs.DurationVar(&c.NodeHeartbeat, "node-heartbeat", c.NodeHeartbeat, "how often the node records in the database that it is alive")
	fs.DurationVar(&c.NodeDeadAfter, "node-dead-after", c.NodeDeadAfter, "a node whose heartbeat is this old is dead: a live node ends its recordings at their last archived segment (at least twice -node-heartbeat)")
	fs.IntVar(&c.NodeCapacity, "node-capacity", c.NodeCapacity, "cameras this node takes, advertised to the other nodes; 0: not said")
	fs.StringVar(&c.NodeHTTPAddr, "node-http-addr", c.NodeHTTPAddr, "host:port where the other nodes reach this node's HTTP server, to pull its cameras for their supervisors (with -tls-cert: a name its certificate holds); empty: -http-addr as bound, which must then name a reachable host")
	fs.Int64Var(&c.VerifyPerHour, "verify-bytes-per-hour", c.VerifyPerHour, "bytes of stored evidence re-read and re-hashed per hour in the background; 0: off")
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

// Validate reports every bad field at once (errors.Join of one error per
// field, each naming its flag, or its Go name for a tuning value).
func (c Config) Validate() error {
	var v validation
	c.validateBasics(&v)
	c.validateHTTP(&v)
	c.validateRTSP(&v)
	c.validateGB(&v)
	c.validateWebRTC(&v)
	c.validateArchive(&v)
	c.validateTuning(&v)
	return errors.Join(v.errs...)
}

// fieldError is one bad setting.
type fieldError struct{ field, problem string }

func (e *fieldError) Error() string { return "config " + e.field + ": " + e.problem }

// validation collects the bad fields of a Config.
type validation struct{ errs []error }

// check records field as bad with problem unless ok.
func (v *validation) check(ok bool, field, problem string) {
	if !ok {
		v.errs = append(v.errs, &fieldError{field, problem})
	}
}

// addr checks a host:port setting (no scheme, no path); empty is fine when
// optional.
func (v *validation) addr(field, value string, optional bool) {
	if value == "" && optional {
		return
	}
	_, port, err := net.SplitHostPort(value)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	v.check(err == nil && !strings.Contains(value, "/"), field, fmt.Sprintf("%q is not host:port (no scheme, no path)", value))
}

// validateBasics checks the stores, logging and the server's own settings.
func (c Config) validateBasics(v *validation) {
	v.addr("http-addr", c.HTTPAddr, false)
	v.addr("pprof-addr", c.PprofAddr, true)
	v.addr("node-http-addr", c.NodeHTTPAddr, true)
	v.check(strings.HasPrefix(c.DatabaseURL, "postgres://") || strings.HasPrefix(c.DatabaseURL, "postgresql://"),
		"database-url", "must be a postgres:// URL")
	v.check(c.MigrateURL == "" || strings.HasPrefix(c.MigrateURL, "postgres://") || strings.HasPrefix(c.MigrateURL, "postgresql://"),
		"migrate-database-url", "must be a postgres:// URL")
	v.addr("s3-endpoint", c.S3Endpoint, false)
	v.check(c.S3AccessKey != "", "s3-access-key", "required")
	v.check(c.S3SecretKey != "", "s3-secret-key", "required")
	v.check(len(c.S3Bucket) >= 3 && len(c.S3Bucket) <= 63 && strings.ToLower(c.S3Bucket) == c.S3Bucket,
		"s3-bucket", fmt.Sprintf("%q is not a valid bucket name (3-63 lower-case characters)", c.S3Bucket))
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		v.check(false, "log-level", fmt.Sprintf("%q is not debug, info, warn or error", c.LogLevel))
	}
	v.check(c.LogFormat == "text" || c.LogFormat == "json", "log-format", fmt.Sprintf("%q is not text or json", c.LogFormat))
	v.check(c.ShutdownTimeout > 0, "shutdown-timeout", "must be positive")
	v.check(c.SigningKey != "", "signing-key", "required")
	v.check(c.SessionTTL >= time.Minute, "session-ttl", "at least 1m")
	v.check(c.TokenTTL >= time.Hour, "token-ttl", "at least 1h")
}

// validateHTTP checks the HTTP edge's settings.
func (c Config) validateHTTP(v *validation) {
	v.check((c.TLSCert == "") == (c.TLSKey == ""), "tls-cert, tls-key", "set both or neither")
	if _, err := web.ParseTrustedProxies(splitList(c.RTSPProxyProtocolFrom)); err != nil {
		v.check(false, "rtsp-proxy-protocol-from", err.Error())
	}
	if _, err := web.ParseTrustedProxies(splitList(c.TrustedProxies)); err != nil {
		v.check(false, "trusted-proxies", err.Error())
	}
	v.check(c.ReadHeaderTimeout > 0 && c.ReadTimeout > 0 && c.WriteTimeout > 0 && c.IdleTimeout > 0,
		"http-read-header-timeout, http-read-timeout, http-write-timeout, http-idle-timeout", "must be positive")
	v.check(c.MaxHeaderBytes >= 4<<10, "http-max-header-bytes", "at least 4096")
	v.check(c.LoginRate >= 0 && c.UnauthRate >= 0, "login-rate, unauth-rate", "must not be negative")
	v.check(c.LoginBurst >= 1 && c.UnauthBurst >= 1, "login-burst, unauth-burst", "at least 1")
	v.check(c.LoginHashSlots >= 1, "login-hash-concurrency", "at least 1")
	v.check(c.LoginHashWait > 0, "login-hash-wait", "must be positive")
	v.check(c.AuditReadPeriod >= time.Second && c.AuditReadPeriod <= 24*time.Hour, "audit-read-period", "1s to 24h")
	for _, role := range splitList(c.MFARequiredRoles) {
		v.check(index.ValidRole(role), "mfa-required-roles", fmt.Sprintf("%q is not officer, supervisor, reviewer or admin", role))
	}
	if c.MapTiles != "" {
		v.check(isHTTPURL(c.MapTiles) && strings.Contains(c.MapTiles, "{z}") && strings.Contains(c.MapTiles, "{x}") && strings.Contains(c.MapTiles, "{y}"),
			"map-tiles", fmt.Sprintf("%q is not an http(s) URL template with {z}, {x} and {y}", c.MapTiles))
	}
	if c.OIDCIssuer != "" {
		v.check(isHTTPURL(c.OIDCIssuer), "oidc-issuer", fmt.Sprintf("%q is not an http(s) URL", c.OIDCIssuer))
		v.check(c.OIDCClientID != "", "oidc-client-id", "required with oidc-issuer")
		v.check(isHTTPURL(c.OIDCRedirectURL), "oidc-redirect-url", fmt.Sprintf("%q is not an http(s) URL (required with oidc-issuer)", c.OIDCRedirectURL))
		v.check(c.OIDCRoleClaim != "", "oidc-role-claim", "required with oidc-issuer")
		m, err := web.ParseRoleMap(c.OIDCRoleMap)
		v.check(err == nil, "oidc-role-map", fmt.Sprint(err))
		v.check(err != nil || len(m) > 0, "oidc-role-map", "map at least one group to a role")
		v.check(c.OIDCLoginTTL > 0 && c.OIDCHTTPTimeout > 0, "OIDCLoginTTL, OIDCHTTPTimeout", "must be positive")
	}
}

// isHTTPURL: an absolute http(s) URL with a host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// validateRTSP checks the live ingest's settings.
func (c Config) validateRTSP(v *validation) {
	v.addr("rtsp-addr", c.RTSPAddr, false)
	v.addr("rtsp-udp-rtp-addr", c.RTSPUDPRTPAddr, true)
	v.addr("rtsp-udp-rtcp-addr", c.RTSPUDPRTCPAddr, true)
	v.check((c.RTSPUDPRTPAddr == "") == (c.RTSPUDPRTCPAddr == ""), "rtsp-udp-rtcp-addr", "set both UDP addresses or neither")
	v.addr("camera-host", c.CameraHost, true)
	v.addr("rtsps-addr", c.RTSPSAddr, true)
	v.check(c.RTSPSAddr == "" || c.RTSPTLSCert != "" && c.RTSPTLSKey != "", "rtsps-addr", "needs rtsp-tls-cert and rtsp-tls-key")
	v.check(c.RTSPSAddr != "" || c.RTSPTLSCert == "" && c.RTSPTLSKey == "", "rtsp-tls-cert", "set rtsps-addr too, or RTSPS stays off")
	v.check(c.RTSPMaxConns >= 1, "rtsp-max-conns", "at least 1")
	v.check(c.RTSPMaxConnsPerAddr >= 1, "rtsp-max-conns-per-addr", "at least 1")
	v.check(c.RTSPHandshakeTimeout >= time.Second, "rtsp-handshake-timeout", "at least 1s")
	v.check(c.RTSPAuthFailuresPerAddr >= 1, "rtsp-auth-failures-per-addr", "at least 1")
	v.check(c.RTSPAuthFailuresPerDevice >= 1, "rtsp-auth-failures-per-device", "at least 1")
	v.check(c.RTSPAuthFailureWindow >= time.Second, "rtsp-auth-failure-window", "at least 1s")
	v.check(c.ReconnectGrace >= time.Second, "reconnect-grace", "at least 1s")
	v.check(c.MediaTimeout >= time.Second, "media-timeout", "at least 1s")
	v.check(c.LinkBuffer >= 0, "link-buffer", "must not be negative")
}

// validateGB checks the GB/T 28181 settings (when it is on).
func (c Config) validateGB(v *validation) {
	if c.GBSIPAddr == "" {
		return
	}
	v.addr("gb-sip-addr", c.GBSIPAddr, false)
	v.addr("gb-media-addr", c.GBMediaAddr, false)
	v.check(index.ValidGBID(c.GBID), "gb-id", "20 digits")
	v.check(c.GBDomain != "" && !strings.ContainsAny(c.GBDomain, "\"\\ \r\n"), "gb-domain", "a domain without quotes or spaces")
	v.check(c.GBKeepaliveTimeout >= time.Second, "gb-keepalive-timeout", "at least 1s")
	v.check(c.GBPositionInterval == 0 || (c.GBPositionInterval >= time.Second && c.GBPositionInterval%time.Second == 0), "gb-position-interval", "0 or whole seconds")
}

// validateWebRTC checks the live relay's settings.
func (c Config) validateWebRTC(v *validation) {
	v.addr("webrtc-udp-addr", c.WebRTCUDPAddr, true)
	v.addr("webrtc-tcp-addr", c.WebRTCTCPAddr, true)
	v.check(c.WebRTCUDPAddr != "" || c.WebRTCTCPAddr != "", "webrtc-udp-addr", "set it or webrtc-tcp-addr, or viewers cannot connect")
	v.check(c.WebRTCTCPAddr == "" || c.WebRTCTCPMax > 0 && c.WebRTCTCPPerAddr > 0 && c.WebRTCSTUNWait > 0,
		"webrtc-tcp-max-conns, webrtc-tcp-max-per-addr, webrtc-stun-timeout", "must be positive while webrtc-tcp-addr is set")
	for _, ip := range splitList(c.WebRTCPublicIPs) {
		v.check(net.ParseIP(ip) != nil, "webrtc-public-ips", fmt.Sprintf("%q is not an IP address", ip))
	}
	for _, u := range splitList(c.WebRTCICEServers) {
		v.check(strings.HasPrefix(u, "stun:") || strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:"),
			"webrtc-ice-servers", fmt.Sprintf("%q is not a stun:, turn: or turns: URL", u))
	}
}

// validateArchive checks the archive's, the exports' and the uploads'
// settings.
func (c Config) validateArchive(v *validation) {
	v.check(c.SpoolDir != "", "spool-dir", "required")
	v.check(c.SegmentDuration >= time.Second && c.SegmentDuration <= time.Minute, "segment-duration", "between 1s and 1m")
	v.check(c.Retention >= 24*time.Hour, "retention", "at least 24h")
	v.check(c.RetentionMode == "compliance" || c.RetentionMode == "governance", "retention-mode", fmt.Sprintf("%q is not compliance or governance", c.RetentionMode))
	v.check(c.Checkpoint >= time.Second && c.Checkpoint <= time.Hour, "checkpoint-interval", "between 1s and 1h")
	v.check(seal.ValidNode(c.Node) == nil, "node", fmt.Sprint(seal.ValidNode(c.Node)))
	v.check(c.NodeHeartbeat >= 100*time.Millisecond, "node-heartbeat", "at least 100ms")
	v.check(c.NodeDeadAfter >= 2*c.NodeHeartbeat, "node-dead-after", "at least twice node-heartbeat")
	v.check(c.NodeCapacity >= 0, "node-capacity", "not negative")
	v.check(c.VerifyPerHour >= 0, "verify-bytes-per-hour", "not negative")
	v.check(c.SpoolAlarmBytes >= 1<<20, "spool-alarm-bytes", "at least 1 MiB")
	v.check(c.StuckAfter >= time.Second, "stuck-after", "at least 1s")
	v.check(c.ExportDir != "", "export-dir", "required")
	v.check(c.UploadDir != "", "upload-dir", "required")
	v.check(c.UploadDir == "" || strings.TrimRight(c.UploadDir, "/") != strings.TrimRight(c.SpoolDir, "/"), "upload-dir", "must not be the spool-dir")
	v.check(c.UploadMaxSize >= 1<<20, "upload-max-size", "at least 1 MiB")
	v.check(c.UploadMinFree >= 0, "upload-min-free", "not negative")
	v.check(c.UploadStaleAfter >= time.Hour, "upload-stale-after", "at least 1h")
	v.check(c.UploadStuckAfter >= time.Second, "upload-stuck-after", "at least 1s")
}

// validateTuning checks the values without a flag (a wrong default, or a
// test's config).
func (c Config) validateTuning(v *validation) {
	for _, d := range []struct {
		field string
		value time.Duration
	}{
		{"LinkInterval", c.LinkInterval}, {"MaxClockSkew", c.MaxClockSkew}, {"DevicesReload", c.DevicesReload},
		{"FragmentDuration", c.FragmentDuration}, {"ArchiveBackoffMin", c.ArchiveBackoffMin},
		{"ArchiveScanInterval", c.ArchiveScanInterval}, {"ArchiveReconcileEvery", c.ArchiveReconcileEvery},
		{"UploadRetryMin", c.UploadRetryMin},
		{"UploadReconcileEvery", c.UploadReconcileEvery}, {"VerifyRetryMin", c.VerifyRetryMin}, {"ClaimTimeout", c.ClaimTimeout},
	} {
		v.check(d.value > 0, d.field, "must be positive")
	}
	v.check(c.ArchiveBackoffMax >= c.ArchiveBackoffMin, "ArchiveBackoffMax", "at least ArchiveBackoffMin")
	v.check(c.UploadRetryMax >= c.UploadRetryMin, "UploadRetryMax", "at least UploadRetryMin")
	v.check(c.VerifyRetryMax >= c.VerifyRetryMin, "VerifyRetryMax", "at least VerifyRetryMin")
	v.check(c.ExportLease >= time.Second, "ExportLease", "at least 1s")
	v.check(c.PeerLinger > 0 && c.PeerKeepAlive > 0 && c.PeerTokenTTL >= 10*time.Second, "PeerLinger, PeerKeepAlive, PeerTokenTTL", "positive; the token at least 10s")
	v.check(c.ArchiveRetryWrite >= 0, "ArchiveRetryWrite", "must not be negative (0: at the next keyframe)")
	v.check(c.ArchiveWorkers >= 1, "ArchiveWorkers", "at least 1")
	v.check(c.ArchiveRingFrames >= 1, "ArchiveRingFrames", "at least 1")
	v.check(c.RelayQueueFrames >= 1, "RelayQueueFrames", "at least 1")
	v.check(c.RelayMaxViewers >= 1, "RelayMaxViewers", "at least 1")
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

// defaultNode is the host name, as a checkpoint's key takes it.
func defaultNode() string {
	h, _ := os.Hostname()
	b := []byte(h)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			b[i] = '-'
		}
	}
	n := strings.TrimLeft(string(b), "._-")
	if len(n) > 63 {
		n = n[:63]
	}
	if n == "" {
		return "bwc"
	}
	return n
}
