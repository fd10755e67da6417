package index

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Export statuses.
const (
	ExportRequested = "requested"
	ExportApproved  = "approved"
	ExportRejected  = "rejected"
	ExportReady     = "ready"
	ExportFailed    = "failed"
)

// Export is a request for an evidence package of an incident (optionally
// a wall-clock range of it).
type Export struct {
	ID             uuid.UUID  `json:"id"`
	IncidentID     uuid.UUID  `json:"incident_id"`
	From           *time.Time `json:"from"`
	To             *time.Time `json:"to"`
	RequestedBy    string     `json:"requested_by"`
	Reason         string     `json:"reason"`
	RequestedAt    time.Time  `json:"requested_at"`
	Status         string     `json:"status"`
	DecidedBy      *string    `json:"decided_by"`
	DecidedAt      *time.Time `json:"decided_at"`
	DecisionReason string     `json:"decision_reason"`
	Key            *string    `json:"-"`
	SHA256         []byte     `json:"sha256"`
	Size           *int64     `json:"size"`
	Error          string     `json:"error,omitempty"`
	ReadyAt        *time.Time `json:"ready_at"`
	VersionID      string     `json:"-"` // the package's version in the bucket ("" when not built, or built before)
	// RequestedByID is the requesting user (for an API token: its
	// creator); nil for requests older than the rule or from tokens
	// without a recorded creator. DecidedByID is the deciding user.
	RequestedByID *uuid.UUID `json:"requested_by_id"`
	DecidedByID   *uuid.UUID `json:"decided_by_id"`
}

// ErrFourEyes: the requester of an export (the same user ID, whatever the
// login or token) may not decide it.
var ErrFourEyes = errors.New("the requester cannot decide their own export")

const exportCols = `id, incident_id, range_from, range_to, requested_by, reason, requested_at, status, decided_by, decided_at,
	decision_reason, object_key, sha256, size, error, ready_at, COALESCE(version_id, '') AS version_id, requested_by_id, decided_by_id`

// RequestExport records a request; without approval it is approved at once
// by the rule.
func (db *DB) RequestExport(ctx context.Context, e Export, approvalRequired bool) (Export, error) {
	switch {
	case strings.TrimSpace(e.RequestedBy) == "":
		return Export{}, &FieldError{Field: "requested_by", Reason: "required"}
	case strings.TrimSpace(e.Reason) == "":
		return Export{}, &FieldError{Field: "reason", Reason: "required: why the evidence leaves the platform"}
	case e.From != nil && e.To != nil && !e.To.After(*e.From):
		return Export{}, &FieldError{Field: "to", Reason: "must be after from"}
	}
	e.ID = uuid.Must(uuid.NewV7())
	e.Status = ExportRequested
	var by *string
	if !approvalRequired {
		e.Status = ExportApproved
		rule := "no approval required"
		by = &rule
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO exports (id, incident_id, range_from, range_to, requested_by, reason, status, decided_by, decided_at,
			requested_by_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $8::text IS NULL THEN NULL ELSE now() END, $9)`,
		e.ID, e.IncidentID, e.From, e.To, e.RequestedBy, e.Reason, e.Status, by, e.RequestedByID)
	if err != nil {
		return Export{}, mapErr("request export", err)
	}
	return db.Export(ctx, e.ID)
}

// Export returns one export.
func (db *DB) Export(ctx context.Context, id uuid.UUID) (Export, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+exportCols+` FROM exports WHERE id = $1`, id)
	if err != nil {
		return Export{}, mapErr("export", err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[Export])
	return e, mapErr("export "+id.String(), err)
}

// Exports lists the exports of an incident (all when nil), newest first.
func (db *DB) Exports(ctx context.Context, incident *uuid.UUID) ([]Export, error) {
	return db.exportsWhere(ctx, `$1::uuid IS NULL OR incident_id = $1`, []any{incident})
}

// exportsWhere lists the exports matching a condition, newest first.
func (db *DB) exportsWhere(ctx context.Context, where string, args []any) ([]Export, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+exportCols+` FROM exports e WHERE `+where+` ORDER BY requested_at DESC LIMIT 500`, args...)
	if err != nil {
		return nil, mapErr("exports", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Export])
	return out, mapErr("exports", err)
}

// DecideExport approves or rejects a requested export as user byID (login
// by). The four-eyes rule compares user IDs: the requester, through any
// session or token, cannot decide their own (ErrFourEyes; a request
// without a recorded requester ID falls back to the login). A decided
// one is ErrConflict.
func (db *DB) DecideExport(ctx context.Context, id uuid.UUID, byID uuid.UUID, by string, approve bool, reason string) (Export, error) {
	if strings.TrimSpace(by) == "" || byID == uuid.Nil {
		return Export{}, &FieldError{Field: "by", Reason: "a user decides an export"}
	}
	if !approve && strings.TrimSpace(reason) == "" {
		return Export{}, &FieldError{Field: "reason", Reason: "required to reject an export"}
	}
	e, err := db.Export(ctx, id)
	if err != nil {
		return Export{}, err
	}
	if e.RequestedByID != nil && *e.RequestedByID == byID || e.RequestedByID == nil && e.RequestedBy == by {
		return Export{}, fmt.Errorf("export %s: %w", id, ErrFourEyes)
	}
	status := ExportRejected
	if approve {
		status = ExportApproved
	}
	tag, err := db.pool.Exec(ctx, `UPDATE exports SET status = $2, decided_by = $3, decided_at = now(), decision_reason = $4, decided_by_id = $5
		WHERE id = $1 AND status = 'requested'`, id, status, by, reason, byID)
	if err != nil {
		return Export{}, mapErr("decide export", err)
	}
	if tag.RowsAffected() == 0 {
		return Export{}, fmt.Errorf("export %s is %s, not requested: %w", id, e.Status, ErrConflict)
	}
	return db.Export(ctx, id)
}

// ExportBuilt records the package of an approved export (its key, version
// in the bucket, SHA-256 and size), or its failure.
func (db *DB) ExportBuilt(ctx context.Context, id uuid.UUID, key, versionID string, sum []byte, size int64, buildErr error) error {
	var err error
	if buildErr != nil {
		_, err = db.pool.Exec(ctx, `UPDATE exports SET status = 'failed', error = $2 WHERE id = $1 AND status = 'approved'`, id, buildErr.Error())
	} else {
		_, err = db.pool.Exec(ctx, `UPDATE exports SET status = 'ready', object_key = $2, sha256 = $3, size = $4, ready_at = now(),
			version_id = NULLIF($5, '') WHERE id = $1 AND status = 'approved'`, id, key, sum, size, versionID)
	}
	return mapErr("export built", err)
}

// GrantIncident lets a user (reviewer) work on an incident.
func (db *DB) GrantIncident(ctx context.Context, incident uuid.UUID, login, by string) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO incident_grants (incident_id, login, granted_by) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, incident, login, by)
	return mapErr("grant incident", err)
}

// MayReview reports whether a user may export an incident's evidence: it
// was granted to them, or an officer of their unit was assigned to it.
func (db *DB) MayReview(ctx context.Context, incident uuid.UUID, login, unit string) (bool, error) {
	var ok bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM incident_grants WHERE incident_id = $1 AND login = $2)
		OR ($3 <> '' AND EXISTS (SELECT 1 FROM assignments a JOIN officers o ON o.id = a.officer_id WHERE a.incident_id = $1 AND o.unit = $3))`,
		incident, login, unit).Scan(&ok)
	return ok, mapErr("may review", err)
}

// ErrClaimed: another node holds the claim on an export (or it is no
// longer approved): this node does not build it.
var ErrClaimed = errors.New("export claimed by another node or no longer approved")

// ClaimExport claims an approved export for node until the lease ends. It
// succeeds when the export is unclaimed or its claim has expired (a node
// that died mid-build); else ErrClaimed. The row's update is the claim:
// of two nodes claiming at once, one wins.
func (db *DB) ClaimExport(ctx context.Context, id uuid.UUID, node string, lease time.Duration) error {
	rows, err := db.pool.Query(ctx, `UPDATE exports SET claimed_by = $2, claimed_until = now() + $3 * interval '1 millisecond'
		WHERE id = $1 AND status = 'approved' AND (claimed_until IS NULL OR claimed_until < now()) RETURNING id`,
		id, node, lease.Milliseconds())
	if err != nil {
		return mapErr("claim export", err)
	}
	n, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return mapErr("claim export", err)
	}
	if len(n) == 0 {
		return fmt.Errorf("export %s: %w", id, ErrClaimed)
	}
	return nil
}

// RenewExportClaim extends node's claim on an export by lease; ErrClaimed
// when node no longer holds it (its lease expired and another node took
// it, or the export was built).
func (db *DB) RenewExportClaim(ctx context.Context, id uuid.UUID, node string, lease time.Duration) error {
	tag, err := db.pool.Exec(ctx, `UPDATE exports SET claimed_until = now() + $3 * interval '1 millisecond'
		WHERE id = $1 AND status = 'approved' AND claimed_by = $2 AND claimed_until >= now()`, id, node, lease.Milliseconds())
	if err != nil {
		return mapErr("renew export claim", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("export %s: %w", id, ErrClaimed)
	}
	return nil
}

// ReleaseExportClaim gives up node's claim on an export it did not finish
// (the node is stopping), so that another node takes it at once.
func (db *DB) ReleaseExportClaim(ctx context.Context, id uuid.UUID, node string) error {
	_, err := db.pool.Exec(ctx, `UPDATE exports SET claimed_by = NULL, claimed_until = NULL
		WHERE id = $1 AND claimed_by = $2 AND status = 'approved'`, id, node)
	return mapErr("release export claim", err)
}

// ClaimableExports lists the approved exports no node holds (never
// claimed, or a claim whose lease expired), oldest first.
func (db *DB) ClaimableExports(ctx context.Context) ([]uuid.UUID, error) {
	rows, err := db.pool.Query(ctx, `SELECT id FROM exports
		WHERE status = 'approved' AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY requested_at LIMIT 500`)
	if err != nil {
		return nil, mapErr("claimable exports", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	return ids, mapErr("claimable exports", err)
}
