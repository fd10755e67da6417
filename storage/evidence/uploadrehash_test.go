package evidence_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestVerifyUploadRehashed: verify re-hashes the upload original's indexed
// version: with the index's SHA-256 edited (superuser SQL) it names the
// key with the hash the stored bytes have and the one the index says.
func TestVerifyUploadRehashed(t *testing.T) {
	ctx := context.Background()
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	inc, err := db.CreateIncident(ctx, index.Incident{Number: "121-" + uuid.NewString()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	data := "phone footage whose index row is edited"
	u := uploadedRecording(t, db, store, inc.ID, data)
	edited := bytes.Repeat([]byte{0xab}, 32)
	if _, err := storagetest.Superuser(t, db).Exec(ctx, `UPDATE uploads SET sha256 = $1 WHERE id = $2`, edited, u.ID); err != nil {
		t.Fatal(err)
	}
	rep, err := evidence.Verify(ctx, db, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(data))
	want := fmt.Sprintf("SHA-256 mismatch: object %x, index %x", sum, edited)
	if len(rep.Problems) != 1 || rep.Problems[0].Kind() != "upload" || rep.Problems[0].Key != u.Key || rep.Problems[0].What != want {
		t.Fatalf("problems %v; want the upload original %s: %s", rep.Problems, u.Key, want)
	}
}
