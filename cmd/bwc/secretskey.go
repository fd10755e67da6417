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

// linkKey is the key of the inter-node link of live views (peer.Config.Key:
// the HMAC of a node's pull of another node's camera), derived from the
// platform's signing key like secretsKey, with its own label: every node
// has it, nothing else does, and no secret is added.
func linkKey(key ed25519.PrivateKey) []byte {
	k, err := hkdf.Key(sha256.New, key.Seed(), nil, "bwc inter-node link v1", 32)
	if err != nil {
		panic(err)
	}
	return k
}
