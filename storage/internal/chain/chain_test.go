package chain

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
)

// TestParts: part 0 is the chain as it always was; every other part has
// its own genesis and numbers that no other part reaches.
func TestParts(t *testing.T) {
	rec, other := uuid.New(), uuid.New()
	if !bytes.Equal(PartGenesis(rec, 0), Genesis(rec)) || PartSeq(0) != 0 || PartInit(0) != 0 {
		t.Fatal("part 0 is not the recording's one chain")
	}
	seen := map[string]bool{}
	for _, p := range []int{0, 1, 2, MaxPart} {
		for _, r := range []uuid.UUID{rec, other} {
			g := string(PartGenesis(r, p))
			if seen[g] {
				t.Fatalf("genesis of part %d of %s repeats", p, r)
			}
			seen[g] = true
		}
		last := PartSeq(p+1) - 1
		if PartOf(PartSeq(p)) != p || PartOf(last) != p || PartOf(last+1) != p+1 {
			t.Fatalf("part %d: numbers %d..%d do not all belong to it", p, PartSeq(p), last)
		}
		if PartInit(p) < 0 || PartInit(p)+1<<initBits-1 < PartInit(p) {
			t.Fatalf("part %d: init numbers overflow", p)
		}
	}
}
