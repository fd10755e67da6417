// Package export writes and checks evidence packages for prosecutors: a zip
// of evidence files (original segments, uploads, a playable MP4 per
// recording, the export's audit events) with a manifest that lists every
// file's SHA-256 and the metadata of what it holds, and a detached Ed25519
// signature of the manifest by the platform's key. A package is checked
// offline with nothing but the package and the platform's public key
// (Verify, `bwc verify -package`).
//
// The format (export.go, key.go) needs nothing but bytes and is tested
// alone; the Exporter (exporter.go) is the service that builds approved
// exports from the archive (PostgreSQL index, MinIO objects) in that format.
package export

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"
)

// Format names the package layout; Verify refuses others.
const Format = "bwc-evidence-package/1"

// The two files every package has besides its evidence.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.sig" // the Ed25519 signature of manifest.json's exact bytes, as hex text
)

// File is one evidence file of a package.
type File struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"` // init, segment, upload, mp4, audit, ...
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	Recording string `json:"recording,omitempty"`
	Seq       *int64 `json:"seq,omitempty"`
	// Chain is the segment's chain hash in the platform's index, and
	// PrevChain the one before it, so the order of segments is part of
	// what the signature covers.
	Chain     string `json:"chain,omitempty"`
	PrevChain string `json:"prev_chain,omitempty"`
}

// Manifest describes a package. Metadata (incident, recordings, officers,
// devices, approvals) is free-form JSON chosen by the exporter; Files is
// what Verify checks.
type Manifest struct {
	Format    string          `json:"format"`
	ID        string          `json:"id"`
	CreatedAt time.Time       `json:"created_at"`
	CreatedBy string          `json:"created_by"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	Files     []File          `json:"files"`
	// PublicKey is the signing key's public half, hex, for information
	// only: Verify trusts the key it is given, never this one.
	PublicKey string `json:"public_key"`
}

// Writer builds a package on an io.Writer, hashing each file as it goes
// into the zip, so that no file is read twice.
type Writer struct {
	zw       *zip.Writer
	manifest Manifest
	names    map[string]bool
	closed   bool
}

// NewWriter starts a package.
func NewWriter(w io.Writer, id, createdBy string, now time.Time) *Writer {
	return &Writer{
		zw:       zip.NewWriter(w),
		manifest: Manifest{Format: Format, ID: id, CreatedAt: now.UTC(), CreatedBy: createdBy},
		names:    map[string]bool{},
	}
}

// ErrBadName: a file name that is not a clean relative path.
var ErrBadName = errors.New("bad file name in package")

func validName(name string) bool {
	return name != "" && !strings.HasPrefix(name, "/") && path.Clean(name) == name && !strings.HasPrefix(name, "../") &&
		name != ".." && name != ManifestName && name != SignatureName && !strings.ContainsAny(name, "\\\x00")
}

// Add copies r into the package as name and records its size and SHA-256
// in the manifest. Media is stored, not compressed (it does not compress).
func (w *Writer) Add(f File, r io.Reader) error {
	if !validName(f.Name) || w.names[f.Name] {
		return fmt.Errorf("add %q: %w", f.Name, ErrBadName)
	}
	method := zip.Store
	if strings.HasSuffix(f.Name, ".json") || strings.HasSuffix(f.Name, ".txt") {
		method = zip.Deflate
	}
	zf, err := w.zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: method, Modified: w.manifest.CreatedAt})
	if err != nil {
		return fmt.Errorf("add %s: %w", f.Name, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(zf, h), r)
	if err != nil {
		return fmt.Errorf("add %s: %w", f.Name, err)
	}
	f.Size, f.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	w.names[f.Name] = true
	w.manifest.Files = append(w.manifest.Files, f)
	return nil
}

// Close writes the manifest (with metadata) and its signature and closes
// the zip. It returns the manifest as signed.
func (w *Writer) Close(metadata any, key ed25519.PrivateKey) (Manifest, error) {
	if w.closed {
		return Manifest{}, errors.New("export: package already closed")
	}
	w.closed = true
	if metadata != nil {
		raw, err := json.Marshal(metadata)
		if err != nil {
			return Manifest{}, fmt.Errorf("export manifest metadata: %w", err)
		}
		w.manifest.Metadata = raw
	}
	w.manifest.PublicKey = hex.EncodeToString(key.Public().(ed25519.PublicKey))
	body, err := json.MarshalIndent(w.manifest, "", "  ")
	if err != nil {
		return Manifest{}, fmt.Errorf("export manifest: %w", err)
	}
	sig := ed25519.Sign(key, body)
	for _, part := range []struct {
		name string
		data []byte
	}{{ManifestName, body}, {SignatureName, []byte(hex.EncodeToString(sig) + "\n")}} {
		zf, err := w.zw.CreateHeader(&zip.FileHeader{Name: part.name, Method: zip.Deflate, Modified: w.manifest.CreatedAt})
		if err != nil {
			return Manifest{}, fmt.Errorf("export %s: %w", part.name, err)
		}
		if _, err := zf.Write(part.data); err != nil {
			return Manifest{}, fmt.Errorf("export %s: %w", part.name, err)
		}
	}
	if err := w.zw.Close(); err != nil {
		return Manifest{}, fmt.Errorf("export: close zip: %w", err)
	}
	return w.manifest, nil
}

// Problem is one reason a package does not verify.
type Problem struct {
	File   string
	Reason string
}

func (p Problem) String() string {
	if p.File == "" {
		return p.Reason
	}
	return p.File + ": " + p.Reason
}

// Report is the result of Verify.
type Report struct {
	Manifest Manifest
	Checked  int // evidence files whose hash was checked
	Problems []Problem
}

// OK reports whether the package verified.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// maxManifest bounds the manifest and signature read into memory.
const maxManifest = 64 << 20

// Verify checks a package against the platform's public key: the manifest's
// signature, and that the package holds exactly the files of the manifest,
// each with the size and SHA-256 the manifest gives. It reports every
// problem it finds; the error is for a package it cannot read at all.
func Verify(r io.ReaderAt, size int64, pub ed25519.PublicKey) (Report, error) {
	var rep Report
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return rep, fmt.Errorf("not a readable zip: %w", err)
	}
	entries := map[string]*zip.File{}
	for _, f := range zr.File {
		if _, dup := entries[f.Name]; dup {
			rep.Problems = append(rep.Problems, Problem{f.Name, "appears twice in the zip"})
		}
		entries[f.Name] = f
	}
	body, ok := rep.checkSignature(entries, pub)
	if !ok {
		return rep, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep.Manifest); err != nil {
		rep.Problems = append(rep.Problems, Problem{ManifestName, "unreadable: " + err.Error()})
		return rep, nil
	}
	if rep.Manifest.Format != Format {
		rep.Problems = append(rep.Problems, Problem{ManifestName, fmt.Sprintf("format %q, want %q", rep.Manifest.Format, Format)})
	}
	listed := rep.checkFiles(entries)
	var extra []string
	for name := range entries {
		if !listed[name] && name != ManifestName && name != SignatureName {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		rep.Problems = append(rep.Problems, Problem{name, "in the package but not in the manifest"})
	}
	return rep, nil
}

// checkSignature reads the manifest and checks its signature; ok is false
// when either cannot be read (nothing more can be checked).
func (rep *Report) checkSignature(entries map[string]*zip.File, pub ed25519.PublicKey) (body []byte, ok bool) {
	body, err := readEntry(entries[ManifestName], maxManifest)
	if err != nil {
		rep.Problems = append(rep.Problems, Problem{ManifestName, err.Error()})
		return nil, false
	}
	sigHex, err := readEntry(entries[SignatureName], 1024)
	if err != nil {
		rep.Problems = append(rep.Problems, Problem{SignatureName, err.Error()})
		return nil, false
	}
	sig, err := hex.DecodeString(strings.TrimSpace(string(sigHex)))
	if err != nil || len(sig) != ed25519.SignatureSize {
		rep.Problems = append(rep.Problems, Problem{SignatureName, "not a hex Ed25519 signature"})
	} else if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, body, sig) {
		rep.Problems = append(rep.Problems, Problem{ManifestName, "signature does not verify with the platform's public key (the manifest was changed, or signed by another key)"})
	}
	return body, true
}

// checkFiles hashes every file the manifest lists and returns their names.
func (rep *Report) checkFiles(entries map[string]*zip.File) map[string]bool {
	listed := map[string]bool{}
	for _, f := range rep.Manifest.Files {
		if listed[f.Name] {
			rep.Problems = append(rep.Problems, Problem{f.Name, "listed twice in the manifest"})
			continue
		}
		listed[f.Name] = true
		zf := entries[f.Name]
		if zf == nil {
			rep.Problems = append(rep.Problems, Problem{f.Name, "listed in the manifest but missing from the package"})
			continue
		}
		n, sum, err := hashEntry(zf)
		rep.Checked++
		switch {
		case err != nil:
			rep.Problems = append(rep.Problems, Problem{f.Name, "unreadable: " + err.Error()})
		case n != f.Size:
			rep.Problems = append(rep.Problems, Problem{f.Name, fmt.Sprintf("size %d, manifest says %d", n, f.Size)})
		case sum != f.SHA256:
			rep.Problems = append(rep.Problems, Problem{f.Name, "SHA-256 does not match the manifest (the file was changed)"})
		}
	}
	return listed
}

func readEntry(f *zip.File, limit int64) ([]byte, error) {
	if f == nil {
		return nil, errors.New("missing")
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

func hashEntry(f *zip.File) (int64, string, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, "", err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc) // the zip reader checks each entry's CRC-32 at EOF
	return n, hex.EncodeToString(h.Sum(nil)), err
}
