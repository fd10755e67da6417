package spool

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/bwcplatform/bwc/storage/internal/chain"
	"github.com/bwcplatform/bwc/storage/internal/segmenter"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	t0    = time.Date(2026, 3, 1, 23, 59, 58, 123456789, time.UTC)
	recID = uuid.MustParse("5b0c7a52-8d4e-4d51-9a43-0a1c2f3e4d5b")
)

// fixture writes a recording into a spool through the real Writer and
// remembers what it wrote, so that a test can damage the directory the way
// a crash at one point would leave it and then check what recovery kept.
type fixture struct {
	t     *testing.T
	root  string
	dir   string
	rec   RecMeta
	w     *Writer
	inits [][]byte                    // data of each init segment written
	frags map[uint64][][]byte         // data of each fragment written, per segment
	ends  map[uint64][]segmenter.End  // where each fragment ended
	hdrs  map[uint64]segmenter.Header // each segment's header
	snaps map[string][]byte           // files saved by snap
	notes int                         // notify calls
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, root: t.TempDir(), rec: RecMeta{Recording: recID, StartedAt: t0},
		frags: map[uint64][][]byte{}, ends: map[uint64][]segmenter.End{}, hdrs: map[uint64]segmenter.Header{},
		snaps: map[string][]byte{}}
	w, err := Open(f.root, f.rec, func(string) { f.notes++ })
	if err != nil {
		t.Fatal(err)
	}
	f.w, f.dir = w, w.Dir()
	return f
}

func (f *fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

func initData(n int) []byte { return []byte(strings.Repeat("ftypmoov", 8+n) + string(rune('a'+n))) }

func fragData(seq uint64, i int) []byte {
	return bytes.Repeat([]byte{byte(seq*16) + byte(i) + 1}, 64+16*i)
}

// init writes the next init segment.
func (f *fixture) init() {
	f.t.Helper()
	n := len(f.inits)
	f.must(f.w.Init(n, initData(n)))
	f.inits = append(f.inits, initData(n))
}

// begin opens the next segment.
func (f *fixture) begin() uint64 {
	f.t.Helper()
	seq, _ := f.w.Next()
	h := segmenter.Header{Seq: seq, Init: len(f.inits) - 1, StartDTS: time.Duration(seq) * 4 * time.Second,
		StartWall: t0.Add(time.Duration(seq) * 4 * time.Second), Gap: seq == 2}
	f.hdrs[seq] = h
	f.must(f.w.Begin(h))
	return seq
}

// fragment writes the next fragment of the open segment seq durably.
func (f *fixture) fragment(seq uint64) {
	f.t.Helper()
	i := len(f.frags[seq])
	h := f.hdrs[seq]
	end := segmenter.End{DTS: h.StartDTS + time.Duration(i+1)*time.Second, Wall: h.StartWall.Add(time.Duration(i+1) * time.Second)}
	f.must(f.w.Fragment(fragData(seq, i), end))
	f.frags[seq] = append(f.frags[seq], fragData(seq, i))
	f.ends[seq] = append(f.ends[seq], end)
}

// seal seals the open segment seq where its last fragment ended.
func (f *fixture) seal(seq uint64) {
	f.t.Helper()
	f.must(f.w.Seal(f.ends[seq][len(f.ends[seq])-1]))
}

// segment writes a whole sealed segment of n fragments.
func (f *fixture) segment(n int) uint64 {
	f.t.Helper()
	seq := f.begin()
	for range n {
		f.fragment(seq)
	}
	f.seal(seq)
	return seq
}

// crash stops writing without sealing (what a kill leaves of the Writer).
func (f *fixture) crash() { f.w.Abort() }

func (f *fixture) path(name string) string { return filepath.Join(f.dir, name) }

func (f *fixture) read(name string) []byte {
	f.t.Helper()
	b, err := os.ReadFile(f.path(name))
	f.must(err)
	return b
}

func (f *fixture) write(name string, b []byte) {
	f.t.Helper()
	f.must(os.WriteFile(f.path(name), b, 0o640))
}

func (f *fixture) appendTo(name string, b []byte) {
	f.t.Helper()
	fh, err := os.OpenFile(f.path(name), os.O_WRONLY|os.O_APPEND, 0)
	f.must(err)
	_, err = fh.Write(b)
	f.must(err)
	f.must(fh.Close())
}

func (f *fixture) truncate(name string, size int64) {
	f.t.Helper()
	f.must(os.Truncate(f.path(name), size))
}
func (f *fixture) remove(name string) { f.t.Helper(); f.must(os.Remove(f.path(name))) }

// snap saves a file's contents; restore puts them back (a crash before its
// replacement became durable).
func (f *fixture) snap(name string)    { f.t.Helper(); f.snaps[name] = f.read(name) }
func (f *fixture) restore(name string) { f.t.Helper(); f.write(name, f.snaps[name]) }

// half writes the first half of data as name: a file torn mid-write.
func (f *fixture) half(name string, data []byte) { f.t.Helper(); f.write(name, data[:len(data)/2]) }

// files lists the recording's directory.
func (f *fixture) files() []string {
	f.t.Helper()
	ents, err := os.ReadDir(f.dir)
	f.must(err)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func (f *fixture) state() state {
	f.t.Helper()
	var st state
	f.must(json.Unmarshal(f.read("state.json"), &st))
	return st
}

// checkRecovered asserts the invariants of a recovered recording directory:
// no torn or bookkeeping file is left; every segment and init segment has
// metadata that parses, and whose hash and size are those of its data; a
// segment's data is exactly the first fragments written (nothing torn
// accepted, nothing durable lost); the chain runs unbroken through what is
// left; state.json agrees with the metadata; the recording is ended.
func (f *fixture) checkRecovered(r Recovered) {
	f.t.Helper()
	have := map[string]bool{}
	for _, n := range f.files() {
		have[n] = true
		if strings.HasSuffix(n, ".tmp") || strings.HasSuffix(n, ".frags") || strings.HasSuffix(n, ".open.json") {
			f.t.Errorf("%s left after recovery", n)
		}
	}
	if !have["ended"] {
		f.t.Error("recovery did not mark the recording ended")
	}
	st := f.state()
	f.checkInits(have, st)
	f.checkSegments(have, st, r)
}

func (f *fixture) checkInits(have map[string]bool, st state) {
	f.t.Helper()
	for n, data := range f.inits {
		name := initName(n)
		if !have[name+".mp4"] {
			continue
		}
		m, err := parseInitFile(f.read(name + ".json"))
		if err != nil {
			f.t.Errorf("%s.json: %v", name, err)
			continue
		}
		sum := sha256.Sum256(data)
		if !bytes.Equal(f.read(name+".mp4"), data) || !bytes.Equal(m.SHA256, sum[:]) || m.Size != int64(len(data)) || m.N != n {
			f.t.Errorf("%s: data or metadata is not what was written: %+v", name, m)
		}
	}
	if st.CurInit >= 0 {
		sum := sha256.Sum256(f.inits[st.CurInit])
		if !bytes.Equal(st.CurInitSHA, sum[:]) {
			f.t.Errorf("state: current init %d has another SHA-256", st.CurInit)
		}
	}
}

func (f *fixture) checkSegments(have map[string]bool, st state, r Recovered) {
	f.t.Helper()
	chains := map[uint64][]byte{}
	for seq, frags := range f.frags {
		name := seqName(seq)
		if !have[name+".m4s"] {
			if have[name+".json"] {
				f.t.Errorf("%s.json without its data", name)
			}
			continue
		}
		m, err := parseSegFile(f.read(name + ".json"))
		if err != nil {
			f.t.Errorf("%s.json: %v", name, err)
			continue
		}
		data := f.read(name + ".m4s")
		k := m.Fragments
		if k > len(frags) || !bytes.Equal(data, bytes.Join(frags[:k], nil)) {
			f.t.Errorf("%s.m4s is not its first %d fragments as written", name, k)
			continue
		}
		sum := sha256.Sum256(data)
		end, h := f.ends[seq][k-1], f.hdrs[seq]
		if !bytes.Equal(m.SHA256, sum[:]) || m.Size != int64(len(data)) || m.EndDTS != end.DTS ||
			!m.End.Equal(end.Wall.Truncate(time.Microsecond)) || !m.Start.Equal(h.StartWall.Truncate(time.Microsecond)) ||
			m.StartDTS != h.StartDTS || m.Gap != h.Gap || m.Init != h.Init {
			f.t.Errorf("%s.json does not describe its data: %+v", name, m)
		}
		if m.Recovered != slices.Contains(r.Sealed, seq) {
			f.t.Errorf("%s: recovered = %v, but recovery sealed %v", name, m.Recovered, r.Sealed)
		}
		chains[seq] = m.Chain
		if seq == 0 && !bytes.Equal(m.PrevChain, chain.Genesis(recID)) {
			f.t.Errorf("%s: chain does not start at genesis", name)
		}
		if prev, ok := chains[seq-1]; seq > 0 && ok && !bytes.Equal(m.PrevChain, prev) {
			f.t.Errorf("%s: chain broken", name)
		}
	}
	for seq, c := range chains { // map order: check links both ways
		if next, ok := chains[seq+1]; ok {
			m, _ := parseSegFile(f.read(seqName(seq+1) + ".json"))
			if !bytes.Equal(m.PrevChain, c) || next == nil {
				f.t.Errorf("%s: chain broken", seqName(seq+1))
			}
		}
	}
	if st.NextSeq == 0 && !bytes.Equal(st.Chain, chain.Genesis(recID)) {
		f.t.Error("state: chain of an empty recording is not genesis")
	}
	if c, ok := chains[st.NextSeq-1]; st.NextSeq > 0 && ok && !bytes.Equal(st.Chain, c) {
		f.t.Errorf("state: chain is not that of segment %d", st.NextSeq-1)
	}
}

func initName(n int) string     { return fmt.Sprintf("init-%d", n) }
func seqName(seq uint64) string { return fmt.Sprintf("%06d", seq) }
