package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// filledConfig is the default config with every field that defaults to
// its zero value (off, empty) set, so that a component field build leaves
// out shows as a zero.
func filledConfig(t *testing.T) Config {
	t.Helper()
	c := defaultConfig()
	secret := filepath.Join(t.TempDir(), "oidc-secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	special := map[string]any{"TrustedProxies": "10.0.0.0/8", "RTSPProxyProtocolFrom": "10.0.0.5", "WebRTCPublicIPs": "203.0.113.7", "WebRTCICEServers": "stun:stun.example:3478",
		"OIDCIssuer": "https://idp.example", "OIDCClientID": "bwc", "OIDCSecretFile": secret, "OIDCRedirectURL": "https://bwc.example/auth/oidc/callback"}
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		if !f.IsZero() {
			continue
		}
		if s, ok := special[name]; ok {
			f.Set(reflect.ValueOf(s))
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString("127.0.0.1:9")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			f.SetInt(1)
		case reflect.Float64:
			f.SetFloat(1)
		default:
			t.Fatalf("Config.%s: no filler for %s", name, f.Kind())
		}
	}
	return c
}

// Every field of every component's configuration comes from Config: with
// every setting set, none is left zero (the components substitute no
// default, so a field left out would be refused or taken as 0).
func TestComponentConfigsAreComplete(t *testing.T) {
	c := filledConfig(t)
	wcfg, err := c.webConfig()
	if err != nil {
		t.Fatal(err)
	}
	notFromConfig := map[string]bool{
		"upload.Config.FreeSpace": true, // nil: statfs; tests simulate a full disk
		"index.Node.StartedAt":    true, // the database's clock, at registration
		"index.Node.HeartbeatAt":  true,
		"relay.Config.Transcoder": true, // -ffmpeg once checked at start (audioConverter): nil when unusable
	}
	for _, cfg := range []any{c.blobConfig(), c.archiveConfig(), c.checkpointConfig(), c.scrubConfig(), c.ingestConfig(), c.nodeConfig(), c.nodeConfig().Node, c.exporterConfig(),
		c.uploadConfig(prometheus.NewRegistry()), c.relayConfig(), wcfg, wcfg.OIDC, c.gbConfig()} {
		v := reflect.ValueOf(cfg)
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			name := v.Type().String() + "." + sf.Name
			if !sf.IsExported() || notFromConfig[name] {
				continue
			}
			if v.Field(i).IsZero() {
				t.Errorf("%s is not set from Config", name)
			}
		}
	}
}

// A link buffer of 0 reaches every component that links as 0.
func TestZeroLinkBufferReachesTheComponents(t *testing.T) {
	c := defaultConfig()
	c.LinkBuffer = 0
	wcfg, err := c.webConfig()
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]any{"archive": c.archiveConfig().LinkBuffer, "ingest": c.ingestConfig().LinkBuffer,
		"upload": c.uploadConfig(nil).LinkBuffer, "web": wcfg.LinkBuffer} {
		if !reflect.ValueOf(got).IsZero() {
			t.Errorf("%s LinkBuffer = %v, want 0", name, got)
		}
	}
}
