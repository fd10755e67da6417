package archive

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestUploadRefusesCorruptedSpoolFile: the uploader does not hash a
// spooled file again before sending it; a file that changed on the local
// disk since the spool hashed it is refused by the store (which verifies
// the body against the spool's SHA-256), named as possible disk
// corruption, and nothing is stored under its key. The intact file goes up.
func TestUploadRefusesCorruptedSpoolFile(t *testing.T) {
	store := storagetest.NewStore(t)
	a, err := New(testConfig(t), nil, store, sealKey, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	spooled := []byte("moof mdat: the fragment as it was written and hashed")
	sum := sha256.Sum256(spooled)
	for _, c := range []struct {
		name string
		disk []byte // what the disk returns
		ok   bool
	}{
		{"intact", spooled, true},
		{"a changed byte", []byte("moof mdat: the fragment as it was written and hashes"), false},
		{"zeroed", make([]byte, len(spooled)), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "000001.m4s")
			if err := os.WriteFile(path, c.disk, 0o640); err != nil {
				t.Fatal(err)
			}
			key := "corrupt-test/" + strings.ReplaceAll(c.name, " ", "-")
			_, err := a.putObject(ctx, key, path, int64(len(spooled)), sum[:], nil, false, "video/iso.segment")
			_, statErr := store.Stat(ctx, key)
			if c.ok {
				if err != nil || statErr != nil {
					t.Fatalf("putObject = %v, Stat = %v; want the object stored", err, statErr)
				}
				return
			}
			if !errors.Is(err, blob.ErrChecksum) || !strings.Contains(err.Error(), "local disk corruption") {
				t.Fatalf("putObject of a corrupted file = %v, want blob.ErrChecksum naming local disk corruption", err)
			}
			if !errors.Is(statErr, blob.ErrNoObject) {
				t.Fatalf("Stat after the refused upload: %v, want ErrNoObject", statErr)
			}
		})
	}
}
