package evidence_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

func putEvidence(t *testing.T, store *blob.Store, key, data string) blob.Stored {
	t.Helper()
	sum := sha256.Sum256([]byte(data))
	st, err := store.PutEvidence(context.Background(), blob.Evidence{Key: key, Body: bytes.NewReader([]byte(data)),
		Size: int64(len(data)), SHA256: sum[:], RetainUntil: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// uploadedRecording stores an upload original and its rows, linked to inc.
func uploadedRecording(t *testing.T, db *index.DB, store *blob.Store, inc uuid.UUID, data string) index.Upload {
	t.Helper()
	ctx := context.Background()
	key := "uploads/2026/01/01/" + uuid.NewString() + "/a.mp4"
	st := putEvidence(t, store, key, data)
	sum := sha256.Sum256([]byte(data))
	u, err := db.CreateUpload(ctx, index.Recording{VideoCodec: "H264"}, index.Upload{TusID: uuid.NewString(), UploadedBy: "officer",
		Filename: "a.mp4", Size: int64(len(data)), SHA256: sum[:], Key: key, Container: "mp4", RecordedAt: time.Now(),
		RecordedAtSource: "upload", VersionID: st.VersionID}, "officer")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.LinkIncident(ctx, u.RecordingID, inc, "supervisor", "test"); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestHoldCoversUploadsAndExports: a legal hold on a recording puts S3
// legal holds on its upload original (the indexed version, not a newer one
// PUT over the key) and on the export packages of its incident; the
// release lifts them, except on a package another held recording shares.
func TestHoldCoversUploadsAndExports(t *testing.T) {
	ctx := context.Background()
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	h := evidence.NewHolder(db, store, nil)
	inc, err := db.CreateIncident(ctx, index.Incident{Number: "110-" + uuid.NewString()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	up1 := uploadedRecording(t, db, store, inc.ID, "phone footage one")
	up2 := uploadedRecording(t, db, store, inc.ID, "phone footage two")
	// a newer version over the first upload's key: not the indexed one
	if _, err := store.Client().PutObject(ctx, store.Bucket(), up1.Key, bytes.NewReader([]byte("forged")), 6,
		minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	e, err := db.RequestExport(ctx, index.Export{IncidentID: inc.ID, RequestedBy: "reviewer", Reason: "court"}, false)
	if err != nil {
		t.Fatal(err)
	}
	pkgKey := "exports/" + e.ID.String() + ".zip"
	pkg := putEvidence(t, store, pkgKey, "signed package")
	if err := db.ExportBuilt(ctx, e.ID, pkgKey, pkg.VersionID, pkg.SHA256, pkg.Size, nil); err != nil {
		t.Fatal(err)
	}
	objs, err := db.RecordingObjects(ctx, up1.RecordingID)
	if err != nil || len(objs) != 2 || objs[0].Kind != "export" || objs[1].Kind != "upload" || objs[1].VersionID != up1.VersionID {
		t.Fatalf("RecordingObjects = %+v, %v; want the export package and the upload original", objs, err)
	}

	if _, err := h.Hold(ctx, up1.RecordingID, "supervisor", "CASE-1", "court"); err != nil {
		t.Fatal(err)
	}
	checkHold(t, store, up1.Key, up1.VersionID, true)
	checkHold(t, store, pkgKey, pkg.VersionID, true)
	checkHold(t, store, up2.Key, up2.VersionID, false)
	if _, err := h.Hold(ctx, up2.RecordingID, "supervisor", "CASE-2", "court"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Release(ctx, up1.RecordingID, "supervisor", "case closed"); err != nil {
		t.Fatal(err)
	}
	checkHold(t, store, up1.Key, up1.VersionID, false)
	checkHold(t, store, pkgKey, pkg.VersionID, true) // the second recording is still held
	checkHold(t, store, up2.Key, up2.VersionID, true)
	if _, err := h.Release(ctx, up2.RecordingID, "supervisor", "case closed"); err != nil {
		t.Fatal(err)
	}
	checkHold(t, store, pkgKey, pkg.VersionID, false)
	checkHold(t, store, up2.Key, up2.VersionID, false)
}

func checkHold(t *testing.T, store *blob.Store, key, version string, want bool) {
	t.Helper()
	st, err := store.Client().GetObjectLegalHold(context.Background(), store.Bucket(), key, minio.GetObjectLegalHoldOptions{VersionID: version})
	on := err == nil && st != nil && *st == minio.LegalHoldEnabled
	if on != want {
		t.Fatalf("%s@%s: legal hold %v (%v, %v), want %v", key, version, on, st, err, want)
	}
}
