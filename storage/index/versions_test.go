package index_test

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

func sum(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// archivedRecording is a recording row on a fresh device.
func archivedRecording(t *testing.T, db *index.DB, start time.Time) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	dev, err := db.CreateDevice(ctx, index.Device{Serial: "CAM-" + strings.ReplaceAll(uuid.NewString()[:13], "-", ""), Secret: "camera-secret-1"})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.Must(uuid.NewV7())
	if _, err := db.Pool().Exec(ctx, `INSERT INTO recordings (id, device_id, started_at, video_codec, width, height)
		VALUES ($1, $2, $3, 'H264', 640, 360)`, id, dev.ID, start); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestSegmentVersionIDRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := storagetest.NewDB(t)
	start := time.Now().UTC().Truncate(time.Second)
	rec := archivedRecording(t, db, start)
	for n, version := range []string{"init-version-0", ""} { // "" : a row written before version IDs
		in := index.InitSegment{RecordingID: rec, N: n, Key: rec.String() + "/init-" + string(rune('0'+n)) + ".mp4",
			SHA256: sum("init" + version), Size: 100, VersionID: version}
		if err := db.PutInitSegment(ctx, in); err != nil {
			t.Fatal(err)
		}
		got, err := db.InitSegment(ctx, rec, n)
		if err != nil || got.VersionID != version {
			t.Fatalf("init segment %d: version %q, %v; want %q", n, got.VersionID, err, version)
		}
	}
	inits, err := db.InitSegments(ctx, rec)
	if err != nil || len(inits) != 2 || inits[0].VersionID != "init-version-0" || inits[1].VersionID != "" {
		t.Fatalf("InitSegments = %+v, %v", inits, err)
	}
	seg := index.Segment{RecordingID: rec, Seq: 0, InitN: 0, Key: rec.String() + "/000000.m4s", SHA256: sum("seg"),
		PrevChain: sum("prev"), Chain: sum("chain"), Size: 200, StartedAt: start, EndedAt: start.Add(2 * time.Second),
		EndDTS: 2 * time.Second, SealedAt: start.Add(3 * time.Second), VersionID: "seg-version-0"}
	if err := db.PutSegment(ctx, seg); err != nil {
		t.Fatal(err)
	}
	retry := seg
	retry.VersionID = "another-version" // a retry keeps the row as first written
	if err := db.PutSegment(ctx, retry); err != nil {
		t.Fatal(err)
	}
	one, err := db.Segment(ctx, rec, 0)
	if err != nil || one.VersionID != "seg-version-0" {
		t.Fatalf("Segment: version %q, %v; want seg-version-0", one.VersionID, err)
	}
	at, err := db.SegmentAt(ctx, rec, start.Add(time.Second))
	if err != nil || at.VersionID != "seg-version-0" {
		t.Fatalf("SegmentAt: version %q, %v", at.VersionID, err)
	}
	all, err := db.Segments(ctx, rec)
	if err != nil || len(all) != 1 || all[0].VersionID != "seg-version-0" {
		t.Fatalf("Segments = %+v, %v", all, err)
	}
}

func TestUploadAndExportVersionIDRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := storagetest.NewDB(t)
	for _, version := range []string{"upload-version-1", ""} {
		u, err := db.CreateUpload(ctx, index.Recording{VideoCodec: "H264"}, index.Upload{TusID: "tus-" + uuid.NewString(),
			UploadedBy: "officer", Filename: "a.mp4", Size: 10, SHA256: sum("upload" + version), Key: "uploads/" + uuid.NewString(),
			Container: "mp4", RecordedAt: time.Now(), RecordedAtSource: "upload", VersionID: version}, "officer")
		if err != nil || u.VersionID != version {
			t.Fatalf("CreateUpload: version %q, %v; want %q", u.VersionID, err, version)
		}
		byKey, err := db.UploadByKey(ctx, u.Key)
		if err != nil || byKey.VersionID != version {
			t.Fatalf("UploadByKey: version %q, %v; want %q", byKey.VersionID, err, version)
		}
	}
	inc, err := db.CreateIncident(ctx, index.Incident{Number: "110-" + uuid.NewString()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	e, err := db.RequestExport(ctx, index.Export{IncidentID: inc.ID, RequestedBy: "reviewer", Reason: "court"}, false)
	if err != nil || e.VersionID != "" {
		t.Fatalf("RequestExport: version %q, %v; want none before the build", e.VersionID, err)
	}
	if err := db.ExportBuilt(ctx, e.ID, "exports/"+e.ID.String()+".zip", "export-version-1", sum("zip"), 3, nil); err != nil {
		t.Fatal(err)
	}
	got, err := db.Export(ctx, e.ID)
	if err != nil || got.Status != index.ExportReady || got.VersionID != "export-version-1" {
		t.Fatalf("Export after build: %s version %q, %v", got.Status, got.VersionID, err)
	}
	list, err := db.Exports(ctx, &inc.ID)
	if err != nil || len(list) != 1 || list[0].VersionID != "export-version-1" {
		t.Fatalf("Exports = %+v, %v", list, err)
	}
}
