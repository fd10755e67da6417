package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/archive"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// auditArgs are bwc verify -audit's arguments for db, with a bucket and
// the platform's key to check the head against the newest checkpoint.
func auditArgs(t *testing.T, db *index.DB) []string {
	t.Helper()
	cfg := testConfig(t)
	openBucket(t, cfg)
	if _, err := export.LoadOrCreateKey(cfg.SigningKey); err != nil {
		t.Fatal(err)
	}
	return []string{"-audit", "-database-url", db.URL(), "-s3-endpoint", cfg.S3Endpoint, "-s3-access-key", cfg.S3AccessKey,
		"-s3-secret-key", cfg.S3SecretKey, "-s3-bucket", cfg.S3Bucket, "-signing-key", cfg.SigningKey}
}

func TestVerifyAuditCommand(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := db.Audit(ctx, index.AuditEvent{Actor: "rev", Action: "recording.view"}); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := verify(ctx, auditArgs(t, db), &out); err != nil {
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
	err := verify(ctx, auditArgs(t, db), &out)
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

// verifyDoc is bwc verify -json's document.
type verifyDoc struct {
	Check                                        string
	OK                                           *bool
	Error                                        string
	Recordings, Inits, Segments, Uploads, Events int
	Files                                        int
	Package, Export                              string
	Bytes                                        int64
	Problems                                     []struct {
		Kind, Key, What string
		Recording       uuid.UUID
		Seq             int64
		Init            int
	}
}

// verifyJSON runs bwc verify -json with args: the error and the one
// document it printed (nothing else).
func verifyJSON(t *testing.T, args ...string) (verifyDoc, error) {
	t.Helper()
	var out bytes.Buffer
	err := verify(context.Background(), append([]string{"-json"}, args...), &out)
	var doc verifyDoc
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if derr := dec.Decode(&doc); derr != nil || dec.More() || doc.OK == nil {
		t.Fatalf("bwc verify -json %v printed %q: %v; want one document with ok", args, out.String(), derr)
	}
	return doc, err
}

// bwc verify -json: the recordings report (counts, ok, each problem with
// its kind, recording, seq and key) before and after a version is PUT
// over a segment's key; the exit status (error) is as without -json; a
// failure to check is a document too.
func TestVerifyJSONRecordings(t *testing.T) {
	db, cfg := storagetest.NewDB(t), testConfig(t)
	store := openBucket(t, cfg)
	rec, segs := archivedIn(t, db, store, cfg.SigningKey)
	args := []string{"-database-url", db.URL(), "-s3-endpoint", cfg.S3Endpoint, "-s3-access-key", cfg.S3AccessKey,
		"-s3-secret-key", cfg.S3SecretKey, "-s3-bucket", cfg.S3Bucket, "-signing-key", cfg.SigningKey}
	doc, err := verifyJSON(t, args...)
	if err != nil || doc.Check != "recordings" || !*doc.OK || doc.Recordings != 1 || doc.Inits < 1 ||
		doc.Segments != len(segs) || doc.Bytes == 0 || len(doc.Problems) != 0 {
		t.Fatalf("intact: %+v, %v; want ok, 1 recording, %d segments", doc, err, len(segs))
	}
	seg := segs[1]
	if _, err := store.Client().PutObject(context.Background(), store.Bucket(), seg.Key, strings.NewReader("forged"), 6, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	doc, err = verifyJSON(t, args...)
	if err == nil || *doc.OK || len(doc.Problems) != 1 {
		t.Fatalf("after a PUT over %s: %+v, %v; want a failure with one problem", seg.Key, doc, err)
	}
	p := doc.Problems[0]
	if p.Kind != "segment" || p.Recording != rec || p.Seq != seg.Seq || p.Init != -1 || p.Key != seg.Key ||
		!strings.Contains(p.What, "is not the indexed version "+seg.VersionID) {
		t.Fatalf("problem %+v; want segment %d of %s (%s), a version over the key", p, seg.Seq, rec, seg.Key)
	}
	doc, err = verifyJSON(t, "-database-url", "postgres://bwc@127.0.0.1:1/none?connect_timeout=2")
	if err == nil || *doc.OK || doc.Error == "" || doc.Check != "recordings" {
		t.Fatalf("unreachable database: %+v, %v; want ok false with the error", doc, err)
	}
}

// bwc verify -json -audit and -package: the same document shape.
func TestVerifyJSONAuditAndPackage(t *testing.T) {
	db := storagetest.NewDB(t)
	ctx := context.Background()
	for range 3 {
		if _, err := db.Audit(ctx, index.AuditEvent{Actor: "rev", Action: "recording.view"}); err != nil {
			t.Fatal(err)
		}
	}
	if doc, err := verifyJSON(t, auditArgs(t, db)...); err != nil || doc.Check != "audit" || !*doc.OK || doc.Events != 3 {
		t.Fatalf("intact trail: %+v, %v", doc, err)
	}
	su := storagetest.Superuser(t, db)
	for _, sql := range []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`, `UPDATE audit_events SET action = 'nothing' WHERE seq = 2`} {
		if _, err := su.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := verifyJSON(t, auditArgs(t, db)...)
	if err == nil || *doc.OK || len(doc.Problems) == 0 || doc.Problems[0].Kind != "audit event" || doc.Problems[0].Seq != 2 {
		t.Fatalf("edited event 2: %+v, %v; want a failure naming audit event 2", doc, err)
	}

	dir := t.TempDir()
	keyPath, pubPath, pkgPath := filepath.Join(dir, "key.pem"), filepath.Join(dir, "platform.pub"), filepath.Join(dir, "export.zip")
	var pem, pkg bytes.Buffer
	if err := exportKey([]string{"-signing-key", keyPath}, &pem); err != nil {
		t.Fatal(err)
	}
	key, err := export.LoadOrCreateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	w := export.NewWriter(&pkg, "exp-8", "reviewer1", time.Now())
	if err := w.Add(export.File{Name: "r1/000001.m4s", Kind: "segment"}, bytes.NewReader(bytes.Repeat([]byte("m"), 5000))); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(nil, key); err != nil {
		t.Fatal(err)
	}
	raw := pkg.Bytes()
	if err := errors.Join(os.WriteFile(pubPath, pem.Bytes(), 0o644), os.WriteFile(pkgPath, raw, 0o644)); err != nil {
		t.Fatal(err)
	}
	if doc, err := verifyJSON(t, "-package", pkgPath, "-public-key", pubPath); err != nil || doc.Check != "package" || !*doc.OK || doc.Files != 1 {
		t.Fatalf("fresh package: %+v, %v", doc, err)
	}
	raw[bytes.Index(raw, []byte("mmmm"))+100] = 'X'
	if err := os.WriteFile(pkgPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	doc, err = verifyJSON(t, "-package", pkgPath, "-public-key", pubPath)
	if err == nil || *doc.OK || len(doc.Problems) != 1 || doc.Problems[0].Kind != "package file" || doc.Problems[0].Key != "r1/000001.m4s" {
		t.Fatalf("changed package: %+v, %v; want a failure naming r1/000001.m4s", doc, err)
	}
}

// archivedIn archives three passes of the sample into db and store (an
// archive of its own, no camera) and returns the recording and its
// segments, once all are stored and indexed.
func archivedIn(t *testing.T, db *index.DB, store *blob.Store, keyPath string) (uuid.UUID, []index.Segment) {
	t.Helper()
	tc := defaultConfig() // bwc serve's archive, with short segments
	tc.SpoolDir, tc.SegmentDuration, tc.FragmentDuration = t.TempDir(), 2*time.Second, 500*time.Millisecond
	key, err := export.LoadOrCreateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tc.archiveConfig()
	a, err := archive.New(cfg, db, store, key, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, a)
	s := mediatest.Load(t)
	start := time.Now().UTC()
	info := storagetest.NewRecording(t, db, s, start)
	st := media.NewStream(info)
	a.Attach(st)
	storagetest.Feed(st, s.Loop(3, start))
	st.Close()
	storagetest.WaitSpoolEmpty(t, cfg.SpoolDir, info.RecordingID)
	segs, err := db.Segments(context.Background(), info.RecordingID)
	if err != nil || len(segs) < 2 {
		t.Fatalf("%d segments: %v", len(segs), err)
	}
	return info.RecordingID, segs
}

// openBucket opens cfg's evidence bucket (testConfig created it) as bwc
// serve does.
func openBucket(t *testing.T, cfg Config) *blob.Store {
	t.Helper()
	store, err := blob.Open(cfg.blobConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return store
}
