package web

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strconv"

	"github.com/bwcplatform/bwc/ingest/upload"
	"github.com/bwcplatform/bwc/storage/index"
)

// UploadService is what web needs of the upload service.
type UploadService interface {
	Handler() http.Handler
	Admit(ctx context.Context, method, id string, length int64) error
}

// UploadStore lists uploads, filtered by a scope in SQL.
type UploadStore interface {
	UploadsInScope(ctx context.Context, s index.Scope) ([]index.Upload, error)
}

// uploads: resumable uploads of footage recorded offline (tus), and the
// list of them.
type uploads struct {
	service UploadService
	db      UploadStore
	az      *authz
	kit     *kit
}

var uploaders = []string{index.RoleOfficer, index.RoleSupervisor, index.RoleAdmin}

// routes mounts the tus endpoint (resumable uploads) behind the role
// check; the authenticated uploader rides on the request's context.
func (h *uploads) routes(r *router) {
	r.handle("POST /api/uploads/", uploaders, h.tus)
	r.handle("HEAD /api/uploads/{id}", uploaders, h.tus)
	r.handle("PATCH /api/uploads/{id}", uploaders, h.tus)
	r.handle("DELETE /api/uploads/{id}", uploaders, h.tus)
	r.handle("OPTIONS /api/uploads/", uploaders, h.tus)
	r.handle("GET /api/uploads", uploaders, h.listUploads)
}

// tus hands a request to the tus handler once the upload service admits
// it.
func (h *uploads) tus(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	ctx := upload.WithUploader(r.Context(), upload.Uploader{Login: p.Login, Role: p.Role, OfficerID: p.OfficerID})
	// the upload's ID form, owner and the free space, before the tus
	// handler (and the file system) sees the request
	if r.Method != http.MethodOptions {
		length, _ := strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64)
		if err := h.service.Admit(ctx, r.Method, r.PathValue("id"), length); err != nil {
			status := http.StatusNotFound
			switch {
			case errors.Is(err, upload.ErrNotYours):
				status = http.StatusForbidden
			case errors.Is(err, upload.ErrInsufficientStorage):
				status = http.StatusInsufficientStorage
			case errors.Is(err, upload.ErrStoring):
				status = http.StatusConflict
			}
			w.Header().Set("Tus-Resumable", "1.0.0")
			writeJSON(w, status, apiError{Error: err.Error()})
			return
		}
	}
	h.service.Handler().ServeHTTP(w, r.WithContext(ctx))
}

// listUploads: the uploads whose recording is in the principal's scope
// (an upload is a recording: ResRecording in authz.go): an officer's own,
// a supervisor's units' and the unbound ones, all for admins.
func (h *uploads) listUploads(w http.ResponseWriter, r *http.Request) {
	list, err := h.db.UploadsInScope(r.Context(), h.az.scope(r, ResRecording))
	if list == nil {
		list = []index.Upload{}
	}
	h.kit.reply(w, r, http.StatusOK, list, err)
}

// uploadDisposition is the Content-Disposition of an upload's original
// file: its name as sanitised on arrival (never the name as given), with
// RFC 2231 encoding for names that are not ASCII (证据.mp4).
func uploadDisposition(u index.Upload) string {
	if d := mime.FormatMediaType("inline", map[string]string{"filename": u.Filename}); d != "" {
		return d
	}
	return "inline"
}
