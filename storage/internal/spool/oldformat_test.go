package spool

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

var writeGolden = flag.Bool("write-golden", false, "write testdata/spool-v1-recovered from what Recover makes of testdata/spool-v1")

// TestRecoverSpoolV1: a spool left by a crash of the code of before the
// spool returned index segments (testdata/spool-v1: init 0, segment 0
// sealed, segment 1 open with two durable fragments and a torn third)
// recovers to the same files as that code recovered it to
// (testdata/spool-v1-recovered; sealed_at of the segment sealed by recovery
// aside, which is the time of recovery).
func TestRecoverSpoolV1(t *testing.T) {
	root := filepath.Join(t.TempDir(), "spool")
	if out, err := exec.Command("cp", "-a", filepath.Join("testdata", "spool-v1"), root).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	got, err := Recover(root)
	if err != nil || len(got) != 1 || got[0].Recording != recID || !slices.Equal(got[0].Sealed, []uint64{1}) ||
		!slices.Equal(got[0].Fragments, []int{2}) || !slices.Equal(got[0].Truncated, []int64{20}) {
		t.Fatalf("Recover = %+v, %v; want segment 1 sealed with 2 fragments, 20 bytes cut", got, err)
	}
	dir := filepath.Join(root, recID.String())
	golden := filepath.Join("testdata", "spool-v1-recovered", recID.String())
	if *writeGolden {
		os.RemoveAll(filepath.Dir(golden))
		if out, err := exec.Command("cp", "-a", root, filepath.Dir(golden)).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
	}
	want, _ := os.ReadDir(golden)
	have, _ := os.ReadDir(dir)
	if len(want) == 0 || len(want) != len(have) {
		t.Fatalf("%d files recovered, want the %d of %s", len(have), len(want), golden)
	}
	for _, e := range want {
		w, _ := os.ReadFile(filepath.Join(golden, e.Name()))
		h, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || !bytes.Equal(withoutSealedAt(t, e.Name(), w), withoutSealedAt(t, e.Name(), h)) {
			t.Errorf("%s: recovered as\n%s\nwant\n%s (%v)", e.Name(), h, w, err)
		}
	}
}

// withoutSealedAt drops sealed_at from the metadata of the segment recovery
// seals.
func withoutSealedAt(t *testing.T, name string, b []byte) []byte {
	if name != "000001.json" {
		return b
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	delete(m, "sealed_at")
	out, _ := json.Marshal(m)
	return out
}
