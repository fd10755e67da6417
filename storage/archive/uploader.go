package archive

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/durable"
	"github.com/bwcplatform/bwc/storage/internal/spool"
)

type uploadDone struct {
	dir string
	err error
}

// Run recovers the spool left by a previous run (then Ready is closed)
// and uploads it until ctx ends: each recording's directory is handled by
// one worker at a time, init segments first, then media segments in
// sequence order. A failing directory is retried after its own
// durable.Backoff (BackoffMin doubling up to BackoffMax). Alongside, the stuck-evidence
// alarm and reconciliation run; Run returns once all of it has stopped.
func (a *Archive) Run(ctx context.Context) error {
	if err := a.recover(); err != nil {
		return err
	}
	close(a.ready)
	var wg sync.WaitGroup
	wg.Go(func() { a.watchStuck(ctx) })
	wg.Go(func() { a.reconcileLoop(ctx) })
	defer wg.Wait()
	a.upload(ctx)
	return nil
}

// upload hands ready recording directories to UploadWorkers workers until
// ctx ends, then waits for them. The directories it looks at are those
// kicked (kickDir), those whose retry is due and, at start and every
// ReconcileEvery, every one in the spool: an event costs the directories
// it concerns, not a read of the whole spool.
func (a *Archive) upload(ctx context.Context) {
	work := make(chan string)
	done := make(chan uploadDone, a.cfg.UploadWorkers)
	var workers sync.WaitGroup
	for range a.cfg.UploadWorkers {
		workers.Go(func() {
			for dir := range work {
				done <- uploadDone{dir: dir, err: a.uploadDir(ctx, dir)}
			}
		})
	}
	todo := map[string]bool{} // directories to look at
	busy := map[string]bool{}
	retryAt := map[string]time.Time{}
	backoff := map[string]*durable.Backoff{} // one per failing recording directory
	tick := time.NewTicker(a.cfg.ScanInterval)
	defer tick.Stop()
	remeasure := time.NewTicker(a.cfg.ReconcileEvery)
	defer remeasure.Stop()
	rescan := true
	for {
		if rescan {
			a.listSpool(todo)
			rescan = false
		}
		for dir := range a.takeKicked() {
			todo[dir] = true
		}
		a.dispatch(work, todo, busy, retryAt)
		select {
		case <-ctx.Done():
			close(work)
			drain(done, &workers)
			return
		case now := <-tick.C:
			for dir, at := range retryAt {
				if !now.Before(at) { // due: looked at once (a new failure sets a new time)
					todo[dir] = true
					delete(retryAt, dir)
				}
			}
		case <-remeasure.C:
			a.remeasureSpool()
			rescan = true
		case <-a.kick:
		case d := <-done:
			delete(busy, d.dir)
			a.finished(ctx, d, backoff, retryAt)
		}
	}
}

// listSpool adds every recording directory of the spool to todo.
func (a *Archive) listSpool(todo map[string]bool) {
	ents, err := os.ReadDir(a.cfg.SpoolDir)
	if err != nil {
		a.log.Error("archive: read spool", "err", err)
		return
	}
	for _, e := range ents {
		if _, err := uuid.Parse(e.Name()); err == nil && e.IsDir() {
			todo[filepath.Join(a.cfg.SpoolDir, e.Name())] = true
		}
	}
}

// drain receives the workers' last results until they have all stopped.
func drain(done <-chan uploadDone, workers *sync.WaitGroup) {
	stopped := make(chan struct{})
	go func() { workers.Wait(); close(stopped) }()
	for {
		select {
		case <-done:
		case <-stopped:
			return
		}
	}
}

// finished records a directory's upload result: a failure is retried after
// the directory's next backoff; a success forgets it.
func (a *Archive) finished(ctx context.Context, d uploadDone, backoff map[string]*durable.Backoff, retryAt map[string]time.Time) {
	a.stuck.failed(d.dir, d.err)
	if d.err == nil {
		delete(backoff, d.dir)
		delete(retryAt, d.dir)
		return
	}
	b := backoff[d.dir]
	if b == nil {
		b = &durable.Backoff{Min: a.cfg.BackoffMin, Max: a.cfg.BackoffMax}
		backoff[d.dir] = b
	}
	wait := b.Next()
	retryAt[d.dir] = time.Now().Add(wait)
	a.m.errors.WithLabelValues("upload").Inc()
	if ctx.Err() == nil {
		a.log.Warn("archive: upload failed, retrying", "recording", filepath.Base(d.dir), "retry_in", wait, "err", d.err)
	}
}

// dispatch raises or clears the spool alarm, then hands the ready
// directories of todo to idle workers. A directory being uploaded stays in
// todo (it was kicked again meanwhile: looked at once its upload is done);
// one waiting for its retry leaves it (the retry puts it back).
func (a *Archive) dispatch(work chan<- string, todo, busy map[string]bool, retryAt map[string]time.Time) {
	a.alarmOnSize()
	now := time.Now()
	for dir := range todo {
		if busy[dir] {
			continue
		}
		if now.Before(retryAt[dir]) || !ready(dir) {
			delete(todo, dir)
			continue
		}
		select {
		case work <- dir:
			busy[dir] = true
			delete(todo, dir)
		default:
			return // every worker busy
		}
	}
}

// ready reports whether a recording directory has something to upload or
// can be removed.
func ready(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	ended, other := false, false
	for _, e := range ents {
		n := e.Name()
		switch {
		case n == "ended":
			ended = true
		case n == "rec.json" || n == "state.json":
		case strings.HasSuffix(n, ".json") && !strings.HasSuffix(n, ".open.json"):
			return true
		default:
			other = true
		}
	}
	return ended && !other
}

// uploadDir uploads everything sealed in one recording's directory, in
// order, and when the recording has ended and nothing is left, writes its
// seal (seal.go) and removes the directory.
func (a *Archive) uploadDir(ctx context.Context, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var inits []int
	var segs []uint64
	ended := false
	for _, e := range ents {
		n := e.Name()
		switch {
		case n == "ended":
			ended = true
		case strings.HasPrefix(n, "init-") && strings.HasSuffix(n, ".json"):
			if i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(n, "init-"), ".json")); err == nil {
				inits = append(inits, i)
			}
		case strings.HasSuffix(n, ".json") && !strings.HasSuffix(n, ".open.json") && n != "rec.json" && n != "state.json":
			if s, err := strconv.ParseUint(strings.TrimSuffix(n, ".json"), 10, 64); err == nil {
				segs = append(segs, s)
			}
		}
	}
	sort.Ints(inits)
	sort.Slice(segs, func(i, j int) bool { return segs[i] < segs[j] })
	for _, n := range inits {
		if err := a.uploadInit(ctx, dir, n); err != nil {
			return err
		}
	}
	for _, s := range segs {
		if err := a.uploadSegment(ctx, dir, s); err != nil {
			return err
		}
	}
	if ended && ready(dir) {
		if err := a.sealSpooled(ctx, dir); err != nil {
			return err
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		a.remeasureSpool() // what the running count does not follow (metadata) left with the folder
		return durable.SyncDir(a.cfg.SpoolDir)
	}
	return nil
}

func (a *Archive) uploadInit(ctx context.Context, dir string, n int) error {
	base := filepath.Join(dir, fmt.Sprintf("init-%d", n))
	mb, err := os.ReadFile(base + ".json")
	if err != nil {
		return err
	}
	m, err := spool.ParseInitMeta(mb)
	if err != nil {
		return fmt.Errorf("%s.json: %w", base, err)
	}
	held, err := a.db.Held(ctx, m.RecordingID)
	if err != nil {
		return err
	}
	meta := map[string]string{"Bwc-Recording": m.RecordingID.String(), "Bwc-Init": strconv.Itoa(m.N)}
	if m.VersionID, err = a.putObject(ctx, m.Key, base+".mp4", m.Size, m.SHA256, meta, held, "video/mp4"); err != nil {
		return fmt.Errorf("archive init segment %d of %s: %w", n, m.RecordingID, err)
	}
	if err := a.db.PutInitSegment(ctx, m); err != nil {
		return err
	}
	if err := a.holdAfterIndex(ctx, m.RecordingID, m.Key, m.VersionID, held); err != nil {
		return err
	}
	a.m.uploaded.WithLabelValues("init").Inc()
	return a.unspool(dir, base+".json", base+".mp4")
}

func (a *Archive) uploadSegment(ctx context.Context, dir string, seq uint64) error {
	base := filepath.Join(dir, fmt.Sprintf("%06d", seq))
	mb, err := os.ReadFile(base + ".json")
	if err != nil {
		return err
	}
	m, err := spool.ParseSegMeta(mb)
	if err != nil {
		return fmt.Errorf("%s.json: %w", base, err)
	}
	held, err := a.db.Held(ctx, m.RecordingID)
	if err != nil {
		return err
	}
	meta := map[string]string{
		"Bwc-Recording":  m.RecordingID.String(),
		"Bwc-Seq":        strconv.FormatInt(m.Seq, 10),
		"Bwc-Chain":      hex.EncodeToString(m.Chain),
		"Bwc-Prev-Chain": hex.EncodeToString(m.PrevChain),
	}
	if m.VersionID, err = a.putObject(ctx, m.Key, base+".m4s", m.Size, m.SHA256, meta, held, "video/iso.segment"); err != nil {
		return fmt.Errorf("archive segment %d of %s: %w", m.Seq, m.RecordingID, err)
	}
	if err := a.db.PutSegment(ctx, m); err != nil {
		return err
	}
	if err := a.holdAfterIndex(ctx, m.RecordingID, m.Key, m.VersionID, held); err != nil {
		return err
	}
	a.m.uploaded.WithLabelValues("segment").Inc()
	a.m.lag.Observe(time.Since(m.SealedAt).Seconds())
	return a.unspool(dir, base+".json", base+".m4s")
}

// holdAfterIndex closes the race with Hold: a hold placed after the object
// went up without one but before its row existed is applied here.
func (a *Archive) holdAfterIndex(ctx context.Context, rec uuid.UUID, key, version string, heldBefore bool) error {
	if heldBefore {
		return nil
	}
	held, err := a.db.Held(ctx, rec)
	if err != nil || !held {
		return err
	}
	return a.blobs.SetLegalHold(ctx, key, version, true)
}

// unspool removes uploaded files: the metadata first, so that a crash in
// between leaves data without metadata, which nothing uploads twice.
func (a *Archive) unspool(dir string, meta, data string) error {
	var n int64
	if fi, err := os.Stat(data); err == nil {
		n = fi.Size()
	}
	if err := os.Remove(meta); err != nil {
		return err
	}
	if err := os.Remove(data); err != nil {
		return err
	}
	a.spoolBytes.Add(-n)
	return durable.SyncDir(dir)
}

// putObject stores the spooled file path (size bytes of SHA-256 sum, as the
// spool recorded them while writing it) once through the one evidence
// writer (blob.PutEvidence): with its SHA-256 as the S3 checksum,
// retention and, when the recording is held, a legal hold. An object
// already there with the same SHA-256 (a retry after a crash) is success;
// with another one it is ErrObjectConflict and nothing is written. It
// returns the object's version ID.
//
// The file is streamed, not hashed again here: the store verifies the
// body against sum, so a file that local disk corruption changed since it
// was spooled is refused (blob.ErrChecksum) and nothing is written. The
// spool's hash is the segment's one SHA-256 pass on this side.
func (a *Archive) putObject(ctx context.Context, key, path string, size int64, sum []byte, meta map[string]string, held bool, ctype string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := a.blobs.PutEvidence(ctx, blob.Evidence{Key: key, Body: f, Size: size, SHA256: sum,
		ContentType: ctype, Metadata: meta, RetainUntil: time.Now().Add(a.cfg.Retention), LegalHold: held})
	if errors.Is(err, blob.ErrChecksum) {
		return "", fmt.Errorf("spool file %s does not match its recorded SHA-256 (local disk corruption?): %w", path, err)
	}
	if err != nil {
		return "", err
	}
	return st.VersionID, nil
}

// alarmOnSize raises or clears the spool alarm on the spool's running
// size.
func (a *Archive) alarmOnSize() {
	n := a.spoolBytes.Load()
	a.m.spoolBytes.Set(float64(n))
	over := n > a.cfg.SpoolAlarmBytes
	if over != a.alarm.Swap(over) {
		if over {
			a.m.alarm.Set(1)
			a.log.Error("archive: spool above alarm size: uploads are failing or behind", "spool", a.cfg.SpoolDir, "bytes", n, "alarm_bytes", a.cfg.SpoolAlarmBytes)
		} else {
			a.m.alarm.Set(0)
			a.log.Info("archive: spool back under alarm size", "bytes", n)
		}
	}
}
