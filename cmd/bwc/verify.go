package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
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
// package, offline. With -json the report is one JSON document (see
// verifyReport), for monitoring; the exit status is the same.
func verify(ctx context.Context, args []string, out io.Writer) error {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("bwc verify", flag.ContinueOnError)
	cfg.register(fs)
	audit := fs.Bool("audit", false, "verify the audit trail's hash chain")
	pkg := fs.String("package", "", "verify an evidence package (zip) offline")
	pubKey := fs.String("public-key", "", "the platform's public key (PEM, from bwc export-key): required with -package; else seals and checkpoints are checked with it (default: the public half of -signing-key)")
	recording := fs.String("recording", "", "verify one recording (its ID); default: every archived recording")
	asJSON := fs.Bool("json", false, "print the report as one JSON document (check, ok, counts, problems; error when it could not check)")
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return err
	}
	check := "recordings"
	switch {
	case *pkg != "":
		check = "package"
	case *audit:
		check = "audit"
	}
	report := &verifyReport{out: out, asJSON: *asJSON, check: check}
	err := verifyRun(ctx, cfg, report, *pkg, *pubKey, *recording)
	var found foundProblems
	if report.asJSON && err != nil && !errors.As(err, &found) {
		report.writeJSON(map[string]any{"ok": false, "error": err.Error()}) // could not check: no report but this
	}
	return err
}

// verifyRun runs the check the flags ask for; report prints its outcome.
func verifyRun(ctx context.Context, cfg Config, report *verifyReport, pkg, pubKey, recording string) error {
	if report.check == "package" {
		return verifyPackage(pkg, pubKey, report)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	db, err := index.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if report.check == "recordings" {
		return verifyRecordings(ctx, cfg, db, recording, pubKey, report)
	}
	n, problems, err := db.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	anchored, err := auditAnchored(ctx, cfg, db, pubKey) // the head against the newest checkpoint
	if err != nil {
		return err
	}
	if report.asJSON {
		ps := make([]verifyProblem, 0, len(problems))
		for _, p := range problems {
			ps = append(ps, verifyProblem{Kind: "audit event", Seq: p.Seq, What: p.Reason})
		}
		ps = append(ps, anchored...)
		report.writeJSON(map[string]any{"ok": len(ps) == 0, "events": n, "problems": ps})
	}
	for _, p := range problems {
		report.text("FAIL %s\n", p)
	}
	for _, p := range anchored {
		report.text("FAIL %s (%s): %s\n", p.Kind, p.Key, p.What)
	}
	if len(problems)+len(anchored) > 0 {
		return foundProblems{fmt.Sprintf("audit trail: %d problem(s) in %d events", len(problems)+len(anchored), n)}
	}
	report.text("OK audit trail: %d events, chain intact\n", n)
	return nil
}

// verifyReport prints a verification's outcome: lines of text, or with
// -json one document: {"check": "recordings"|"audit"|"package", "ok":
// bool, the counts, "problems": [...]}, or {"check", "ok": false, "error"}
// when it could not check. A recordings report is evidence.Report's JSON;
// audit and package problems have the same shape (kind, seq, key, what).
type verifyReport struct {
	out    io.Writer
	asJSON bool
	check  string
}

// verifyProblem is an audit or package problem in JSON.
type verifyProblem struct {
	Kind string `json:"kind"` // "audit event", "package file", "package"
	Seq  int64  `json:"seq,omitempty"`
	Key  string `json:"key,omitempty"`
	What string `json:"what"`
}

func (r *verifyReport) text(format string, args ...any) {
	if !r.asJSON {
		fmt.Fprintf(r.out, format, args...)
	}
}

// writeJSON prints doc (a JSON object) with "check" first.
func (r *verifyReport) writeJSON(doc any) {
	raw, err := json.Marshal(doc)
	if err != nil {
		raw, _ = json.Marshal(map[string]any{"ok": false, "error": "report: " + err.Error()})
	}
	fmt.Fprintf(r.out, "{\"check\":%q,%s\n", r.check, raw[1:])
}

// foundProblems is verify's error when it checked and found problems (the
// report printed them), as opposed to failing to check.
type foundProblems struct{ msg string }

func (f foundProblems) Error() string { return f.msg }

// verifyPackage checks an evidence package with nothing but the package and
// the platform's public key: no database, no object store.
func verifyPackage(path, pubKeyPath string, report *verifyReport) error {
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
	if report.asJSON {
		ps := make([]verifyProblem, 0, len(rep.Problems))
		for _, p := range rep.Problems {
			kind := "package file"
			if p.File == "" {
				kind = "package"
			}
			ps = append(ps, verifyProblem{Kind: kind, Key: p.File, What: p.Reason})
		}
		report.writeJSON(map[string]any{"ok": rep.OK(), "package": path, "export": rep.Manifest.ID, "files": rep.Checked, "problems": ps})
	}
	for _, p := range rep.Problems {
		report.text("FAIL %s\n", p)
	}
	if !rep.OK() {
		return foundProblems{fmt.Sprintf("package %s does NOT verify: %d problem(s)", path, len(rep.Problems))}
	}
	report.text("OK package %s (export %s by %s at %s): signature valid, %d files match the manifest\n",
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
func verifyRecordings(ctx context.Context, cfg Config, db *index.DB, recording, pubKey string, report *verifyReport) error {
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
	pub, err := platformPublicKey(cfg, pubKey)
	if err != nil {
		return err
	}
	store, err := blob.Open(cfg.blobConfig())
	if err != nil {
		return err
	}
	rep, err := evidence.VerifyAnchored(ctx, db, store, pub, ids)
	if err != nil {
		return err
	}
	if report.asJSON {
		report.writeJSON(rep)
	} else {
		rep.Write(report.out)
	}
	if !rep.OK() {
		return foundProblems{fmt.Sprintf("evidence: %d problem(s), the first: %s", len(rep.Problems), rep.Problems[0])}
	}
	return nil
}
