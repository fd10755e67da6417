package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

func evidence(key string, data []byte, hold bool) blob.Evidence {
	sum := sha256.Sum256(data)
	return blob.Evidence{Key: key, Body: bytes.NewReader(data), Size: int64(len(data)), SHA256: sum[:],
		ContentType: "video/mp4", Metadata: map[string]string{"Bwc-Test": "yes"},
		RetainUntil: time.Now().Add(time.Hour), LegalHold: hold}
}

func TestPutEvidence(t *testing.T) {
	ctx := context.Background()
	s := storagetest.NewStore(t)
	first, err := s.PutEvidence(ctx, evidence("a/one", []byte("camera bytes"), false))
	if err != nil || first.VersionID == "" || first.Existed {
		t.Fatalf("first write = %+v, %v; want a new version", first, err)
	}
	cases := []struct {
		name     string
		data     []byte
		hold     bool
		wantErr  error
		wantSame bool
	}{
		{"same bytes again is the same version", []byte("camera bytes"), false, nil, true},
		{"same bytes with a hold holds that version", []byte("camera bytes"), true, nil, true},
		{"other bytes are a conflict", []byte("forged bytes"), false, blob.ErrConflict, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.PutEvidence(ctx, evidence("a/one", tc.data, tc.hold))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantSame && (got.VersionID != first.VersionID || !got.Existed) {
				t.Fatalf("got %+v, want version %s (existed)", got, first.VersionID)
			}
		})
	}
	st, err := s.Client().StatObject(ctx, s.Bucket(), "a/one", minio.StatObjectOptions{})
	if err != nil || st.VersionID != first.VersionID || st.Size != int64(len("camera bytes")) {
		t.Fatalf("object after the conflict = %+v, %v; want the first version untouched", st, err)
	}
	checkLock(t, s, "a/one", first.VersionID, true)
}

func TestPutEvidenceRetentionAndHold(t *testing.T) {
	ctx := context.Background()
	s := storagetest.NewStore(t)
	for _, hold := range []bool{false, true} {
		key := map[bool]string{false: "b/free", true: "b/held"}[hold]
		e := evidence(key, []byte("segment "+key), hold)
		got, err := s.PutEvidence(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		mode, until, err := s.Client().GetObjectRetention(ctx, s.Bucket(), key, got.VersionID)
		if err != nil || mode == nil || *mode != minio.Governance || until == nil || until.Before(e.RetainUntil.Add(-time.Second)) {
			t.Fatalf("%s: retention = %v until %v, %v; want governance (the tests' stores) until %v", key, mode, until, err, e.RetainUntil)
		}
		checkLock(t, s, key, got.VersionID, hold)
		st, err := s.Stat(ctx, key)
		if err != nil || !bytes.Equal(st.SHA256, e.SHA256) || st.VersionID != got.VersionID {
			t.Fatalf("%s: Stat = %+v, %v", key, st, err)
		}
	}
	if _, err := s.Stat(ctx, "b/missing"); !errors.Is(err, blob.ErrNoObject) {
		t.Fatalf("Stat of a missing key: %v, want ErrNoObject", err)
	}
}

func TestPutEvidenceChecksumVerifiedByServer(t *testing.T) {
	ctx := context.Background()
	s := storagetest.NewStore(t)
	e := evidence("c/bad", []byte("what the camera sent"), false)
	e.Body = bytes.NewReader([]byte("what the disk returned")) // not the declared SHA-256
	e.Size = int64(len("what the disk returned"))
	if _, err := s.PutEvidence(ctx, e); !errors.Is(err, blob.ErrChecksum) {
		t.Fatalf("PutEvidence of a body that does not match its SHA-256: %v, want ErrChecksum", err)
	}
	if _, err := s.Stat(ctx, "c/bad"); !errors.Is(err, blob.ErrNoObject) {
		t.Fatalf("Stat after a refused write: %v, want ErrNoObject", err)
	}
}

func checkLock(t *testing.T, s *blob.Store, key, version string, held bool) {
	t.Helper()
	st, err := s.Client().GetObjectLegalHold(context.Background(), s.Bucket(), key, minio.GetObjectLegalHoldOptions{VersionID: version})
	if held && (err != nil || st == nil || *st != minio.LegalHoldEnabled) {
		t.Fatalf("%s: legal hold = %v, %v; want ON", key, st, err)
	}
	if !held && err == nil && st != nil && *st == minio.LegalHoldEnabled {
		t.Fatalf("%s: legal hold ON, want none", key)
	}
}
