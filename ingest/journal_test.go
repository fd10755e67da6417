package ingest

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/media/mediatest"
	"github.com/bwcplatform/bwc/storage/index"
)

// TestJournalTornTail: a line torn by a crash, or corrupted, ends the
// valid prefix; the ops before it are kept, in order.
func TestJournalTornTail(t *testing.T) {
	id := uuid.Must(uuid.NewV7())
	var buf bytes.Buffer
	for i, k := range []string{opCreate, opStatus, opEnd} {
		line, err := encodeLine(&op{Seq: uint64(i + 1), Kind: k, Recording: id, At: time.Unix(1700000000, 0).UTC()})
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(line)
	}
	full := buf.Bytes()
	lines := bytes.SplitAfter(full, []byte("\n"))
	corrupt := bytes.Clone(full)
	corrupt[len(lines[0])+20] ^= 1 // a bit flipped in the second line
	for _, c := range []struct {
		name  string
		data  []byte
		ops   int
		valid int
	}{
		{"whole", full, 3, len(full)},
		{"torn last line", full[:len(full)-5], 2, len(lines[0]) + len(lines[1])},
		{"no newline yet", full[:len(full)-1], 2, len(lines[0]) + len(lines[1])},
		{"corrupt second line", corrupt, 1, len(lines[0])},
		{"empty", nil, 0, 0},
		{"garbage", []byte("not a journal\n"), 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			ops, valid := parseJournal(c.data)
			if len(ops) != c.ops || valid != c.valid {
				t.Fatalf("got %d ops, %d valid bytes; want %d, %d", len(ops), valid, c.ops, c.valid)
			}
			for i, o := range ops {
				if o.Seq != uint64(i+1) || o.Recording != id {
					t.Fatalf("op %d = %+v", i, o)
				}
			}
		})
	}
}

// FuzzParseJournal: any bytes (a journal damaged on disk) parse into a
// valid prefix without panicking, and that prefix parses the same again.
func FuzzParseJournal(f *testing.F) {
	line, _ := encodeLine(&op{Seq: 1, Kind: opCreate, Recording: uuid.MustParse("01890000-0000-7000-8000-000000000001"), Device: "CAM-1"})
	f.Add(line)
	f.Add(append(bytes.Clone(line), line[:10]...))
	f.Add([]byte("00000000 {}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ops, valid := parseJournal(data)
		if valid > len(data) {
			t.Fatalf("valid %d > %d", valid, len(data))
		}
		again, v2 := parseJournal(data[:valid])
		if v2 != valid || len(again) != len(ops) {
			t.Fatalf("prefix reparsed to %d ops / %d bytes, first %d / %d", len(again), v2, len(ops), valid)
		}
	})
}

// TestJournalReplayAfterCrash: a camera records while PostgreSQL is down;
// the process dies with the recording's row only in its journal. At the
// next start the journal is replayed before anything else: the recording
// exists, bound to the officer wearing the camera at its start, linked to
// their incident, ended (by the orphan rule when the crash came before its
// end, at its end otherwise), and the journal is gone.
func TestJournalReplayAfterCrash(t *testing.T) {
	ctx := context.Background()
	jdir := t.TempDir()
	var fs *faultyStore
	w := newWorld(t, worldOpts{cfg: Config{JournalDir: jdir, Grace: time.Hour}, checkout: true,
		wrap: func(s store) store { fs = &faultyStore{store: s}; return fs }})
	fs.set(true)
	cam, err := dialCamera(t, w.url(w.device.Serial, secret), false, false)
	if err != nil {
		t.Fatal(err)
	}
	st := w.nextStream(t)
	r := st.Subscribe(media.ReaderOptions{Name: "test", Size: 4096})
	if err := cam.send(mediatest.Load(t).Loop(1, time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(ctx); err != nil {
		t.Fatal(err)
	}
	id := st.Info().RecordingID
	// the state a kill -9 leaves: the journal as it is now
	crashDir := t.TempDir()
	copyDir(t, jdir, crashDir)
	cam.close()
	r.Close()
	w.srv.Close() // PostgreSQL still down: the end stays in the journal too
	if _, err := w.db.Recording(ctx, id); err == nil {
		t.Fatal("recording row written while the database was down")
	}
	ents, _ := os.ReadDir(jdir)
	if len(ents) != 1 {
		t.Fatalf("journal after a shutdown with PostgreSQL down: %d files", len(ents))
	}

	for _, c := range []struct {
		name  string
		dir   string
		ended bool // the end was journaled
	}{
		{"killed while live", crashDir, false},
		{"stopped with the database down", jdir, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name != "killed while live" {
				// the first case created the row: start over from the journal alone
				if _, err := w.db.Pool().Exec(ctx, `DELETE FROM recording_incidents WHERE recording_id = $1`, id); err != nil {
					t.Fatal(err)
				}
				for _, q := range []string{`DELETE FROM recording_bindings WHERE recording_id = $1`, `DELETE FROM recording_gaps WHERE recording_id = $1`,
					`DELETE FROM recordings WHERE id = $1`} {
					if _, err := w.db.Pool().Exec(ctx, q, id); err != nil {
						t.Fatal(err)
					}
				}
			}
			srv, err := New(testConfig(Config{JournalDir: c.dir}), w.db, nil, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
			if err != nil {
				t.Fatal(err)
			}
			runServer(t, srv)() // replays the journal, then closes
			rec, err := w.db.Recording(ctx, id)
			if err != nil {
				t.Fatalf("recording after replay: %v", err)
			}
			if rec.OfficerID == nil || *rec.OfficerID != w.officer.ID || rec.Status != index.RecordingEnded || rec.DeviceID != w.device.ID {
				t.Fatalf("recording after replay = %+v", rec)
			}
			links, err := w.db.RecordingLinks(ctx, id, false)
			if err != nil || len(links) != 1 || links[0].IncidentID != w.incident.ID {
				t.Fatalf("links after replay = %+v %v", links, err)
			}
			if c.ended && !rec.EndedAt.After(rec.StartedAt) {
				t.Fatalf("journaled end not applied: %+v", rec)
			}
			if ents, _ := os.ReadDir(c.dir); len(ents) != 0 {
				t.Fatalf("journal left after replay: %v", ents)
			}
		})
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if len(ents) == 0 {
		t.Fatal("nothing journaled")
	}
}

// TestJournalFailureFailsCheck: while the journal cannot be written (its
// folder is gone: a disk fault) the ingest's Check says so, and the write
// is still queued; it clears once a write is journaled again.
func TestJournalFailureFailsCheck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	s, err := New(testConfig(Config{JournalDir: dir}), nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil { // a file where the folder was
		t.Fatal(err)
	}
	s.writes.put(&op{Kind: opStatus, Recording: uuid.Must(uuid.NewV7()), Status: index.RecordingLive})
	if err := s.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "not journaled") {
		t.Fatalf("check with the journal failing = %v", err)
	}
	if n := s.writes.pending(); n != 1 {
		t.Fatalf("%d writes queued, want the unjournaled one", n)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	s.writes.put(&op{Kind: opStatus, Recording: uuid.Must(uuid.NewV7()), Status: index.RecordingLive})
	if err := s.Check(context.Background()); err != nil {
		t.Fatalf("check after the journal works again = %v", err)
	}
}

// BenchmarkJournalAppend: one journaled write (a status change), fsynced,
// on the spool's disk (here the test's temp folder).
func BenchmarkJournalAppend(b *testing.B) {
	jr, err := openJournal(b.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer jr.close()
	id := uuid.Must(uuid.NewV7())
	for b.Loop() {
		if err := jr.append(&op{Kind: opStatus, Recording: id, Status: index.RecordingLive, Remote: "10.1.2.3:40000"}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestJournalRemovedWhenEnded: with PostgreSQL up, a recording's journal
// exists while it is live (its writes are recorded before they are
// queued) and is removed once its end is in PostgreSQL: nothing
// accumulates.
func TestJournalRemovedWhenEnded(t *testing.T) {
	jdir := t.TempDir()
	w := newWorld(t, worldOpts{cfg: Config{JournalDir: jdir, Grace: 200 * time.Millisecond}, checkout: true})
	cam, err := dialCamera(t, w.url(w.device.Serial, secret), false, false)
	if err != nil {
		t.Fatal(err)
	}
	st := w.nextStream(t)
	id := st.Info().RecordingID
	if _, err := os.Stat(filepath.Join(jdir, id.String()+".jsonl")); err != nil {
		t.Fatalf("no journal while the recording is live: %v", err)
	}
	if err := cam.send(mediatest.Load(t).Loop(1, time.Now())); err != nil {
		t.Fatal(err)
	}
	cam.close()
	mediatest.Eventually(t, "recording ended in PostgreSQL and its journal removed", func() bool {
		rec, err := w.db.Recording(context.Background(), id)
		ents, _ := os.ReadDir(jdir)
		return err == nil && rec.Status == index.RecordingEnded && len(ents) == 0
	})
}
