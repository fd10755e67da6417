package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
)

// verify checks stored evidence end to end and exits non-zero on any
// mismatch: by default every archived recording (each object's indexed
// version present in MinIO and the key's latest, SHA-256 as indexed, hash
// chain unbroken, no sequence holes; uploads' originals too); -recording
// one of them; -audit the audit trail's hash chain; -package an evidence
// package, offline.
func verify(ctx context.Context, args []string, out io.Writer) error {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("bwc verify", flag.ContinueOnError)
	cfg.register(fs)
	audit := fs.Bool("audit", false, "verify the audit trail's hash chain")
	pkg := fs.String("package", "", "verify an evidence package (zip) offline")
	pubKey := fs.String("public-key", "", "with -package: the platform's public key (PEM, from bwc export-key)")
	recording := fs.String("recording", "", "verify one recording (its ID); default: every archived recording")
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return err
	}
	if *pkg != "" {
		return verifyPackage(*pkg, *pubKey, out)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	db, err := index.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if !*audit {
		return verifyRecordings(ctx, cfg, db, *recording, out)
	}
	n, problems, err := db.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintln(out, "FAIL", p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("audit trail: %d problem(s) in %d events", len(problems), n)
	}
	fmt.Fprintf(out, "OK audit trail: %d events, chain intact\n", n)
	return nil
}

// verifyPackage checks an evidence package with nothing but the package and
// the platform's public key: no database, no object store.
func verifyPackage(path, pubKeyPath string, out io.Writer) error {
	if pubKeyPath == "" {
		return fmt.Errorf("bwc verify -package: -public-key is required (the platform's key, from bwc export-key)")
	}
	raw, err := os.ReadFile(pubKeyPath)
	if err != nil {
		return fmt.Errorf("public key: %w", err)
	}
	pub, err := export.ParsePublicKey(raw)
	if err != nil {
		return fmt.Errorf("public key %s: %w", pubKeyPath, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	rep, err := export.Verify(f, st.Size(), pub)
	if err != nil {
		return fmt.Errorf("package %s: %w", path, err)
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(out, "FAIL", p)
	}
	if !rep.OK() {
		return fmt.Errorf("package %s does NOT verify: %d problem(s)", path, len(rep.Problems))
	}
	fmt.Fprintf(out, "OK package %s (export %s by %s at %s): signature valid, %d files match the manifest\n",
		path, rep.Manifest.ID, rep.Manifest.CreatedBy, rep.Manifest.CreatedAt.Format("2006-01-02T15:04:05Z"), rep.Checked)
	return nil
}

// exportKey prints the public half of the platform's signing key (creating
// the key if it does not exist yet), for prosecutors to verify packages.
func exportKey(args []string, out io.Writer) error {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("bwc export-key", flag.ContinueOnError)
	cfg.register(fs)
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return err
	}
	key, err := export.LoadOrCreateKey(cfg.SigningKey)
	if err != nil {
		return err
	}
	_, err = out.Write(export.PublicKeyPEM(key.Public().(ed25519.PublicKey)))
	return err
}

// verifyRecordings checks archived recordings against MinIO.
func verifyRecordings(ctx context.Context, cfg Config, db *index.DB, recording string, out io.Writer) error {
	var ids []uuid.UUID
	if recording != "" {
		id, err := uuid.Parse(recording)
		if err != nil {
			return fmt.Errorf("bwc verify -recording: %q is not a recording ID", recording)
		}
		if _, err := db.Recording(ctx, id); err != nil {
			return err
		}
		ids = append(ids, id)
	}
	store, err := blob.Open(blob.Config{Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey,
		Bucket: cfg.S3Bucket, Region: cfg.S3Region, UseTLS: cfg.S3UseTLS})
	if err != nil {
		return err
	}
	rep, err := evidence.Verify(ctx, db, store, ids)
	if err != nil {
		return err
	}
	rep.Write(out)
	if !rep.OK() {
		return fmt.Errorf("evidence: %d problem(s), the first: %s", len(rep.Problems), rep.Problems[0])
	}
	return nil
}
