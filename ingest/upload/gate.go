package upload

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
)

// Errors of Admit; the web layer maps them to HTTP statuses (404, 403,
// 507).
var (
	// ErrNoUpload: the ID is not one the store makes (checked before the
	// file system is touched), or no such upload is waiting.
	ErrNoUpload = errors.New("no such upload")
	// ErrNotYours: an officer acting on someone else's upload.
	ErrNotYours = errors.New("the upload belongs to someone else")
	// ErrInsufficientStorage: accepting the bytes would leave less free
	// space than the reserve kept for live recording.
	ErrInsufficientStorage = errors.New("insufficient storage for uploads")
	// ErrStoring: the upload is complete and being stored; it cannot be
	// deleted.
	ErrStoring = errors.New("the upload was received and is being stored")
)

// validID: exactly the IDs tusd's file store makes (16 random bytes in
// lower-case hex). Anything else (a "/", "..", an encoded %2F) never
// reaches filepath.Join.
var validID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// ValidID reports whether id has the form of an upload ID.
func ValidID(id string) bool { return validID.MatchString(id) }

// FreeSpace is the bytes available to an unprivileged writer on the file
// system holding dir (statfs).
func FreeSpace(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// staff may act on any upload; other roles only on their own.
func staff(role string) bool { return role == index.RoleSupervisor || role == index.RoleAdmin }

// Admit checks a tus request before the handler (and the file system)
// sees it: the upload ID's form, who owns the upload (officers act on their
// own; supervisors and admins on any) and, for bytes about to arrive
// (creation with its declared length, PATCH with what is left), the free
// space. id is the path after the tus base path ("" for the collection);
// length is a creation's Upload-Length.
func (s *Service) Admit(ctx context.Context, method, id string, length int64) error {
	u, ok := uploaderFrom(ctx)
	if !ok {
		return fmt.Errorf("%w: not authenticated", ErrNotYours)
	}
	if id == "" {
		if method == http.MethodPost {
			return s.room(length)
		}
		return nil
	}
	if !ValidID(id) {
		return fmt.Errorf("%w: malformed upload ID", ErrNoUpload)
	}
	up, err := s.store.FileStore.GetUpload(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrNoUpload, id)
	}
	info, err := up.GetInfo(ctx)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrNoUpload, id)
	}
	if !staff(u.Role) && info.MetaData["uploaded_by"] != u.Login {
		return fmt.Errorf("%w: upload %s", ErrNotYours, id)
	}
	if method == http.MethodDelete && s.Status(id) == "storing" {
		return fmt.Errorf("%w: upload %s", ErrStoring, id)
	}
	if method == http.MethodPatch && info.Offset < info.Size {
		return s.room(info.Size - info.Offset)
	}
	return nil
}

// serve is the tus endpoint behind Admit.
func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	id := strings.Trim(r.URL.Path, "/")
	var length int64
	if r.Method == http.MethodPost {
		length, _ = strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64)
	}
	if r.Method != http.MethodOptions {
		if err := s.Admit(r.Context(), r.Method, id, length); err != nil {
			status := http.StatusNotFound
			switch {
			case errors.Is(err, ErrNotYours):
				status = http.StatusForbidden
			case errors.Is(err, ErrInsufficientStorage):
				status = http.StatusInsufficientStorage
			case errors.Is(err, ErrStoring):
				status = http.StatusConflict
			}
			w.Header().Set("Tus-Resumable", "1.0.0")
			http.Error(w, err.Error(), status)
			return
		}
	}
	if r.Method == http.MethodHead && id != "" {
		if st := s.Status(id); st != "" {
			w.Header().Set("X-BWC-Upload-Status", st)
		}
	}
	s.handler.ServeHTTP(w, r)
}

// room refuses need more bytes when the upload folder's file system, or
// the spool's (live recording has priority), would be left with less than
// the reserve.
func (s *Service) room(need int64) error {
	if s.cfg.MinFree <= 0 {
		return nil
	}
	for _, d := range s.watched() {
		free, err := s.cfg.FreeSpace(d.dir)
		if err != nil {
			s.lowSpace(d.dir, err)
			return fmt.Errorf("%w: %v", ErrInsufficientStorage, err)
		}
		left := int64(min(free, 1<<62))
		if d.shared {
			left -= need
		}
		if left < s.cfg.MinFree {
			err := fmt.Errorf("%w: %s (%s) has %d bytes free; %d more would leave less than the %d reserved for live recording",
				ErrInsufficientStorage, d.dir, d.what, free, need, s.cfg.MinFree)
			s.lowSpace(d.dir, err)
			return err
		}
	}
	return nil
}

type watchedDir struct {
	dir, what string
	shared    bool // on the upload folder's file system: uploads take its space
}

func (s *Service) watched() []watchedDir {
	out := []watchedDir{{dir: s.cfg.Dir, what: "upload folder", shared: true}}
	if s.cfg.SpoolDir != "" {
		out = append(out, watchedDir{dir: s.cfg.SpoolDir, what: "spool", shared: s.spoolShared})
	}
	return out
}

// sameFS reports whether a and b are on one file system.
func sameFS(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil {
		return true // unknown: count the upload against both
	}
	da, ok1 := sa.Sys().(*syscall.Stat_t)
	db, ok2 := sb.Sys().(*syscall.Stat_t)
	return !ok1 || !ok2 || da.Dev == db.Dev
}

// lowSpace counts a refusal and logs it at error level once a minute.
func (s *Service) lowSpace(dir string, err error) {
	s.metrics.refused.WithLabelValues("insufficient_storage").Inc()
	s.mu.Lock()
	due := time.Since(s.lowLogged) >= time.Minute
	if due {
		s.lowLogged = time.Now()
	}
	s.mu.Unlock()
	if due {
		s.log.Error("uploads refused: free space below the reserve", "dir", dir, "err", err)
	}
}

// checkSpace is the free-space part of Check: it fails, naming the folder,
// while a watched file system is below the reserve.
func (s *Service) checkSpace() error {
	if s.cfg.MinFree <= 0 {
		return nil
	}
	for _, d := range s.watched() {
		free, err := s.cfg.FreeSpace(d.dir)
		if err != nil {
			return fmt.Errorf("%s %s: %w", d.what, d.dir, err)
		}
		if int64(min(free, 1<<62)) < s.cfg.MinFree {
			return fmt.Errorf("%s %s: %d bytes free, below the %d-byte reserve: uploads are refused", d.what, d.dir, free, s.cfg.MinFree)
		}
	}
	return nil
}

// Sweep removes partial uploads whose last byte arrived longer ago than
// Config.StaleAfter, with an upload.expired audit event each; it returns
// how many it removed. Finished uploads waiting to be stored are never
// removed here.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	if s.cfg.StaleAfter <= 0 {
		return 0, nil
	}
	names, err := filepath.Glob(filepath.Join(s.cfg.Dir, "*.info"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		id := strings.TrimSuffix(filepath.Base(name), ".info")
		if !ValidID(id) {
			continue
		}
		up, err := s.store.FileStore.GetUpload(ctx, id)
		if err != nil {
			continue
		}
		info, err := up.GetInfo(ctx)
		if err != nil || info.Offset >= info.Size && info.Size > 0 {
			continue // complete: the completion owns it
		}
		st, err := os.Stat(filepath.Join(s.cfg.Dir, id))
		if err != nil {
			continue
		}
		last := st.ModTime()
		if is, err := os.Stat(name); err == nil && is.ModTime().After(last) {
			last = is.ModTime()
		}
		if time.Since(last) < s.cfg.StaleAfter {
			continue
		}
		if err := s.lockedTerminate(ctx, id, s.cfg.StaleAfter); err != nil {
			if errors.Is(err, errNotStale) {
				continue
			}
			s.log.Error("stale upload not removed", "upload", id, "err", err)
			continue
		}
		n++
		s.metrics.expired.Inc()
		s.audit(ctx, "system", "upload.expired", "", map[string]any{"upload": id, "filename": info.MetaData["filename"],
			"uploaded_by": info.MetaData["uploaded_by"], "received": info.Offset, "size": info.Size,
			"last_write": last.UTC().Format(time.RFC3339), "stale_after": s.cfg.StaleAfter.String()})
		s.log.Info("stale partial upload removed", "upload", id, "uploaded_by", info.MetaData["uploaded_by"], "received", info.Offset)
	}
	return n, nil
}

var errNotStale = errors.New("written to meanwhile")

// lockedTerminate removes an upload under tusd's lock, checking again
// under it that nothing was written for staleAfter (a PATCH may have
// arrived since the sweep looked).
func (s *Service) lockedTerminate(ctx context.Context, id string, staleAfter time.Duration) error {
	lock, err := s.locker.NewLock(id)
	if err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := lock.Lock(lctx, func() {}); err != nil {
		return fmt.Errorf("lock %s: %w", id, err)
	}
	defer lock.Unlock()
	for _, f := range []string{filepath.Join(s.cfg.Dir, id), filepath.Join(s.cfg.Dir, id+".info")} {
		if st, err := os.Stat(f); err == nil && time.Since(st.ModTime()) < staleAfter {
			return errNotStale
		}
	}
	up, err := s.store.GetUpload(ctx, id)
	if err != nil {
		return err
	}
	return s.store.AsTerminatableUpload(up).Terminate(ctx)
}
