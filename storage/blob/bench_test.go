package blob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// BenchmarkPutEvidence is the archive's upload of one media segment (4 s of
// 2 Mbit/s video: 1 MB) to the real MinIO: one op is one PutEvidence of a
// new key. cpu-ns/video-s is this process's CPU only (MinIO's own is not
// measured here).
func BenchmarkPutEvidence(b *testing.B) {
	s := storagetest.NewStore(b)
	ctx := context.Background()
	data := make([]byte, 1_000_000)
	rand.Read(data)
	sum := sha256.Sum256(data)
	const segment = 4 * time.Second
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	cpu := storagetest.CPUTime(b)
	b.ResetTimer()
	for i := range b.N {
		_, err := s.PutEvidence(ctx, blob.Evidence{Key: fmt.Sprintf("bench/%06d.m4s", i), Body: bytes.NewReader(data), Size: int64(len(data)),
			SHA256: sum[:], ContentType: "video/iso.segment", RetainUntil: time.Now().Add(time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	storagetest.ReportPerVideoSecond(b, cpu, time.Duration(b.N)*segment)
}
