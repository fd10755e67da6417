package index

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// AuditEvent is one entry of the audit trail: who did what to which
// evidence, when and from where. Events are hash-chained: Hash =
// SHA-256(PrevHash || the event's fields), so that an edit, a removal or a
// reordering of any event is detected by VerifyAudit.
type AuditEvent struct {
	Seq         int64          `json:"seq"`
	ID          uuid.UUID      `json:"id"`
	At          time.Time      `json:"at"`
	Actor       string         `json:"actor"`
	Role        string         `json:"role"`
	Action      string         `json:"action"`
	ObjectType  string         `json:"object_type"`
	ObjectID    string         `json:"object_id"`
	IncidentID  *uuid.UUID     `json:"incident_id,omitempty"`
	RecordingID *uuid.UUID     `json:"recording_id,omitempty"`
	RemoteAddr  string         `json:"remote_addr"`
	Details     map[string]any `json:"details,omitempty"`
	PrevHash    []byte         `json:"prev_hash"`
	Hash        []byte         `json:"hash"`
}

// auditLock serialises appends so that the chain has one order.
const auditLock = int64(0x6277632d61756469) // "bwc-audi"

// auditHash is the chain formula. Every field is length-prefixed, so that
// no two different events encode alike; times are UTC microseconds.
func auditHash(prev []byte, e *AuditEvent, details string) []byte {
	h := sha256.New()
	h.Write(prev)
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	h.Write(n[:])
	field(e.ID[:])
	field([]byte(e.At.UTC().Format("2006-01-02T15:04:05.000000Z")))
	for _, s := range []string{e.Actor, e.Role, e.Action, e.ObjectType, e.ObjectID, e.RemoteAddr, details} {
		field([]byte(s))
	}
	for _, id := range []*uuid.UUID{e.IncidentID, e.RecordingID} {
		if id == nil {
			field(nil)
		} else {
			field(id[:])
		}
	}
	return h.Sum(nil)
}

// Audit appends an event to the trail and returns it with its sequence
// number and hashes.
func (db *DB) Audit(ctx context.Context, e AuditEvent) (AuditEvent, error) {
	e, details, err := db.newAudit(e)
	if err != nil {
		return AuditEvent{}, err
	}
	if err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error { return appendAudit(ctx, tx, &e, details) }); err != nil {
		return AuditEvent{}, mapErr("append audit event "+e.Action, err)
	}
	return e, nil
}

// newAudit checks an event and gives it its ID, time and canonical details.
func (db *DB) newAudit(e AuditEvent) (AuditEvent, string, error) {
	if e.Action == "" || e.Actor == "" {
		return AuditEvent{}, "", invalid("action", "an audit event needs an action and an actor")
	}
	details := []byte("{}")
	if len(e.Details) > 0 {
		var err error
		if details, err = json.Marshal(e.Details); err != nil { // map keys sorted: canonical
			return AuditEvent{}, "", fmt.Errorf("audit %s: details: %w", e.Action, err)
		}
	}
	e.ID = uuid.Must(uuid.NewV7())
	e.At = db.now().UTC().Truncate(time.Microsecond)
	return e, string(details), nil
}

// appendAudit appends e inside tx, after the trail's newest event (under
// the advisory lock that gives the chain one order), filling in its
// sequence number and hashes. It is the one insert into audit_events.
func appendAudit(ctx context.Context, tx pgx.Tx, e *AuditEvent, details string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditLock); err != nil {
		return err
	}
	err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&e.Seq, &e.PrevHash)
	switch {
	case err == pgx.ErrNoRows:
		e.Seq, e.PrevHash = 0, make([]byte, sha256.Size)
	case err != nil:
		return err
	}
	e.Seq++
	e.Hash = auditHash(e.PrevHash, e, details)
	_, err = tx.Exec(ctx, `INSERT INTO audit_events (seq, id, at, actor, role, action, object_type, object_id,
		incident_id, recording_id, remote_addr, details, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		e.Seq, e.ID, e.At, e.Actor, e.Role, e.Action, e.ObjectType, e.ObjectID,
		e.IncidentID, e.RecordingID, e.RemoteAddr, details, e.PrevHash, e.Hash)
	return err
}

// AuditFilter selects audit events; zero fields select everything.
type AuditFilter struct {
	IncidentID  *uuid.UUID
	RecordingID *uuid.UUID
	Actor       string
	AfterSeq    int64
	Limit       int // at most 1000; 100 when 0
	// Scope: only the events about recordings in Recordings or incidents
	// in Incidents (nil: every event, the administrators' trail)
	Scope *AuditScope
}

// AuditScope narrows the trail to the events about what a principal may
// see (web/authz.go).
type AuditScope struct {
	Recordings, Incidents Scope
}

const auditCols = `seq, id, at, actor, role, action, object_type, object_id, incident_id, recording_id, remote_addr, details, prev_hash, hash`

func scanAudit(r pgx.Row) (AuditEvent, string, error) {
	var e AuditEvent
	var details string
	err := r.Scan(&e.Seq, &e.ID, &e.At, &e.Actor, &e.Role, &e.Action, &e.ObjectType, &e.ObjectID,
		&e.IncidentID, &e.RecordingID, &e.RemoteAddr, &details, &e.PrevHash, &e.Hash)
	if err == nil && details != "{}" {
		_ = json.Unmarshal([]byte(details), &e.Details)
	}
	return e, details, err
}

// AuditEvents lists events in chain order.
func (db *DB) AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Limit > 1000 {
		f.Limit = 1000
	}
	a := &sqlArgs{args: []any{f.IncidentID, f.RecordingID, f.Actor, f.AfterSeq, f.Limit}}
	scope := ""
	if f.Scope != nil {
		scope = ` AND ((recording_id IS NOT NULL AND EXISTS (SELECT 1 FROM recordings r WHERE r.id = audit_events.recording_id AND ` +
			f.Scope.Recordings.recordingSQL("r.id", "r.officer_id", a) + `))
		  OR (incident_id IS NOT NULL AND ` + f.Scope.Incidents.incidentSQL("audit_events.incident_id", a) + `))`
	}
	rows, err := db.pool.Query(ctx, `SELECT `+auditCols+` FROM audit_events
		WHERE ($1::uuid IS NULL OR incident_id = $1) AND ($2::uuid IS NULL OR recording_id = $2)
		  AND ($3 = '' OR actor = $3) AND seq > $4`+scope+`
		ORDER BY seq LIMIT $5`, a.args...)
	if err != nil {
		return nil, mapErr("list audit events", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEvent, error) {
		e, _, err := scanAudit(r)
		return e, err
	})
	return out, mapErr("list audit events", err)
}

// AuditProblem is one break of the audit chain.
type AuditProblem struct {
	Seq    int64
	Reason string
}

func (p AuditProblem) String() string { return fmt.Sprintf("audit event %d: %s", p.Seq, p.Reason) }

// VerifyAudit walks the whole trail and recomputes the chain. It reports
// every event whose stored hash does not match its fields, whose link to the
// previous event is broken, and every hole in the sequence (a deleted
// event). It returns the number of events checked.
func (db *DB) VerifyAudit(ctx context.Context) (checked int64, problems []AuditProblem, err error) {
	rows, err := db.pool.Query(ctx, `SELECT `+auditCols+` FROM audit_events ORDER BY seq`)
	if err != nil {
		return 0, nil, mapErr("verify audit trail", err)
	}
	defer rows.Close()
	prev := make([]byte, sha256.Size)
	var lastSeq int64
	for rows.Next() {
		e, details, err := scanAudit(rows)
		if err != nil {
			return checked, problems, mapErr("verify audit trail", err)
		}
		checked++
		if e.Seq != lastSeq+1 {
			problems = append(problems, AuditProblem{e.Seq, fmt.Sprintf("events %d to %d are missing", lastSeq+1, e.Seq-1)})
		}
		if !bytes.Equal(e.PrevHash, prev) {
			problems = append(problems, AuditProblem{e.Seq, "link to the previous event is broken (an event before it was changed or removed)"})
		}
		if want := auditHash(e.PrevHash, &e, details); !bytes.Equal(want, e.Hash) {
			problems = append(problems, AuditProblem{e.Seq, "content does not match its hash (the event was edited)"})
		}
		prev, lastSeq = e.Hash, e.Seq
	}
	if err := rows.Err(); err != nil {
		return checked, problems, mapErr("verify audit trail", err)
	}
	return checked, problems, nil
}
