package archive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/internal/spool"
)

// Reconciliation finds evidence that nothing would otherwise archive or
// index, repairs what the data allows and reports the rest:
//
//   - a spool directory of an ended recording whose row does not exist and
//     whose ingest journal (<spool>/journal/<id>.jsonl) cannot supply it:
//     the row is rebuilt from rec.json (device, start), ended at its last
//     spooled segment, bound to the officer wearing the device at its start,
//     linked by the assignment rule and audited as recording.recovered; a
//     directory whose rec.json names no device is reported;
//   - objects under the recording prefixes (YYYY/MM/DD/<id>/...) with no
//     index row and no spooled metadata that will write it: reported;
//   - (full passes: at start) ended recordings fully archived but not
//     sealed: sealed (seal.go).
//
// It runs when the uploader starts and every ReconcileEvery.

// Reconciled is what one reconciliation found.
type Reconciled struct {
	Rebuilt       []uuid.UUID // recording rows rebuilt from the spool
	Sealed        []uuid.UUID // ended, fully archived recordings sealed (full passes only)
	SpoolOrphans  []string    // spool directories without a row that could not be rebuilt (why)
	ObjectOrphans []string    // bucket objects without an index row
}

var objectKeyRE = regexp.MustCompile(`^\d{4}/\d{2}/\d{2}/([0-9a-f-]{36})/(init-\d+\.mp4|\d{6,}\.m4s)$`)

// Reconcile runs one reconciliation of spool, index and the whole bucket.
func (a *Archive) Reconcile(ctx context.Context) (Reconciled, error) { return a.reconcile(ctx, nil) }

// reconcile checks the objects under the given date prefixes (YYYY/MM/DD/),
// or the whole bucket when there are none.
func (a *Archive) reconcile(ctx context.Context, prefixes []string) (Reconciled, error) {
	var out Reconciled
	var errs []error
	ents, err := os.ReadDir(a.cfg.SpoolDir)
	if err != nil {
		return out, fmt.Errorf("reconcile: %w", err)
	}
	for _, e := range ents {
		id, err := uuid.Parse(e.Name())
		if err != nil || !e.IsDir() {
			continue
		}
		dir := filepath.Join(a.cfg.SpoolDir, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "ended")); err != nil {
			continue // live in this process: the ingest writes its row
		}
		if _, err := os.Stat(filepath.Join(a.cfg.SpoolDir, "journal", id.String()+".jsonl")); err == nil {
			continue // the ingest's journal will write it
		}
		_, err = a.db.Recording(ctx, id)
		if err == nil {
			continue
		}
		if !errors.Is(err, index.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		if err := a.rebuildRow(ctx, id, dir); err != nil {
			if errors.Is(err, errCannotRebuild) {
				out.SpoolOrphans = append(out.SpoolOrphans, fmt.Sprintf("%s: %v", id, err))
				a.log.Error("archive: spooled recording has no row and none can be rebuilt: its evidence cannot be indexed", "recording", id, "err", err)
				continue
			}
			errs = append(errs, err)
			continue
		}
		out.Rebuilt = append(out.Rebuilt, id)
	}
	if len(prefixes) == 0 {
		sealed, err := a.sealArchived(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		out.Sealed = sealed
	}
	objs, err := a.orphanObjects(ctx, prefixes)
	if err != nil {
		errs = append(errs, err)
	}
	out.ObjectOrphans = objs
	a.m.orphans.WithLabelValues("spool").Set(float64(len(out.SpoolOrphans)))
	a.m.orphans.WithLabelValues("object").Set(float64(len(out.ObjectOrphans)))
	for _, k := range out.ObjectOrphans {
		a.log.Error("archive: object in the bucket without an index row", "key", k)
	}
	for _, id := range out.Rebuilt {
		a.kickDir(filepath.Join(a.cfg.SpoolDir, id.String()))
	}
	return out, errors.Join(errs...)
}

var errCannotRebuild = errors.New("cannot rebuild the recording's row")

// rebuildRow writes a lost recording row from the spool's metadata.
func (a *Archive) rebuildRow(ctx context.Context, id uuid.UUID, dir string) error {
	rec, err := spool.ReadRecMeta(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", errCannotRebuild, err)
	}
	if rec.DeviceID == uuid.Nil {
		return fmt.Errorf("%w: rec.json names no device", errCannotRebuild)
	}
	end, segs := a.recordedEnd(ctx, id, dir, rec.StartedAt)
	var officer *uuid.UUID
	co, err := a.db.WearerAt(ctx, rec.DeviceID, rec.StartedAt)
	switch {
	case err == nil:
		officer = &co.OfficerID
	case errors.Is(err, index.ErrNotFound):
	default:
		return err
	}
	ended := end
	_, err = a.db.CreateRecording(ctx, index.Recording{ID: id, DeviceID: rec.DeviceID, OfficerID: officer, Source: index.SourceRTSP,
		Status: index.RecordingEnded, StartedAt: rec.StartedAt, EndedAt: &ended}, "reconciliation (recovered)")
	if err != nil && !errors.Is(err, index.ErrConflict) {
		return fmt.Errorf("rebuild recording %s: %w", id, err)
	}
	if _, err := a.db.AutoLink(ctx, id, a.cfg.LinkBuffer); err != nil {
		return fmt.Errorf("rebuild recording %s: link: %w", id, err)
	}
	rid := id
	if _, err := a.db.Audit(ctx, index.AuditEvent{Actor: "system", Role: "system", Action: "recording.recovered",
		ObjectType: "recording", ObjectID: id.String(), RecordingID: &rid,
		Details: map[string]any{"device": rec.DeviceSerial, "device_id": rec.DeviceID.String(), "started_at": rec.StartedAt,
			"ended_at": end, "spooled_segments": segs, "from": "spool rec.json"}}); err != nil {
		return fmt.Errorf("rebuild recording %s: audit: %w", id, err)
	}
	a.m.rebuilt.Inc()
	log := a.log.With("recording", id, "device", rec.DeviceSerial)
	if officer != nil {
		log = log.With("officer", officer.String())
	}
	log.Warn("archive: recording row was missing: rebuilt from the spool (recovered)", "segments", segs, "started_at", rec.StartedAt, "ended_at", end)
	return nil
}

// recordedEnd is the end of a recording's last segment, spooled in dir or
// already indexed (the row was deleted under them), or start when there is
// none; segs counts the spooled ones.
func (a *Archive) recordedEnd(ctx context.Context, id uuid.UUID, dir string, start time.Time) (end time.Time, segs int) {
	end = start
	files, _ := os.ReadDir(dir)
	for _, f := range files {
		n := f.Name()
		if !strings.HasSuffix(n, ".json") || n[0] < '0' || n[0] > '9' || strings.HasSuffix(n, ".open.json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		if m, err := spool.ParseSegMeta(b); err == nil {
			segs++
			if m.EndedAt.After(end) {
				end = m.EndedAt
			}
		}
	}
	if spans, err := a.db.Segments(ctx, id); err == nil {
		for _, s := range spans {
			if s.EndedAt.After(end) {
				end = s.EndedAt
			}
		}
	}
	return end, segs
}

// orphanObjects lists the objects under the recording prefixes that have
// no index row and whose spooled metadata (which the uploader will index)
// is gone.
func (a *Archive) orphanObjects(ctx context.Context, prefixes []string) ([]string, error) {
	c, bucket := a.blobs.Client(), a.blobs.Bucket()
	byRec := map[uuid.UUID][]string{}
	if len(prefixes) == 0 {
		prefixes = []string{""}
	}
	for _, prefix := range prefixes {
		for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if o.Err != nil {
				return nil, fmt.Errorf("reconcile: list bucket: %w", o.Err)
			}
			m := objectKeyRE.FindStringSubmatch(o.Key)
			if m == nil {
				continue
			}
			id, err := uuid.Parse(m[1])
			if err != nil {
				continue
			}
			byRec[id] = append(byRec[id], o.Key)
		}
	}
	var out []string
	for id, keys := range byRec {
		indexed := map[string]bool{}
		segs, err := a.db.Segments(ctx, id)
		if err != nil {
			return out, err
		}
		for _, s := range segs {
			indexed[s.Key] = true
		}
		inits, err := a.db.InitSegments(ctx, id)
		if err != nil {
			return out, err
		}
		for _, s := range inits {
			indexed[s.Key] = true
		}
		for _, k := range keys {
			if indexed[k] {
				continue
			}
			name := k[strings.LastIndexByte(k, '/')+1:]
			meta := strings.TrimSuffix(strings.TrimSuffix(name, ".mp4"), ".m4s") + ".json"
			if _, err := os.Stat(filepath.Join(a.cfg.SpoolDir, id.String(), meta)); err == nil {
				continue // uploaded, not indexed yet: the uploader indexes it
			}
			out = append(out, k)
		}
	}
	return out, nil
}

// reconcileLoop reconciles at start (the whole bucket) and every
// ReconcileEvery (the objects of recordings started today and yesterday,
// UTC: a full listing of a large bucket is too costly to repeat).
func (a *Archive) reconcileLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	full := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a.reachable(ctx) {
			var prefixes []string
			if !full {
				now := time.Now().UTC()
				prefixes = []string{now.AddDate(0, 0, -1).Format("2006/01/02/"), now.Format("2006/01/02/")}
			}
			_, err := a.reconcile(ctx, prefixes)
			if err == nil {
				full = false
			}
			if err != nil && ctx.Err() == nil {
				a.log.Warn("archive: reconciliation incomplete", "err", err)
			}
			t.Reset(a.cfg.ReconcileEvery)
		} else {
			t.Reset(min(a.cfg.ReconcileEvery, 10*time.Second))
		}
	}
}
