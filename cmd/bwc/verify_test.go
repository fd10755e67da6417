package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

func TestVerifyAuditCommand(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := db.Audit(ctx, index.AuditEvent{Actor: "rev", Action: "recording.view"}); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := verify(ctx, []string{"-audit", "-database-url", db.URL()}, &out); err != nil {
		t.Fatalf("verify on an intact trail: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "3 events, chain intact") {
		t.Fatalf("report %q", out.String())
	}
	su := storagetest.Superuser(t, db)
	for _, sql := range []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`,
		`UPDATE audit_events SET action = 'nothing' WHERE seq = 2`} {
		if _, err := su.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	out.Reset()
	err := verify(ctx, []string{"-audit", "-database-url", db.URL()}, &out)
	if err == nil || !strings.Contains(out.String(), "audit event 2") {
		t.Fatalf("verify after an edit: err=%v report=%q; want a failure naming event 2", err, out.String())
	}
}

// bwc verify -package works offline with only the package and the public
// key from bwc export-key, and fails on a changed byte.
func TestVerifyPackageCommand(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "signing-key.pem")
	var pem bytes.Buffer
	if err := exportKey([]string{"-signing-key", keyPath}, &pem); err != nil {
		t.Fatal(err)
	}
	pubPath := filepath.Join(dir, "platform.pub")
	if err := os.WriteFile(pubPath, pem.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := export.LoadOrCreateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	var pkg bytes.Buffer
	w := export.NewWriter(&pkg, "exp-7", "reviewer1", time.Now())
	if err := w.Add(export.File{Name: "r1/000001.m4s", Kind: "segment"}, bytes.NewReader(bytes.Repeat([]byte("m"), 5000))); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(nil, key); err != nil {
		t.Fatal(err)
	}
	pkgPath := filepath.Join(dir, "export.zip")
	os.WriteFile(pkgPath, pkg.Bytes(), 0o644)
	var out bytes.Buffer
	if err := verify(context.Background(), []string{"-package", pkgPath, "-public-key", pubPath}, &out); err != nil {
		t.Fatalf("fresh package: %v\n%s", err, out.String())
	}
	// change one byte of the stored segment (stored, not compressed)
	raw := pkg.Bytes()
	i := bytes.Index(raw, []byte("mmmm"))
	raw[i+100] = 'X'
	os.WriteFile(pkgPath, raw, 0o644)
	out.Reset()
	if err := verify(context.Background(), []string{"-package", pkgPath, "-public-key", pubPath}, &out); err == nil {
		t.Fatalf("changed package verified:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "r1/000001.m4s") {
		t.Fatalf("report does not name the changed file:\n%s", out.String())
	}
}
