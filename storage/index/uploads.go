package index

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Upload is a file of footage recorded offline, kept byte for byte.
type Upload struct {
	ID               uuid.UUID `json:"id"`
	RecordingID      uuid.UUID `json:"recording_id"`
	TusID            string    `json:"-"`
	UploadedBy       string    `json:"uploaded_by"`
	Filename         string    `json:"filename"` // sanitised on arrival (upload.SanitizeName): the name every use sees
	Size             int64     `json:"size"`
	SHA256           []byte    `json:"sha256"`
	Key              string    `json:"-"`
	Container        string    `json:"container"`
	VideoCodec       string    `json:"video_codec"`
	AudioCodec       string    `json:"audio_codec"`
	Width            int       `json:"width"`
	Height           int       `json:"height"`
	DurationMS       int64     `json:"duration_ms"`
	RecordedAt       time.Time `json:"recorded_at"`
	RecordedAtSource string    `json:"recorded_at_source"` // file, declared or upload
	Fragmented       bool      `json:"fragmented"`
	Notes            string    `json:"notes"`
	CreatedAt        time.Time `json:"created_at"`
	VersionID        string    `json:"-"`             // the original's version in the bucket ("" for rows written before)
	OriginalName     string    `json:"original_name"` // the name as the client gave it, for the record only
}

const uploadCols = `id, recording_id, tus_id, uploaded_by, filename, size, sha256, object_key, container, video_codec, audio_codec,
	width, height, duration_ms, recorded_at, recorded_at_source, fragmented, notes, created_at, COALESCE(version_id, '') AS version_id,
	original_name`

// CreateUpload stores an upload with its recording (source upload, ended,
// spanning the file's duration) in one transaction. A file already stored
// (same SHA-256) is ErrConflict.
func (db *DB) CreateUpload(ctx context.Context, rec Recording, u Upload, by string) (Upload, error) {
	if rec.ID == uuid.Nil {
		rec.ID = uuid.Must(uuid.NewV7())
	}
	u.ID, u.RecordingID = uuid.Must(uuid.NewV7()), rec.ID
	rec.Source, rec.Status = SourceUpload, RecordingEnded
	rec.StartedAt = db.stamp(u.RecordedAt)
	end := rec.StartedAt.Add(time.Duration(u.DurationMS) * time.Millisecond)
	rec.EndedAt = &end
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := insertRecording(ctx, tx, rec, by); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO uploads (id, recording_id, tus_id, uploaded_by, filename, size, sha256, object_key, container,
			video_codec, audio_codec, width, height, duration_ms, recorded_at, recorded_at_source, fragmented, notes, version_id, original_name)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, NULLIF($19, ''), $20)`,
			u.ID, u.RecordingID, u.TusID, u.UploadedBy, u.Filename, u.Size, u.SHA256, u.Key, u.Container,
			u.VideoCodec, u.AudioCodec, u.Width, u.Height, u.DurationMS, rec.StartedAt, u.RecordedAtSource, u.Fragmented, u.Notes, u.VersionID,
			u.OriginalName)
		return err
	})
	if err != nil {
		return Upload{}, mapErr("create upload "+u.Filename, err)
	}
	return db.UploadByID(ctx, u.ID)
}

func (db *DB) uploadWhere(ctx context.Context, what, cond string, args ...any) ([]Upload, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+uploadCols+` FROM uploads WHERE `+cond+` ORDER BY created_at DESC LIMIT 500`, args...)
	if err != nil {
		return nil, mapErr(what, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Upload])
	return out, mapErr(what, err)
}

// UploadByID returns one upload.
func (db *DB) UploadByID(ctx context.Context, id uuid.UUID) (Upload, error) {
	out, err := db.uploadWhere(ctx, "upload "+id.String(), "id = $1", id)
	if err == nil && len(out) == 0 {
		err = mapErr("upload "+id.String(), pgx.ErrNoRows)
	}
	if err != nil {
		return Upload{}, err
	}
	return out[0], nil
}

// UploadBySHA256 returns the upload of a file with this hash.
func (db *DB) UploadBySHA256(ctx context.Context, sum []byte) (Upload, error) {
	out, err := db.uploadWhere(ctx, "upload by hash", "sha256 = $1", sum)
	if err == nil && len(out) == 0 {
		err = mapErr("upload by hash", pgx.ErrNoRows)
	}
	if err != nil {
		return Upload{}, err
	}
	return out[0], nil
}

// Uploads lists uploads, newest first: all, or one uploader's. The
// listing users see is UploadsInScope (scope.go).
func (db *DB) Uploads(ctx context.Context, uploadedBy string) ([]Upload, error) {
	return db.uploadWhere(ctx, "uploads", "$1 = '' OR uploaded_by = $1", uploadedBy)
}

// IncidentByNumber returns the incident with a dispatch number.
func (db *DB) IncidentByNumber(ctx context.Context, number string) (Incident, error) {
	in, err := scanIncident(db.pool.QueryRow(ctx, `SELECT `+incidentCols+` FROM incidents WHERE number = $1`, number))
	return in, mapErr("incident "+number, err)
}

// UploadOfRecording returns the upload a recording was made from.
func (db *DB) UploadOfRecording(ctx context.Context, recordingID uuid.UUID) (Upload, error) {
	out, err := db.uploadWhere(ctx, "upload of "+recordingID.String(), "recording_id = $1", recordingID)
	if err == nil && len(out) == 0 {
		err = mapErr("upload of "+recordingID.String(), pgx.ErrNoRows)
	}
	if err != nil {
		return Upload{}, err
	}
	return out[0], nil
}

// UploadByTusID returns the upload stored from a tus upload (its ID in
// the upload folder): how a retried completion knows it is already done.
func (db *DB) UploadByTusID(ctx context.Context, tusID string) (Upload, error) {
	out, err := db.uploadWhere(ctx, "upload of tus "+tusID, "tus_id = $1", tusID)
	if err == nil && len(out) == 0 {
		err = mapErr("upload of tus "+tusID, pgx.ErrNoRows)
	}
	if err != nil {
		return Upload{}, err
	}
	return out[0], nil
}

// UploadByKey returns the upload whose original is the object key: how
// the reconciliation finds objects without a row.
func (db *DB) UploadByKey(ctx context.Context, key string) (Upload, error) {
	out, err := db.uploadWhere(ctx, "upload of object "+key, "object_key = $1", key)
	if err == nil && len(out) == 0 {
		err = mapErr("upload of object "+key, pgx.ErrNoRows)
	}
	if err != nil {
		return Upload{}, err
	}
	return out[0], nil
}

// EverAssigned reports whether an officer is or was assigned to an
// incident, over any time range: the incidents an officer may attach an
// upload to.
func (db *DB) EverAssigned(ctx context.Context, incidentID, officerID uuid.UUID) (bool, error) {
	var ok bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM assignments WHERE incident_id = $1 AND officer_id = $2)`,
		incidentID, officerID).Scan(&ok)
	return ok, mapErr("assignments of officer "+officerID.String()+" to incident "+incidentID.String(), err)
}
