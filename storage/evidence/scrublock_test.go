package evidence_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/evidence"
)

// TestOneNodeVerifies: two scrubbers ("nodes") on one database: while the
// first verifies (it holds the job lock), the second re-reads nothing;
// once the first stops, the second takes the job over.
func TestOneNodeVerifies(t *testing.T) {
	_, db, store, _, _ := archived(t, 3)
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	a, err := evidence.NewScrubber(scrubConfig(scrubRate), db, store, sealPub, regA, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := evidence.NewScrubber(scrubConfig(scrubRate), db, store, sealPub, regB, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctxA, stopA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- a.Run(ctxA) }()
	defer func() { stopA(); <-doneA }()
	mediatest.Eventually(t, "a pass by the first node", func() bool { return metric(t, regA, "bwc_evidence_verify_passes_total") >= 1 })

	ctxB, stopB := context.WithCancel(context.Background())
	doneB := make(chan error, 1)
	go func() { doneB <- b.Run(ctxB) }()
	defer func() { stopB(); <-doneB }()
	passes := metric(t, regA, "bwc_evidence_verify_passes_total")
	mediatest.Eventually(t, "two more passes by the first node", func() bool {
		return metric(t, regA, "bwc_evidence_verify_passes_total") >= passes+2
	})
	time.Sleep(1500 * time.Millisecond) // past the second node's RetryMax: it tried the lock again
	if got := metric(t, regB, "bwc_evidence_verified_bytes_total"); got != 0 {
		t.Fatalf("the second node re-read %v bytes while the first verified", got)
	}

	stopA()
	<-doneA
	doneA <- nil // for the deferred stop
	mediatest.Eventually(t, "the second node takes over", func() bool { return metric(t, regB, "bwc_evidence_verify_passes_total") >= 1 })
}
