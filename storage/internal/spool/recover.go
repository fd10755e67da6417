package spool

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/durable"
	"github.com/bwcplatform/bwc/storage/internal/segmenter"
)

// Recovered says what Recover did to one recording.
type Recovered struct {
	Recording uuid.UUID
	Sealed    []uint64 // open segments sealed from their durable fragments
	Fragments []int    // fragments kept in each
	Truncated []int64  // bytes cut off each (a fragment torn by the crash)
}

// Recover brings every recording directory under root to a consistent
// state after a crash: open segments are sealed from their durable
// fragments (or removed when they have none), init segments without
// metadata get it, state.json catches up with sealed segments, and each
// recording is marked ended.
func Recover(root string) ([]Recovered, error) {
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("spool %s: %w", root, err)
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", root, err)
	}
	var out []Recovered
	var errs []error
	for _, e := range ents {
		id, err := uuid.Parse(e.Name())
		if !e.IsDir() || err != nil {
			continue
		}
		r, err := recoverDir(filepath.Join(root, e.Name()), id)
		if err != nil {
			errs = append(errs, fmt.Errorf("recover spool of %s: %w", id, err))
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// recoverDir recovers one recording's directory. It stops at the first
// error, leaving the rest for the next recovery (each step can be redone).
func recoverDir(dir string, id uuid.UUID) (Recovered, error) {
	r := Recovered{Recording: id}
	rec, err := readOwnRecMeta(dir, id)
	if err != nil {
		return r, err
	}
	st, err := loadState(dir, id)
	if err != nil {
		return r, err
	}
	opens, err := scanDir(dir, rec, &st)
	if err != nil {
		return r, err
	}
	for _, seq := range opens {
		if err := recoverOpen(dir, rec, &st, seq, &r); err != nil {
			return r, err
		}
	}
	return r, finishRecovery(dir, st)
}

// readOwnRecMeta reads rec.json, which must name the recording id.
func readOwnRecMeta(dir string, id uuid.UUID) (RecMeta, error) {
	b, err := os.ReadFile(filepath.Join(dir, "rec.json"))
	if err != nil {
		return RecMeta{}, err
	}
	rec, err := parseRecMeta(b)
	if err != nil || rec.Recording != id {
		return rec, fmt.Errorf("%w: rec.json", ErrBadMeta)
	}
	return rec, nil
}

// scanDir goes through a recording's files once: it removes torn
// replacements (*.tmp), gives an init segment without metadata its
// metadata, catches st up with sealed segments, and returns the segments
// that were open.
func scanDir(dir string, rec RecMeta, st *state) (opens []uint64, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".tmp"):
			_ = os.Remove(filepath.Join(dir, name))
		case strings.HasPrefix(name, "init-") && strings.HasSuffix(name, ".mp4"):
			err = recoverInit(dir, rec, st, name)
		case strings.HasSuffix(name, ".open.json"):
			if seq, err := strconv.ParseUint(strings.TrimSuffix(name, ".open.json"), 10, 64); err == nil {
				opens = append(opens, seq)
			}
		case strings.HasSuffix(name, ".json") && name[0] >= '0' && name[0] <= '9':
			err = catchUpSealed(dir, st, name)
		}
		if err != nil {
			return nil, err
		}
	}
	return opens, nil
}

// recoverInit writes the metadata of init segment init-<n>.mp4 when the
// crash came before it (or after its upload removed it: it is uploaded
// again, a no-op), and makes it the current init segment if it is the
// newest.
func recoverInit(dir string, rec RecMeta, st *state, name string) error {
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "init-"), ".mp4"))
	if err != nil {
		return nil // not one of ours
	}
	if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("init-%d.json", n))); err == nil {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	m := initFile{Recording: rec.Recording, N: n, Key: rec.InitKey(n), SHA256: sum[:], Size: int64(len(data))}
	if err := writeJSON(dir, fmt.Sprintf("init-%d.json", n), m); err != nil {
		return err
	}
	if n >= st.NextInit {
		st.NextInit, st.CurInit, st.CurInitSHA = n+1, n, sum[:]
	}
	return nil
}

// catchUpSealed advances st past a sealed segment when the crash came
// between its metadata and state.json.
func catchUpSealed(dir string, st *state, name string) error {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	m, err := parseSegFile(data)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if m.Seq >= st.NextSeq {
		st.NextSeq, st.Chain = m.Seq+1, m.Chain
	}
	return nil
}

// recoverOpen finishes segment seq, open at the crash: one already sealed
// loses its leftover bookkeeping; one with durable fragments is cut back
// to them and sealed (noted in r); one without is removed.
func recoverOpen(dir string, rec RecMeta, st *state, seq uint64, r *Recovered) error {
	base := segPath(dir, seq)
	if _, err := os.Stat(base + ".json"); err == nil {
		removeBookkeeping(base)
		return nil
	}
	h, err := readOpenHeader(base, seq, st.NextSeq)
	if err != nil {
		return err
	}
	fi, err := os.Stat(base + ".m4s")
	if err != nil {
		return err
	}
	lb, _ := os.ReadFile(base + ".frags") // none: no durable fragment
	frags := ParseFragLog(lb, fi.Size())
	if len(frags) == 0 {
		return removeOpen(dir, seq)
	}
	if err := sealFragments(dir, rec, st, h, frags); err != nil {
		return err
	}
	r.Sealed = append(r.Sealed, seq)
	r.Fragments = append(r.Fragments, len(frags))
	r.Truncated = append(r.Truncated, fi.Size()-frags[len(frags)-1].EndOffset)
	return nil
}

// readOpenHeader reads segment seq's open header; only the segment state
// expects next can be open.
func readOpenHeader(base string, seq, next uint64) (openHeader, error) {
	hb, err := os.ReadFile(base + ".open.json")
	if err != nil {
		return openHeader{}, err
	}
	h, err := parseOpenHeader(hb)
	if err != nil || h.Seq != seq || seq != next {
		return h, fmt.Errorf("%w: %06d.open.json (state expects seq %d)", ErrBadMeta, seq, next)
	}
	return h, nil
}

// sealFragments cuts the open segment h back to its durable fragments and
// seals it, marked recovered.
func sealFragments(dir string, rec RecMeta, st *state, h openHeader, frags []Frag) error {
	path := segPath(dir, h.Seq) + ".m4s"
	last := frags[len(frags)-1]
	if err := durable.TruncateSync(path, last.EndOffset); err != nil {
		return err
	}
	sum, err := fileSHA(path)
	if err != nil {
		return err
	}
	m := newSegFile(rec, h, sum, last.EndOffset, len(frags), segmenter.End{DTS: last.EndDTS, Wall: last.EndWall})
	m.Recovered = true
	return seal(dir, st, m)
}

// finishRecovery saves the caught-up state, removes what nothing uses and
// marks the recording ended.
func finishRecovery(dir string, st state) error {
	if err := writeJSON(dir, "state.json", st); err != nil {
		return err
	}
	if err := removeLeftovers(dir); err != nil {
		return err
	}
	return durable.WriteAtomic(dir, "ended", nil, 0o640)
}

// removeLeftovers removes files that nothing uses: a segment's data whose
// metadata was removed after its upload when the process died before its
// data was, or one begun when it died before it had an open header; a
// sealed segment's fragment log. Without this the directory would never be
// empty, never removed.
func removeLeftovers(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, e := range ents {
		have[e.Name()] = true
	}
	for n := range have {
		switch {
		case strings.HasSuffix(n, ".m4s"):
			base := strings.TrimSuffix(n, ".m4s")
			if have[base+".json"] || have[base+".open.json"] {
				continue
			}
		case strings.HasSuffix(n, ".frags"):
			// a fragment log only means something for an open segment: a
			// sealed one's is left when the process died between the
			// removal of its open header and of its log
			if have[strings.TrimSuffix(n, ".frags")+".open.json"] {
				continue
			}
		default:
			continue // init-<n>.mp4 without metadata got it above
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	return durable.SyncDir(dir)
}

func fileSHA(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
