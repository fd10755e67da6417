package export_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/export"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestBuildStoresPackageWithVersion: a built package is in the bucket under
// governance retention and the export row holds its version ID; a package
// left by an earlier build whose result was never recorded is kept (no
// second version) and recorded.
func TestBuildStoresPackageWithVersion(t *testing.T) {
	ctx := context.Background()
	db, store, x, inc := newExporter(t, "110")
	request := func() index.Export {
		e, err := db.RequestExport(ctx, index.Export{IncidentID: inc.ID, RequestedBy: "reviewer", Reason: "court"}, false)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}

	e := request()
	if err := x.Build(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	got, err := db.Export(ctx, e.ID)
	if err != nil || got.Status != index.ExportReady || got.Key == nil {
		t.Fatalf("export after build: %+v, %v", got, err)
	}
	st, err := store.Client().StatObject(ctx, store.Bucket(), *got.Key, minio.StatObjectOptions{})
	if err != nil || got.VersionID == "" || st.VersionID != got.VersionID || st.Size != *got.Size {
		t.Fatalf("package %s: version %q size %d (%v), indexed %q size %d", *got.Key, st.VersionID, st.Size, err, got.VersionID, *got.Size)
	}
	if mode, _, err := store.Client().GetObjectRetention(ctx, store.Bucket(), *got.Key, got.VersionID); err != nil || *mode != minio.Governance {
		t.Fatalf("package retention: %v, %v", mode, err)
	}

	// a crash after the package went up, before ExportBuilt
	e2 := request()
	earlier := []byte("package of an earlier build")
	sum := sha256.Sum256(earlier)
	first, err := store.PutEvidence(ctx, blob.Evidence{Key: "exports/" + e2.ID.String() + ".zip", Body: bytes.NewReader(earlier),
		Size: int64(len(earlier)), SHA256: sum[:], RetainUntil: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Build(ctx, e2.ID); err != nil {
		t.Fatal(err)
	}
	got2, err := db.Export(ctx, e2.ID)
	if err != nil || got2.Status != index.ExportReady || got2.VersionID != first.VersionID || !bytes.Equal(got2.SHA256, sum[:]) {
		t.Fatalf("export over an earlier package: %+v, %v; want version %s", got2, err, first.VersionID)
	}
	n := 0
	for o := range store.Client().ListObjects(ctx, store.Bucket(), minio.ListObjectsOptions{Prefix: *got2.Key, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("%d versions of %s, want 1", n, *got2.Key)
	}
}

// TestBuildHoldsPackageOfHeldIncident: a package of an incident with a
// recording under legal hold is stored under S3 legal hold.
func TestBuildHoldsPackageOfHeldIncident(t *testing.T) {
	ctx := context.Background()
	db, store, x, inc := newExporter(t, "110")
	dev, err := db.CreateDevice(ctx, index.Device{Serial: "CAM-" + uuid.NewString()[:8], Secret: "camera-secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	rec := uuid.Must(uuid.NewV7())
	if _, err := db.Pool().Exec(ctx, `INSERT INTO recordings (id, device_id, started_at, video_codec, width, height)
		VALUES ($1, $2, now(), 'H264', 640, 360)`, rec, dev.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.LinkIncident(ctx, rec, inc.ID, "supervisor", "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PlaceHold(ctx, rec, "supervisor", "CASE-1", "court"); err != nil {
		t.Fatal(err)
	}
	e, err := db.RequestExport(ctx, index.Export{IncidentID: inc.ID, RequestedBy: "reviewer", Reason: "court"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Build(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	got, err := db.Export(ctx, e.ID)
	if err != nil || got.Key == nil {
		t.Fatalf("export after build: %+v, %v", got, err)
	}
	st, err := store.Client().GetObjectLegalHold(ctx, store.Bucket(), *got.Key, minio.GetObjectLegalHoldOptions{VersionID: got.VersionID})
	if err != nil || st == nil || *st != minio.LegalHoldEnabled {
		t.Fatalf("package of a held incident: legal hold %v, %v; want ON", st, err)
	}
}

// newExporter is the fixture of the exporter's tests: a fresh database and
// bucket, an exporter over them with a new signing key, and an incident
// numbered prefix-<random>.
func newExporter(t *testing.T, prefix string) (*index.DB, *blob.Store, *export.Exporter, index.Incident) {
	t.Helper()
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x, err := export.NewExporter(export.ExporterConfig{Dir: t.TempDir(), Retention: time.Hour, Node: "node-a", Lease: time.Minute}, db, store, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	inc, err := db.CreateIncident(context.Background(), index.Incident{Number: prefix + "-" + uuid.NewString()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	return db, store, x, inc
}
