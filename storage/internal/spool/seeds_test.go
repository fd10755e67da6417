package spool

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var writeSeeds = flag.Bool("write-seeds", false, "write the fuzz seeds under testdata/fuzz from files the Writer writes")

// seed is one committed fuzz input: a file as the Writer wrote it, or
// damaged. A seed named valid-* must parse (a frag log: every line), any
// other must not (a frag log: not every line).
type seed struct {
	target, name string
	data         []byte
	size         int64 // FuzzParseFragLog: the data file's size
}

// TestFuzzSeeds checks that each committed seed is what its name says; with
// -write-seeds it writes them first.
func TestFuzzSeeds(t *testing.T) {
	if *writeSeeds {
		for _, s := range makeSeeds(t) {
			dir := filepath.Join("testdata", "fuzz", s.target)
			if err := os.MkdirAll(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, s.name), encodeSeed(s), 0o640); err != nil {
				t.Fatal(err)
			}
		}
	}
	paths, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "*", "*"))
	if len(paths) < 30 {
		t.Fatalf("%d fuzz seeds committed, want the 30 or more -write-seeds writes", len(paths))
	}
	for _, p := range paths {
		s := decodeSeed(t, p)
		if err := checkSeed(s); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func checkSeed(s seed) error {
	var err error
	switch s.target {
	case "FuzzParseSegMeta":
		_, err = ParseSegMeta(s.data)
	case "FuzzParseInitMeta":
		_, err = ParseInitMeta(s.data)
	case "FuzzParseState":
		_, err = parseState(s.data, recID)
	case "FuzzParseOpenHeader":
		_, err = parseOpenHeader(s.data)
	case "FuzzParseRecMeta":
		_, err = parseRecMeta(s.data)
	case "FuzzParseFragLog":
		lines := bytes.Count(s.data, []byte("\n"))
		if len(s.data) > 0 && s.data[len(s.data)-1] != '\n' {
			lines++ // a torn last line
		}
		if n := len(ParseFragLog(s.data, s.size)); n != lines {
			err = fmt.Errorf("%d of %d lines read", n, lines)
		}
	default:
		return fmt.Errorf("no fuzz target %s", s.target)
	}
	if valid := strings.HasPrefix(s.name, "valid"); valid != (err == nil) {
		return fmt.Errorf("valid = %v, but the parser says %v", valid, err)
	}
	return nil
}

func encodeSeed(s seed) []byte {
	out := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s.data)
	if s.target == "FuzzParseFragLog" {
		out += fmt.Sprintf("int64(%d)\n", s.size)
	}
	return []byte(out)
}

func decodeSeed(t *testing.T, path string) seed {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := seed{target: filepath.Base(filepath.Dir(path)), name: filepath.Base(path)}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("%s: not a fuzz seed", path)
	}
	q, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	s.data = []byte(q)
	if len(lines) > 2 {
		if s.size, err = strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(lines[2], "int64("), ")"), 10, 64); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return s
}

// makeSeeds writes a recording through the Writer (an init segment, a
// sealed segment, an open one) and recovers it, and returns its files as
// they are and damaged.
func makeSeeds(t *testing.T) []seed {
	f := newFixture(t)
	recJSON := f.read("rec.json")
	live(f)
	f.fragment(0)
	f.seal(0)
	seg, init, st := f.read("000000.json"), f.read("init-0.json"), f.read("state.json")
	seq := f.begin()
	f.fragment(seq)
	f.fragment(seq)
	f.fragment(seq)
	f.crash()
	hdr, frags, size := f.read("000001.open.json"), f.read("000001.frags"), int64(len(f.read("000001.m4s")))
	if _, err := Recover(f.root); err != nil {
		t.Fatal(err)
	}
	recovered := f.read("000001.json")
	var out []seed
	add := func(target, name string, data []byte) {
		out = append(out, seed{target: target, name: name, data: data})
	}
	for _, d := range []struct {
		target string
		valid  []byte
	}{{"FuzzParseSegMeta", seg}, {"FuzzParseInitMeta", init}, {"FuzzParseState", st},
		{"FuzzParseOpenHeader", hdr}, {"FuzzParseRecMeta", recJSON}} {
		add(d.target, "valid", d.valid)
		add(d.target, "torn", d.valid[:len(d.valid)/2])
		add(d.target, "empty", nil)
		add(d.target, "not-an-object", []byte(`["F 1 2 3"]`))
	}
	add("FuzzParseSegMeta", "valid-recovered", recovered)
	add("FuzzParseSegMeta", "bad-hash", editJSON(t, seg, "sha256", []byte{1}))
	add("FuzzParseSegMeta", "bad-chain", editJSON(t, seg, "chain", bytes.Repeat([]byte{7}, 32)))
	add("FuzzParseSegMeta", "bad-key", editJSON(t, seg, "key", "2026/03/01/x/000001.m4s"))
	add("FuzzParseSegMeta", "bad-fragments", editJSON(t, seg, "fragments", 0))
	add("FuzzParseSegMeta", "ends-before-start", editJSON(t, seg, "end_dts", -1))
	add("FuzzParseSegMeta", "unknown-field", editJSON(t, seg, "index", 1))
	add("FuzzParseInitMeta", "bad-hash", editJSON(t, init, "sha256", []byte{1}))
	add("FuzzParseInitMeta", "bad-key", editJSON(t, init, "n", 3))
	add("FuzzParseState", "valid-new", []byte(`{}`))
	add("FuzzParseState", "bad-chain", editJSON(t, st, "chain", []byte{1, 2}))
	add("FuzzParseRecMeta", "valid-with-device", editJSON(t, recJSON, "device_serial", "BWC-0001"))
	lines := bytes.SplitAfter(frags, []byte("\n"))
	for _, s := range []seed{
		{name: "valid", data: frags, size: size},
		{name: "valid-empty", size: 0},
		{name: "torn", data: frags[:len(frags)-3], size: size},
		{name: "data-short", data: frags, size: size - 1},
		{name: "corrupt", data: bytes.Join([][]byte{lines[0], []byte("F 1x4 2 3\n"), lines[2]}, nil), size: size},
		{name: "repeated", data: bytes.Join([][]byte{lines[0], lines[0]}, nil), size: size},
		{name: "dts-backwards", data: []byte("F 10 2000 1\nF 20 1000 2\n"), size: size},
		{name: "extra-field", data: []byte("F 10 2000 1 9\n"), size: size},
		{name: "negative", data: []byte("F -10 2000 1\n"), size: size},
	} {
		s.target = "FuzzParseFragLog"
		out = append(out, s)
	}
	return out
}

// editJSON sets one field of a JSON object.
func editJSON(t *testing.T, data []byte, field string, v any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	m[field] = v
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
