// Package seal is the platform's signed anchors of the index in write-once
// storage: a seal per ended recording and checkpoints of what is live.
//
// A seal (seals/<recording>.json) says what an ended recording is: its
// segment count, final sequence number and chain value, its init segments
// with their SHA-256 and its start and end. A checkpoint
// (checkpoints/<UTC time>-<node>.json) says, at one instant, the latest
// sequence number and chain value of every recording not sealed yet, and
// the audit chain's head. Both are written WORM-locked through
// blob.PutEvidence and signed with the platform's Ed25519 key (the key of
// evidence packages), so that rows deleted from PostgreSQL later, by
// anyone, are named by `bwc verify`.
//
// Stored form (one JSON object, deterministic for given contents and key):
//
//	{"format":"bwc-seal-v1","body":{...},"signature":"<hex>"}
//
// where body is the canonical JSON of Seal or Checkpoint (encoding/json of
// the structs below: fixed field order, UTC times, hex byte strings) and
// signature is Ed25519 over format || "\n" || body, the exact body bytes as
// stored. The format names the kind, so that neither a checkpoint nor an
// export manifest passes for a seal.
package seal

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/internal/chain"
)

// Formats of the stored documents.
const (
	SealFormat       = "bwc-seal-v1"
	CheckpointFormat = "bwc-checkpoint-v1"
)

// MaxSize bounds a stored seal or checkpoint read into memory (a
// checkpoint of 10 000 live recordings is about 1.5 MB).
const MaxSize = 16 << 20

var (
	// ErrFormat: the bytes are not a seal or checkpoint of the expected kind.
	ErrFormat = errors.New("not a well-formed seal or checkpoint")
	// ErrSignature: the signature does not verify with the platform's
	// public key (the document was changed, or signed by another key).
	ErrSignature = errors.New("signature does not verify with the platform's public key")
)

// Hex is bytes written as a hex string in JSON.
type Hex []byte

// MarshalText implements encoding.TextMarshaler.
func (h Hex) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hex) UnmarshalText(b []byte) error {
	out, err := hex.DecodeString(string(b))
	*h = out
	return err
}

// Init is one init segment named by a seal.
type Init struct {
	N      int    `json:"n"`
	Key    string `json:"key"`
	SHA256 Hex    `json:"sha256"`
}

// Seal is what an ended recording is, as archived.
type Seal struct {
	Recording  uuid.UUID `json:"recording"`
	Segments   int64     `json:"segments"`    // media segments, numbered 0..FinalSeq
	FinalSeq   int64     `json:"final_seq"`   // the last segment's sequence number
	FinalChain Hex       `json:"final_chain"` // the last segment's chain value
	Inits      []Init    `json:"inits"`
	Start      time.Time `json:"start"` // the recording's start
	End        time.Time `json:"end"`   // its last segment's end
	// Parts: a recording continued on other nodes has a chain per part
	// (storage/internal/chain); each is listed, in order. Absent for a
	// recording one node held throughout (segments 0..FinalSeq, one chain).
	Parts []Part `json:"parts,omitempty"`
}

// Part is one part of a recording continued on other nodes: its segments
// FirstSeq..FinalSeq, one chain ending at FinalChain.
type Part struct {
	Part       int   `json:"part"`
	Segments   int64 `json:"segments"`
	FirstSeq   int64 `json:"first_seq"`
	FinalSeq   int64 `json:"final_seq"`
	FinalChain Hex   `json:"final_chain"`
}

// Live is one recording's latest indexed segment at a checkpoint.
type Live struct {
	Recording uuid.UUID `json:"recording"`
	Seq       int64     `json:"seq"`
	Chain     Hex       `json:"chain"`
}

// Checkpoint is, at one instant, every unsealed recording's latest indexed
// segment and the audit chain's head.
type Checkpoint struct {
	At        time.Time `json:"at"`
	Node      string    `json:"node"`
	Live      []Live    `json:"live"`
	AuditSeq  int64     `json:"audit_seq"`  // 0: the trail was empty
	AuditHash Hex       `json:"audit_hash"` // the event AuditSeq's hash
}

const hashSize = 32

var nodeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ValidNode reports whether a node name can go into a checkpoint's key:
// 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit.
func ValidNode(node string) error {
	if !nodeRE.MatchString(node) {
		return fmt.Errorf("node name %q: want 1 to 63 letters, digits, '.', '_' or '-'", node)
	}
	return nil
}

// Key is the object key of a recording's seal.
func Key(rec uuid.UUID) string { return "seals/" + rec.String() + ".json" }

// Prefixes of the stored documents.
const (
	SealPrefix       = "seals/"
	CheckpointPrefix = "checkpoints/"
)

// checkpointTime is fixed-width RFC 3339 (UTC, microseconds): keys sort by time.
const checkpointTime = "2006-01-02T15:04:05.000000Z"

// CheckpointKey is the object key of a checkpoint: sortable by time.
func CheckpointKey(at time.Time, node string) string {
	return CheckpointPrefix + at.UTC().Format(checkpointTime) + "-" + node + ".json"
}

// normalize puts times in UTC at microsecond precision (PostgreSQL's), so
// that a document says the same whoever builds it.
func (s Seal) normalize() Seal {
	s.Start, s.End = s.Start.UTC().Truncate(time.Microsecond), s.End.UTC().Truncate(time.Microsecond)
	if s.Inits == nil {
		s.Inits = []Init{}
	}
	return s
}

// checkParts checks that the parts add up to the seal: in order, each
// numbered from its own base without holes, the last one ending the seal.
func (s Seal) checkParts() error {
	var n int64
	prev := -1
	for _, p := range s.Parts {
		switch {
		case p.Part <= prev || p.Part > chain.MaxPart:
			return fmt.Errorf("part %d out of order", p.Part)
		case p.Segments < 1 || p.FirstSeq != int64(chain.PartSeq(p.Part)) || p.FinalSeq != p.FirstSeq+p.Segments-1:
			return fmt.Errorf("part %d: %d segments from %d to %d", p.Part, p.Segments, p.FirstSeq, p.FinalSeq)
		case len(p.FinalChain) != hashSize:
			return fmt.Errorf("part %d: final chain is not a SHA-256", p.Part)
		}
		prev, n = p.Part, n+p.Segments
	}
	last := s.Parts[len(s.Parts)-1]
	if n != s.Segments || last.FinalSeq != s.FinalSeq || !bytes.Equal(last.FinalChain, s.FinalChain) {
		return fmt.Errorf("parts (%d segments, last %d) do not add up to the seal (%d segments, last %d)", n, last.FinalSeq, s.Segments, s.FinalSeq)
	}
	return nil
}

func (c Checkpoint) normalize() Checkpoint {
	c.At = c.At.UTC().Truncate(time.Microsecond)
	if c.Live == nil {
		c.Live = []Live{}
	}
	return c
}

func (s Seal) check() error {
	switch {
	case s.Recording == uuid.Nil:
		return errors.New("no recording")
	case len(s.Parts) == 0 && (s.Segments < 1 || s.FinalSeq != s.Segments-1):
		return fmt.Errorf("%d segments ending at sequence %d", s.Segments, s.FinalSeq)
	case len(s.Parts) > 0:
		if err := s.checkParts(); err != nil {
			return err
		}
	case len(s.FinalChain) != hashSize:
		return errors.New("final chain is not a SHA-256")
	case s.Start.IsZero() || s.End.Before(s.Start):
		return fmt.Errorf("start %s, end %s", s.Start, s.End)
	}
	for _, in := range s.Inits {
		if in.N < 0 || in.Key == "" || len(in.SHA256) != hashSize {
			return fmt.Errorf("init segment %d: number, key and SHA-256 required", in.N)
		}
	}
	return nil
}

func (c Checkpoint) check() error {
	switch {
	case c.At.IsZero():
		return errors.New("no time")
	case ValidNode(c.Node) != nil:
		return ValidNode(c.Node)
	case c.AuditSeq < 0 || (c.AuditSeq > 0 && len(c.AuditHash) != hashSize) || (c.AuditSeq == 0 && len(c.AuditHash) != 0):
		return fmt.Errorf("audit head %d %x", c.AuditSeq, []byte(c.AuditHash))
	}
	for _, l := range c.Live {
		if l.Recording == uuid.Nil || l.Seq < 0 || len(l.Chain) != hashSize {
			return fmt.Errorf("live recording %s: sequence and chain required", l.Recording)
		}
	}
	return nil
}

// envelope is the stored form.
type envelope struct {
	Format    string          `json:"format"`
	Body      json.RawMessage `json:"body"`
	Signature Hex             `json:"signature"`
}

func signed(format string, body []byte) []byte {
	return append([]byte(format+"\n"), body...)
}

// marshal encodes and signs a body.
func marshal(format string, v any, key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("seal: no Ed25519 signing key")
	}
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(envelope{Format: format, Body: body, Signature: ed25519.Sign(key, signed(format, body))})
}

// MarshalSeal is a seal's stored form, signed with key. The same seal and
// key give the same bytes (Ed25519 signatures are deterministic).
func MarshalSeal(s Seal, key ed25519.PrivateKey) ([]byte, error) {
	s = s.normalize()
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("seal of %s: %w", s.Recording, err)
	}
	return marshal(SealFormat, s, key)
}

// MarshalCheckpoint is a checkpoint's stored form, signed with key.
func MarshalCheckpoint(c Checkpoint, key ed25519.PrivateKey) ([]byte, error) {
	c = c.normalize()
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return marshal(CheckpointFormat, c, key)
}

// open checks a stored document's format and signature and decodes its
// body strictly into v.
func open(data []byte, format string, pub ed25519.PublicKey, v any) error {
	if len(data) > MaxSize {
		return fmt.Errorf("%w: %d bytes", ErrFormat, len(data))
	}
	var env envelope
	if err := strictDecode(data, &env); err != nil {
		return fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if env.Format != format {
		return fmt.Errorf("%w: format %q, want %q", ErrFormat, env.Format, format)
	}
	if len(env.Signature) != ed25519.SignatureSize || len(pub) != ed25519.PublicKeySize ||
		!ed25519.Verify(pub, signed(format, env.Body), env.Signature) {
		return ErrSignature
	}
	if err := strictDecode(env.Body, v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrFormat, err)
	}
	return nil
}

// strictDecode decodes one JSON value with no unknown fields and nothing after it.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the document")
	}
	return nil
}

// ParseSeal checks a stored seal's signature with pub and decodes it.
func ParseSeal(data []byte, pub ed25519.PublicKey) (Seal, error) {
	var s Seal
	if err := open(data, SealFormat, pub, &s); err != nil {
		return Seal{}, err
	}
	if err := s.check(); err != nil {
		return Seal{}, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return s, nil
}

// ParseCheckpoint checks a stored checkpoint's signature with pub and
// decodes it.
func ParseCheckpoint(data []byte, pub ed25519.PublicKey) (Checkpoint, error) {
	var c Checkpoint
	if err := open(data, CheckpointFormat, pub, &c); err != nil {
		return Checkpoint{}, err
	}
	if err := c.check(); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return c, nil
}
