package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bwcplatform/bwc/storage/export"
)

// TestOnePlatformKey: the first node registers its signing key in the
// database; a node started with another key, or without its key file
// (which it must not create), refuses to start, naming the fingerprints
// and what to do; a node with the platform's key starts.
func TestOnePlatformKey(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := testConfig(t)
	p, err := build(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	p.close()
	first, err := export.LoadOrCreateKey(cfg.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	platformFP := export.Fingerprint(first.Public().(ed25519.PublicKey))
	registered, err := func() ([]byte, error) {
		db, _, err := openDatabase(ctx, cfg)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		// a node (the application's login) cannot replace the key
		for _, q := range []string{`UPDATE platform_keys SET public_key = public_key`, `DELETE FROM platform_keys`} {
			if _, err := db.Pool().Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "permission denied") {
				t.Errorf("%s as the application: %v, want permission denied", q, err)
			}
		}
		return db.PlatformKey(ctx)
	}()
	if err != nil || !first.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(registered)) {
		t.Fatalf("registered key %x (%v), want the first node's", registered, err)
	}

	other := cfg
	other.SigningKey = filepath.Join(t.TempDir(), "other.pem")
	otherKey, err := export.LoadOrCreateKey(other.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	missing := cfg
	missing.SigningKey = filepath.Join(t.TempDir(), "missing.pem")
	for _, c := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"another key", other, []string{platformFP, export.Fingerprint(otherKey.Public().(ed25519.PublicKey)), other.SigningKey, "copy the platform's key file"}},
		{"missing key file", missing, []string{platformFP, missing.SigningKey, "does not exist", "never creates a second key", "copy the platform's key file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := build(ctx, c.cfg, log)
			if err == nil {
				p.close()
				t.Fatal("the node started")
			}
			if !errors.Is(err, errPlatformKey) {
				t.Fatalf("refusal %v, want errPlatformKey", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal %q does not name %q", err, w)
				}
			}
		})
	}
	if _, err := os.Stat(missing.SigningKey); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a node without its key file created one: %v", err)
	}
	if p, err = build(ctx, cfg, log); err != nil {
		t.Fatalf("a node with the platform's key: %v", err)
	}
	p.close()
}
