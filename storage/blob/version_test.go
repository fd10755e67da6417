package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestReadsPinnedToVersion: a version PUT over the key, then a delete
// marker, change nothing read by the indexed version; a version that is
// not there is ErrNoObject.
func TestReadsPinnedToVersion(t *testing.T) {
	ctx := context.Background()
	s := storagetest.NewStore(t)
	orig := []byte("the camera's bytes")
	put, err := s.PutEvidence(ctx, evidence("v/seg", orig, false))
	if err != nil {
		t.Fatal(err)
	}
	// a new version over the key: the server's own identity can do this
	// (it writes objects); reads by the indexed version do not see it
	forged := "forged bytes, not the camera's"
	if _, err := s.Client().PutObject(ctx, s.Bucket(), "v/seg", strings.NewReader(forged), int64(len(forged)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	readBoth(t, s, put.VersionID, orig, []byte(forged))
	// a delete marker: only the administrator can (the server's policy
	// denies s3:DeleteObject)
	if err := storagetest.Admin(t, s).Client().RemoveObject(ctx, s.Bucket(), "v/seg", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	readBoth(t, s, put.VersionID, orig, nil)
	if _, err := s.OpenVersion(ctx, "v/seg", "00000000-0000-0000-0000-000000000000"); !errors.Is(err, blob.ErrNoObject) {
		t.Fatalf("OpenVersion of a version that is not there: err = %v, want ErrNoObject", err)
	}
	if _, _, err := s.SHA256(ctx, "v/absent", ""); !errors.Is(err, blob.ErrNoObject) {
		t.Fatalf("SHA256 of a missing key: err = %v, want ErrNoObject", err)
	}
}

// readBoth checks the pinned version reads orig and the current one reads
// latest (nil: no current version, a delete marker).
func readBoth(t *testing.T, s *blob.Store, version string, orig, latest []byte) {
	t.Helper()
	ctx := context.Background()
	o, err := s.OpenVersion(ctx, "v/seg", version)
	if err != nil {
		t.Fatalf("OpenVersion: %v", err)
	}
	got, err := io.ReadAll(o)
	o.Close()
	if err != nil || !bytes.Equal(got, orig) || o.Size != int64(len(orig)) {
		t.Fatalf("pinned read = %q (size %d), %v; want %q", got, o.Size, err, orig)
	}
	sum, n, err := s.SHA256(ctx, "v/seg", version)
	want := sha256.Sum256(orig)
	if err != nil || !bytes.Equal(sum, want[:]) || n != int64(len(orig)) {
		t.Fatalf("SHA256 of the pinned version = %x (%d bytes), %v; want %x", sum, n, err, want)
	}
	cur, err := s.Open(ctx, "v/seg")
	if latest == nil {
		if !errors.Is(err, blob.ErrNoObject) {
			t.Fatalf("Open behind a delete marker: err = %v, want ErrNoObject", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if b, _ := io.ReadAll(cur); !bytes.Equal(b, latest) {
		t.Fatalf("current version = %q, want %q", b, latest)
	}
}
