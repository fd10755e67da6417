package web

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/relay"
	"github.com/bwcplatform/bwc/storage/index"
)

// liveRelay is what web needs of the WebRTC relay.
type liveRelay interface {
	Offer(ctx context.Context, rec uuid.UUID, viewer, offer string) (relay.Answer, error)
	Patch(session, frag string) error
	Delete(session string) error
	Session(session string) (uuid.UUID, bool)
	Viewers(rec uuid.UUID) int
	LinkHeaders() []string
	OnViewerEnd(func(relay.ViewerStats, string))
}

var _ liveRelay = (*relay.Server)(nil)

// maxSDP bounds an SDP offer or fragment.
const maxSDP = 64 << 10

func (s *Server) whepRoutes(mux *http.ServeMux) {
	s.handle(mux, "POST /api/live/{id}/whep", supervisors, s.whepOffer)
	s.handle(mux, "PATCH /api/live/{id}/whep/{session}", supervisors, s.whepPatch)
	s.handle(mux, "DELETE /api/live/{id}/whep/{session}", supervisors, s.whepDelete)
	if s.relay != nil {
		s.relay.OnViewerEnd(s.viewEnded)
	}
}

// readSDP reads a body of the given content type.
func (s *Server) readSDP(w http.ResponseWriter, r *http.Request, want string) (string, bool) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != want {
		writeJSON(w, http.StatusUnsupportedMediaType, apiError{Error: "Content-Type must be " + want})
		return "", false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSDP))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: "SDP too large"})
		return "", false
	}
	return string(b), true
}

func (s *Server) relayFail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, relay.ErrNotLive), errors.Is(err, relay.ErrNoSession):
		writeJSON(w, http.StatusNotFound, apiError{Error: err.Error()})
	case errors.Is(err, relay.ErrBadOffer):
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
	case errors.Is(err, relay.ErrTooMany):
		w.Header().Set("Retry-After", "10")
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
	default:
		s.fail(w, r, err)
	}
}

// whepOffer: POST an SDP offer, get the answer (201, Location of the
// session). The view is audited before any video flows.
func (s *Server) whepOffer(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return
	}
	if s.relay == nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "the live relay is not running"})
		return
	}
	offer, ok := s.readSDP(w, r, "application/sdp")
	if !ok {
		return
	}
	p, _ := PrincipalFrom(r.Context())
	a, err := s.relay.Offer(r.Context(), id, p.Login, offer)
	if err != nil {
		s.relayFail(w, r, err)
		return
	}
	if err := s.audit(r, index.AuditEvent{Action: "live.view.start", ObjectType: "recording", ObjectID: id.String(),
		RecordingID: &id, Details: map[string]any{"session": a.Session}}); err != nil {
		_ = s.relay.Delete(a.Session) // no unaudited viewing
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "audit trail unavailable: live view refused"})
		return
	}
	for _, l := range s.relay.LinkHeaders() {
		w.Header().Add("Link", l)
	}
	if a.AudioNote != "" {
		w.Header().Set("X-BWC-Audio", a.AudioNote)
	}
	w.Header().Set("Location", "/api/live/"+id.String()+"/whep/"+a.Session)
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, a.SDP)
}

// session checks that the path's session views the path's recording.
func (s *Server) whepSession(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return "", false
	}
	if s.relay == nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "the live relay is not running"})
		return "", false
	}
	sess := r.PathValue("session")
	if rec, ok := s.relay.Session(sess); !ok || rec != id {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no such viewing session"})
		return "", false
	}
	return sess, true
}

// whepPatch: trickled ICE candidates.
func (s *Server) whepPatch(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.whepSession(w, r)
	if !ok {
		return
	}
	frag, ok := s.readSDP(w, r, "application/trickle-ice-sdpfrag")
	if !ok {
		return
	}
	if err := s.relay.Patch(sess, frag); err != nil {
		s.relayFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// whepDelete ends a viewing session (audited when it ends).
func (s *Server) whepDelete(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.whepSession(w, r)
	if !ok {
		return
	}
	if err := s.relay.Delete(sess); err != nil {
		s.relayFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// viewEnded audits the end of a live view, however it ended.
func (s *Server) viewEnded(st relay.ViewerStats, why string) {
	if s.auditor == nil {
		return
	}
	rec := st.RecordingID
	e := index.AuditEvent{Actor: st.Viewer, Action: "live.view.stop", ObjectType: "recording", ObjectID: rec.String(),
		RecordingID: &rec, Details: map[string]any{"session": st.Session, "why": why,
			"seconds": int(time.Since(st.Since).Seconds()), "packets": st.Packets, "dropped_frames": st.Dropped}}
	if _, err := s.auditor.Audit(context.Background(), e); err != nil {
		s.log.Error("audit trail write failed", "action", e.Action, "actor", e.Actor, "err", err)
		s.auditFailures.Inc()
	}
}
