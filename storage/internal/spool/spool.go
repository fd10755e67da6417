// Package spool is the archive's local, durable staging area: every init
// and media segment is written and fsynced here before anything else, and
// stays until the uploader has it in MinIO and PostgreSQL.
//
// Layout, one directory per recording (<root>/<recording-id>/):
//
//	rec.json         the recording (id, start time: it names the object keys)
//	state.json       next sequence and init numbers, last chain value
//	init-<n>.mp4     an init segment, written whole (tmp, fsync, rename)
//	init-<n>.json    its metadata: present = ready to upload
//	<seq>.m4s        a media segment, grown one fragment at a time, each fsynced
//	<seq>.frags      one line per durable fragment ("F end-offset end-dts-ns end-wall-µs")
//	<seq>.open.json  the open segment's header (start, gap, init, prev chain)
//	<seq>.json       its metadata once sealed: present = ready to upload
//	ended            the recording ended: remove the directory once empty
//
// Metadata and state files are replaced atomically (tmp, fsync, rename,
// fsync of the directory). After a crash, Recover seals an open segment from
// the fragments its .frags log lists (at most the fragment being written is
// lost) and reconciles state.json with the sealed metadata.
package spool

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/durable"
	"github.com/bwcplatform/bwc/storage/internal/chain"
	"github.com/bwcplatform/bwc/storage/internal/segmenter"
)

// RecMeta describes a recording in the spool.
type RecMeta struct {
	Recording    uuid.UUID `json:"recording"`
	StartedAt    time.Time `json:"started_at"`
	DeviceID     uuid.UUID `json:"device_id,omitzero"`      // the camera: enough to rebuild a lost row
	DeviceSerial string    `json:"device_serial,omitempty"` //
}

// ReadRecMeta reads a recording directory's rec.json.
func ReadRecMeta(dir string) (RecMeta, error) {
	b, err := os.ReadFile(filepath.Join(dir, "rec.json"))
	if err != nil {
		return RecMeta{}, err
	}
	m, err := parseRecMeta(b)
	if err != nil || m.Recording == uuid.Nil || m.StartedAt.IsZero() {
		return m, fmt.Errorf("%w: rec.json in %s", ErrBadMeta, dir)
	}
	return m, nil
}

// parseRecMeta decodes rec.json; callers check what they need of it.
func parseRecMeta(data []byte) (RecMeta, error) {
	var m RecMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("%w: rec.json: %v", ErrBadMeta, err)
	}
	return m, nil
}

// Prefix is the object-key prefix of the recording: YYYY/MM/DD/<id> of its
// start (UTC).
func (r RecMeta) Prefix() string {
	return r.StartedAt.UTC().Format("2006/01/02") + "/" + r.Recording.String()
}

// InitKey and SegKey are the object keys.
func (r RecMeta) InitKey(n int) string     { return fmt.Sprintf("%s/init-%d.mp4", r.Prefix(), n) }
func (r RecMeta) SegKey(seq uint64) string { return fmt.Sprintf("%s/%06d.m4s", r.Prefix(), seq) }

// InitMeta is a spooled init segment ready to upload.
type InitMeta struct {
	Recording uuid.UUID `json:"recording"`
	N         int       `json:"n"`
	Key       string    `json:"key"`
	SHA256    []byte    `json:"sha256"`
	Size      int64     `json:"size"`
}

// SegMeta is a sealed media segment ready to upload.
type SegMeta struct {
	Recording  uuid.UUID     `json:"recording"`
	Seq        uint64        `json:"seq"`
	Init       int           `json:"init"`
	InitSHA256 []byte        `json:"init_sha256"`
	Key        string        `json:"key"`
	SHA256     []byte        `json:"sha256"`
	PrevChain  []byte        `json:"prev_chain"`
	Chain      []byte        `json:"chain"`
	Size       int64         `json:"size"`
	Start      time.Time     `json:"start"`
	End        time.Time     `json:"end"`
	StartDTS   time.Duration `json:"start_dts"`
	EndDTS     time.Duration `json:"end_dts"`
	Gap        bool          `json:"gap"`
	Fragments  int           `json:"fragments"`
	Recovered  bool          `json:"recovered"`
	SealedAt   time.Time     `json:"sealed_at"`
}

// Link is what the chain covers of the segment.
func (m SegMeta) Link() chain.Link {
	return chain.Link{Seq: m.Seq, SHA256: m.SHA256, Init: m.Init, InitSHA256: m.InitSHA256, Start: m.Start, End: m.End, Gap: m.Gap}
}

// ErrBadMeta: a metadata file is not what the archive writes.
var ErrBadMeta = errors.New("bad spool metadata")

// ParseSegMeta reads and checks a segment's metadata file.
func ParseSegMeta(data []byte) (SegMeta, error) {
	var m SegMeta
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("%w: %v", ErrBadMeta, err)
	}
	switch {
	case m.Recording == uuid.Nil:
		return m, fmt.Errorf("%w: no recording", ErrBadMeta)
	case len(m.SHA256) != sha256.Size || len(m.InitSHA256) != sha256.Size || len(m.Chain) != chain.Size || len(m.PrevChain) != chain.Size:
		return m, fmt.Errorf("%w: hash of the wrong size", ErrBadMeta)
	case m.Size <= 0 || m.Init < 0 || m.Seq > 1<<62 || m.Fragments <= 0:
		return m, fmt.Errorf("%w: size, init, seq or fragments out of range", ErrBadMeta)
	case m.End.Before(m.Start) || m.EndDTS < m.StartDTS:
		return m, fmt.Errorf("%w: ends before it starts", ErrBadMeta)
	case !strings.HasSuffix(m.Key, fmt.Sprintf("/%s/%06d.m4s", m.Recording, m.Seq)):
		return m, fmt.Errorf("%w: key %q does not match recording and seq", ErrBadMeta, m.Key)
	case !bytes.Equal(chain.Next(m.PrevChain, m.Link()), m.Chain):
		return m, fmt.Errorf("%w: chain value does not match the segment", ErrBadMeta)
	}
	return m, nil
}

// ParseInitMeta reads and checks an init segment's metadata file.
func ParseInitMeta(data []byte) (InitMeta, error) {
	var m InitMeta
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("%w: %v", ErrBadMeta, err)
	}
	if m.Recording == uuid.Nil || len(m.SHA256) != sha256.Size || m.Size <= 0 || m.N < 0 ||
		!strings.HasSuffix(m.Key, fmt.Sprintf("/%s/init-%d.mp4", m.Recording, m.N)) {
		return m, fmt.Errorf("%w: init segment fields out of range", ErrBadMeta)
	}
	return m, nil
}

// Frag is one durable fragment of an open segment.
type Frag struct {
	EndOffset int64
	EndDTS    time.Duration
	EndWall   time.Time
}

// line is the fragment's record in the .frags log.
func (f Frag) line() string {
	return fmt.Sprintf("F %d %d %d\n", f.EndOffset, int64(f.EndDTS), f.EndWall.UnixMicro())
}

// ParseFragLog reads a .frags log: the longest prefix of complete, valid
// lines whose offsets grow and fit in a data file of fileSize bytes. A torn
// last line (crash mid-write) ends the prefix.
func ParseFragLog(data []byte, fileSize int64) []Frag {
	var out []Frag
	var prev Frag
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		f := strings.Fields(string(data[:i]))
		data = data[i+1:]
		if len(f) != 4 || f[0] != "F" {
			break
		}
		off, err1 := strconv.ParseInt(f[1], 10, 64)
		dts, err2 := strconv.ParseInt(f[2], 10, 64)
		us, err3 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || off <= prev.EndOffset || off > fileSize || time.Duration(dts) < prev.EndDTS {
			break
		}
		prev = Frag{EndOffset: off, EndDTS: time.Duration(dts), EndWall: time.UnixMicro(us).UTC()}
		out = append(out, prev)
	}
	return out
}

// state is state.json.
type state struct {
	NextSeq    uint64 `json:"next_seq"`
	Chain      []byte `json:"chain"`
	NextInit   int    `json:"next_init"`
	CurInit    int    `json:"cur_init"`
	CurInitSHA []byte `json:"cur_init_sha256"`
}

// openHeader is <seq>.open.json.
type openHeader struct {
	Seq        uint64        `json:"seq"`
	Init       int           `json:"init"`
	InitSHA256 []byte        `json:"init_sha256"`
	PrevChain  []byte        `json:"prev_chain"`
	Start      time.Time     `json:"start"`
	StartDTS   time.Duration `json:"start_dts"`
	Gap        bool          `json:"gap"`
}

func parseOpenHeader(data []byte) (openHeader, error) {
	var h openHeader
	err := json.Unmarshal(data, &h)
	return h, err
}

func writeJSON(dir, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return durable.WriteAtomic(dir, name, b, 0o640)
}

// Writer spools one recording; it is the segmenter's Sink. One goroutine.
type Writer struct {
	dir    string
	rec    RecMeta
	st     state
	notify func()

	f     *os.File
	frags *os.File
	h     hash.Hash
	size  int64
	nfrag int
	hdr   openHeader
	last  segmenter.End

	begun    bool     // Begin ran (maybe partly): a segment may be open on disk
	unsealed *SegMeta // a segment whose sealing failed (disk): Salvage retries it
}

var _ segmenter.Sink = (*Writer)(nil)

// Open starts (or continues, after a restart) spooling a recording under
// root. notify is called after each sealed segment or init.
func Open(root string, rec RecMeta, notify func()) (*Writer, error) {
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
	w.st = st
	_ = os.Remove(filepath.Join(dir, "ended"))
	return w, nil
}

// Dir is the recording's spool directory.
func (w *Writer) Dir() string { return w.dir }

// loadState reads state.json; a recording without one has written nothing.
func loadState(dir string, rec uuid.UUID) (state, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return newState(rec), nil
	}
	if err != nil {
		return newState(rec), err
	}
	return parseState(b, rec)
}

// newState is the state of a recording that has written nothing.
func newState(rec uuid.UUID) state { return state{Chain: chain.Genesis(rec), CurInit: -1} }

// parseState decodes state.json; fields it lacks keep newState's values.
func parseState(data []byte, rec uuid.UUID) (state, error) {
	st := newState(rec)
	if err := json.Unmarshal(data, &st); err != nil || len(st.Chain) != chain.Size {
		return st, fmt.Errorf("%w: state.json", ErrBadMeta)
	}
	return st, nil
}

// Init implements segmenter.Sink.
func (w *Writer) Init(_ int, data []byte) error {
	n := w.st.NextInit
	name := fmt.Sprintf("init-%d", n)
	if err := durable.WriteAtomic(w.dir, name+".mp4", data, 0o640); err != nil {
		return fmt.Errorf("spool init %d of %s: %w", n, w.rec.Recording, err)
	}
	sum := sha256.Sum256(data)
	m := InitMeta{Recording: w.rec.Recording, N: n, Key: w.rec.InitKey(n), SHA256: sum[:], Size: int64(len(data))}
	if err := writeJSON(w.dir, name+".json", m); err != nil {
		return fmt.Errorf("spool init %d of %s: %w", n, w.rec.Recording, err)
	}
	w.st.NextInit, w.st.CurInit, w.st.CurInitSHA = n+1, n, sum[:]
	if err := writeJSON(w.dir, "state.json", w.st); err != nil {
		return fmt.Errorf("spool init %d of %s: %w", n, w.rec.Recording, err)
	}
	w.notify()
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
	base := filepath.Join(w.dir, fmt.Sprintf("%06d", seq))
	var err error
	if w.f, err = os.OpenFile(base+".m4s", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640); err != nil {
		return fmt.Errorf("spool segment %d of %s: %w", seq, w.rec.Recording, err)
	}
	if w.frags, err = os.OpenFile(base+".frags", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640); err != nil {
		return fmt.Errorf("spool segment %d of %s: %w", seq, w.rec.Recording, err)
	}
	if err := writeJSON(w.dir, fmt.Sprintf("%06d.open.json", seq), w.hdr); err != nil {
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
	m := w.meta(w.h.Sum(nil), w.size, w.nfrag, end)
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
	w.notify()
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
	base := filepath.Join(w.dir, fmt.Sprintf("%06d", w.hdr.Seq))
	if err := durable.TruncateSync(base+".m4s", w.size); err != nil {
		return fmt.Errorf("spool segment %d of %s: %w", w.hdr.Seq, w.rec.Recording, err)
	}
	m := w.meta(w.h.Sum(nil), w.size, w.nfrag, w.last)
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

func (w *Writer) meta(sum []byte, size int64, nfrag int, end segmenter.End) SegMeta {
	h := w.hdr
	m := SegMeta{Recording: w.rec.Recording, Seq: h.Seq, Init: h.Init, InitSHA256: h.InitSHA256, Key: w.rec.SegKey(h.Seq),
		SHA256: sum, PrevChain: h.PrevChain, Size: size, Start: h.Start, End: end.Wall.Truncate(time.Microsecond),
		StartDTS: h.StartDTS, EndDTS: end.DTS, Gap: h.Gap, Fragments: nfrag, SealedAt: time.Now().UTC()}
	if m.End.Before(m.Start) {
		m.End = m.Start
	}
	if m.EndDTS < m.StartDTS {
		m.EndDTS = m.StartDTS
	}
	m.Start, m.End = m.Start.UTC(), m.End.UTC()
	m.Chain = chain.Next(m.PrevChain, m.Link())
	return m
}

// seal writes a segment's metadata (making it uploadable), advances the
// state and removes the open segment's bookkeeping.
func seal(dir string, st *state, m SegMeta) error {
	if err := writeJSON(dir, fmt.Sprintf("%06d.json", m.Seq), m); err != nil {
		return err
	}
	st.NextSeq, st.Chain = m.Seq+1, m.Chain
	if err := writeJSON(dir, "state.json", st); err != nil {
		return err
	}
	base := filepath.Join(dir, fmt.Sprintf("%06d", m.Seq))
	_ = os.Remove(base + ".open.json")
	_ = os.Remove(base + ".frags")
	return durable.SyncDir(dir)
}

func removeOpen(dir string, seq uint64) error {
	base := filepath.Join(dir, fmt.Sprintf("%06d", seq))
	for _, ext := range []string{".m4s", ".frags", ".open.json"} {
		if err := os.Remove(base + ext); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return durable.SyncDir(dir)
}

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

func recoverDir(dir string, id uuid.UUID) (Recovered, error) {
	r := Recovered{Recording: id}
	b, err := os.ReadFile(filepath.Join(dir, "rec.json"))
	if err != nil {
		return r, err
	}
	rec, err := parseRecMeta(b)
	if err != nil || rec.Recording != id {
		return r, fmt.Errorf("%w: rec.json", ErrBadMeta)
	}
	st, err := loadState(dir, id)
	if err != nil {
		return r, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return r, err
	}
	var opens []uint64
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".tmp"):
			_ = os.Remove(filepath.Join(dir, name))
		case strings.HasPrefix(name, "init-") && strings.HasSuffix(name, ".mp4"):
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "init-"), ".mp4"))
			if err != nil {
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("init-%d.json", n))); err == nil {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return r, err
			}
			sum := sha256.Sum256(data)
			if err := writeJSON(dir, fmt.Sprintf("init-%d.json", n), InitMeta{Recording: id, N: n, Key: rec.InitKey(n), SHA256: sum[:], Size: int64(len(data))}); err != nil {
				return r, err
			}
			if n >= st.NextInit {
				st.NextInit, st.CurInit, st.CurInitSHA = n+1, n, sum[:]
			}
		case strings.HasSuffix(name, ".open.json"):
			seq, err := strconv.ParseUint(strings.TrimSuffix(name, ".open.json"), 10, 64)
			if err == nil {
				opens = append(opens, seq)
			}
		case strings.HasSuffix(name, ".json") && name[0] >= '0' && name[0] <= '9':
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return r, err
			}
			m, err := ParseSegMeta(data)
			if err != nil {
				return r, fmt.Errorf("%s: %w", name, err)
			}
			if m.Seq >= st.NextSeq { // sealed, but the crash came before state.json
				st.NextSeq, st.Chain = m.Seq+1, m.Chain
			}
		}
	}
	for _, seq := range opens {
		base := filepath.Join(dir, fmt.Sprintf("%06d", seq))
		if _, err := os.Stat(base + ".json"); err == nil {
			_ = removeOpen2(base)
			continue
		}
		hb, err := os.ReadFile(base + ".open.json")
		if err != nil {
			return r, err
		}
		h, err := parseOpenHeader(hb)
		if err != nil || h.Seq != seq || seq != st.NextSeq {
			return r, fmt.Errorf("%w: %06d.open.json (state expects seq %d)", ErrBadMeta, seq, st.NextSeq)
		}
		fi, err := os.Stat(base + ".m4s")
		if err != nil {
			return r, err
		}
		lb, _ := os.ReadFile(base + ".frags")
		frags := ParseFragLog(lb, fi.Size())
		if len(frags) == 0 {
			if err := removeOpen(dir, seq); err != nil {
				return r, err
			}
			continue
		}
		last := frags[len(frags)-1]
		if err := durable.TruncateSync(base+".m4s", last.EndOffset); err != nil {
			return r, err
		}
		sum, err := fileSHA(base + ".m4s")
		if err != nil {
			return r, err
		}
		w := Writer{rec: rec, hdr: h}
		m := w.meta(sum, last.EndOffset, len(frags), segmenter.End{DTS: last.EndDTS, Wall: last.EndWall})
		m.Recovered = true
		if err := seal(dir, &st, m); err != nil {
			return r, err
		}
		r.Sealed = append(r.Sealed, seq)
		r.Fragments = append(r.Fragments, len(frags))
		r.Truncated = append(r.Truncated, fi.Size()-last.EndOffset)
	}
	if err := writeJSON(dir, "state.json", st); err != nil {
		return r, err
	}
	if err := removeLeftovers(dir); err != nil {
		return r, err
	}
	return r, durable.WriteAtomic(dir, "ended", nil, 0o640)
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

func removeOpen2(base string) error {
	_ = os.Remove(base + ".open.json")
	_ = os.Remove(base + ".frags")
	return nil
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
