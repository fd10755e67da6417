package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/ingest"
	"github.com/bwcplatform/bwc/ingest/gb28181"
	"github.com/bwcplatform/bwc/ingest/peer"
	"github.com/bwcplatform/bwc/ingest/upload"
	"github.com/bwcplatform/bwc/relay"
	"github.com/bwcplatform/bwc/storage/archive"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/seal"
	"github.com/bwcplatform/bwc/web"
)

// Each component's configuration, every field from Config: the components
// substitute no default, so a field left out here would be a zero the
// component refuses, or takes literally (TestComponentConfigsAreComplete).

func (c Config) blobConfig() blob.Config {
	return blob.Config{Endpoint: c.S3Endpoint, AccessKey: c.S3AccessKey, SecretKey: c.S3SecretKey,
		Bucket: c.S3Bucket, Region: c.S3Region, UseTLS: c.S3UseTLS,
		RetentionMode: blob.RetentionMode(strings.ToUpper(c.RetentionMode))} // "compliance" is blob.Compliance
}

func (c Config) archiveConfig() archive.Config {
	return archive.Config{SpoolDir: c.SpoolDir, SegmentDuration: c.SegmentDuration, FragmentDuration: c.FragmentDuration,
		Retention: c.Retention, SpoolAlarmBytes: c.SpoolAlarmBytes, UploadWorkers: c.ArchiveWorkers, RingFrames: c.ArchiveRingFrames,
		BackoffMin: c.ArchiveBackoffMin, BackoffMax: c.ArchiveBackoffMax, ScanInterval: c.ArchiveScanInterval,
		StuckAfter: c.StuckAfter, ReconcileEvery: c.ArchiveReconcileEvery, RetryWrite: c.ArchiveRetryWrite, LinkBuffer: c.LinkBuffer,
		Node: c.Node, NodeDeadAfter: c.NodeDeadAfter}
}

func (c Config) ingestConfig() ingest.Config {
	balancers, _ := web.ParseTrustedProxies(splitList(c.RTSPProxyProtocolFrom)) // the one parser of address lists; checked by Validate
	return ingest.Config{ProxyProtocolFrom: balancers, RTSPAddr: c.RTSPAddr, PublicHost: c.CameraHost, UDPRTPAddr: c.RTSPUDPRTPAddr, UDPRTCPAddr: c.RTSPUDPRTCPAddr,
		Grace: c.ReconnectGrace, MediaTimeout: c.MediaTimeout, LinkBuffer: c.LinkBuffer,
		LinkInterval: c.LinkInterval, MaxClockSkew: c.MaxClockSkew, DevicesReload: c.DevicesReload,
		MaxConns: c.RTSPMaxConns, MaxConnsPerAddr: c.RTSPMaxConnsPerAddr, HandshakeTimeout: c.RTSPHandshakeTimeout,
		AuthFailuresPerAddr: c.RTSPAuthFailuresPerAddr, AuthFailuresPerDevice: c.RTSPAuthFailuresPerDevice,
		AuthFailureWindow: c.RTSPAuthFailureWindow, RTSPSAddr: c.RTSPSAddr, TLSCert: c.RTSPTLSCert, TLSKey: c.RTSPTLSKey,
		JournalDir: filepath.Join(c.SpoolDir, "journal"), Node: c.Node, ClaimTimeout: c.ClaimTimeout}
}

// gbConfig: GB/T 28181 device access (on when -gb-sip-addr is set).
func (c Config) gbConfig() gb28181.Config {
	return gb28181.Config{ID: c.GBID, Domain: c.GBDomain, SIPAddr: c.GBSIPAddr, MediaAddr: c.GBMediaAddr, PublicHost: c.GBMediaHost,
		KeepaliveTimeout: c.GBKeepaliveTimeout, InviteTimeout: c.GBInviteTimeout, MediaWait: c.GBMediaWait, RetryInterval: c.GBRetryInterval,
		PositionInterval: c.GBPositionInterval}
}

// nodeConfig: this process among the nodes; it advertises the addresses
// as configured (cameras: -camera-host when set).
func (c Config) nodeConfig() ingest.NodeConfig {
	rtsp := c.CameraHost
	if rtsp == "" {
		rtsp = c.RTSPAddr
	}
	http := c.NodeHTTPAddr
	if http == "" {
		http = c.HTTPAddr // the bound address replaces it once the web server listens (peerConfig)
	}
	return ingest.NodeConfig{Node: index.Node{ID: c.Node, RTSPAddr: rtsp, HTTPAddr: http,
		WebRTCAddr: strings.Join(splitList(c.WebRTCPublicIPs+","+c.WebRTCUDPAddr+","+c.WebRTCTCPAddr), ","),
		Capacity:   c.NodeCapacity, Version: buildVersion()},
		Heartbeat: c.NodeHeartbeat, DeadAfter: c.NodeDeadAfter}
}

// buildVersion names the binary: its module version and VCS revision.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
	}
	return v
}

func (c Config) checkpointConfig() seal.CheckpointConfig {
	return seal.CheckpointConfig{Every: c.Checkpoint, Node: c.Node, Retention: c.Retention}
}

func (c Config) scrubConfig() evidence.ScrubConfig {
	return evidence.ScrubConfig{BytesPerHour: c.VerifyPerHour, RetryMin: c.VerifyRetryMin, RetryMax: c.VerifyRetryMax}
}

func (c Config) exporterConfig() export.ExporterConfig {
	return export.ExporterConfig{Dir: c.ExportDir, Retention: c.Retention, Node: c.Node, Lease: c.ExportLease}
}

func (c Config) uploadConfig(reg prometheus.Registerer) upload.Config {
	return upload.Config{Dir: c.UploadDir, MaxSize: c.UploadMaxSize, Retention: c.Retention, LinkBuffer: c.LinkBuffer,
		SpoolDir: c.SpoolDir, MinFree: c.UploadMinFree, StaleAfter: c.UploadStaleAfter, SweepEvery: c.uploadSweepEvery(),
		StuckAfter: c.UploadStuckAfter, RetryMin: c.UploadRetryMin, RetryMax: c.UploadRetryMax,
		ReconcileEvery: c.UploadReconcileEvery, Metrics: reg}
}

func (c Config) relayConfig() relay.Config {
	return relay.Config{UDPAddr: c.WebRTCUDPAddr, TCPAddr: c.WebRTCTCPAddr,
		PublicIPs: splitList(c.WebRTCPublicIPs), ICEServers: splitList(c.WebRTCICEServers),
		QueueFrames: c.RelayQueueFrames, MaxViewers: c.RelayMaxViewers,
		TCPMaxConns: c.WebRTCTCPMax, TCPMaxPerAddr: c.WebRTCTCPPerAddr, STUNTimeout: c.WebRTCSTUNWait}
}

// peerConfig: the inter-node link of live views. It advertises
// -node-http-addr, else the web server's bound address (bound is called
// once it listens), and its key is derived from the platform's signing key.
func (c Config) peerConfig(key []byte, bound func() string) peer.Config {
	advertise := func() string { return c.NodeHTTPAddr }
	if c.NodeHTTPAddr == "" {
		advertise = bound
	}
	return peer.Config{Node: c.Node, Key: key, Linger: c.PeerLinger, KeepAlive: c.PeerKeepAlive, TokenTTL: c.PeerTokenTTL,
		HTTPS: c.TLSCert != "", Advertise: advertise}
}

// webConfig needs the trusted proxies parsed (Validate checked them) and
// reads the single sign-on client secret's file.
func (c Config) webConfig() (web.Config, error) {
	proxies, err := web.ParseTrustedProxies(splitList(c.TrustedProxies))
	if err != nil {
		return web.Config{}, err
	}
	oidc, err := c.oidcConfig()
	return web.Config{OIDC: oidc, Addr: c.HTTPAddr, ShutdownTimeout: c.ShutdownTimeout,
		SessionTTL: c.SessionTTL, TokenTTL: c.TokenTTL, CookieSecure: c.CookieSecure, LinkBuffer: c.LinkBuffer, ExportApproval: c.ExportApproval,
		TLSCert: c.TLSCert, TLSKey: c.TLSKey, TrustedProxies: proxies,
		ReadHeaderTimeout: c.ReadHeaderTimeout, ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout,
		IdleTimeout: c.IdleTimeout, MaxHeaderBytes: c.MaxHeaderBytes,
		LoginRate: c.LoginRate, LoginBurst: c.LoginBurst, UnauthRate: c.UnauthRate, UnauthBurst: c.UnauthBurst,
		HashSlots: c.LoginHashSlots, HashWait: c.LoginHashWait, AuditReadPeriod: c.AuditReadPeriod,
		MFARequiredRoles: splitList(c.MFARequiredRoles), MapTiles: c.MapTiles}, err
}

// oidcConfig is the single sign-on part of the web config (zero: off).
func (c Config) oidcConfig() (web.OIDCConfig, error) {
	if c.OIDCIssuer == "" {
		return web.OIDCConfig{}, nil
	}
	roles, err := web.ParseRoleMap(c.OIDCRoleMap)
	if err != nil {
		return web.OIDCConfig{}, fmt.Errorf("oidc-role-map: %w", err)
	}
	secret := ""
	if c.OIDCSecretFile != "" {
		b, err := os.ReadFile(c.OIDCSecretFile)
		if err != nil {
			return web.OIDCConfig{}, fmt.Errorf("oidc-client-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	return web.OIDCConfig{Issuer: c.OIDCIssuer, Name: c.OIDCName, ClientID: c.OIDCClientID, ClientSecret: secret,
		RedirectURL: c.OIDCRedirectURL, RoleClaim: c.OIDCRoleClaim, RoleMap: roles, UnitClaim: c.OIDCUnitClaim,
		BadgeClaim: c.OIDCBadgeClaim, LoginTTL: c.OIDCLoginTTL, HTTPTimeout: c.OIDCHTTPTimeout}, nil
}
