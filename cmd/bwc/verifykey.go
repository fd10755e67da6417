package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
)

// platformPublicKey is the key seals and checkpoints are checked with: the
// -public-key file when given, else the public half of -signing-key. Verify
// never creates a key: a missing one is an error.
func platformPublicKey(cfg Config, pubKeyPath string) (ed25519.PublicKey, error) {
	if pubKeyPath != "" {
		raw, err := os.ReadFile(pubKeyPath)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		pub, err := export.ParsePublicKey(raw)
		if err != nil {
			return nil, fmt.Errorf("public key %s: %w", pubKeyPath, err)
		}
		return pub, nil
	}
	if _, err := os.Stat(cfg.SigningKey); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("bwc verify: seals and checkpoints are checked with the platform's key: %s does not exist; give -signing-key or -public-key (from bwc export-key)", cfg.SigningKey)
	}
	key, err := export.LoadOrCreateKey(cfg.SigningKey)
	if err != nil {
		return nil, err
	}
	return key.Public().(ed25519.PublicKey), nil
}

// auditAnchored checks the audit trail's head against the newest
// checkpoint (bwc verify -audit), as problems in the audit report's shape.
func auditAnchored(ctx context.Context, cfg Config, db *index.DB, pubKeyPath string) ([]verifyProblem, error) {
	pub, err := platformPublicKey(cfg, pubKeyPath)
	if err != nil {
		return nil, err
	}
	store, err := blob.Open(cfg.blobConfig())
	if err != nil {
		return nil, err
	}
	defer store.Close()
	_, problems, err := evidence.AuditAnchored(ctx, db, store, pub)
	var out []verifyProblem
	for _, p := range problems {
		out = append(out, verifyProblem{Kind: p.Kind(), Seq: p.AuditSeq, Key: p.Key, What: p.What})
	}
	return out, err
}
