package evidence_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestVerifyUploads: verify re-hashes an upload's original at its indexed
// version and names its key when a version is PUT over it, when it gets a
// delete marker, and when the indexed version is gone.
func TestVerifyUploads(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, store *blob.Store, u index.Upload)
		want   []string
	}{
		{"a version over the key", func(t *testing.T, store *blob.Store, u index.Upload) {
			if _, err := store.Client().PutObject(ctx, store.Bucket(), u.Key, bytes.NewReader([]byte("forged")), 6, minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}, []string{"is not the indexed version " + u0}},
		{"a delete marker", func(t *testing.T, store *blob.Store, u index.Upload) {
			if err := storagetest.Admin(t, store).Client().RemoveObject(ctx, store.Bucket(), u.Key, minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}, []string{"latest version is a delete marker"}},
		{"the indexed version deleted and another put", func(t *testing.T, store *blob.Store, u index.Upload) {
			flipByte(t, store, u.Key)
		}, []string{"is not the indexed version " + u0, "indexed version " + u0 + " missing from the bucket"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, store := storagetest.NewDB(t), storagetest.NewStore(t)
			inc, err := db.CreateIncident(ctx, index.Incident{Number: "120-" + uuid.NewString()[:8]})
			if err != nil {
				t.Fatal(err)
			}
			u := uploadedRecording(t, db, store, inc.ID, "phone footage to verify")
			rep, err := evidence.Verify(ctx, db, store, nil)
			if err != nil || !rep.OK() || rep.Uploads != 1 || rep.Bytes != u.Size {
				t.Fatalf("before tampering: %+v %v; want one upload of %d bytes, OK", rep, err, u.Size)
			}
			tc.tamper(t, store, u)
			if rep, err = evidence.Verify(ctx, db, store, nil); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			rep.Write(&out)
			t.Logf("verify report:\n%s", out.String())
			for _, want := range tc.want {
				want = strings.ReplaceAll(want, u0, u.VersionID)
				if !strings.Contains(out.String(), "upload original ("+u.Key+"): ") || !strings.Contains(out.String(), want) || len(rep.Problems) != len(tc.want) {
					t.Errorf("report does not name the upload's key with %q (and only the %d problem(s) expected)", want, len(tc.want))
				}
			}
		})
	}
}

// u0 stands for the upload's indexed version in the wanted problems.
const u0 = "<indexed>"
