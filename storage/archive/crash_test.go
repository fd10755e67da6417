package archive

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/evidence"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

const crashChildEnv = "BWC_ARCHIVE_CRASH_CHILD"

// crashSpeed: the child feeds media at this multiple of real time, so the
// test takes a few seconds.
const crashSpeed = 2

// crashChild is the archive process the crash test SIGKILLs: it archives
// one recording, printing "FED <dts-ns>" after each frame it hands over.
func crashChild() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "crash child:", err); return 3 }
	ctx := context.Background()
	db, err := index.Open(ctx, os.Getenv("BWC_CRASH_DB"))
	if err != nil {
		return fail(err)
	}
	store, err := blob.Open(blob.Config{Endpoint: os.Getenv("BWC_TEST_S3_ENDPOINT"), AccessKey: os.Getenv("BWC_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("BWC_TEST_S3_SECRET_KEY"), Bucket: os.Getenv("BWC_CRASH_BUCKET"), RetentionMode: blob.Governance})
	if err != nil {
		return fail(err)
	}
	s, err := mediatest.Decode(mediatest.Path())
	if err != nil {
		return fail(err)
	}
	var info media.Info
	info.RecordingID = uuid.MustParse(os.Getenv("BWC_CRASH_REC"))
	info.StartedAt, _ = time.Parse(time.RFC3339Nano, os.Getenv("BWC_CRASH_START"))
	info.Tracks = []*media.Track{s.Video, s.Audio}
	cfg := configWith(os.Getenv("BWC_CRASH_SPOOL"))
	a, err := New(cfg, db, store, sealKey, nil, nil)
	if err != nil {
		return fail(err)
	}
	go a.Run(ctx)
	st := media.NewStream(info)
	a.Attach(st)
	out := bufio.NewWriter(os.Stdout)
	// plays until the parent kills us
	_ = s.Play(ctx, crashSpeed, 0, func(f *media.Frame) error {
		st.Write(f)
		fmt.Fprintf(out, "FED %d\n", int64(f.DTS))
		return out.Flush()
	})
	return 0
}

// killMidSegment starts the crash child and SIGKILLs it while segment 2
// (or later) is open in recDir with at least 2 durable fragments. It
// returns how far the child had fed media and the open segment.
func killMidSegment(t *testing.T, env []string, recDir string) (time.Duration, int) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), crashChildEnv+"=1"), env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lastFed atomic.Int64
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "FED "); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				lastFed.Store(n)
			}
		}
	}()
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	var openSeq, fragsAtKill int
	mediatest.Eventually(t, "a half-written segment in the child", func() bool {
		openSeq, fragsAtKill = openSegment(recDir)
		return openSeq != 0
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	<-scanned
	cmd.Wait()
	fed := time.Duration(lastFed.Load())
	t.Logf("SIGKILL with segment %d open (%d durable fragments seen), media fed up to %v", openSeq, fragsAtKill, fed)
	return fed, openSeq
}

// openSegment finds an open segment numbered 2 or more with at least 2
// durable fragments; 0 when there is none.
func openSegment(recDir string) (seq, frags int) {
	ents, _ := os.ReadDir(recDir)
	for _, e := range ents {
		if seqS, ok := strings.CutSuffix(e.Name(), ".open.json"); ok {
			n, _ := strconv.Atoi(seqS)
			b, _ := os.ReadFile(filepath.Join(recDir, seqS+".frags"))
			if c := strings.Count(string(b), "\n"); n >= 2 && c >= 2 {
				seq, frags = n, c
			}
		}
	}
	return seq, frags
}

// TestCrashMidRecordingLosesAtMostTheLastFragment runs the archive in a
// child process, SIGKILLs it while a segment is half written, and starts a
// fresh Archive on the same spool: the half-written segment is sealed from
// its durable fragments, everything is uploaded, the chain verifies, and
// at most the last fragment (plus the frames in flight in memory) is lost.
func TestCrashMidRecordingLosesAtMostTheLastFragment(t *testing.T) {
	s := mediatest.Load(t)
	dbURL := storagetest.DatabaseURL(t)
	ctx := context.Background()
	db, err := index.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	store := storagetest.NewStore(t)
	start := time.Now().UTC().Truncate(time.Millisecond)
	info := storagetest.NewRecording(t, db, s, start)
	cfg := testConfig(t)

	env := []string{"BWC_CRASH_DB=" + storagetest.AppURL(t, dbURL), "BWC_CRASH_BUCKET=" + store.Bucket(), "BWC_CRASH_REC=" + info.RecordingID.String(),
		"BWC_CRASH_START=" + start.Format(time.RFC3339Nano), "BWC_CRASH_SPOOL=" + cfg.SpoolDir}
	fed, openSeq := killMidSegment(t, env, filepath.Join(cfg.SpoolDir, info.RecordingID.String()))

	a := runArchive(t, cfg, db, store) // recovers the spool before Ready
	rec := a.Recovered()
	if len(rec) != 1 || len(rec[0].Sealed) != 1 || rec[0].Sealed[0] < uint64(openSeq) || rec[0].Fragments[0] < 1 {
		t.Fatalf("recovered %+v, want the open segment %d sealed", rec, openSeq)
	}
	t.Logf("recovery sealed segment %d from %d fragments, dropped %d torn bytes", rec[0].Sealed[0], rec[0].Fragments[0], rec[0].Truncated[0])
	storagetest.WaitSpoolEmpty(t, a.cfg.SpoolDir, info.RecordingID)

	segs, err := db.Segments(ctx, info.RecordingID)
	if err != nil {
		t.Fatal(err)
	}
	for i, sg := range segs {
		if sg.Seq != int64(i) {
			t.Fatalf("seq hole at %d", i)
		}
		if i > 0 && sg.StartDTS > segs[i-1].EndDTS+time.Millisecond {
			t.Errorf("media lost between segments %d and %d", i-1, i)
		}
	}
	last := segs[len(segs)-1]
	if !last.Recovered || last.Seq != int64(rec[0].Sealed[0]) {
		t.Errorf("last segment %d recovered=%v", last.Seq, last.Recovered)
	}
	lost := fed - last.EndDTS
	t.Logf("media lost by the crash: %v (fragment duration %v)", lost, cfg.FragmentDuration)
	// the fragment being written, plus what was still in memory (ring,
	// segmenter) when the kill landed: bounded by one fragment and a margin
	// for scheduling on a loaded machine.
	if lost > cfg.FragmentDuration+time.Second {
		t.Errorf("crash lost %v of media, want at most one fragment (%v) plus in-flight frames", lost, cfg.FragmentDuration)
	}
	rep, err := evidence.VerifyAnchored(ctx, db, store, sealPub, []uuid.UUID{info.RecordingID})
	if err != nil || !rep.OK() {
		var b strings.Builder
		rep.Write(&b)
		t.Fatalf("verify after recovery: %v\n%s", err, b.String())
	}
	mediatest.DecodeDuration(t, storagetest.Download(t, db, store, info.RecordingID))
}
