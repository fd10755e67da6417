package archive

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/storagetest"
)

// An outage of the fault tests lasts, counted rather than timed, until
// outageSegments segments were sealed into the spool and the uploader failed
// (and backed off) outageFailures times, and the spool is above its alarm
// size: shorter than a real one (the brief's 30 s) to keep the suite fast,
// but several segments long, so the spool must hold segments across it and
// the uploader must back off and retry.
const (
	outageSegments = 3
	outageFailures = 3
	// faultPasses of the 2 s sample fed at faultSpeed x real time: 16 s of
	// media over 8 s, 8 segments of 2 s.
	faultPasses = 8
	faultSpeed  = 2
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// privateMinIO is a MinIO server of this test alone, which it may stop.
type privateMinIO struct {
	t          *testing.T
	dir, addr  string
	user, pass string
	cmd        *exec.Cmd
}

func startPrivateMinIO(t *testing.T) *privateMinIO {
	m := &privateMinIO{t: t, dir: filepath.Join(t.TempDir(), "minio"), addr: freeAddr(t), user: "faultadmin", pass: "fault-secret-key"}
	m.start()
	t.Cleanup(m.stop)
	return m
}

func (m *privateMinIO) start() {
	t := m.t
	bin := storagetest.Env(t, "BWC_TEST_MINIO_BIN")
	m.cmd = exec.Command(bin, "server", m.dir, "--address", m.addr, "--console-address", freeAddr(t), "--quiet")
	m.cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.user, "MINIO_ROOT_PASSWORD="+m.pass)
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	mediatest.Eventually(t, "private MinIO at "+m.addr+" up", func() bool {
		resp, err := http.Get("http://" + m.addr + "/minio/health/live")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (m *privateMinIO) stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGKILL)
	m.cmd.Wait()
	m.cmd = nil
}

func (m *privateMinIO) store(t *testing.T) *blob.Store {
	s, err := blob.Open(blob.Config{Endpoint: m.addr, AccessKey: m.user, SecretKey: m.pass, Bucket: "evidence", RetentionMode: blob.Governance})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.CreateBucket(context.Background()); err != nil { // this MinIO's root user, as bwc setup-storage would
		t.Fatal(err)
	}
	return s
}

// privatePostgres is a PostgreSQL cluster of this test alone.
type privatePostgres struct {
	t         *testing.T
	bin, data string
	port      int
	socketDir string
	uid, gid  int
	mu        sync.Mutex
	running   bool
}

func startPrivatePostgres(t *testing.T) *privatePostgres {
	bin := storagetest.Env(t, "BWC_TEST_PG_BINDIR")
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("user postgres: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	root := t.TempDir()
	// postgres must reach its data dir: open the path to it
	for d := root; d != "/" && d != "."; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o005 == 0 {
			os.Chmod(d, fi.Mode().Perm()|0o755)
		}
	}
	p := &privatePostgres{t: t, bin: bin, data: filepath.Join(root, "data"), socketDir: root, uid: uid, gid: gid}
	os.Chown(root, uid, gid)
	_, port, _ := net.SplitHostPort(freeAddr(t))
	p.port, _ = strconv.Atoi(port)
	p.run("initdb", "-D", p.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *privatePostgres) run(prog string, args ...string) {
	out, err := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(p.bin, prog)}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("%s %v: %v\n%s", prog, args, err, out)
	}
}

func (p *privatePostgres) start() {
	p.run("pg_ctl", "-D", p.data, "-l", filepath.Join(p.socketDir, "pg.log"), "-o",
		fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s", p.port, p.socketDir), "-w", "start")
	p.mu.Lock()
	p.running = true
	p.mu.Unlock()
}

func (p *privatePostgres) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		p.run("pg_ctl", "-D", p.data, "-m", "immediate", "-w", "stop")
		p.running = false
	}
}

func (p *privatePostgres) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// outageTest records faultPasses of the sample in real time while
// `outage` stops a dependency after the first segment is indexed and
// restarts it; then every segment must be archived.
func outageTest(t *testing.T, db *index.DB, store *blob.Store, stop, restart func()) {
	s := mediatest.Load(t)
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.SpoolAlarmBytes = 1 << 20 // a few segments: the outage must raise the alarm
	a := runArchive(t, cfg, db, store)
	start := time.Now().UTC()
	info := storagetest.NewRecording(t, db, s, start)
	st := media.NewStream(info)
	a.Attach(st)
	fed := make(chan error, 1)
	go func() {
		fed <- s.Play(context.Background(), faultSpeed, faultPasses, func(f *media.Frame) error { st.Write(f); return nil })
	}()
	mediatest.Eventually(t, "a segment indexed before the outage", func() bool {
		segs, _ := db.Segments(ctx, info.RecordingID)
		return len(segs) > 0
	})
	sealed, failed := testutil.ToFloat64(a.m.sealed), testutil.ToFloat64(a.m.errors.WithLabelValues("upload"))
	stop()
	t.Log("dependency stopped")
	mediatest.Eventually(t, "the outage: segments spooled, uploads failed, the spool alarm", func() bool {
		return testutil.ToFloat64(a.m.sealed) >= sealed+outageSegments &&
			testutil.ToFloat64(a.m.errors.WithLabelValues("upload")) >= failed+outageFailures &&
			errors.Is(a.Check(ctx), ErrSpoolAlarm)
	})
	restart()
	t.Log("dependency restarted")
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	st.Close()
	storagetest.WaitSpoolEmpty(t, a.cfg.SpoolDir, info.RecordingID)
	checkComplete(t, db, store, info.RecordingID, s, faultPasses)
	if err := a.Check(ctx); err != nil {
		t.Errorf("check after recovery: %v", err)
	}
}

func TestMinIOOutageLosesNothing(t *testing.T) {
	m := startPrivateMinIO(t)
	store := m.store(t)
	db := storagetest.NewDB(t)
	outageTest(t, db, store, m.stop, m.start)
}

func TestPostgresOutageLosesNothing(t *testing.T) {
	p := startPrivatePostgres(t)
	ctx := context.Background()
	db, err := index.Open(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	store := storagetest.NewStore(t)
	outageTest(t, db, store, p.stop, p.start)
}
