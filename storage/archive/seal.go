package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/internal/chain"
	"github.com/bwcplatform/bwc/storage/internal/spool"
	"github.com/bwcplatform/bwc/storage/seal"
)

// Sealing. When every segment of an ended recording is in the bucket and
// the index, and before its spool directory is removed, the archive writes
// the recording's seal (package seal) from the index, WORM-locked and
// signed, and indexes it (the seals table: key, version, SHA-256) together
// with an audit event naming it (recording.sealed, with the seal's key and
// version), in one transaction. The seal's bytes depend only on the
// recording, so a retry after a crash writes nothing new (the same
// SHA-256 is found under the key) and the row and event are written once.
// A recording under legal hold gets its seal held like its segments (and
// index.RecordingObjects lists the seal, so Hold and Release cover it). Reconciliation at start seals
// ended recordings that are fully archived (no spool directory, no
// journal) and not sealed: those archived before seals existed.

// errSealMismatch: the index does not hold what the spool wrote; the
// recording is not sealed (a seal would vouch for a truncated index).
var errSealMismatch = errors.New("the index does not match what the spool wrote")

// sealSpooled seals an ended recording whose spool directory holds nothing
// left to upload, after checking the index against the spool's own count
// and last chain value.
func (a *Archive) sealSpooled(ctx context.Context, dir string) error {
	rec, err := uuid.Parse(filepath.Base(dir))
	if err != nil {
		return err
	}
	part, n, last, err := spool.Written(dir, rec)
	if err != nil {
		return fmt.Errorf("seal %s: %w", rec, err)
	}
	r, err := a.db.Recording(ctx, rec)
	if errors.Is(err, index.ErrNotFound) && n == 0 {
		return nil // no row and no media segment: nothing to seal
	}
	if err != nil {
		return fmt.Errorf("seal %s: %w", rec, err)
	}
	// this node's spool holds nothing more of the recording: every part it
	// held is uploaded (a recording continued on other nodes is sealed once
	// every part is)
	if part > 0 || (r.NodeID != "" && r.NodeID != a.cfg.Node) {
		if err := a.db.PartsUploaded(ctx, rec, a.cfg.Node); err != nil {
			return fmt.Errorf("seal %s: %w", rec, err)
		}
	}
	if r.NodeID != "" && r.NodeID != a.cfg.Node {
		// another node took the recording over: sealed here only when
		// this was the last part uploaded and it has ended
		if r.Status != index.RecordingEnded {
			return nil
		}
		return a.sealIfComplete(ctx, rec)
	}
	if n == 0 {
		return nil // no media segment: nothing to seal
	}
	if pending, err := a.db.PartsPending(ctx, rec); err != nil || pending {
		return err // an earlier part is still to be uploaded by its node: sealed when it is
	}
	return a.sealRecording(ctx, rec, func(s seal.Seal) error {
		segs, final := s.Segments, s.FinalChain
		for _, p := range s.Parts {
			if p.Part == part {
				segs, final = p.Segments, p.FinalChain
			}
		}
		if segs != int64(n) || !bytes.Equal(final, last) {
			return fmt.Errorf("seal %s: %w: index %d segments of part %d ending at %d, spool %d segments", rec, errSealMismatch,
				segs, part, s.FinalSeq, n)
		}
		return nil
	})
}

// sealIfComplete seals a recording continued on other nodes once no part
// is pending (the last node to upload its part seals it).
func (a *Archive) sealIfComplete(ctx context.Context, rec uuid.UUID) error {
	pending, err := a.db.PartsPending(ctx, rec)
	if err != nil || pending {
		return err
	}
	segs, err := a.db.Segments(ctx, rec)
	if err != nil || len(segs) == 0 {
		return err
	}
	return a.sealRecording(ctx, rec, func(seal.Seal) error { return nil })
}

// sealRecording builds a recording's seal from the index, checks it with
// check, writes it (with a legal hold when the recording is held, as its
// segments) and records it once: the seal row and its audit event in one
// transaction (index.RecordSeal).
func (a *Archive) sealRecording(ctx context.Context, rec uuid.UUID, check func(seal.Seal) error) error {
	a.sealMu.Lock()
	defer a.sealMu.Unlock()
	s, err := a.buildSeal(ctx, rec)
	if err != nil {
		return err
	}
	if err := check(s); err != nil {
		return err
	}
	held, err := a.db.Held(ctx, rec)
	if err != nil {
		return err
	}
	key, version, err := seal.WriteSeal(ctx, a.blobs, a.sealKey, s, time.Now().Add(a.cfg.Retention), held)
	if err != nil {
		return fmt.Errorf("seal %s: %w", rec, err)
	}
	doc, err := seal.MarshalSeal(s, a.sealKey)
	if err != nil {
		return fmt.Errorf("seal %s: %w", rec, err)
	}
	sum := sha256.Sum256(doc) // the bytes written: Ed25519 signs deterministically
	added, err := a.db.RecordSeal(ctx, index.SealRow{RecordingID: rec, Key: key, VersionID: version, SHA256: sum[:]},
		map[string]any{"segments": s.Segments, "final_seq": s.FinalSeq, "final_chain": fmt.Sprintf("%x", []byte(s.FinalChain))})
	if err != nil {
		return fmt.Errorf("seal %s: index and audit: %w", rec, err)
	}
	if err := a.holdSeal(ctx, rec, key, version, held); err != nil {
		return fmt.Errorf("seal %s: legal hold: %w", rec, err)
	}
	if added {
		a.m.uploaded.WithLabelValues("seal").Inc()
		a.log.Info("archive: recording sealed", "recording", rec, "segments", s.Segments, "key", key, "version", version)
	}
	return nil
}

// holdSeal puts the legal hold on the seal's indexed version when the
// recording is held now: a hold placed between the write and the row
// (which Holder.apply could not see yet) as with segments
// (holdAfterIndex), and a seal found already written by a retry, which the
// write returns as it was.
func (a *Archive) holdSeal(ctx context.Context, rec uuid.UUID, key, version string, heldBefore bool) error {
	held := heldBefore
	if !held {
		var err error
		if held, err = a.db.Held(ctx, rec); err != nil {
			return err
		}
	}
	if !held {
		return nil
	}
	return a.blobs.SetLegalHold(ctx, key, version, true)
}

// buildSeal is a recording's seal from the index. The segments must run
// from 0 without holes, each linked to the one before (each part of a
// recording continued on other nodes from its own base and genesis): the
// index is what the seal vouches for.
func (a *Archive) buildSeal(ctx context.Context, rec uuid.UUID) (seal.Seal, error) {
	r, err := a.db.Recording(ctx, rec)
	if err != nil {
		return seal.Seal{}, err
	}
	segs, err := a.db.Segments(ctx, rec)
	if err != nil {
		return seal.Seal{}, err
	}
	inits, err := a.db.InitSegments(ctx, rec)
	if err != nil {
		return seal.Seal{}, err
	}
	parts, err := chainParts(ctx, a.db, rec, segs)
	if err != nil {
		return seal.Seal{}, err
	}
	if len(segs) == 0 {
		return seal.Seal{}, fmt.Errorf("seal %s: %w: no segment indexed", rec, errSealMismatch)
	}
	last := segs[len(segs)-1]
	s := seal.Seal{Recording: rec, Segments: int64(len(segs)), FinalSeq: last.Seq, FinalChain: last.Chain,
		Start: r.StartedAt, End: last.EndedAt}
	if len(parts) > 1 || parts[0].Part > 0 {
		s.Parts = parts
	}
	if last.EndedAt.Before(r.StartedAt) {
		s.End = r.StartedAt
	}
	for _, in := range inits {
		s.Inits = append(s.Inits, seal.Init{N: in.N, Key: in.Key, SHA256: in.SHA256})
	}
	return s, nil
}

// sealArchived seals the ended recordings that are fully archived but not
// sealed: no spool directory here and no ingest journal that will still
// write their row; only this node's, those of no node and those of dead
// nodes (another live node may still be uploading its own). It returns the recordings sealed.
func (a *Archive) sealArchived(ctx context.Context) ([]uuid.UUID, error) {
	ids, err := a.db.EndedUnsealed(ctx, a.cfg.Node, a.cfg.NodeDeadAfter)
	if err != nil {
		return nil, err
	}
	var sealed []uuid.UUID
	var errs []error
	for _, id := range ids {
		if _, err := os.Stat(filepath.Join(a.cfg.SpoolDir, id.String())); err == nil {
			continue // the uploader seals it once its spool is done
		}
		if err := a.sealRecording(ctx, id, func(seal.Seal) error { return nil }); err != nil {
			a.log.Error("archive: cannot seal an archived recording", "recording", id, "err", err)
			errs = append(errs, err)
			continue
		}
		sealed = append(sealed, id)
	}
	return sealed, errors.Join(errs...)
}

// chainParts checks a recording's segments (in sequence order) part by
// part: each part recorded (recording_parts; part 0 always is), numbered
// from its base without holes, chained from its genesis. It returns the
// parts as the seal lists them.
func chainParts(ctx context.Context, db *index.DB, rec uuid.UUID, segs []index.Segment) ([]seal.Part, error) {
	known := map[int]bool{0: true}
	if len(segs) > 0 && chain.PartOf(uint64(segs[len(segs)-1].Seq)) > 0 {
		rows, err := db.RecordingParts(ctx, rec)
		if err != nil {
			return nil, err
		}
		for _, p := range rows {
			known[p.Part] = true
		}
	}
	var out []seal.Part
	var prev []byte
	var want int64
	for _, s := range segs {
		if p := chain.PartOf(uint64(s.Seq)); len(out) == 0 || out[len(out)-1].Part != p {
			if !known[p] {
				return nil, fmt.Errorf("seal %s: %w: segment %d belongs to part %d, which is not recorded", rec, errSealMismatch, s.Seq, p)
			}
			want, prev = int64(chain.PartSeq(p)), chain.PartGenesis(rec, p)
			out = append(out, seal.Part{Part: p, FirstSeq: want})
		}
		if s.Seq != want || !bytes.Equal(s.PrevChain, prev) {
			return nil, fmt.Errorf("seal %s: %w: segment %d breaks the chain (expected %d)", rec, errSealMismatch, s.Seq, want)
		}
		cur := &out[len(out)-1]
		cur.Segments++
		cur.FinalSeq, cur.FinalChain = s.Seq, s.Chain
		prev, want = s.Chain, want+1
	}
	return out, nil
}
