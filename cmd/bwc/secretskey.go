package main

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
)

// secretsKey is the key second-factor secrets are sealed with in the
// database (index.SetSecretsKey): derived from the platform's signing key
// (HKDF-SHA256, its own label), which every node has and a copy of the
// database does not. Replacing the signing key makes the stored secrets
// unreadable: every user's second factor must then be reset.
func secretsKey(key ed25519.PrivateKey) []byte {
	k, err := hkdf.Key(sha256.New, key.Seed(), nil, "bwc second-factor secrets v1", 32)
	if err != nil {
		panic(err) // only for lengths HKDF cannot give
	}
	return k
}
