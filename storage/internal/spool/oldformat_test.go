package spool

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/internal/chain"
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
	checkV1Segment(t, dir)
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

// checkV1Segment: segment 0 of spool-v1 reads as the index segment the
// uploader stores.
func checkV1Segment(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "000000.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSegMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	sealedAt, _ := time.Parse(time.RFC3339Nano, "2026-12-01T03:08:14.7821732Z")
	want := index.Segment{RecordingID: recID, Seq: 0, InitN: 0, Key: "2026/03/01/" + recID.String() + "/000000.m4s",
		SHA256: unbase64(t, "GkxKxUJOcPRCHDBRFVx1QqBaOrdF9mnd1zMpIamJL4I="), PrevChain: chain.Genesis(recID),
		Chain: unbase64(t, "v0vFtVbmQLrP3hrT1j6LJ4XTkBKiALcksSBAFk9o7Ao="), Size: 240,
		StartedAt: time.Date(2026, 3, 1, 23, 59, 58, 123456000, time.UTC), EndedAt: time.Date(2026, 3, 2, 0, 0, 1, 123456000, time.UTC),
		StartDTS: 0, EndDTS: 3 * time.Second, SealedAt: sealedAt}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("segment 0 reads as\n%+v\nwant\n%+v", s, want)
	}
}

func unbase64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
