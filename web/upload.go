package web

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest/upload"
	"github.com/bwcplatform/bwc/storage/index"
)

// uploads is what web needs of the upload service.
type uploads interface {
	Handler() http.Handler
	Admit(ctx context.Context, method, id string, length int64) error
}

var _ uploads = (*upload.Service)(nil)

// uploadStore lists uploads.
type uploadStore interface {
	Uploads(ctx context.Context, uploadedBy string) ([]index.Upload, error)
	UploadByID(ctx context.Context, id uuid.UUID) (index.Upload, error)
}

var _ uploadStore = (*index.DB)(nil)

var uploaders = []string{index.RoleOfficer, index.RoleSupervisor, index.RoleAdmin}

// uploadRoutes mounts the tus endpoint (resumable uploads) behind the role
// check; the authenticated uploader rides on the request's context.
func (s *Server) uploadRoutes(mux *http.ServeMux) {
	tus := func(w http.ResponseWriter, r *http.Request) {
		if s.uploads == nil {
			writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "uploads are not available"})
			return
		}
		p, _ := PrincipalFrom(r.Context())
		ctx := upload.WithUploader(r.Context(), upload.Uploader{Login: p.Login, Role: p.Role, OfficerID: p.OfficerID})
		// the upload's ID form, owner and the free space, before the tus
		// handler (and the file system) sees the request
		if r.Method != http.MethodOptions {
			length, _ := strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64)
			if err := s.uploads.Admit(ctx, r.Method, r.PathValue("id"), length); err != nil {
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
		s.uploads.Handler().ServeHTTP(w, r.WithContext(ctx))
	}
	s.handle(mux, "POST /api/uploads/", uploaders, tus)
	s.handle(mux, "HEAD /api/uploads/{id}", uploaders, tus)
	s.handle(mux, "PATCH /api/uploads/{id}", uploaders, tus)
	s.handle(mux, "DELETE /api/uploads/{id}", uploaders, tus)
	s.handle(mux, "OPTIONS /api/uploads/", uploaders, tus)
	s.handle(mux, "GET /api/uploads", uploaders, s.listUploads)
}

// listUploads: an officer's own uploads; everything for supervisors and
// admins.
func (s *Server) listUploads(w http.ResponseWriter, r *http.Request) {
	us, ok := s.domain.(uploadStore)
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "uploads are not available"})
		return
	}
	p, _ := PrincipalFrom(r.Context())
	by := ""
	if p.Role == index.RoleOfficer {
		by = p.Login
	}
	list, err := us.Uploads(r.Context(), by)
	if list == nil {
		list = []index.Upload{}
	}
	s.reply(w, r, http.StatusOK, list, err)
}
