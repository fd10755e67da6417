package upload

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/bwcplatform/bwc/storage/index"
)

// TestUploadIDsValidated: IDs that are not of the store's form (a "/",
// "..", an encoded %2F, upper case, too short) are refused 404 on HEAD,
// PATCH and DELETE before the file system is touched: an upload planted
// beside the upload folder is neither read nor removed.
func TestUploadIDsValidated(t *testing.T) {
	e := newEnv(t)
	loc, code := create(t, e, 1000, meta("filename", "a.mp4"))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, loc)
	}
	id := loc[strings.LastIndex(loc, "/")+1:]
	if !ValidID(id) {
		t.Fatalf("the store made an ID of another form: %q", id)
	}
	// a victim upload one folder up, as tusd would read it through ../
	victim := filepath.Join(filepath.Dir(e.dir), "victim")
	raw, err := os.ReadFile(filepath.Join(e.dir, id+".info"))
	if err != nil {
		t.Fatal(err)
	}
	info := strings.ReplaceAll(string(raw), filepath.Join(e.dir, id), victim)
	os.WriteFile(victim+".info", []byte(strings.ReplaceAll(info, id, "victim")), 0o600)
	os.WriteFile(victim, nil, 0o600)
	bad := []string{"..%2Fvictim", "%2E%2E%2Fvictim", "..%2F..%2Fetc%2Fpasswd", strings.ToUpper(id), id[:31], id + "0",
		"x" + id[1:], id + "%2F..%2F..%2Fvictim", "%2e%2e"}
	for _, b := range bad {
		for _, m := range []string{"HEAD", "PATCH", "DELETE"} {
			res := tusReq(t, m, e.url+b, strings.NewReader("x"), map[string]string{"Upload-Offset": "0",
				"Content-Type": "application/offset+octet-stream"})
			if res == nil {
				t.Fatalf("%s %s: no answer", m, b)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("%s %s: %d", m, b, res.StatusCode)
			}
		}
		if err := e.svc.Admit(WithUploader(context.Background(), e.as), "HEAD", b, 0); !errors.Is(err, ErrNoUpload) {
			t.Fatalf("Admit(%q) = %v", b, err)
		}
	}
	for _, f := range []string{victim, victim + ".info"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s touched: %v", f, err)
		}
	}
	// the real one still answers
	res := tusReq(t, "HEAD", loc, nil, nil)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HEAD of the upload: %d", res.StatusCode)
	}
}

// TestUploadOwnership: another officer may not see, resume or delete an
// officer's upload (403); a supervisor may; the owner still can.
func TestUploadOwnership(t *testing.T) {
	e := newEnv(t)
	loc, code := create(t, e, 1000, meta("filename", "a.mp4"))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, loc)
	}
	wu := e.as
	he := Uploader{Login: "he", Role: index.RoleOfficer, OfficerID: &e.other.ID}
	sup := Uploader{Login: "boss", Role: index.RoleSupervisor}
	patch := func(off int) *http.Response {
		return tusReq(t, "PATCH", loc, strings.NewReader("0123456789"), map[string]string{"Upload-Offset": strconv.Itoa(off),
			"Content-Type": "application/offset+octet-stream"})
	}
	cases := []struct {
		as     Uploader
		method string
		want   int
	}{
		{he, "HEAD", http.StatusForbidden},
		{he, "PATCH", http.StatusForbidden},
		{he, "DELETE", http.StatusForbidden},
		{sup, "HEAD", http.StatusOK},
		{sup, "PATCH", http.StatusNoContent},
		{wu, "HEAD", http.StatusOK},
		{wu, "PATCH", http.StatusNoContent},
		{he, "HEAD", http.StatusForbidden},
		{wu, "DELETE", http.StatusNoContent},
	}
	off := 0
	for i, c := range cases {
		e.set(&c.as, nil)
		var res *http.Response
		if c.method == "PATCH" {
			res = patch(off)
		} else {
			res = tusReq(t, c.method, loc, nil, nil)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Fatalf("%d: %s as %s: %d %s, want %d", i, c.method, c.as.Login, res.StatusCode, b, c.want)
		}
		if c.method == "PATCH" && res.StatusCode == http.StatusNoContent {
			off += 10
		}
		if c.as.Login == "he" && res.Header.Get("Upload-Offset") != "" {
			t.Fatalf("%d: the offset was shown to another officer", i)
		}
	}
}

func counter(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// TestUploadDiskReserve: with the free space simulated, an upload that
// would leave less than the reserve on the upload folder's file system, or
// any upload while the spool's is below it, is refused 507 (creation and
// PATCH), counted, and Check fails naming the folder; with space back,
// the same upload proceeds.
func TestUploadDiskReserve(t *testing.T) {
	const reserve = 1 << 30
	var uploadFree, spoolFree atomic.Int64
	uploadFree.Store(reserve + 10<<20)
	spoolFree.Store(100 << 30)
	spool := filepath.Join(t.TempDir(), "spool")
	os.MkdirAll(spool, 0o700)
	e := newEnv(t, func(c *Config) {
		c.MinFree, c.SpoolDir = reserve, spool
		c.FreeSpace = func(dir string) (uint64, error) {
			if dir == spool {
				return uint64(spoolFree.Load()), nil
			}
			return uint64(uploadFree.Load()), nil
		}
	})
	run(t, e.svc) // Run finds whether the spool shares the upload folder's file system
	// 20 MB declared with 10 MB above the reserve: refused
	if msg, code := create(t, e, 20<<20, meta("filename", "big.mp4")); code != http.StatusInsufficientStorage || !strings.Contains(msg, "reserved") {
		t.Fatalf("create over the reserve: %d %s", code, msg)
	}
	loc, code := create(t, e, 5<<20, meta("filename", "small.mp4"))
	if code != http.StatusCreated {
		t.Fatalf("create under the reserve: %d %s", code, loc)
	}
	if err := e.svc.Check(context.Background()); err != nil {
		t.Fatalf("Check with room: %v", err)
	}
	patch := func() int {
		res := tusReq(t, "PATCH", loc, strings.NewReader("0123456789"), map[string]string{"Upload-Offset": "0",
			"Content-Type": "application/offset+octet-stream"})
		res.Body.Close()
		return res.StatusCode
	}
	// the spool's disk fills (live recording has priority): PATCH refused
	spoolFree.Store(reserve - 1)
	if code := patch(); code != http.StatusInsufficientStorage {
		t.Fatalf("PATCH with the spool below the reserve: %d", code)
	}
	if err := e.svc.Check(context.Background()); err == nil || !strings.Contains(err.Error(), spool) {
		t.Fatalf("Check with the spool full: %v", err)
	}
	spoolFree.Store(100 << 30)
	uploadFree.Store(reserve + 1<<20) // less than the 5 MB left to send
	if code := patch(); code != http.StatusInsufficientStorage {
		t.Fatalf("PATCH over the reserve: %d", code)
	}
	if n := counter(t, e.svc.metrics.refused.WithLabelValues("insufficient_storage")); n != 3 {
		t.Fatalf("refusals counted: %v, want 3", n)
	}
	uploadFree.Store(reserve + 100<<20)
	if code := patch(); code != http.StatusNoContent {
		t.Fatalf("PATCH with room again: %d", code)
	}
	if err := e.svc.Check(context.Background()); err != nil {
		t.Fatalf("Check with room again: %v", err)
	}
}

// TestStaleUploadsExpire: a partial upload with no byte for longer than
// StaleAfter is removed by the sweep with an upload.expired audit event; a
// recent one stays.
func TestStaleUploadsExpire(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.StaleAfter = time.Hour })
	ctx := context.Background()
	var ids []string
	for i := 0; i < 2; i++ {
		loc, code := create(t, e, 1000, meta("filename", "a.mp4"))
		if code != http.StatusCreated {
			t.Fatalf("create: %d", code)
		}
		ids = append(ids, loc[strings.LastIndex(loc, "/")+1:])
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, f := range []string{ids[0], ids[0] + ".info"} {
		if err := os.Chtimes(filepath.Join(e.dir, f), old, old); err != nil {
			t.Fatal(err)
		}
	}
	n, err := e.svc.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, ids[0])); !os.IsNotExist(err) {
		t.Fatalf("stale upload still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, ids[1])); err != nil {
		t.Fatalf("recent upload removed: %v", err)
	}
	evs, err := e.db.AuditEvents(ctx, index.AuditFilter{Actor: "system", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs {
		if ev.Action == "upload.expired" && ev.Details["upload"] == ids[0] {
			found = true
		}
	}
	if !found {
		t.Fatalf("no upload.expired event for %s in %+v", ids[0], evs)
	}
	res := tusReq(t, "HEAD", e.url+ids[0], nil, nil)
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of an expired upload: %d", res.StatusCode)
	}
}
