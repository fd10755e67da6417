package archive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// ErrStuck: evidence cannot be archived (a spool write fails, or a spooled
// object has not reached MinIO and the index for too long).
var ErrStuck = errors.New("archive")

// alarms are the archive's named alarms, for Check.
type alarms struct {
	mu sync.Mutex
	m  map[string]string // key -> message
}

func (al *alarms) set(key, msg string) {
	al.mu.Lock()
	defer al.mu.Unlock()
	if al.m == nil {
		al.m = map[string]string{}
	}
	al.m[key] = msg
}

func (al *alarms) clear(key string) {
	al.mu.Lock()
	defer al.mu.Unlock()
	delete(al.m, key)
}

func (al *alarms) err() error {
	al.mu.Lock()
	defer al.mu.Unlock()
	if len(al.m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(al.m))
	for k := range al.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	msgs := make([]string, 0, 5)
	for i, k := range keys {
		if i == 5 {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(keys)-5))
			break
		}
		msgs = append(msgs, k+": "+al.m[k])
	}
	return fmt.Errorf("%w: %s", ErrStuck, strings.Join(msgs, "; "))
}

// stuckWatch ages every object waiting in the spool, counting only time
// during which PostgreSQL and MinIO both answer: an object older than
// StuckAfter is evidence that cannot be archived (a row nothing will write,
// an object MinIO refuses, a corrupt spool file): logged at error level
// with its recording and the uploader's last error, counted, and named by
// Check until it is uploaded.
type stuckWatch struct {
	mu     sync.Mutex
	age    map[string]time.Duration // "<recording>/<metadata file>" -> healthy time spent in the spool
	alarm  map[string]bool
	reason map[string]string // recording directory -> the uploader's last error
	last   time.Time
}

func (sw *stuckWatch) failed(dir string, err error) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.reason == nil {
		sw.reason = map[string]string{}
	}
	if err == nil {
		delete(sw.reason, dir)
		return
	}
	sw.reason[dir] = err.Error()
}

// reachable reports whether PostgreSQL and MinIO both answer.
func (a *Archive) reachable(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return a.db.Ping(ctx) == nil && a.blobs.Ping(ctx) == nil
}

// watchStuck runs the stuck-evidence alarm until ctx ends.
func (a *Archive) watchStuck(ctx context.Context) {
	tick := time.NewTicker(max(a.cfg.ScanInterval, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			a.checkStuck(ctx, a.reachable(ctx), time.Now())
		}
	}
}

func (a *Archive) checkStuck(_ context.Context, healthy bool, now time.Time) {
	sw := &a.stuck
	sw.mu.Lock()
	defer sw.mu.Unlock()
	dt := time.Duration(0)
	if !sw.last.IsZero() && healthy {
		dt = now.Sub(sw.last)
	}
	sw.last = now
	if sw.age == nil {
		sw.age, sw.alarm = map[string]time.Duration{}, map[string]bool{}
	}
	seen := map[string]bool{}
	ents, _ := os.ReadDir(a.cfg.SpoolDir)
	for _, e := range ents {
		if _, err := uuid.Parse(e.Name()); err != nil || !e.IsDir() {
			continue
		}
		files, _ := os.ReadDir(filepath.Join(a.cfg.SpoolDir, e.Name()))
		for _, f := range files {
			n := f.Name()
			if !strings.HasSuffix(n, ".json") || strings.HasSuffix(n, ".open.json") || n == "rec.json" || n == "state.json" {
				continue
			}
			key := e.Name() + "/" + n
			seen[key] = true
			sw.age[key] += dt
		}
	}
	stuck := 0
	for key, age := range sw.age {
		if !seen[key] {
			delete(sw.age, key)
			if sw.alarm[key] {
				delete(sw.alarm, key)
				a.alarms.clear(stuckKey(key))
				a.log.Info("archive: stuck evidence archived at last", "recording", strings.Split(key, "/")[0], "object", what(key))
			}
			continue
		}
		if age < a.cfg.StuckAfter {
			continue
		}
		stuck++
		rec := strings.Split(key, "/")[0]
		reason := sw.reason[filepath.Join(a.cfg.SpoolDir, rec)]
		if reason == "" {
			reason = "not uploaded yet"
		}
		a.alarms.set(stuckKey(key), fmt.Sprintf("stuck %s: %s", age.Round(time.Second), reason))
		if !sw.alarm[key] {
			sw.alarm[key] = true
			a.m.stuckTotal.Inc()
			a.log.Error("archive: evidence stuck in the spool: it cannot be archived", "recording", rec, "object", what(key),
				"for", age.Round(time.Second), "reason", reason)
		}
	}
	a.m.stuck.Set(float64(stuck))
}

// what names a spooled object: "segment 3", "init segment 0".
func what(key string) string {
	n := strings.TrimSuffix(key[strings.IndexByte(key, '/')+1:], ".json")
	if strings.HasPrefix(n, "init-") {
		return "init segment " + strings.TrimPrefix(n, "init-")
	}
	if seq, err := strconv.ParseUint(n, 10, 64); err == nil {
		return "segment " + strconv.FormatUint(seq, 10)
	}
	return n
}

func stuckKey(key string) string {
	return "recording " + key[:strings.IndexByte(key, '/')] + " " + what(key)
}
