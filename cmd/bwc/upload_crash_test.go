package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/index"
)

// TestUploadCrashMatrix: an upload's last byte arrives while MinIO is
// unreachable, or while the index refuses the upload's row (after the
// object is written); the client is told it was received and is being
// stored (202); bwc serve is killed with SIGKILL; the fault is repaired and
// the server started again: the upload is stored exactly once (one row, one
// object version, the bytes right), the upload folder is empty and /readyz
// is ready.
func TestUploadCrashMatrix(t *testing.T) {
	clip, err := os.ReadFile(filepath.Join("..", "..", "ingest", "upload", "testdata", "seed.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(clip)
	for _, c := range []struct {
		name          string
		fault, repair func(t *testing.T, w *crashWorld)
	}{
		{
			name:   "minio down while the upload completes",
			fault:  func(t *testing.T, w *crashWorld) { w.s3.setDown(true) },
			repair: func(t *testing.T, w *crashWorld) { w.s3.setDown(false) },
		},
		{
			name:   "index refuses the upload's row after its object is written",
			fault:  func(t *testing.T, w *crashWorld) { w.superExec(t, `REVOKE INSERT ON uploads FROM bwc_app`) },
			repair: func(t *testing.T, w *crashWorld) { w.superExec(t, `GRANT INSERT ON uploads TO bwc_app`) },
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			w := newCrashWorld(t)
			if _, err := w.db.CreateUser(ctx, index.User{Login: "off-crash", Role: index.RoleOfficer, OfficerID: &w.officer.ID},
				"long-enough-password"); err != nil {
				t.Fatal(err)
			}
			w.srv.start()
			base := "http://" + w.srv.http
			s := loginAs(t, base, "off-crash", "long-enough-password")
			do := func(method, url string, body []byte, h map[string]string) *http.Response {
				req, _ := http.NewRequest(method, url, bytes.NewReader(body))
				req.AddCookie(s.cookie)
				req.Header.Set("X-CSRF-Token", s.csrf)
				req.Header.Set("Tus-Resumable", "1.0.0")
				for k, v := range h {
					req.Header.Set(k, v)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				return res
			}
			md := "filename " + base64.StdEncoding.EncodeToString([]byte("crash.mp4")) + ",incident " +
				base64.StdEncoding.EncodeToString([]byte(w.inc.Number))
			res := do("POST", base+"/api/uploads/", nil, map[string]string{"Upload-Length": strconv.Itoa(len(clip)), "Upload-Metadata": md})
			if res.StatusCode != http.StatusCreated {
				t.Fatalf("create: %d", res.StatusCode)
			}
			loc := res.Header.Get("Location")
			c.fault(t, w)
			res = do("PATCH", loc, clip, map[string]string{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
			if res.StatusCode != http.StatusAccepted || res.Header.Get("X-BWC-Upload-Status") != "storing" {
				t.Fatalf("last PATCH: %d %v\n%s", res.StatusCode, res.Header, w.srv.output())
			}
			w.srv.kill9()
			if left, _ := os.ReadDir(w.cfg.UploadDir); len(left) == 0 {
				t.Fatal("the received upload is not on disk after the kill")
			}
			c.repair(t, w)
			w.srv.start()

			var ups []index.Upload
			for end := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				ups, _ = w.db.Uploads(ctx, "")
				left, _ := os.ReadDir(w.cfg.UploadDir)
				if len(ups) > 0 && len(left) == 0 {
					break
				}
				if time.Now().After(end) {
					t.Fatalf("not stored after the restart: rows %+v, left %v\n%s", ups, left, w.srv.output())
				}
			}
			if len(ups) != 1 || ups[0].TusID != loc[strings.LastIndex(loc, "/")+1:] || !bytes.Equal(ups[0].SHA256, sum[:]) {
				t.Fatalf("uploads = %+v", ups)
			}
			cl := w.client(t)
			var versions []minio.ObjectInfo
			for o := range cl.ListObjects(ctx, w.cfg.S3Bucket, minio.ListObjectsOptions{Prefix: "uploads/", Recursive: true, WithVersions: true}) {
				if o.Err != nil {
					t.Fatal(o.Err)
				}
				versions = append(versions, o)
			}
			if len(versions) != 1 || versions[0].Key != ups[0].Key {
				t.Fatalf("object versions under uploads/: %+v", versions)
			}
			o, err := cl.GetObject(ctx, w.cfg.S3Bucket, ups[0].Key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			io.Copy(h, o)
			o.Close()
			if got := hex.EncodeToString(h.Sum(nil)); got != hex.EncodeToString(sum[:]) {
				t.Fatalf("object's SHA-256 %s", got)
			}
			for end := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				code, body := w.srv.ready()
				if code == http.StatusOK {
					break
				}
				if time.Now().After(end) {
					t.Fatalf("/readyz after the restart: %d %s", code, body)
				}
			}
		})
	}
}
