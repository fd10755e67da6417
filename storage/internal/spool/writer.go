package spool

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"time"

	"github.com/bwcplatform/bwc/storage/durable"
	"github.com/bwcplatform/bwc/storage/internal/chain"
	"github.com/bwcplatform/bwc/storage/internal/segmenter"
)

// Writer spools one recording; it is the segmenter's Sink. One goroutine.
type Writer struct {
	dir    string
	rec    RecMeta
	st     state
	notify func(dir string)

	f     *os.File
	frags *os.File
	h     hash.Hash
	size  int64
	nfrag int
	hdr   openHeader
	last  segmenter.End

	begun    bool     // Begin ran (maybe partly): a segment may be open on disk
	unsealed *segFile // a segment whose sealing failed (disk): Salvage retries it
}

var _ segmenter.Sink = (*Writer)(nil)

// Open starts (or continues, after a restart) spooling a recording under
// root. notify is called with the recording's directory after each sealed
// segment or init: it has something to upload.
func Open(root string, rec RecMeta, notify func(dir string)) (*Writer, error) {
	dir := filepath.Join(root, rec.Recording.String())
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool %s: %w", rec.Recording, err)
	}
	w := &Writer{dir: dir, rec: rec, notify: notify}
	if b, err := os.ReadFile(filepath.Join(dir, "rec.json")); err == nil {
		if old, err := parseRecMeta(b); err == nil && !old.StartedAt.IsZero() {
			w.rec.StartedAt = old.StartedAt // keys keep the first start's date
		}
	} else if err := writeJSON(dir, "rec.json", rec); err != nil {
		return nil, fmt.Errorf("spool %s: %w", rec.Recording, err)
	}
	if err := durable.SyncDir(root); err != nil {
		return nil, fmt.Errorf("spool %s: %w", rec.Recording, err)
	}
	st, err := loadState(dir, rec.Recording)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", rec.Recording, err)
	}
	if st.Part != rec.Part { // this node continues the recording (again): a part of its own
		st = partState(rec.Recording, rec.Part)
	}
	w.st = st
	_ = os.Remove(filepath.Join(dir, "ended"))
	return w, nil
}

// Dir is the recording's spool directory.
func (w *Writer) Dir() string { return w.dir }

// Init implements segmenter.Sink.
func (w *Writer) Init(_ int, data []byte) error {
	n := w.st.NextInit
	name := fmt.Sprintf("init-%d", n)
	if err := durable.WriteAtomic(w.dir, name+".mp4", data, 0o640); err != nil {
		return fmt.Errorf("spool init %d of %s: %w", n, w.rec.Recording, err)
	}
	sum := sha256.Sum256(data)
	m := initFile{Recording: w.rec.Recording, N: n, Key: w.rec.InitKey(n), SHA256: sum[:], Size: int64(len(data))}
	if err := writeJSON(w.dir, name+".json", m); err != nil {
		return fmt.Errorf("spool init %d of %s: %w", n, w.rec.Recording, err)
	}
	w.st.NextInit, w.st.CurInit, w.st.CurInitSHA = n+1, n, sum[:]
	if err := writeJSON(w.dir, "state.json", w.st); err != nil {
		return fmt.Errorf("spool init %d of %s: %w", n, w.rec.Recording, err)
	}
	w.notify(w.dir)
	return nil
}

// Begin implements segmenter.Sink.
func (w *Writer) Begin(h segmenter.Header) error {
	if w.st.CurInit < 0 {
		return fmt.Errorf("spool %s: segment before any init segment", w.rec.Recording)
	}
	seq := w.st.NextSeq
	w.begun, w.h, w.size, w.nfrag = true, sha256.New(), 0, 0
	w.hdr = openHeader{Seq: seq, Init: w.st.CurInit, InitSHA256: w.st.CurInitSHA, PrevChain: w.st.Chain,
		Start: h.StartWall.Truncate(time.Microsecond), StartDTS: h.StartDTS, Gap: h.Gap}
	base := segPath(w.dir, seq)
	var err error
	if w.f, err = os.OpenFile(base+".m4s", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640); err != nil {
		return fmt.Errorf("spool segment %d of %s: %w", seq, w.rec.Recording, err)
	}
	if w.frags, err = os.OpenFile(base+".frags", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640); err != nil {
		return fmt.Errorf("spool segment %d of %s: %w", seq, w.rec.Recording, err)
	}
	if err := writeJSON(w.dir, segName(seq)+".open.json", w.hdr); err != nil {
		return fmt.Errorf("spool segment %d of %s: %w", seq, w.rec.Recording, err)
	}
	return nil
}

// Fragment implements segmenter.Sink: the fragment is durable (data, then
// its line in the .frags log, each fsynced) when it returns.
func (w *Writer) Fragment(data []byte, end segmenter.End) error {
	if _, err := w.f.Write(data); err != nil {
		return fmt.Errorf("spool segment %d of %s: %w", w.hdr.Seq, w.rec.Recording, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("spool segment %d of %s: %w", w.hdr.Seq, w.rec.Recording, err)
	}
	w.h.Write(data)
	w.size += int64(len(data))
	w.nfrag++
	w.last = end
	line := Frag{EndOffset: w.size, EndDTS: end.DTS, EndWall: end.Wall}.line()
	if _, err := w.frags.WriteString(line); err != nil {
		return fmt.Errorf("spool segment %d of %s: %w", w.hdr.Seq, w.rec.Recording, err)
	}
	if err := w.frags.Sync(); err != nil {
		return fmt.Errorf("spool segment %d of %s: %w", w.hdr.Seq, w.rec.Recording, err)
	}
	return nil
}

// Seal implements segmenter.Sink.
func (w *Writer) Seal(end segmenter.End) error {
	w.closeFiles()
	if w.nfrag == 0 { // nothing was written: no segment, no number used
		if err := removeOpen(w.dir, w.hdr.Seq); err != nil {
			return err
		}
		w.begun = false
		return nil
	}
	m := newSegFile(w.rec, w.hdr, w.h.Sum(nil), w.size, w.nfrag, end)
	w.unsealed, w.begun = &m, false
	return w.sealPending()
}

func (w *Writer) closeFiles() {
	if w.f != nil {
		w.f.Close()
	}
	if w.frags != nil {
		w.frags.Close()
	}
	w.f, w.frags = nil, nil
}

func (w *Writer) sealPending() error {
	if w.unsealed == nil {
		return nil
	}
	if err := seal(w.dir, &w.st, *w.unsealed); err != nil {
		return fmt.Errorf("spool segment %d of %s: %w", w.unsealed.Seq, w.rec.Recording, err)
	}
	w.unsealed = nil
	w.notify(w.dir)
	return nil
}

// Salvage makes the spool consistent again after a write error (disk full,
// EIO) so that recording can go on with a new segment: a segment whose
// sealing failed is sealed; an open one is cut back to its durable
// fragments and sealed (marked recovered), or removed when it has none.
// It fails while the disk still does; call it again later.
func (w *Writer) Salvage() error {
	if w.unsealed != nil {
		return w.sealPending()
	}
	if !w.begun {
		return nil
	}
	w.closeFiles()
	if w.nfrag == 0 {
		if err := removeOpen(w.dir, w.hdr.Seq); err != nil {
			return fmt.Errorf("spool segment %d of %s: %w", w.hdr.Seq, w.rec.Recording, err)
		}
		w.begun = false
		return nil
	}
	base := segPath(w.dir, w.hdr.Seq)
	if err := durable.TruncateSync(base+".m4s", w.size); err != nil {
		return fmt.Errorf("spool segment %d of %s: %w", w.hdr.Seq, w.rec.Recording, err)
	}
	m := newSegFile(w.rec, w.hdr, w.h.Sum(nil), w.size, w.nfrag, w.last)
	m.Recovered = true
	w.unsealed, w.begun = &m, false
	return w.sealPending()
}

// Next returns the next segment and init numbers (for a segmenter that
// continues this recording).
func (w *Writer) Next() (seq uint64, init int) { return w.st.NextSeq, w.st.NextInit }

// Abort closes an open segment without sealing it (the process is going
// down uncleanly): Recover seals it from its fragments.
func (w *Writer) Abort() {
	w.closeFiles()
}

// End marks the recording ended: the uploader removes the directory once
// everything in it is uploaded.
func (w *Writer) End() error {
	w.Abort()
	return durable.WriteAtomic(w.dir, "ended", nil, 0o640)
}

// newSegFile is the metadata of the segment begun with h, sealed with nfrag
// fragments, size bytes of SHA-256 sum, ending at end.
func newSegFile(rec RecMeta, h openHeader, sum []byte, size int64, nfrag int, end segmenter.End) segFile {
	m := segFile{Recording: rec.Recording, Seq: h.Seq, Init: h.Init, InitSHA256: h.InitSHA256, Key: rec.SegKey(h.Seq),
		SHA256: sum, PrevChain: h.PrevChain, Size: size, Start: h.Start, End: end.Wall.Truncate(time.Microsecond),
		StartDTS: h.StartDTS, EndDTS: end.DTS, Gap: h.Gap, Fragments: nfrag, SealedAt: time.Now().UTC()}
	if m.End.Before(m.Start) {
		m.End = m.Start
	}
	if m.EndDTS < m.StartDTS {
		m.EndDTS = m.StartDTS
	}
	m.Start, m.End = m.Start.UTC(), m.End.UTC()
	m.Chain = chain.Next(m.PrevChain, m.link())
	return m
}

// seal writes a segment's metadata (making it uploadable), advances the
// state and removes the open segment's bookkeeping.
func seal(dir string, st *state, m segFile) error {
	if err := writeJSON(dir, segName(m.Seq)+".json", m); err != nil {
		return err
	}
	st.NextSeq, st.Chain = m.Seq+1, m.Chain
	if err := writeJSON(dir, "state.json", st); err != nil {
		return err
	}
	removeBookkeeping(segPath(dir, m.Seq))
	return durable.SyncDir(dir)
}

// removeBookkeeping removes what only an open segment has, its header and
// fragment log, once it is sealed (not durably: the caller syncs the
// directory, or recovery removes them again).
func removeBookkeeping(base string) {
	_ = os.Remove(base + ".open.json")
	_ = os.Remove(base + ".frags")
}

// removeOpen removes a segment begun that has no durable fragment.
func removeOpen(dir string, seq uint64) error {
	base := segPath(dir, seq)
	for _, ext := range []string{".m4s", ".frags", ".open.json"} {
		if err := os.Remove(base + ext); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return durable.SyncDir(dir)
}
