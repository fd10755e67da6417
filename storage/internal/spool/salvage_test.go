package spool

import (
	"slices"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/internal/segmenter"
)

// TestSalvage: after a write error in a segment, Salvage cuts it back to
// what was written durably and seals it (marked recovered), or removes it
// when nothing was, and recording goes on with the next segment.
func TestSalvage(t *testing.T) {
	for _, c := range []struct {
		name    string
		durable int  // fragments written before the failing one
		logFail bool // the data is written, its log record fails
		kept    int  // fragments the salvaged segment keeps; 0: removed
	}{
		{name: "data write fails, first fragment", durable: 0},
		{name: "data write fails", durable: 2, kept: 2},
		{name: "log write fails: the fsynced data is kept", durable: 2, logFail: true, kept: 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.init()
			seq := f.begin()
			for range c.durable {
				f.fragment(seq)
			}
			if c.logFail {
				f.w.frags.Close()
			} else {
				f.w.f.Close()
			}
			i := len(f.frags[seq])
			end := segmenter.End{DTS: f.hdrs[seq].StartDTS + time.Duration(i+1)*time.Second,
				Wall: f.hdrs[seq].StartWall.Add(time.Duration(i+1) * time.Second)}
			if err := f.w.Fragment(fragData(seq, i), end); err == nil {
				t.Fatal("Fragment on a closed file succeeded")
			}
			f.frags[seq], f.ends[seq] = append(f.frags[seq], fragData(seq, i)), append(f.ends[seq], end)
			if err := f.w.Salvage(); err != nil {
				t.Fatal(err)
			}
			if err := f.w.Salvage(); err != nil {
				t.Fatalf("second Salvage: %v", err)
			}
			var sealed []uint64
			if c.kept == 0 { // removed: its number is used again
				delete(f.frags, seq)
				delete(f.ends, seq)
			} else {
				sealed = []uint64{seq}
				if m, err := parseSegFile(f.read("000000.json")); err != nil || m.Fragments != c.kept || !m.Recovered {
					t.Fatalf("salvaged segment: %+v, %v; want %d fragments, recovered", m, err, c.kept)
				}
			}
			next := f.segment(1)
			if want := uint64(len(sealed)); next != want {
				t.Errorf("next segment is %d, want %d", next, want)
			}
			f.must(f.w.End())
			if files := f.files(); !slices.Contains(files, seqName(next)+".json") {
				t.Errorf("files %q lack the segment after the salvage", files)
			}
			f.checkRecovered(Recovered{Sealed: sealed})
		})
	}
}
