package spool

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/internal/chain"
)

// RecMeta describes a recording in the spool.
type RecMeta struct {
	Recording    uuid.UUID `json:"recording"`
	StartedAt    time.Time `json:"started_at"`
	DeviceID     uuid.UUID `json:"device_id,omitzero"`      // the camera: enough to rebuild a lost row
	DeviceSerial string    `json:"device_serial,omitempty"` //
	Part         int       `json:"part,omitempty"`          // this node's part of a recording continued from another node (chain.PartSeq)
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

// initFile is init-<n>.json, a spooled init segment ready to upload.
type initFile struct {
	Recording uuid.UUID `json:"recording"`
	N         int       `json:"n"`
	Key       string    `json:"key"`
	SHA256    []byte    `json:"sha256"`
	Size      int64     `json:"size"`
}

// initSegment is the init segment's index row.
func (m initFile) initSegment() index.InitSegment {
	return index.InitSegment{RecordingID: m.Recording, N: m.N, Key: m.Key, SHA256: m.SHA256, Size: m.Size}
}

// segFile is <seq>.json, a sealed media segment ready to upload: the
// segment the index keeps (index.Segment) under the field names the spool
// has always written (a spool left by an older build must still recover),
// with what only the spool keeps: the SHA-256 of its init segment (the
// chain covers it) and its number of fragments.
type segFile struct {
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

// segment is the segment's index row (its sequence number fits: parseSegFile
// accepts none above 2^62).
func (m segFile) segment() index.Segment {
	return index.Segment{RecordingID: m.Recording, Seq: int64(m.Seq), InitN: m.Init, Key: m.Key, SHA256: m.SHA256,
		PrevChain: m.PrevChain, Chain: m.Chain, Size: m.Size, StartedAt: m.Start, EndedAt: m.End, StartDTS: m.StartDTS,
		EndDTS: m.EndDTS, Gap: m.Gap, Recovered: m.Recovered, SealedAt: m.SealedAt}
}

// link is what the chain covers of the segment.
func (m segFile) link() chain.Link {
	return chain.Link{Seq: m.Seq, SHA256: m.SHA256, Init: m.Init, InitSHA256: m.InitSHA256, Start: m.Start, End: m.End, Gap: m.Gap}
}

// ParseSegMeta reads and checks a segment's metadata file (<seq>.json) and
// returns the segment to index.
func ParseSegMeta(data []byte) (index.Segment, error) {
	m, err := parseSegFile(data)
	if err != nil {
		return index.Segment{}, err
	}
	return m.segment(), nil
}

func parseSegFile(data []byte) (segFile, error) {
	var m segFile
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
	case !bytes.Equal(chain.Next(m.PrevChain, m.link()), m.Chain):
		return m, fmt.Errorf("%w: chain value does not match the segment", ErrBadMeta)
	}
	return m, nil
}

// ParseInitMeta reads and checks an init segment's metadata file
// (init-<n>.json) and returns the init segment to index.
func ParseInitMeta(data []byte) (index.InitSegment, error) {
	m, err := parseInitFile(data)
	if err != nil {
		return index.InitSegment{}, err
	}
	return m.initSegment(), nil
}

func parseInitFile(data []byte) (initFile, error) {
	var m initFile
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
	Part       int    `json:"part,omitempty"` // the part being written (its numbers and chain: chain.PartSeq)
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
func newState(rec uuid.UUID) state { return partState(rec, 0) }

// partState is the state of part p of a recording before its first
// segment: its numbers and chain start afresh.
func partState(rec uuid.UUID, p int) state {
	return state{Part: p, NextSeq: chain.PartSeq(p), NextInit: chain.PartInit(p), Chain: chain.PartGenesis(rec, p), CurInit: -1}
}

// parseState decodes state.json; fields it lacks keep newState's values.
func parseState(data []byte, rec uuid.UUID) (state, error) {
	st := newState(rec)
	if err := json.Unmarshal(data, &st); err != nil || len(st.Chain) != chain.Size {
		return st, fmt.Errorf("%w: state.json", ErrBadMeta)
	}
	return st, nil
}
