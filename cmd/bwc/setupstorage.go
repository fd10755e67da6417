package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/bwcplatform/bwc/storage/blob"
)

// setupStorage is `bwc setup-storage`, an operator's command run with the
// MinIO administrator's keys (never given to `bwc serve`): it creates the
// evidence bucket with object lock when missing, the server's policy
// (blob.ServerPolicy: write and read evidence, retention and legal hold; no
// delete, no governance bypass, no bucket lock or policy changes) and the
// server's user with that policy only. Idempotent.
func setupStorage(ctx context.Context, args []string, out io.Writer) error {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("bwc setup-storage", flag.ContinueOnError)
	fs.StringVar(&cfg.S3Endpoint, "s3-endpoint", cfg.S3Endpoint, "S3/MinIO endpoint, host:port")
	fs.StringVar(&cfg.S3Region, "s3-region", cfg.S3Region, "S3 region")
	fs.BoolVar(&cfg.S3UseTLS, "s3-tls", cfg.S3UseTLS, "use HTTPS to reach S3")
	fs.StringVar(&cfg.S3Bucket, "s3-bucket", cfg.S3Bucket, "evidence bucket to create with object lock when missing (empty: none)")
	fs.StringVar(&cfg.S3AccessKey, "s3-access-key", cfg.S3AccessKey, "the server's access key (user name): created, or its secret set")
	fs.StringVar(&cfg.S3SecretKey, "s3-secret-key", cfg.S3SecretKey, "the server's secret key")
	adminKey := fs.String("s3-admin-access-key", "", "the MinIO administrator's access key (required)")
	adminSecret := fs.String("s3-admin-secret-key", "", "the MinIO administrator's secret key (required)")
	buckets := fs.String("s3-policy-buckets", "", "bucket name or pattern (e.g. t-*) the server's policy covers; default: -s3-bucket")
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bwc setup-storage: unexpected arguments %q", fs.Args())
	}
	if *adminKey == "" || *adminSecret == "" {
		return errors.New("bwc setup-storage: -s3-admin-access-key and -s3-admin-secret-key (BWC_S3_ADMIN_ACCESS_KEY, BWC_S3_ADMIN_SECRET_KEY) are required")
	}
	if *buckets == "" {
		*buckets = cfg.S3Bucket
	}
	setup := blob.Setup{
		Admin: blob.Config{Endpoint: cfg.S3Endpoint, AccessKey: *adminKey, SecretKey: *adminSecret,
			Bucket: cfg.S3Bucket, Region: cfg.S3Region, UseTLS: cfg.S3UseTLS},
		Server:  blob.Identity{AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey},
		Buckets: *buckets,
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := setup.Apply(ctx); err != nil {
		return err
	}
	if cfg.S3Bucket != "" {
		fmt.Fprintf(out, "bucket %s: object lock enabled\n", cfg.S3Bucket)
	}
	fmt.Fprintf(out, "user %s: policy %s on %s (no delete, no governance bypass, no bucket lock or policy changes)\n",
		cfg.S3AccessKey, blob.PolicyName(cfg.S3AccessKey), *buckets)
	return nil
}
