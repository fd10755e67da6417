package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
)

// errPlatformKey: this node's signing key is not the platform's (the one
// registered in the database), or its key file is missing while one is
// registered; the node refuses to start.
var errPlatformKey = errors.New("not the platform's signing key")

// platformKey loads the node's signing key (-signing-key) and checks it
// against the platform's, registered in the database by the first node:
// every node signs packages, seals and checkpoints with one key. The first
// node (none registered) creates the key when its file is missing and
// registers it; a later node with another key, or without its key file,
// refuses to start, naming the fingerprints (export.Fingerprint).
func platformKey(ctx context.Context, cfg Config, db *index.DB) (ed25519.PrivateKey, error) {
	registered, err := db.PlatformKey(ctx)
	if err != nil && !errors.Is(err, index.ErrNotFound) {
		return nil, err
	}
	if _, serr := os.Stat(cfg.SigningKey); errors.Is(serr, fs.ErrNotExist) && registered != nil {
		return nil, fmt.Errorf("signing-key: %s does not exist, and the platform's key (fingerprint %s) is registered in the database: "+
			"a node never creates a second key; copy the platform's key file (from another node or its offline backup) to %s and start again: %w",
			cfg.SigningKey, export.Fingerprint(registered), cfg.SigningKey, errPlatformKey)
	}
	key, err := export.LoadOrCreateKey(cfg.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("signing-key: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	if registered == nil {
		if registered, err = db.RegisterPlatformKey(ctx, pub, cfg.Node); err != nil {
			return nil, err
		}
	}
	if !pub.Equal(ed25519.PublicKey(registered)) {
		return nil, fmt.Errorf("signing-key: %s (fingerprint %s) is not the platform's key registered in the database (fingerprint %s): "+
			"every node signs with one key; copy the platform's key file (from another node or its offline backup) to %s and start again: %w",
			cfg.SigningKey, export.Fingerprint(pub), export.Fingerprint(registered), cfg.SigningKey, errPlatformKey)
	}
	return key, nil
}
