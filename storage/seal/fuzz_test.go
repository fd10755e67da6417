package seal_test

import (
	"bytes"
	"crypto/ed25519"
	"reflect"
	"testing"

	"github.com/bwcplatform/bwc/storage/seal"
)

// FuzzParse: stored seals and checkpoints are outside input (the bucket);
// parsing never panics, and whatever parses is a valid document that
// signs and parses back to the same value.
func FuzzParse(f *testing.F) {
	key := testKey()
	pub := key.Public().(ed25519.PublicKey)
	if doc, err := seal.MarshalSeal(testSeal(), key); err == nil {
		f.Add(doc)
	}
	if doc, err := seal.MarshalCheckpoint(testCheckpoint(), key); err == nil {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if s, err := seal.ParseSeal(data, pub); err == nil {
			doc, err := seal.MarshalSeal(s, key)
			if err != nil {
				t.Fatalf("a parsed seal does not marshal: %v", err)
			}
			back, err := seal.ParseSeal(doc, pub)
			if err != nil || !reflect.DeepEqual(back, s) {
				t.Fatalf("seal round trip: %+v != %+v (%v)", back, s, err)
			}
		}
		if c, err := seal.ParseCheckpoint(data, pub); err == nil {
			doc, err := seal.MarshalCheckpoint(c, key)
			if err != nil {
				t.Fatalf("a parsed checkpoint does not marshal: %v", err)
			}
			back, err := seal.ParseCheckpoint(doc, pub)
			if err != nil || !reflect.DeepEqual(back, c) {
				t.Fatalf("checkpoint round trip: %+v != %+v (%v)", back, c, err)
			}
			if !bytes.Contains(doc, []byte(c.Node)) {
				t.Fatal("node missing")
			}
		}
	})
}
