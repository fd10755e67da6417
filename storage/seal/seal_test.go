package seal_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/bwcplatform/bwc/storage/seal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testKey is a fixed key: the fuzz seeds under testdata are signed with it.
func testKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
}

func sum(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func testSeal() seal.Seal {
	rec := uuid.MustParse("01890000-0000-7000-8000-000000000001")
	start := time.Date(2026, 5, 1, 10, 0, 0, 123456789, time.FixedZone("CST", 8*3600))
	return seal.Seal{Recording: rec, Segments: 7, FinalSeq: 6, FinalChain: sum("chain"),
		Inits: []seal.Init{{N: 0, Key: "2026/05/01/" + rec.String() + "/init-0.mp4", SHA256: sum("init")}},
		Start: start, End: start.Add(28 * time.Second)}
}

func testCheckpoint() seal.Checkpoint {
	return seal.Checkpoint{At: time.Date(2026, 5, 1, 10, 1, 0, 5000, time.UTC), Node: "node-a.example",
		Live:     []seal.Live{{Recording: uuid.MustParse("01890000-0000-7000-8000-000000000002"), Seq: 41, Chain: sum("c41")}},
		AuditSeq: 17, AuditHash: sum("a17")}
}

// A seal signed with the platform's key reads back as written (times in
// UTC at microseconds), and the same seal gives the same bytes: a retry
// after a crash writes nothing new.
func TestSealRoundTripAndDeterministic(t *testing.T) {
	s := testSeal()
	doc, err := seal.MarshalSeal(s, testKey())
	if err != nil {
		t.Fatal(err)
	}
	again, err := seal.MarshalSeal(s, testKey())
	if err != nil || !bytes.Equal(doc, again) {
		t.Fatalf("two marshals differ:\n%s\n%s (%v)", doc, again, err)
	}
	got, err := seal.ParseSeal(doc, testKey().Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Start.Equal(s.Start.Truncate(time.Microsecond)) || got.Start.Location() != time.UTC || got.Segments != 7 ||
		!bytes.Equal(got.FinalChain, s.FinalChain) || !reflect.DeepEqual(got.Inits, s.Inits) {
		t.Errorf("read back %+v, wrote %+v", got, s)
	}
	if !strings.Contains(string(doc), `"format":"bwc-seal-v1"`) || !strings.Contains(string(doc), `"final_chain":"`) {
		t.Errorf("stored form: %s", doc)
	}
}

// Any change of a signed document, another key, or a checkpoint offered
// as a seal is refused.
func TestParseRefusesForgeries(t *testing.T) {
	pub := testKey().Public().(ed25519.PublicKey)
	doc, err := seal.MarshalSeal(testSeal(), testKey())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := seal.MarshalCheckpoint(testCheckpoint(), testKey())
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	forged, err := seal.MarshalSeal(testSeal(), other)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		doc  []byte
		want error
	}{
		"segment count changed": {bytes.Replace(doc, []byte(`"segments":7,"final_seq":6`), []byte(`"segments":5,"final_seq":4`), 1), seal.ErrSignature},
		"signed by another key": {forged, seal.ErrSignature},
		"a checkpoint":          {cp, seal.ErrFormat},
		"unknown field":         {bytes.Replace(doc, []byte(`{"format"`), []byte(`{"extra":1,"format"`), 1), seal.ErrFormat},
		"not JSON":              {[]byte("garbage"), seal.ErrFormat},
	} {
		if _, err := seal.ParseSeal(tc.doc, pub); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if _, err := seal.ParseCheckpoint(cp, pub); err != nil {
		t.Errorf("checkpoint: %v", err)
	}
	if _, err := seal.ParseCheckpoint(doc, pub); !errors.Is(err, seal.ErrFormat) {
		t.Errorf("a seal read as a checkpoint: %v", err)
	}
}

// What cannot be a seal or checkpoint is not signed.
func TestMarshalRefusesInvalid(t *testing.T) {
	s := testSeal()
	s.FinalSeq = 3 // 7 segments end at 6
	if _, err := seal.MarshalSeal(s, testKey()); err == nil {
		t.Error("a seal whose final sequence contradicts its count was signed")
	}
	c := testCheckpoint()
	c.Node = "bad/node"
	if _, err := seal.MarshalCheckpoint(c, testKey()); err == nil {
		t.Error("a checkpoint with a node name that breaks its key was signed")
	}
	if _, err := seal.MarshalSeal(testSeal(), nil); err == nil {
		t.Error("signed without a key")
	}
}

// Checkpoint keys sort by time whatever the node.
func TestCheckpointKeysSortByTime(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 9, 59, 59, 999999000, time.UTC)
	a := seal.CheckpointKey(t0, "zz-node")
	b := seal.CheckpointKey(t0.Add(time.Microsecond), "aa-node")
	c := seal.CheckpointKey(t0.Add(10*time.Hour), "mm")
	if !(a < b && b < c) {
		t.Errorf("keys do not sort by time: %s %s %s", a, b, c)
	}
	if a != "checkpoints/2026-05-01T09:59:59.999999Z-zz-node.json" {
		t.Errorf("key %s", a)
	}
}
