package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestReplayPinnedToIndexedVersion: with the store's own client, 30 bytes
// PUT over a segment's key (a new version), then a delete marker on it,
// change nothing a reviewer gets: the segment route and the HLS media
// segment return the bytes the index holds. bwc verify exits non-zero
// naming the key, each time.
func TestReplayPinnedToIndexedVersion(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	p := startPlatform(t, cfg)
	dev := platformDevice(t, p, "CAM-PIN-1")
	admin, err := p.db.CreateUser(ctx, index.User{Login: "pin-admin", Role: index.RoleAdmin}, "long-enough-password")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p.db.CreateAPIToken(ctx, "pinned", index.RoleReviewer, admin, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := platformCamera(t, p, dev.Serial, 1).wait(); err != nil {
		t.Fatal(err)
	}
	rec := archivedRecording(t, p, dev)
	seg, err := p.db.Segment(ctx, rec.ID, 0)
	if err != nil || seg.VersionID == "" {
		t.Fatalf("segment 0 = %+v, %v; want one with a version", seg, err)
	}
	base := "http://" + p.web.Addr() + "/api/recordings/" + rec.ID.String()
	forged := "forged bytes, not the camera's"
	if _, err := p.blobs.Client().PutObject(ctx, p.blobs.Bucket(), seg.Key, strings.NewReader(forged), int64(len(forged)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	checkSegmentServed(t, base, tok.Token, seg, "a version PUT over the key")
	checkVerifyNames(t, cfg, rec, seg.Key, "is not the indexed version "+seg.VersionID)
	// a delete marker takes the administrator (the server's policy denies it)
	if err := storagetest.Admin(t, p.blobs).Client().RemoveObject(ctx, p.blobs.Bucket(), seg.Key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	checkSegmentServed(t, base, tok.Token, seg, "a delete marker on the key")
	checkVerifyNames(t, cfg, rec, seg.Key, "latest version is a delete marker")
}

// checkVerifyNames: bwc verify -recording fails, naming the key with what.
func checkVerifyNames(t *testing.T, cfg Config, rec index.Recording, key, what string) {
	t.Helper()
	var out bytes.Buffer
	err := verify(context.Background(), []string{"-recording", rec.ID.String(), "-database-url", cfg.DatabaseURL,
		"-s3-endpoint", cfg.S3Endpoint, "-s3-access-key", cfg.S3AccessKey, "-s3-secret-key", cfg.S3SecretKey, "-s3-bucket", cfg.S3Bucket, "-signing-key", cfg.SigningKey}, &out)
	if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(out.String(), "("+key+"): ") || !strings.Contains(out.String(), what) {
		t.Fatalf("bwc verify: err = %v, report:\n%s\nwant a failure naming %s: %q", err, out.String(), key, what)
	}
}

// checkSegmentServed: the segment route and the playlist's first media
// segment both serve the indexed bytes of seg (segment 0).
func checkSegmentServed(t *testing.T, base, token string, seg index.Segment, after string) {
	t.Helper()
	playlist := getText(t, base+"/hls.m3u8", token)
	var uri string
	for _, l := range strings.Split(playlist, "\n") {
		if strings.HasSuffix(l, ".m4s") {
			uri = l
			break
		}
	}
	if uri != "segments/000000.m4s" {
		t.Fatalf("after %s: first media segment of the playlist %q:\n%s", after, uri, playlist)
	}
	for _, url := range []string{base + "/segments/000000.m4s", base + "/" + uri} {
		b := getBytes(t, url, token)
		if sum := sha256.Sum256(b); !bytes.Equal(sum[:], seg.SHA256) || int64(len(b)) != seg.Size {
			t.Fatalf("after %s: GET %s served %d bytes (%q...), want the indexed %d", after, url, len(b), b[:min(len(b), 30)], seg.Size)
		}
	}
}

func getBytes(t *testing.T, url, token string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %s", url, res.StatusCode, err, b)
	}
	return b
}
