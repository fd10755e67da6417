package export

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type item struct {
	f    File
	data []byte
}

func build(t testing.TB, key ed25519.PrivateKey, items []item) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, "exp-1", "reviewer1", time.Unix(1700000000, 0))
	for _, it := range items {
		if err := w.Add(it.f, bytes.NewReader(it.data)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(map[string]any{"incident": "110-1"}, key); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var sample = []item{
	{File{Name: "recordings/r1/init-1.mp4", Kind: "init", Recording: "r1"}, []byte("init bytes")},
	{File{Name: "recordings/r1/000001.m4s", Kind: "segment", Recording: "r1"}, bytes.Repeat([]byte{1, 2, 3}, 1000)},
	{File{Name: "audit.json", Kind: "audit"}, []byte(`[{"seq":1}]`)},
}

// rewrite copies a package, letting edit change each entry's bytes (or drop
// it by returning nil) and add extra entries.
func rewrite(t *testing.T, pkg []byte, edit func(name string, data []byte) []byte, extra map[string][]byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, _ := f.Open()
		data, _ := io.ReadAll(rc)
		rc.Close()
		if data = edit(f.Name, data); data == nil {
			continue
		}
		w, _ := zw.Create(f.Name)
		w.Write(data)
	}
	for name, data := range extra {
		w, _ := zw.Create(name)
		w.Write(data)
	}
	zw.Close()
	return out.Bytes()
}

func flip(target string) func(string, []byte) []byte {
	return func(name string, data []byte) []byte {
		if name == target {
			data = append([]byte(nil), data...)
			data[len(data)/2] ^= 0x01
		}
		return data
	}
}

func TestVerify(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	pkg := build(t, key, sample)
	keep := func(_ string, d []byte) []byte { return d }
	cases := []struct {
		name    string
		pkg     []byte
		pub     ed25519.PublicKey
		problem string // "" = verifies
	}{
		{"intact", pkg, pub, ""},
		{"wrong key", pkg, otherPub, "manifest.json: signature does not verify"},
		{"segment byte flipped", rewrite(t, pkg, flip("recordings/r1/000001.m4s"), nil), pub, "recordings/r1/000001.m4s: SHA-256 does not match"},
		{"init byte flipped", rewrite(t, pkg, flip("recordings/r1/init-1.mp4"), nil), pub, "recordings/r1/init-1.mp4: SHA-256"},
		{"audit byte flipped", rewrite(t, pkg, flip("audit.json"), nil), pub, "audit.json: SHA-256"},
		{"manifest byte flipped", rewrite(t, pkg, flip(ManifestName), nil), pub, "manifest.json"},
		{"signature byte flipped", rewrite(t, pkg, func(n string, d []byte) []byte {
			if n == SignatureName {
				d = append([]byte(nil), d...)
				if d[0] == 'a' {
					d[0] = 'b'
				} else {
					d[0] = 'a'
				}
			}
			return d
		}, nil), pub, "signature does not verify"},
		{"file removed", rewrite(t, pkg, func(n string, d []byte) []byte {
			if n == "audit.json" {
				return nil
			}
			return d
		}, nil), pub, "audit.json: listed in the manifest but missing"},
		{"file added", rewrite(t, pkg, keep, map[string][]byte{"recordings/r1/000002.m4s": []byte("x")}), pub, "000002.m4s: in the package but not in the manifest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Verify(bytes.NewReader(tc.pkg), int64(len(tc.pkg)), tc.pub)
			if err != nil {
				t.Fatal(err)
			}
			if tc.problem == "" {
				if !rep.OK() || rep.Checked != len(sample) || rep.Manifest.CreatedBy != "reviewer1" {
					t.Fatalf("intact package: %+v", rep)
				}
				return
			}
			var all []string
			for _, p := range rep.Problems {
				all = append(all, p.String())
			}
			if rep.OK() || !strings.Contains(strings.Join(all, "\n"), tc.problem) {
				t.Fatalf("problems %q, want one containing %q", all, tc.problem)
			}
		})
	}
}

func TestAddRefusesBadNames(t *testing.T) {
	w := NewWriter(io.Discard, "x", "y", time.Now())
	for _, name := range []string{"", "/abs", "../up", "a/../../b", ManifestName, SignatureName, "a\\b"} {
		if err := w.Add(File{Name: name}, strings.NewReader("")); err == nil {
			t.Errorf("Add(%q) accepted", name)
		}
	}
	if err := w.Add(File{Name: "ok.bin"}, strings.NewReader("1")); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(File{Name: "ok.bin"}, strings.NewReader("1")); err == nil {
		t.Error("duplicate name accepted")
	}
}

func TestKeyRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "signing.pem")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("reloaded key differs: %v", err)
	}
	pub, err := ParsePublicKey(PublicKeyPEM(k1.Public().(ed25519.PublicKey)))
	if err != nil || !pub.Equal(k1.Public()) {
		t.Fatalf("public key round trip: %v", err)
	}
	if _, err := ParsePublicKey([]byte("garbage")); err == nil {
		t.Fatal("garbage parsed as a key")
	}
}

// FuzzVerify: a package is outside input; Verify must never panic and must
// never accept what it was not given a valid signature for.
func FuzzVerify(f *testing.F) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	f.Add(build(f, key, sample))
	f.Add([]byte("PK\x03\x04 not really a zip"))
	f.Fuzz(func(t *testing.T, pkg []byte) {
		rep, err := Verify(bytes.NewReader(pkg), int64(len(pkg)), pub)
		if err == nil && rep.OK() && rep.Manifest.Format != Format {
			t.Fatalf("accepted a package of format %q", rep.Manifest.Format)
		}
	})
}
