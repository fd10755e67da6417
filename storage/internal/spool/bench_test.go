package spool

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/storage/internal/segmenter"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// BenchmarkFragmentWrite is the spool writer alone: one op is one durable
// fragment of 1 s of 2 Mbit/s video (250 kB: written, fsynced, logged in
// the .frags file, fsynced, hashed), with a segment begun and sealed every
// 4 fragments as the archive does by default.
func BenchmarkFragmentWrite(b *testing.B) {
	w, err := Open(b.TempDir(), RecMeta{Recording: recID, StartedAt: t0}, func(string) {})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Init(0, initData(0)); err != nil {
		b.Fatal(err)
	}
	frag := make([]byte, 250_000)
	rand.Read(frag)
	const perSegment = 4
	b.ReportAllocs()
	b.SetBytes(int64(len(frag)))
	cpu := storagetest.CPUTime(b)
	b.ResetTimer()
	for i := range b.N {
		at := time.Duration(i) * time.Second
		if i%perSegment == 0 {
			if err := w.Begin(segmenter.Header{StartDTS: at, StartWall: t0.Add(at)}); err != nil {
				b.Fatal(err)
			}
		}
		end := segmenter.End{DTS: at + time.Second, Wall: t0.Add(at + time.Second)}
		if err := w.Fragment(frag, end); err != nil {
			b.Fatal(err)
		}
		if i%perSegment == perSegment-1 || i == b.N-1 {
			if err := w.Seal(end); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	storagetest.ReportPerVideoSecond(b, cpu, time.Duration(b.N)*time.Second)
}
