package upload

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"go.uber.org/goleak"

	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	// the tests' keep-alive connections to their test servers and MinIO
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		// tusd keeps a request's context alive a few seconds after it ends so
		// that the last bytes of a dropped PATCH are saved: bounded, not a leak
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/tus/tusd/v2/pkg/handler.newDelayedContext.func1")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type env struct {
	db      *index.DB
	store   *blob.Store
	url     string
	officer index.Officer
	other   index.Officer
	inc     index.Incident
	as      Uploader
	dir     string
	cfg     Config
	mu      sync.Mutex // svc and as change between requests
	svc     *Service
}

// set changes who uploads (or the service, after a restart).
func (e *env) set(as *Uploader, svc *Service) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if as != nil {
		e.as = *as
	}
	if svc != nil {
		e.svc = svc
	}
}

// newEnv runs the service behind a test server whose requests come from an
// officer (as web does after authentication).
func newEnv(t testing.TB, opts ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{db: storagetest.NewDB(t), store: storagetest.NewStore(t)}
	var err error
	if e.officer, err = e.db.CreateOfficer(ctx, index.Officer{Badge: "9001", Name: "Wu Gang", Unit: "Patrol 2"}); err != nil {
		t.Fatal(err)
	}
	if e.other, err = e.db.CreateOfficer(ctx, index.Officer{Badge: "9002", Name: "He Li"}); err != nil {
		t.Fatal(err)
	}
	if e.inc, err = e.db.CreateIncident(ctx, index.Incident{Number: "110-UP", OpenedAt: time.Now().Add(-3 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Assign(ctx, e.inc.ID, e.officer.ID, time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.dir = filepath.Join(t.TempDir(), "uploads")
	e.cfg = testConfig(e.dir)
	for _, o := range opts {
		o(&e.cfg)
	}
	s, err := New(e.cfg, e.db, e.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Run makes the folder; tests that do not run the service use it too
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.svc = s
	e.as = Uploader{Login: "wu", Role: index.RoleOfficer, OfficerID: &e.officer.ID}
	ts := httptest.NewServer(http.StripPrefix("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		svc, as := e.svc, e.as
		e.mu.Unlock()
		svc.Handler().ServeHTTP(w, r.WithContext(WithUploader(r.Context(), as)))
	})))
	t.Cleanup(ts.Close)
	e.url = ts.URL + BasePath
	return e
}

// testConfig is a valid config of the service in dir, with the platform's
// default values (cmd/bwc sets them in production).
func testConfig(dir string) Config {
	return Config{Dir: dir, MaxSize: 4 << 30, Retention: 183 * 24 * time.Hour, LinkBuffer: 5 * time.Minute,
		SweepEvery: time.Hour, StuckAfter: 5 * time.Minute, RetryMin: time.Second, RetryMax: time.Minute,
		ReconcileEvery: time.Hour}
}

// video writes a real MP4 (the sample, remuxed, with a creation time) and
// pads it with a free box to the size asked.
func video(t testing.TB, created time.Time, pad int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clip.mp4")
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", mediatest.Path(), "-c", "copy", "-movflags", "+faststart",
		"-metadata", "creation_time="+created.UTC().Format(time.RFC3339), p).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	if pad > 0 {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		hdr := make([]byte, 16) // a 64-bit 'free' box
		binary.BigEndian.PutUint32(hdr, 1)
		copy(hdr[4:], "free")
		binary.BigEndian.PutUint64(hdr[8:], uint64(pad))
		if _, err := f.Write(hdr); err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		buf := make([]byte, 1<<20)
		for left := pad - 16; left > 0; left -= int64(len(buf)) {
			for i := range buf {
				buf[i] = byte(r.Uint32())
			}
			if _, err := f.Write(buf[:min(int64(len(buf)), left)]); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
	}
	return p
}

func meta(kv ...string) string {
	var parts []string
	for i := 0; i < len(kv); i += 2 {
		parts = append(parts, kv[i]+" "+base64.StdEncoding.EncodeToString([]byte(kv[i+1])))
	}
	return strings.Join(parts, ",")
}

func tusReq(t testing.TB, method, url string, body io.Reader, h map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	for k, v := range h {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	return res
}

func create(t testing.TB, e *env, size int64, md string) (string, int) {
	t.Helper()
	res := tusReq(t, "POST", e.url, nil, map[string]string{"Upload-Length": strconv.FormatInt(size, 10), "Upload-Metadata": md})
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		return string(b), res.StatusCode
	}
	return res.Header.Get("Location"), res.StatusCode
}

// failingReader stops with an error after n bytes: the link drops.
type failingReader struct {
	r io.Reader
	n int64
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("link dropped")
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

// send uploads the file from the server's offset in chunks; cuts lists
// absolute offsets at which the link drops once each.
func send(t testing.TB, loc, path string, cuts []int64) *http.Response {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	const chunk = 32 << 20
	for {
		res := tusReq(t, "HEAD", loc, nil, nil)
		res.Body.Close()
		off, err := strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
		if err != nil {
			t.Fatalf("HEAD: %v (%d)", err, res.StatusCode)
		}
		n := min(chunk, st.Size()-off)
		var body io.Reader = io.NewSectionReader(f, off, n)
		if len(cuts) > 0 && cuts[0] > off && cuts[0] < off+n {
			body = &failingReader{r: body, n: cuts[0] - off}
			cuts = cuts[1:]
		}
		res = tusReq(t, "PATCH", loc, body, map[string]string{"Content-Type": "application/offset+octet-stream",
			"Upload-Offset": strconv.FormatInt(off, 10), "Content-Length": strconv.FormatInt(n, 10)})
		if res == nil {
			// cut: the HEAD above waits for tusd's lock of the upload, which
			// the dropped PATCH holds until it has saved what arrived
			continue
		}
		if off+n == st.Size() || res.StatusCode >= 300 {
			return res
		}
		res.Body.Close()
	}
}

func fileSum(t testing.TB, path string) string {
	t.Helper()
	f, _ := os.Open(path)
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// TestResumableUploadOf200MB: a 200 MB file in 32 MB chunks, the link
// dropping twice at random offsets, resumed from the server's offset, ends
// byte-identical in MinIO with the right SHA-256, bound to the uploading
// officer and linked to their incident by the assignment rule.
func TestResumableUploadOf200MB(t *testing.T) {
	e := newEnv(t)
	created := time.Now().Add(-time.Hour).Truncate(time.Second)
	path := video(t, created, 200<<20)
	sum := fileSum(t, path)
	st, _ := os.Stat(path)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	cuts := []int64{1 + r.Int64N(st.Size()/2), st.Size()/2 + r.Int64N(st.Size()/2-1)}
	sort.Slice(cuts, func(i, j int) bool { return cuts[i] < cuts[j] })
	loc, code := create(t, e, st.Size(), meta("filename", "officer-phone.mp4", "sha256", sum))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, loc)
	}
	res := send(t, loc, path, cuts)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("X-BWC-Upload") == "" {
		t.Fatalf("last PATCH: %d %s", res.StatusCode, body)
	}
	ctx := context.Background()
	ups, err := e.db.Uploads(ctx, "")
	if err != nil || len(ups) != 1 {
		t.Fatalf("uploads: %+v %v", ups, err)
	}
	u := ups[0]
	if hex.EncodeToString(u.SHA256) != sum || u.Size != st.Size() || u.RecordedAtSource != "file" || !u.RecordedAt.Equal(created) ||
		u.VideoCodec != "H264" || u.Width != 1280 {
		t.Fatalf("upload = %+v", u)
	}
	// the object is the file, byte for byte
	o, err := e.store.Open(ctx, u.Key)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, _ := io.Copy(h, o)
	o.Close()
	if n != st.Size() || hex.EncodeToString(h.Sum(nil)) != sum {
		t.Fatalf("object: %d bytes, sha256 %x", n, h.Sum(nil))
	}
	rec, err := e.db.Recording(ctx, u.RecordingID)
	if err != nil || rec.Source != index.SourceUpload || rec.OfficerID == nil || *rec.OfficerID != e.officer.ID {
		t.Fatalf("recording = %+v %v", rec, err)
	}
	links, err := e.db.RecordingLinks(ctx, rec.ID, false)
	if err != nil || len(links) != 1 || links[0].IncidentID != e.inc.ID || links[0].Method != index.LinkAuto {
		t.Fatalf("links = %+v %v", links, err)
	}
}

// TestUploadRefusals: a wrong declared hash, a corrupt file, an officer
// uploading as another, an unknown incident; and a duplicate is recognised.
// Nothing is kept of what is refused.
func TestUploadRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	path := video(t, time.Now().Add(-time.Hour), 0)
	st, _ := os.Stat(path)
	sum := fileSum(t, path)

	// officer for another officer; unknown incident: refused before any byte
	if msg, code := create(t, e, st.Size(), meta("filename", "a.mp4", "officer", e.other.ID.String())); code != http.StatusForbidden {
		t.Fatalf("upload as another officer: %d %s", code, msg)
	}
	if msg, code := create(t, e, st.Size(), meta("filename", "a.mp4", "incident", "110-NOPE")); code != http.StatusBadRequest || !strings.Contains(msg, "110-NOPE") {
		t.Fatalf("unknown incident: %d %s", code, msg)
	}

	// wrong declared hash
	wrong := strings.Repeat("0", 64)
	loc, _ := create(t, e, st.Size(), meta("filename", "a.mp4", "sha256", wrong))
	res := send(t, loc, path, nil)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 460 || !strings.Contains(string(b), sum) {
		t.Fatalf("wrong hash: %d %s", res.StatusCode, b)
	}

	// corrupt: the file cut in half
	half := filepath.Join(t.TempDir(), "half.mp4")
	raw, _ := os.ReadFile(path)
	os.WriteFile(half, raw[:len(raw)/2], 0o600)
	loc, _ = create(t, e, int64(len(raw)/2), meta("filename", "half.mp4"))
	res = send(t, loc, half, nil)
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), "truncated") {
		t.Fatalf("corrupt file: %d %s", res.StatusCode, b)
	}
	if ups, _ := e.db.Uploads(ctx, ""); len(ups) != 0 {
		t.Fatalf("refused uploads were kept: %+v", ups)
	}
	n := 0
	for o := range e.store.Client().ListObjects(ctx, e.store.Bucket(), minio.ListObjectsOptions{Prefix: "uploads/", Recursive: true}) {
		if o.Err == nil {
			n++
		}
	}
	if n != 0 {
		t.Fatalf("%d objects stored for refused uploads", n)
	}

	// the same file twice: stored once
	var ids []string
	for i := 0; i < 2; i++ {
		loc, _ := create(t, e, st.Size(), meta("filename", fmt.Sprintf("copy-%d.mp4", i), "incident", e.inc.Number))
		res := send(t, loc, path, nil)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("upload %d: %d", i, res.StatusCode)
		}
		ids = append(ids, res.Header.Get("X-BWC-Upload")+res.Header.Get("X-BWC-Duplicate-Of"))
	}
	if ids[0] == "" || ids[0] != ids[1] {
		t.Fatalf("duplicate not recognised: %v", ids)
	}
	if ups, _ := e.db.Uploads(ctx, ""); len(ups) != 1 {
		t.Fatalf("%d uploads stored for one file", len(ups))
	}
	_ = uuid.Nil
}

// TestCraftedUploadRefused: the hostile files of issue 12 (every crafted
// file, and 100 relatives of the 100M-sample file declaring other huge
// counts) sent through tus are answered 422 with the reason, the server
// allocating a bounded amount for all of them together (go-mp4's probe took
// 4.7 GB for one), and nothing is stored (no row, no object, no file left
// in the upload folder).
func TestCraftedUploadRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	files := crafted()
	r := rand.New(rand.NewPCG(12, 20))
	for i := 0; i < 100; i++ {
		n := uint32(1_000_000 + r.Uint64N(1<<32-1_000_000))
		files[fmt.Sprintf("relative-%03d-stts-%d", i, n)] = movie{samples: n, stsz: u32s(uint32(1+r.IntN(1<<20)), n),
			stsc: u32s(1, 1, uint32(1+r.Uint64N(1<<32-1)), 1), mdatSize: r.IntN(4096)}.build()
	}
	dir := t.TempDir()
	const limit = 256 << 20
	var refused int
	n := allocated(func() {
		for name, b := range files {
			p := filepath.Join(dir, "crafted.mp4")
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			loc, code := create(t, e, int64(len(b)), meta("filename", "crafted.mp4"))
			if code != http.StatusCreated {
				t.Fatalf("%s: create: %d %s", name, code, loc)
			}
			res := send(t, loc, p, nil)
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), "not a playable") {
				t.Fatalf("%s: %d %s", name, res.StatusCode, body)
			}
			refused++
		}
	})
	if n > limit {
		t.Fatalf("%d crafted uploads: %d bytes allocated (client and server together)", refused, n)
	}
	t.Logf("%d crafted uploads refused 422; %d bytes allocated by client and server together", refused, n)
	if ups, _ := e.db.Uploads(ctx, ""); len(ups) != 0 {
		t.Fatalf("crafted uploads were kept: %+v", ups)
	}
	for o := range e.store.Client().ListObjects(ctx, e.store.Bucket(), minio.ListObjectsOptions{Prefix: "uploads/", Recursive: true}) {
		t.Fatalf("object stored for a crafted upload: %s %v", o.Key, o.Err)
	}
	if left, _ := os.ReadDir(e.dir); len(left) != 0 {
		t.Fatalf("files left in the upload folder: %v", left)
	}
}

// New substitutes no default: a missing or invalid value is refused,
// naming the field; 0 is kept where it means something.
func TestNewRefusesInvalidConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "uploads")
	for _, tc := range []struct {
		field string // "": valid
		edit  func(*Config)
	}{
		{"", func(*Config) {}},
		{"", func(c *Config) { c.LinkBuffer, c.MinFree, c.StaleAfter = 0, 0, 0 }},
		{"Dir", func(c *Config) { c.Dir = "" }},
		{"Dir", func(c *Config) { c.SpoolDir = c.Dir }},
		{"MaxSize", func(c *Config) { c.MaxSize = 0 }},
		{"Retention", func(c *Config) { c.Retention = 0 }},
		{"LinkBuffer", func(c *Config) { c.LinkBuffer = -time.Second }},
		{"MinFree", func(c *Config) { c.MinFree = -1 }},
		{"StaleAfter", func(c *Config) { c.StaleAfter = -time.Hour }},
		{"SweepEvery", func(c *Config) { c.SweepEvery = 0 }},
		{"StuckAfter", func(c *Config) { c.StuckAfter = 0 }},
		{"RetryMin", func(c *Config) { c.RetryMin, c.RetryMax = 0, 0 }},
		{"RetryMax", func(c *Config) { c.RetryMax = c.RetryMin / 2 }},
		{"ReconcileEvery", func(c *Config) { c.ReconcileEvery = 0 }},
	} {
		cfg := testConfig(dir)
		tc.edit(&cfg)
		err := cfg.validate()
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("valid config refused: %v", err)
		case tc.field != "" && (!errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), " "+tc.field+" ")):
			t.Errorf("bad %s: validate() = %v, want ErrConfig naming it", tc.field, err)
		}
	}
	cfg := testConfig(dir)
	cfg.MaxSize, cfg.SweepEvery = 0, 0
	if _, err := New(cfg, nil, nil, nil); !errors.Is(err, ErrConfig) ||
		!strings.Contains(err.Error(), "MaxSize") || !strings.Contains(err.Error(), "SweepEvery") {
		t.Fatalf("New with two bad fields: %v, want both named", err)
	}
}

// TestUploadLinkBufferZero: the service takes its link buffer as given. An
// officer assigned from T1 to T2 uploads footage recorded just before T1,
// inside, and just after T2: with a buffer of 0 only the footage inside is
// linked to the incident; with 5 minutes the near ones are too.
func TestUploadLinkBufferZero(t *testing.T) {
	for _, tc := range []struct {
		buffer time.Duration
		want   map[string]bool
	}{
		{0, map[string]bool{"before T1": false, "inside": true, "after T2": false}},
		{5 * time.Minute, map[string]bool{"before T1": true, "inside": true, "after T2": true}},
	} {
		t.Run(tc.buffer.String(), func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.LinkBuffer = tc.buffer })
			ctx := context.Background()
			t1 := time.Now().Add(-10 * time.Hour).Truncate(time.Second)
			t2 := t1.Add(30 * time.Minute)
			inc, err := e.db.CreateIncident(ctx, index.Incident{Number: "110-WINDOW", OpenedAt: t1.Add(-time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			a, err := e.db.Assign(ctx, inc.ID, e.officer.ID, t1)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.db.ClearAssignment(ctx, inc.ID, a.ID, t2); err != nil {
				t.Fatal(err)
			}
			// the sample lasts 2 s: each clip ends well before the next boundary
			for name, start := range map[string]time.Time{"before T1": t1.Add(-time.Minute), "inside": t1.Add(10 * time.Minute),
				"after T2": t2.Add(time.Minute)} {
				path := video(t, start, 0)
				st, _ := os.Stat(path)
				loc, code := create(t, e, st.Size(), meta("filename", "window.mp4"))
				if code != http.StatusCreated {
					t.Fatalf("create: %d %s", code, loc)
				}
				res := send(t, loc, path, nil)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Fatalf("%s: last PATCH: %d", name, res.StatusCode)
				}
				up, err := e.db.UploadByTusID(ctx, loc[strings.LastIndex(loc, "/")+1:])
				if err != nil {
					t.Fatal(err)
				}
				links, err := e.db.RecordingLinks(ctx, up.RecordingID, false)
				if err != nil {
					t.Fatal(err)
				}
				linked := false
				for _, l := range links {
					linked = linked || l.IncidentID == inc.ID && l.Method == index.LinkAuto
				}
				if linked != tc.want[name] {
					t.Errorf("buffer %v: footage %s linked = %v, want %v (links %+v)", tc.buffer, name, linked, tc.want[name], links)
				}
			}
		})
	}
}

// New touches no file: Run makes the folder, then closes Ready.
func TestNewTouchesNoFileRunMakesTheFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "uploads")
	s, err := New(testConfig(dir), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("New made the folder: %v", err)
	}
	stop := run(t, s)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("after Ready: %v", err)
	}
	stop()
}
