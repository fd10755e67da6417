package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestSetupStorageCommand: bwc setup-storage refuses to run without the
// administrator's keys; with them it creates the bucket with object lock
// and a user that the server then opens the bucket with, and a second run
// changes nothing that breaks it.
func TestSetupStorageCommand(t *testing.T) {
	ctx := context.Background()
	cfg := storagetest.BlobConfig(t)
	admin := storagetest.AdminConfig(t, cfg)
	user := strings.Replace(cfg.Bucket, "t-", "t-user-", 1)
	if len(user) > 60 {
		user = user[:60]
	}
	adm, err := madmin.NewWithOptions(cfg.Endpoint, &madmin.Options{Creds: credentials.NewStaticV4(admin.AccessKey, admin.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = adm.RemoveUser(context.Background(), user)
		_ = adm.RemoveCannedPolicy(context.Background(), blob.PolicyName(user))
	})
	args := []string{"-s3-endpoint", cfg.Endpoint, "-s3-bucket", cfg.Bucket, "-s3-access-key", user, "-s3-secret-key", "a-long-test-secret"}
	t.Setenv("BWC_S3_ADMIN_ACCESS_KEY", "")
	t.Setenv("BWC_S3_ADMIN_SECRET_KEY", "")
	var out bytes.Buffer
	if err := setupStorage(ctx, args, &out); err == nil || !strings.Contains(err.Error(), "-s3-admin-access-key") {
		t.Fatalf("setup-storage without the administrator's keys: err = %v, want one naming -s3-admin-access-key", err)
	}
	args = append(args, "-s3-admin-access-key", admin.AccessKey, "-s3-admin-secret-key", admin.SecretKey)
	for run := 1; run <= 2; run++ {
		out.Reset()
		if err := setupStorage(ctx, args, &out); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if !strings.Contains(out.String(), blob.PolicyName(user)+" on "+cfg.Bucket) {
			t.Fatalf("run %d printed %q, want the policy and its bucket", run, out.String())
		}
	}
	cfg.AccessKey, cfg.SecretKey = user, "a-long-test-secret"
	s, err := blob.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatalf("the server opening the bucket setup-storage made, as its user: %v", err)
	}
}
