package evidence_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// scrubRate re-reads the tests' few MB several times a second.
const scrubRate = 36 << 30 // about 10 MB/s

// TestScrubberAlarm: background verification finds an archived segment
// whose index row was edited (its SHA-256, with superuser SQL): the
// problems gauge, an error log naming the recording and Check naming the
// segment; once the row is restored a later pass clears all three.
func TestScrubberAlarm(t *testing.T) {
	ctx := context.Background()
	_, db, store, rec, segs := archived(t, 3)
	reg := prometheus.NewRegistry()
	var logs syncBuffer
	s, err := evidence.NewScrubber(scrubConfig(scrubRate), db, store, sealPub, reg,
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, s)
	mediatest.Eventually(t, "a clean pass", func() bool { return metric(t, reg, "bwc_evidence_verify_passes_total") >= 1 })
	if err := s.Check(ctx); err != nil || metric(t, reg, "bwc_evidence_verify_problems") != 0 || metric(t, reg, "bwc_evidence_verified_bytes_total") == 0 {
		t.Fatalf("intact archive: Check %v, problems %v, bytes %v", err, metric(t, reg, "bwc_evidence_verify_problems"), metric(t, reg, "bwc_evidence_verified_bytes_total"))
	}

	seg := segs[1]
	su := storagetest.Superuser(t, db)
	edit := func(sha []byte) {
		if _, err := su.Exec(ctx, `UPDATE segments SET sha256 = $1 WHERE recording_id = $2 AND seq = $3`, sha, rec, seg.Seq); err != nil {
			t.Fatal(err)
		}
	}
	forged := bytes.Repeat([]byte{0xee}, 32)
	edit(forged)
	mediatest.Eventually(t, "the alarm", func() bool { return metric(t, reg, "bwc_evidence_verify_problems") >= 1 })
	err = s.Check(ctx)
	if !errors.Is(err, evidence.ErrDamaged) || !strings.Contains(err.Error(), "segment 000001 ("+seg.Key+")") {
		t.Fatalf("Check = %v; want ErrDamaged naming segment 1 (%s)", err, seg.Key)
	}
	if ps := s.Problems(); !slices.ContainsFunc(ps, func(p evidence.Problem) bool {
		return p.Recording == rec && p.Seq == seg.Seq && strings.HasPrefix(p.What, "SHA-256 mismatch")
	}) {
		t.Fatalf("problems %v; want segment 1's SHA-256 mismatch", ps)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "recording="+rec.String()) || !strings.Contains(l, "key="+seg.Key) {
		t.Fatalf("log:\n%s\nwant an error naming recording %s and key %s", l, rec, seg.Key)
	}

	edit(seg.SHA256)
	mediatest.Eventually(t, "the alarm cleared", func() bool { return metric(t, reg, "bwc_evidence_verify_problems") == 0 })
	if err := s.Check(ctx); err != nil {
		t.Fatalf("after the row is restored: Check = %v", err)
	}
	if !strings.Contains(logs.String(), "intact again") {
		t.Fatalf("log:\n%s\nwant the clearing logged", logs.String())
	}
}

// TestScrubberChecksSeals: the newest segment's row deleted (superuser
// SQL) leaves no hole Verify could see; the scrubber's pass over the seals
// names the recording and the missing segment, and clears once the row is
// back.
func TestScrubberChecksSeals(t *testing.T) {
	ctx := context.Background()
	_, db, store, rec, segs := archived(t, 3)
	last := segs[len(segs)-1]
	reg := prometheus.NewRegistry()
	s, err := evidence.NewScrubber(scrubConfig(scrubRate), db, store, sealPub, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, s)
	mediatest.Eventually(t, "a clean pass", func() bool { return metric(t, reg, "bwc_evidence_verify_passes_total") >= 1 })
	if err := s.Check(ctx); err != nil {
		t.Fatalf("intact and sealed: %v", err)
	}
	su := storagetest.Superuser(t, db)
	for _, q := range []string{`CREATE TEMP TABLE kept AS SELECT * FROM segments WHERE recording_id = $1 AND seq = $2`,
		`DELETE FROM segments WHERE recording_id = $1 AND seq = $2`} {
		if _, err := su.Exec(ctx, q, rec, last.Seq); err != nil {
			t.Fatal(err)
		}
	}
	mediatest.Eventually(t, "the alarm", func() bool { return metric(t, reg, "bwc_evidence_verify_problems") >= 1 })
	if ps := s.Problems(); !slices.ContainsFunc(ps, func(p evidence.Problem) bool {
		return p.Recording == rec && p.Kind() == "seal" && p.Missing != nil && p.Missing.From == last.Seq
	}) {
		t.Fatalf("problems %v; want recording %s's segment %d missing against its seal", ps, rec, last.Seq)
	}
	if _, err := su.Exec(ctx, `INSERT INTO segments SELECT * FROM kept`); err != nil {
		t.Fatal(err)
	}
	mediatest.Eventually(t, "the alarm cleared", func() bool { return metric(t, reg, "bwc_evidence_verify_problems") == 0 })
	if err := s.Check(ctx); err != nil {
		t.Fatalf("row back: Check = %v", err)
	}
}

// NewScrubber refuses a negative budget naming it, and a budget without
// the public key for the seals; 0 is off: Run verifies
// nothing and returns when its context ends.
func TestScrubberConfig(t *testing.T) {
	if _, err := evidence.NewScrubber(scrubConfig(-1), nil, nil, sealPub, nil, nil); !errors.Is(err, evidence.ErrConfig) || !strings.Contains(err.Error(), "BytesPerHour") {
		t.Fatalf("negative budget: %v; want ErrConfig naming BytesPerHour", err)
	}
	if _, err := evidence.NewScrubber(scrubConfig(1<<30), nil, nil, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "public key") {
		t.Fatalf("no public key: %v; want an error naming it", err)
	}
	if _, err := evidence.NewScrubber(evidence.ScrubConfig{RetryMin: time.Second}, nil, nil, sealPub, nil, nil); !errors.Is(err, evidence.ErrConfig) || !strings.Contains(err.Error(), "RetryMax") {
		t.Fatalf("no retry cap: %v; want ErrConfig naming RetryMax", err)
	}
	reg := prometheus.NewRegistry()
	s, err := evidence.NewScrubber(scrubConfig(0), nil, nil, nil, reg, nil) // off: never touches db or store
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	cancel()
	if err := <-done; err != nil || metric(t, reg, "bwc_evidence_verify_passes_total") != 0 {
		t.Fatalf("off: Run = %v, passes %v", err, metric(t, reg, "bwc_evidence_verify_passes_total"))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// metric is the value of a metric without labels in reg (0 when absent).
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	return 0
}

// syncBuffer is a log sink the scrubber writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// scrubConfig is a valid configuration re-reading rate bytes an hour.
func scrubConfig(rate int64) evidence.ScrubConfig {
	return evidence.ScrubConfig{BytesPerHour: rate, RetryMin: 10 * time.Millisecond, RetryMax: time.Second}
}
