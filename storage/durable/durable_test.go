package durable

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteAtomicReplacesWholeAndLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	for _, data := range []string{"first contents, longer", "second", ""} {
		if err := WriteAtomic(dir, "meta.json", []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "meta.json"))
		if err != nil || string(got) != data {
			t.Fatalf("after writing %q: %q %v", data, got, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "meta.json.tmp")); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "meta.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	if err := WriteAtomic(filepath.Join(dir, "missing"), "x", nil, 0o600); err == nil {
		t.Fatal("writing into a missing folder succeeded")
	}
}

func TestTruncateSyncDropsTheTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, []byte("complete line\ntorn li"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := TruncateSync(p, int64(len("complete line\n"))); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "complete line\n" {
		t.Fatalf("got %q", got)
	}
	if err := SyncDir(filepath.Dir(p)); err != nil {
		t.Fatal(err)
	}
}
