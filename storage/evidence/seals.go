package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/internal/chain"
	"github.com/bwcplatform/bwc/storage/seal"
)

// SealGrace is how long after its end a recording may be without a seal
// before Verify names it: the archive seals a recording once its last
// segment is stored and indexed, seconds after it ends unless MinIO or
// PostgreSQL is down (then the archive's stuck alarm rings as well).
const SealGrace = 10 * time.Minute

// Span is a range of sequence numbers, both ends included.
type Span struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

func (s Span) String() string {
	if s.From == s.To {
		return fmt.Sprintf("segment %d", s.From)
	}
	return fmt.Sprintf("segments %d..%d", s.From, s.To)
}

// VerifyAnchored is Verify, then the index checked against the signed
// seals and the newest valid checkpoint in the bucket, with pub, the
// platform's public key: a recording deleted from the index, its newest
// segments deleted, a forged seal or checkpoint, an ended recording left
// unsealed, and (when recs is empty: everything is verified) an audit
// trail truncated or rewritten up to the checkpoint's head. Seals and
// checkpoints are written once: each is read at the first version under
// its key, and a key holding more versions, or a delete marker, is named
// (whoever holds the signing key could otherwise replace a seal with one
// agreeing with a truncated index). What happened
// after the newest checkpoint (at most -checkpoint-interval) to a
// recording not sealed yet is not detectable this way.
func VerifyAnchored(ctx context.Context, db *index.DB, blobs *blob.Store, pub ed25519.PublicKey, recs []uuid.UUID) (Report, error) {
	r, err := Verify(ctx, db, blobs, recs)
	if err != nil {
		return r, err
	}
	return r, anchors(ctx, db, blobs, pub, recs, &r)
}

// anchors checks the index against the signed seals and the newest valid
// checkpoint in the bucket (all of them when recs is empty, else those of
// recs; the audit head only when recs is empty).
func anchors(ctx context.Context, db *index.DB, blobs *blob.Store, pub ed25519.PublicKey, recs []uuid.UUID, r *Report) error {
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("verify: the platform's public key is needed to check seals and checkpoints")
	}
	if err := checkSeals(ctx, db, blobs, pub, recs, r); err != nil {
		return err
	}
	if err := checkAuditedRecordings(ctx, db, recs, r); err != nil {
		return err
	}
	c, key, err := newestCheckpoint(ctx, blobs, pub, r)
	if err != nil || key == "" {
		return err
	}
	if err := checkCheckpoint(ctx, db, c, key, recs, r); err != nil {
		return err
	}
	if len(recs) == 0 {
		r.Problems = append(r.Problems, auditAgainst(ctx, db, c, key, &err)...)
	}
	return err
}

// checkSeals checks every seal (or those of recs), each at the first
// version under its key, names the seal keys rewritten, and names ended
// recordings that have none.
func checkSeals(ctx context.Context, db *index.DB, blobs *blob.Store, pub ed25519.PublicKey, recs []uuid.UUID, r *Report) error {
	docs, rewritten, err := seal.Seals(ctx, blobs, recs)
	if err != nil {
		return err
	}
	for _, w := range rewritten {
		id, _ := seal.RecordingOf(w.Key)
		r.Problems = append(r.Problems, anchorProblem("seal", id, w.Key, rewrittenWhat("seal", w)))
	}
	sealed := map[uuid.UUID]bool{}
	for _, d := range docs {
		id, _ := seal.RecordingOf(d.Key)
		s, err := seal.ReadSealAt(ctx, blobs, pub, id, d.Version)
		switch {
		case errors.Is(err, seal.ErrNotFound):
			continue // deleted since listed
		case errors.Is(err, seal.ErrSignature) || errors.Is(err, seal.ErrFormat):
			sealed[id] = true
			r.Problems = append(r.Problems, anchorProblem("seal", id, d.Key, fmt.Sprintf("the seal is not one the platform signed (forged or damaged): %v", err)))
			continue
		case err != nil:
			return err
		}
		sealed[id] = true
		if err := checkSeal(ctx, db, s, r); err != nil {
			return err
		}
	}
	return unsealed(ctx, db, recs, sealed, r)
}

// rewrittenWhat says what was done to a seal or checkpoint key (doc names
// which): it was written once, so any other version is not the platform's.
func rewrittenWhat(doc string, w seal.Rewritten) string {
	switch {
	case w.Versions > 1 && w.DeleteMarker:
		return fmt.Sprintf("%s rewritten: %d versions and a delete marker over them; the first is checked", doc, w.Versions)
	case w.Versions > 1:
		return fmt.Sprintf("%s rewritten: %d versions; the first is checked", doc, w.Versions)
	case w.Versions == 1:
		return fmt.Sprintf("delete marker over the %s; its version is checked", doc)
	}
	return fmt.Sprintf("delete marker over the %s, and no version of it left", doc)
}

// unsealed names recordings that ended more than SealGrace ago with
// segments and no seal.
func unsealed(ctx context.Context, db *index.DB, recs []uuid.UUID, sealed map[uuid.UUID]bool, r *Report) error {
	ended, err := db.EndedArchived(ctx, time.Now().Add(-SealGrace))
	if err != nil {
		return err
	}
	want := map[uuid.UUID]bool{}
	for _, id := range recs {
		want[id] = true
	}
	for _, id := range ended {
		if sealed[id] || (len(recs) > 0 && !want[id]) {
			continue
		}
		r.Problems = append(r.Problems, anchorProblem("seal", id, seal.Key(id), fmt.Sprintf(
			"ended more than %v ago and has no seal: its last segments are not archived yet (see the archive's stuck alarm), or the seal was never written or was deleted", SealGrace)))
	}
	return nil
}

// checkSeal compares a recording's index rows with its seal.
func checkSeal(ctx context.Context, db *index.DB, s seal.Seal, r *Report) error {
	key := seal.Key(s.Recording)
	bad := func(span *Span, what string) {
		p := anchorProblem("seal", s.Recording, key, what)
		p.Missing = span
		r.Problems = append(r.Problems, p)
	}
	if _, err := db.Recording(ctx, s.Recording); errors.Is(err, index.ErrNotFound) {
		bad(&Span{0, s.FinalSeq}, fmt.Sprintf("recording deleted from the index: its seal says %d segments (0..%d)", s.Segments, s.FinalSeq))
		return nil
	} else if err != nil {
		return err
	}
	segs, err := db.Segments(ctx, s.Recording)
	if err != nil {
		return err
	}
	chains := map[int64][]byte{}
	for _, sg := range segs {
		chains[sg.Seq] = sg.Chain
	}
	parts := s.Parts
	if len(parts) == 0 { // one node held it throughout: segments 0..FinalSeq
		parts = []seal.Part{{FirstSeq: 0, FinalSeq: s.FinalSeq, FinalChain: s.FinalChain, Segments: s.Segments}}
	}
	finals := map[int]int64{}
	for _, p := range parts {
		finals[p.Part] = p.FinalSeq
		for _, sp := range missing(chains, p.FirstSeq, p.FinalSeq) {
			bad(&sp, fmt.Sprintf("%s deleted: the seal says %d segments", sp, s.Segments))
		}
		if c, ok := chains[p.FinalSeq]; ok && !bytes.Equal(c, p.FinalChain) {
			bad(nil, fmt.Sprintf("segment %d's chain value is not the seal's final chain value (rows rewritten)", p.FinalSeq))
		}
	}
	beyond := map[int][2]int64{} // part -> first and last segment the seal does not cover
	for _, sg := range segs {
		p := chain.PartOf(uint64(sg.Seq))
		if f, ok := finals[p]; ok && sg.Seq <= f {
			continue
		}
		b, ok := beyond[p]
		if !ok {
			b = [2]int64{sg.Seq, sg.Seq}
		}
		beyond[p] = [2]int64{min(b[0], sg.Seq), max(b[1], sg.Seq)}
	}
	for _, b := range beyond {
		bad(nil, fmt.Sprintf("segments %d..%d indexed beyond the seal, which says %d segments", b[0], b[1], s.Segments))
	}
	return checkSealInits(ctx, db, s, bad)
}

// checkSealInits compares a recording's init segment rows with its seal.
func checkSealInits(ctx context.Context, db *index.DB, s seal.Seal, bad func(*Span, string)) error {
	inits, err := db.InitSegments(ctx, s.Recording)
	if err != nil {
		return err
	}
	byN := map[int]index.InitSegment{}
	for _, in := range inits {
		byN[in.N] = in
	}
	for _, in := range s.Inits {
		got, ok := byN[in.N]
		switch {
		case !ok:
			bad(nil, fmt.Sprintf("init segment %d deleted: the seal has it (%s)", in.N, in.Key))
		case got.Key != in.Key || !bytes.Equal(got.SHA256, in.SHA256):
			bad(nil, fmt.Sprintf("init segment %d's row differs from the seal (key or SHA-256 rewritten)", in.N))
		}
	}
	return nil
}

// missing is the ranges of first..last absent from have.
func missing(have map[int64][]byte, first, last int64) []Span {
	var out []Span
	for seq := first; seq <= last; seq++ {
		if _, ok := have[seq]; ok {
			continue
		}
		if n := len(out); n > 0 && out[n-1].To == seq-1 {
			out[n-1].To = seq
		} else {
			out = append(out, Span{seq, seq})
		}
	}
	return out
}

// newestCheckpoint is the newest checkpoint that verifies, read at the
// first version under its key (key "" when there is none); newer ones that
// do not verify are named, and so are checkpoint keys rewritten.
func newestCheckpoint(ctx context.Context, blobs *blob.Store, pub ed25519.PublicKey, r *Report) (seal.Checkpoint, string, error) {
	docs, rewritten, err := seal.Checkpoints(ctx, blobs, time.Now())
	if err != nil {
		return seal.Checkpoint{}, "", err
	}
	for _, w := range rewritten {
		r.Problems = append(r.Problems, anchorProblem("checkpoint", uuid.Nil, w.Key, rewrittenWhat("checkpoint", w)))
	}
	for _, d := range docs {
		c, err := seal.ReadCheckpointAt(ctx, blobs, pub, d.Key, d.Version)
		switch {
		case errors.Is(err, seal.ErrSignature) || errors.Is(err, seal.ErrFormat):
			r.Problems = append(r.Problems, anchorProblem("checkpoint", uuid.Nil, d.Key, fmt.Sprintf("the checkpoint is not one the platform signed (forged or damaged): %v", err)))
			continue
		case errors.Is(err, seal.ErrNotFound):
			continue // deleted since listed
		case err != nil:
			return seal.Checkpoint{}, "", err
		}
		return c, d.Key, nil
	}
	return seal.Checkpoint{}, "", nil
}

// checkCheckpoint checks that every recording the checkpoint saw (those of
// recs, when given) still has the segment it saw, with its chain value,
// and every one before it.
func checkCheckpoint(ctx context.Context, db *index.DB, c seal.Checkpoint, key string, recs []uuid.UUID, r *Report) error {
	want := map[uuid.UUID]bool{}
	for _, id := range recs {
		want[id] = true
	}
	at := c.At.Format(time.RFC3339)
	for _, l := range c.Live {
		if len(recs) > 0 && !want[l.Recording] {
			continue
		}
		bad := func(span *Span, what string) {
			p := anchorProblem("checkpoint", l.Recording, key, what)
			p.Missing = span
			r.Problems = append(r.Problems, p)
		}
		if _, err := db.Recording(ctx, l.Recording); errors.Is(err, index.ErrNotFound) {
			bad(&Span{0, l.Seq}, fmt.Sprintf("recording deleted from the index: the checkpoint of %s saw it at segment %d", at, l.Seq))
			continue
		} else if err != nil {
			return err
		}
		segs, err := db.Segments(ctx, l.Recording)
		if err != nil {
			return err
		}
		chains := map[int64][]byte{}
		for _, sg := range segs {
			chains[sg.Seq] = sg.Chain
		}
		// the checkpoint saw the latest part (a recording continued on other
		// nodes numbers each part from its own base)
		for _, sp := range missing(chains, int64(chain.PartSeq(chain.PartOf(uint64(l.Seq)))), l.Seq) {
			bad(&sp, fmt.Sprintf("%s deleted: the checkpoint of %s saw segment %d", sp, at, l.Seq))
		}
		if ch, ok := chains[l.Seq]; ok && !bytes.Equal(ch, l.Chain) {
			bad(nil, fmt.Sprintf("segment %d's chain value is not the one the checkpoint of %s saw (rows rewritten)", l.Seq, at))
		}
	}
	return nil
}

// auditAgainst checks that the audit trail still holds the event the
// checkpoint anchors, with its hash; *errp gets a failure to check.
func auditAgainst(ctx context.Context, db *index.DB, c seal.Checkpoint, key string, errp *error) []Problem {
	if c.AuditSeq == 0 {
		return nil
	}
	p := anchorProblem("audit", uuid.Nil, key, "")
	p.AuditSeq = c.AuditSeq
	h, err := db.AuditHash(ctx, c.AuditSeq)
	switch {
	case errors.Is(err, index.ErrNotFound):
		head, _, err := db.AuditHead(ctx)
		if err != nil {
			*errp = err
			return nil
		}
		p.What = fmt.Sprintf("audit trail truncated or rewritten after event %d: the checkpoint of %s anchors event %d, the trail ends at event %d",
			head, c.At.Format(time.RFC3339), c.AuditSeq, head)
	case err != nil:
		*errp = err
		return nil
	case !bytes.Equal(h, c.AuditHash):
		p.What = fmt.Sprintf("audit trail truncated or rewritten after event %d: event %d's hash is not the one the checkpoint of %s anchors",
			c.AuditSeq-1, c.AuditSeq, c.At.Format(time.RFC3339))
	default:
		return nil
	}
	return []Problem{p}
}

// AuditAnchored checks the audit trail against the newest valid
// checkpoint (bwc verify -audit): the event it anchors is still there
// with its hash. Checkpoints that do not verify, and checkpoint keys
// rewritten (the first version is checked), are named too. It returns
// the checkpoint's key ("" when there is none).
func AuditAnchored(ctx context.Context, db *index.DB, blobs *blob.Store, pub ed25519.PublicKey) (string, []Problem, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", nil, errors.New("verify: the platform's public key is needed to check checkpoints")
	}
	var r Report
	c, key, err := newestCheckpoint(ctx, blobs, pub, &r)
	if err != nil || key == "" {
		return key, r.Problems, err
	}
	r.Problems = append(r.Problems, auditAgainst(ctx, db, c, key, &err)...)
	return key, r.Problems, err
}

func anchorProblem(about string, rec uuid.UUID, key, what string) Problem {
	return Problem{About: about, Recording: rec, Seq: -1, Init: -1, Key: key, What: what}
}
