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

func TestCreateBucketWithObjectLock(t *testing.T) {
	ctx := context.Background()
	s := storagetest.NewStore(t) // CreateBucket as the administrator, then EnsureBucket
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

// TestEnsureBucketOnlyChecks: the server's EnsureBucket creates no bucket;
// a missing one is ErrNoBucket, naming the command that creates it.
func TestEnsureBucketOnlyChecks(t *testing.T) {
	ctx := context.Background()
	cfg := storagetest.BlobConfig(t)
	s, err := blob.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.EnsureBucket(ctx)
	if !errors.Is(err, blob.ErrNoBucket) || !strings.Contains(err.Error(), "bwc setup-storage") {
		t.Fatalf("EnsureBucket of a missing bucket: err = %v, want ErrNoBucket naming bwc setup-storage", err)
	}
	admin, err := blob.Open(storagetest.AdminConfig(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if ok, err := admin.Client().BucketExists(ctx, cfg.Bucket); err != nil || ok {
		t.Fatalf("bucket exists after EnsureBucket = %v, %v; want false", ok, err)
	}
}

func TestOpenRefusesUnknownRetentionMode(t *testing.T) {
	cfg := storagetest.BlobConfig(t)
	for _, mode := range []blob.RetentionMode{"", "compliance", "NONE"} {
		cfg.RetentionMode = mode
		if _, err := blob.Open(cfg); err == nil || !strings.Contains(err.Error(), "RetentionMode") {
			t.Errorf("Open with RetentionMode %q: err = %v, want one naming RetentionMode", mode, err)
		}
	}
}

func TestEnsureBucketRefusesBucketWithoutObjectLock(t *testing.T) {
	ctx := context.Background()
	cfg := storagetest.BlobConfig(t)
	s, err := blob.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	admin, err := blob.Open(storagetest.AdminConfig(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Client().MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, st := range map[string]*blob.Store{"EnsureBucket": s, "CreateBucket": admin} {
		check := st.EnsureBucket
		if name == "CreateBucket" {
			check = st.CreateBucket
		}
		if err := check(ctx); !errors.Is(err, blob.ErrNoObjectLock) {
			t.Fatalf("%s on a bucket without lock: err = %v, want ErrNoObjectLock", name, err)
		}
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
		{"unreachable", blob.Config{Endpoint: "127.0.0.1:1", AccessKey: "a", SecretKey: "b", Bucket: good.Bucket, RetentionMode: blob.Governance}, "unreachable"},
		{"wrong secret", blob.Config{Endpoint: good.Endpoint, AccessKey: good.AccessKey, SecretKey: "wrong-secret", Bucket: good.Bucket, RetentionMode: blob.Governance}, "credentials refused"},
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
