package export_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
)

// TestBuildReadsIndexedVersion: a version PUT over an upload original's key
// changes nothing in a package: the build copies the indexed version (it
// would otherwise refuse the forged bytes as tampered).
func TestBuildReadsIndexedVersion(t *testing.T) {
	ctx := context.Background()
	db, store, x, inc := newExporter(t, "130")
	orig := []byte("the phone's footage")
	objKey := "uploads/2026/01/01/" + uuid.NewString() + "/a.mp4"
	sum := sha256.Sum256(orig)
	st, err := store.PutEvidence(ctx, blob.Evidence{Key: objKey, Body: bytes.NewReader(orig), Size: int64(len(orig)), SHA256: sum[:],
		RetainUntil: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	u, err := db.CreateUpload(ctx, index.Recording{VideoCodec: "H264"}, index.Upload{TusID: uuid.NewString(), UploadedBy: "officer",
		Filename: "a.mp4", Size: int64(len(orig)), SHA256: sum[:], Key: objKey, Container: "mp4", RecordedAt: time.Now(),
		RecordedAtSource: "upload", VersionID: st.VersionID}, "officer")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.LinkIncident(ctx, u.RecordingID, inc.ID, "supervisor", "test"); err != nil {
		t.Fatal(err)
	}
	forged := "forged bytes, not the camera's"
	if _, err := store.Client().PutObject(ctx, store.Bucket(), objKey, strings.NewReader(forged), int64(len(forged)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	e, err := db.RequestExport(ctx, index.Export{IncidentID: inc.ID, RequestedBy: "reviewer", Reason: "court"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Build(ctx, e.ID); err != nil {
		t.Fatalf("build over a key with a newer version: %v", err)
	}
	if got := packagedUpload(t, db, store, e.ID); !bytes.Equal(got, orig) {
		t.Fatalf("package holds %q, want the indexed %q", got, orig)
	}
}

// packagedUpload reads the built package and returns its upload file.
func packagedUpload(t *testing.T, db *index.DB, store *blob.Store, id uuid.UUID) []byte {
	t.Helper()
	ctx := context.Background()
	e, err := db.Export(ctx, id)
	if err != nil || e.Key == nil {
		t.Fatalf("export after build: %+v, %v", e, err)
	}
	o, err := store.OpenVersion(ctx, *e.Key, e.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	z, err := zip.NewReader(o, o.Size)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range z.File {
		if strings.HasPrefix(f.Name, "uploads/") {
			r, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatal("no upload file in the package")
	return nil
}
