package upload

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
)

// TestNastyNamesExport: uploads whose names are paths, hold characters
// Windows refuses, control and bidi characters, or nothing but dots, are
// attached to an incident through tus; each is indexed under its sanitised
// name (the name as given kept in original_name), and the incident's
// evidence package, built by the real exporter from the bucket, holds each
// as uploads/<id>/<sanitised name> and verifies offline.
func TestNastyNamesExport(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	names := []string{
		"../证据 video:01?.mp4",
		`C:\Users\wu\..\..\clip<1>|"final".MOV`,
		"\u202Egpj.mp4",
		"..",
		"con.mp4",
		"a\x00b\r\n\t.mp4",
		"/",
	}
	created := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i, n := range names {
		path := video(t, created, int64(i+1)*1024) // other bytes each: not a duplicate
		st, _ := os.Stat(path)
		loc, code := create(t, e, st.Size(), meta("filename", n, "incident", e.inc.Number))
		if code != http.StatusCreated {
			t.Fatalf("create %q: %d %s", n, code, loc)
		}
		res := send(t, loc, path, nil)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("upload %q: %d %s", n, res.StatusCode, b)
		}
	}
	ups, err := e.db.Uploads(ctx, "")
	if err != nil || len(ups) != len(names) {
		t.Fatalf("uploads: %d, %v", len(ups), err)
	}
	want := map[string]bool{}
	for _, u := range ups {
		var given string
		for _, n := range names {
			if storable(n, maxOriginalBytes) == u.OriginalName {
				given = n
			}
		}
		if u.Filename != SanitizeName(given) || given == "" && u.OriginalName != "" {
			t.Fatalf("upload indexed as %q (original %q), want the sanitised %q", u.Filename, u.OriginalName, SanitizeName(given))
		}
		want["uploads/"+u.ID.String()+"/"+u.Filename] = true
	}

	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x, err := export.NewExporter(export.ExporterConfig{Dir: t.TempDir(), Retention: time.Hour, Node: "node-a", Lease: time.Minute}, e.db, e.store, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := e.db.RequestExport(ctx, index.Export{IncidentID: e.inc.ID, RequestedBy: "reviewer", Reason: "court"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Build(ctx, ex.ID); err != nil {
		t.Fatalf("export of the incident with these uploads: %v", err)
	}
	got, err := e.db.Export(ctx, ex.ID)
	if err != nil || got.Status != index.ExportReady || got.Key == nil {
		t.Fatalf("export: %+v %v", got, err)
	}
	o, err := e.store.OpenVersion(ctx, *got.Key, got.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := io.ReadAll(o)
	o.Close()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := export.Verify(bytes.NewReader(pkg), int64(len(pkg)), x.PublicKey())
	if err != nil || !rep.OK() {
		t.Fatalf("package does not verify: %v %v", err, rep.Problems)
	}
	for _, f := range rep.Manifest.Files {
		delete(want, f.Name)
	}
	if len(want) != 0 {
		t.Fatalf("uploads missing from the package: %v", want)
	}
}
