package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/storage/durable"
)

// Kinds of database write the ingest makes about a recording. Every one is
// journaled before it is queued (see journal), so that a crash while
// PostgreSQL is down loses none of them.
const (
	opCreate  = "create"  // the recording's row: device, start, remote address, media
	opStatus  = "status"  // live / reconnecting, with the camera's address
	opMedia   = "media"   // codecs and picture size changed
	opClock   = "clock"   // measured camera clock offset
	opGap     = "gap"     // media missing between At and Until
	opEnd     = "end"     // ended at At
	opApplied = "applied" // journal only: the op Ref is in PostgreSQL
	opRefresh = "refresh" // memory only: reload binding and links (idempotent, never journaled)
	opFunc    = "func"    // memory only: a write given as a function (not journaled)
)

// op is one database write, as data: it can be journaled, replayed after a
// crash and applied more than once (every kind is idempotent).
type op struct {
	Seq       uint64        `json:"seq"` // per recording, from 1
	Kind      string        `json:"op"`
	Recording uuid.UUID     `json:"recording"`
	Ref       uint64        `json:"ref,omitempty"` // applied: the Seq it marks
	DeviceID  uuid.UUID     `json:"device_id,omitzero"`
	Device    string        `json:"device,omitempty"` // serial, for logs and reconciliation
	At        time.Time     `json:"at,omitzero"`
	Until     time.Time     `json:"until,omitzero"`
	Status    string        `json:"status,omitempty"`
	Remote    string        `json:"remote,omitempty"`
	Video     string        `json:"video,omitempty"`
	Audio     string        `json:"audio,omitempty"`
	Width     int           `json:"width,omitempty"`
	Height    int           `json:"height,omitempty"`
	Offset    time.Duration `json:"offset_ns,omitempty"`
	Reason    string        `json:"reason,omitempty"`
	Source    string        `json:"source,omitempty"` // opCreate: index.Source*; "" is RTSP

	fn   func(ctx context.Context) error // opFunc only
	what string                          // opFunc only
	rec  *recording                      // opRefresh only
}

func (o *op) String() string {
	if o.Kind == opFunc {
		return o.what
	}
	return o.Kind + " of " + o.Recording.String()
}

// journaled reports whether the kind goes to the journal.
func (o *op) journaled() bool { return o.Kind != opRefresh && o.Kind != opFunc && o.Kind != opApplied }

// journal is the ingest's durable record of intent: one append-only file
// per recording (<dir>/<recording>.jsonl), one line per op, fsynced before
// the op is queued. A line is "<crc32c of the JSON, 8 hex digits> <JSON>";
// a torn or corrupt line (crash mid-write) ends the file's valid prefix and
// is dropped. Applied ops are marked (without fsync: a lost mark only
// replays an idempotent op); a recording's file is removed once its end is
// applied. At start-up the files are replayed in order until PostgreSQL
// has every op.
type journal struct {
	dir string
	log *slog.Logger

	mu    sync.Mutex
	files map[uuid.UUID]*jfile
}

type jfile struct {
	f   *os.File
	seq uint64
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrJournal: the journal could not record an op durably.
var ErrJournal = errors.New("ingest journal")

func openJournal(dir string, log *slog.Logger) (*journal, error) {
	if dir == "" {
		return nil, nil
	}
	return &journal{dir: dir, log: log, files: map[uuid.UUID]*jfile{}}, nil
}

func (j *journal) path(id uuid.UUID) string { return filepath.Join(j.dir, id.String()+".jsonl") }

// encodeLine is the journal's line format.
func encodeLine(o *op) ([]byte, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	line := make([]byte, 0, len(b)+10)
	line = fmt.Appendf(line, "%08x ", crc32.Checksum(b, crcTable))
	line = append(line, b...)
	return append(line, '\n'), nil
}

// parseJournal returns the ops of the longest valid prefix of a journal
// file and that prefix's length in bytes.
func parseJournal(data []byte) ([]op, int) {
	var out []op
	valid := 0
	for len(data[valid:]) > 0 {
		rest := data[valid:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break // torn last line
		}
		line := rest[:i]
		if len(line) < 10 || line[8] != ' ' {
			break
		}
		want, err := strconv.ParseUint(string(line[:8]), 16, 32)
		if err != nil || uint32(want) != crc32.Checksum(line[9:], crcTable) {
			break
		}
		var o op
		if err := json.Unmarshal(line[9:], &o); err != nil || o.Recording == uuid.Nil || o.Kind == "" {
			break
		}
		out = append(out, o)
		valid += i + 1
	}
	return out, valid
}

// append records ops durably (written and fsynced) and numbers them.
func (j *journal) append(o *op) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	jf := j.files[o.Recording]
	if jf == nil {
		p := j.path(o.Recording)
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrJournal, err)
		}
		jf = &jfile{f: f}
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 { // continued after a restart
			ops, valid := parseJournal(b)
			if valid < len(b) {
				_ = f.Truncate(int64(valid))
			}
			for _, x := range ops {
				jf.seq = max(jf.seq, x.Seq)
			}
		}
		if err := durable.SyncDir(j.dir); err != nil {
			f.Close()
			return fmt.Errorf("%w: %v", ErrJournal, err)
		}
		j.files[o.Recording] = jf
	}
	jf.seq++
	o.Seq = jf.seq
	line, err := encodeLine(o)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrJournal, err)
	}
	if _, err := jf.f.Write(line); err != nil {
		return fmt.Errorf("%w: %v", ErrJournal, err)
	}
	if err := jf.f.Sync(); err != nil {
		return fmt.Errorf("%w: %v", ErrJournal, err)
	}
	return nil
}

// applied marks an op as in PostgreSQL; the end of a recording removes its
// file (every earlier op was applied first: the queue is in order).
func (j *journal) applied(o *op) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if o.Kind == opEnd {
		j.removeLocked(o.Recording)
		return
	}
	jf := j.files[o.Recording]
	if jf == nil {
		return
	}
	line, err := encodeLine(&op{Kind: opApplied, Recording: o.Recording, Ref: o.Seq})
	if err == nil {
		_, err = jf.f.Write(line) // no fsync: a lost mark replays an idempotent op
	}
	if err != nil {
		j.log.Warn("ingest journal: cannot mark an op applied", "recording", o.Recording, "err", err)
	}
}

func (j *journal) removeLocked(id uuid.UUID) {
	if jf := j.files[id]; jf != nil {
		jf.f.Close()
		delete(j.files, id)
	}
	if err := os.Remove(j.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		j.log.Warn("ingest journal: cannot remove a finished journal", "recording", id, "err", err)
		return
	}
	_ = durable.SyncDir(j.dir)
}

// remove deletes a recording's journal (everything in it is applied).
func (j *journal) remove(id uuid.UUID) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.removeLocked(id)
}

// pendingRecording is what a journal file still owes PostgreSQL.
type pendingRecording struct {
	id      uuid.UUID
	ops     []op // not applied, in order
	created bool // the file has the create op (applied or not)
	ended   bool
}

// load makes the journal's folder if need be and reads every journal file:
// the ops not yet applied, per recording, oldest recording first. Run calls
// it before anything is appended.
func (j *journal) load() ([]pendingRecording, error) {
	if err := os.MkdirAll(j.dir, 0o750); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrJournal, j.dir, err)
	}
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJournal, err)
	}
	var out []pendingRecording
	for _, e := range ents {
		name := e.Name()
		id, err := uuid.Parse(strings.TrimSuffix(name, ".jsonl"))
		if e.IsDir() || !strings.HasSuffix(name, ".jsonl") || err != nil {
			if strings.HasSuffix(name, ".tmp") {
				_ = os.Remove(filepath.Join(j.dir, name))
			}
			continue
		}
		b, err := os.ReadFile(filepath.Join(j.dir, name))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrJournal, err)
		}
		ops, valid := parseJournal(b)
		if valid < len(b) {
			j.log.Warn("ingest journal: torn or corrupt tail dropped", "recording", id, "bytes", len(b)-valid)
			if err := durable.TruncateSync(filepath.Join(j.dir, name), int64(valid)); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrJournal, err)
			}
		}
		p := pendingRecording{id: id}
		done := map[uint64]bool{}
		for _, o := range ops {
			if o.Kind == opApplied {
				done[o.Ref] = true
			}
		}
		for _, o := range ops {
			if o.Recording != id || o.Kind == opApplied {
				continue
			}
			p.created = p.created || o.Kind == opCreate
			p.ended = p.ended || o.Kind == opEnd
			if !done[o.Seq] {
				p.ops = append(p.ops, o)
			}
		}
		slices.SortStableFunc(p.ops, func(a, b op) int { return int(a.Seq) - int(b.Seq) })
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b pendingRecording) int { return bytes.Compare(a.id[:], b.id[:]) }) // UUIDv7: by start
	return out, nil
}

// close closes the open files (they stay on disk for the next start).
func (j *journal) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	for id, jf := range j.files {
		jf.f.Close()
		delete(j.files, id)
	}
}

// journalMetrics counts the journal's work.
type journalMetrics struct {
	errors   prometheus.Counter
	replayed prometheus.Counter
}

func newJournalMetrics(reg prometheus.Registerer) *journalMetrics {
	m := &journalMetrics{
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_ingest_journal_errors_total",
			Help: "Database writes of the ingest that could not be journaled (disk): lost if the process dies before PostgreSQL has them."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "bwc_ingest_journal_replayed_total",
			Help: "Journaled database writes applied at start-up (written before a crash, not yet in PostgreSQL)."}),
	}
	if reg != nil {
		reg.MustRegister(m.errors, m.replayed)
	}
	return m
}

// replayJournal applies, in order, every journaled write PostgreSQL does
// not have yet (a crash came before the queue reached it), then removes the
// journals: everything in them is in PostgreSQL. Recordings whose end was
// never journaled were live when the process died; EndOrphanRecordings,
// which runs next, ends them. Called by Run before anything else writes.
func (s *Server) replayJournal(ctx context.Context) error {
	jr := s.writes.jr
	if jr == nil {
		return nil
	}
	recs, err := jr.load()
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	for _, p := range recs {
		log := s.log.With("recording", p.id)
		if len(p.ops) > 0 {
			log.Warn("ingest journal: applying database writes left by an earlier run", "writes", len(p.ops), "created", p.created, "ended", p.ended)
		}
		for i := range p.ops {
			o := &p.ops[i]
			var err error
			for try := 0; ; try++ {
				octx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err = s.apply(octx, o)
				cancel()
				if err == nil || permanent(err) || try == 4 || ctx.Err() != nil {
					break
				}
				time.Sleep(time.Duration(200<<try) * time.Millisecond)
			}
			switch {
			case err == nil:
				s.writes.jm.replayed.Inc()
			case permanent(err):
				log.Error("ingest journal: write refused by the database", "op", o.Kind, "err", err)
			default:
				return fmt.Errorf("ingest: replay journal of recording %s (%s): %w", p.id, o.Kind, err)
			}
		}
		jr.remove(p.id)
	}
	return nil
}

// closeJournal closes the journal's files (what is not applied stays on
// disk for the next start).
func (w *writer) closeJournal() {
	if w.jr != nil {
		w.jr.close()
	}
}
