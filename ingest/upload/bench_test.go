package upload

import (
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// BenchmarkUploadThroughput uploads one file (BWC_UPLOAD_BENCH_MB, 1024 by
// default) through the tus endpoint on loopback (SHA-256 on arrival,
// probe, object-locked PutObject, index) and the same file with a plain
// PutObject to MinIO, in the same run, and reports both rates and their
// ratio. Run: go test -run '^$' -bench UploadThroughput -benchtime 1x ./ingest/upload/
func BenchmarkUploadThroughput(b *testing.B) {
	mb := int64(1024)
	if v, err := strconv.ParseInt(os.Getenv("BWC_UPLOAD_BENCH_MB"), 10, 64); err == nil && v > 0 {
		mb = v
	}
	e := newEnv(b)
	path := video(b, time.Now().Add(-time.Hour), mb<<20)
	st, _ := os.Stat(path)
	ctx := context.Background()
	// one pass whatever b.N: a second pass of the same file would be a
	// duplicate, not an upload; the one pass is the measurement
	start := time.Now()
	loc, code := create(b, e, st.Size(), meta("filename", "bench.mp4"))
	if code != http.StatusCreated {
		b.Fatalf("create: %d %s", code, loc)
	}
	res := send(b, loc, path, nil)
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b.Fatalf("upload: %d", res.StatusCode)
	}
	tusTime := time.Since(start)

	f, _ := os.Open(path)
	start = time.Now()
	if _, err := e.store.Client().PutObject(ctx, e.store.Bucket(), "bench/plain.mp4", f, st.Size(), minio.PutObjectOptions{}); err != nil {
		b.Fatal(err)
	}
	putTime := time.Since(start)
	f.Close()
	mbs := float64(st.Size()) / 1e6
	b.ReportMetric(mbs/tusTime.Seconds(), "upload-MB/s")
	b.ReportMetric(mbs/putTime.Seconds(), "putobject-MB/s")
	b.ReportMetric(putTime.Seconds()/tusTime.Seconds(), "ratio")
}
