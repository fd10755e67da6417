package blob_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

func TestEnsureBucketCreatesItWithObjectLock(t *testing.T) {
	ctx := context.Background()
	s := storagetest.NewStore(t) // calls EnsureBucket on a fresh name
	on, err := s.ObjectLockEnabled(ctx)
	if err != nil || !on {
		t.Fatalf("object lock enabled = %v, %v; want true", on, err)
	}
	status, _, _, _, err := s.Client().GetObjectLockConfig(ctx, s.Bucket())
	if err != nil || status != "Enabled" {
		t.Fatalf("bucket's object lock configuration = %q, %v", status, err)
	}
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatalf("EnsureBucket on an existing locked bucket: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestEnsureBucketRefusesBucketWithoutObjectLock(t *testing.T) {
	ctx := context.Background()
	cfg := storagetest.BlobConfig(t)
	s, err := blob.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Client().MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	err = s.EnsureBucket(ctx)
	if !errors.Is(err, blob.ErrNoObjectLock) {
		t.Fatalf("EnsureBucket on a bucket without lock: err = %v, want ErrNoObjectLock", err)
	}
}

func TestEnsureBucketExplainsFailures(t *testing.T) {
	ctx := context.Background()
	good := storagetest.BlobConfig(t)
	cases := []struct {
		name string
		cfg  blob.Config
		want string
	}{
		{"unreachable", blob.Config{Endpoint: "127.0.0.1:1", AccessKey: "a", SecretKey: "b", Bucket: good.Bucket}, "unreachable"},
		{"wrong secret", blob.Config{Endpoint: good.Endpoint, AccessKey: good.AccessKey, SecretKey: "wrong-secret", Bucket: good.Bucket}, "credentials refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := blob.Open(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = s.EnsureBucket(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("EnsureBucket: err = %v, want one saying %q", err, tc.want)
			}
			if err := s.Ping(ctx); err == nil {
				t.Fatal("Ping succeeded")
			}
		})
	}
}
