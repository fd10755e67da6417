package evidence_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/archive"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// TestRecordingInTwoParts: a recording archived by node A (part 0), taken
// over by node B within A's grace window and continued there (part 1, its
// own numbers and chain, A's and B's spools apart) verifies clean, seal
// included, whichever node finishes uploading last (a killed node uploads
// its spool when it starts again: the recording is sealed only then); an
// edited row of the second part is named.
func TestRecordingInTwoParts(t *testing.T) {
	for _, aLast := range []bool{false, true} {
		t.Run(fmt.Sprintf("A's part uploaded last %v", aLast), func(t *testing.T) { twoParts(t, aLast) })
	}
}

func twoParts(t *testing.T, aLast bool) {
	ctx := context.Background()
	s := mediatest.Load(t)
	db, store := storagetest.NewDB(t), storagetest.NewStore(t)
	start := time.Now().UTC().Add(-time.Minute)
	info := storagetest.NewRecording(t, db, s, start)
	rec := info.RecordingID
	if _, err := db.Pool().Exec(ctx, `UPDATE recordings SET node_id = 'node-a' WHERE id = $1`, rec); err != nil {
		t.Fatal(err)
	}
	// record archives two passes on node's archive as part; the returned
	// func ends the stream and waits for the spool to be uploaded
	record := func(node string, part int, at time.Time) func() {
		cfg := archiveConfig(t)
		cfg.Node, cfg.SpoolDir = node, filepath.Join(t.TempDir(), node)
		a, err := archive.New(cfg, db, store, sealKey, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		storagetest.Run(t, a)
		in := info
		in.Part = part
		st := media.NewStream(in)
		a.Attach(st)
		storagetest.Feed(st, s.Loop(2, at))
		return func() {
			st.Close()
			storagetest.WaitSpoolEmpty(t, cfg.SpoolDir, rec)
		}
	}
	endA := record("node-a", 0, start)
	// A's camera disconnected; B takes the recording over within A's grace
	if err := db.SetHeldStatus(ctx, rec, "node-a", index.RecordingReconnecting, "", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	c, err := db.TakeOverRecording(ctx, index.TakeOver{Device: info.DeviceID, Node: "node-b", Grace: time.Minute})
	if err != nil || c.Part != 1 || c.Recording.ID != rec {
		t.Fatalf("takeover: %+v %v", c, err)
	}
	endB := record("node-b", 1, start.Add(30*time.Second))
	if !aLast {
		endA() // A lets go: its part is uploaded, the recording is not sealed by A
	}
	if err := db.EndHeld(ctx, rec, "node-b", time.Now()); err != nil {
		t.Fatal(err)
	}
	endB()
	if aLast {
		// B's part is all uploaded, A's is not: no seal yet
		if _, err := db.Seal(ctx, rec); !errors.Is(err, index.ErrNotFound) {
			t.Fatalf("seal while A's part is pending: %v, want none", err)
		}
		endA() // A's spool uploaded: A seals the recording
	}

	segs, err := db.Segments(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	var part1 []index.Segment
	for _, sg := range segs {
		if sg.Seq >= 1<<40 {
			part1 = append(part1, sg)
		}
	}
	if len(part1) < 2 || len(part1) == len(segs) || part1[0].Seq != 1<<40 {
		t.Fatalf("%d segments, %d of part 1 (first %v): want both parts, part 1 from 1<<40", len(segs), len(part1), part1)
	}
	mediatest.Eventually(t, "recording sealed", func() bool {
		ids, err := db.EndedUnsealed(ctx, "node-b", time.Minute)
		return err == nil && len(ids) == 0
	})
	rep, err := evidence.VerifyAnchored(ctx, db, store, sealPub, nil)
	if err != nil || !rep.OK() {
		var out strings.Builder
		rep.Write(&out)
		t.Fatalf("two parts do not verify: %v\n%s", err, out.String())
	}
	if rep.Segments != len(segs) {
		t.Fatalf("verified %d segments, want %d", rep.Segments, len(segs))
	}

	victim := part1[1]
	if _, err := storagetest.Superuser(t, db).Exec(ctx, `UPDATE segments SET ended_at = ended_at + interval '5 seconds' WHERE recording_id = $1 AND seq = $2`, rec, victim.Seq); err != nil {
		t.Fatal(err)
	}
	rep, err = evidence.VerifyAnchored(ctx, db, store, sealPub, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range rep.Problems {
		found = found || (p.Seq == victim.Seq && strings.Contains(p.What, "does not hash to its chain"))
	}
	if !found {
		t.Fatalf("edited row of part 1 (segment %d) not named: %+v", victim.Seq, rep.Problems)
	}
}
