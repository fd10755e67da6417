package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/blob"
	"github.com/bwcplatform/bwc/storage/index"
	"github.com/bwcplatform/bwc/storage/replay"
)

// replayStore is what replay needs of the index.
type replayStore interface {
	Recording(ctx context.Context, id uuid.UUID) (index.Recording, error)
	Segments(ctx context.Context, rec uuid.UUID) ([]index.Segment, error)
	SegmentsInRange(ctx context.Context, rec uuid.UUID, from, to time.Time) ([]index.Segment, error)
	Segment(ctx context.Context, rec uuid.UUID, seq int64) (index.Segment, error)
	SegmentAt(ctx context.Context, rec uuid.UUID, at time.Time) (index.Segment, error)
	InitSegment(ctx context.Context, rec uuid.UUID, n int) (index.InitSegment, error)
	Gaps(ctx context.Context, id uuid.UUID) ([]index.Gap, error)
	RecordingLinks(ctx context.Context, id uuid.UUID, history bool) ([]index.IncidentLink, error)
	IncidentRecordings(ctx context.Context, incidentID uuid.UUID) ([]index.Recording, []index.IncidentLink, error)
	UploadOfRecording(ctx context.Context, recordingID uuid.UUID) (index.Upload, error)
}

var _ replayStore = (*index.DB)(nil)

// objectStore opens archived objects.
type objectStore interface {
	Open(ctx context.Context, key string) (*blob.Object, error)
}

var _ objectStore = (*blob.Store)(nil)

// Evidence is streamed through the server, not by presigned URLs: every
// byte a user gets passes the role check, and playback is audited.
func (s *Server) replayRoutes(mux *http.ServeMux) {
	s.handle(mux, "GET /api/recordings/{id}/hls.m3u8", anyone, s.hlsPlaylist)
	s.handle(mux, "GET /api/recordings/{id}/init/{file}", anyone, s.initObject)
	s.handle(mux, "GET /api/recordings/{id}/segments/{file}", anyone, s.segmentObject)
	s.handle(mux, "GET /api/recordings/{id}/seek", anyone, s.seek)
	s.handle(mux, "GET /api/recordings/{id}/playback", anyone, s.playback)
	s.handle(mux, "GET /api/recordings/{id}/file", anyone, s.originalFile)
	s.handle(mux, "GET /api/incidents/{id}/timeline", staff, s.timeline)
}

// viewable loads a recording the request may see: staff see all, an
// officer their own (anything else is 404, as if absent).
func (s *Server) viewable(w http.ResponseWriter, r *http.Request) (index.Recording, bool) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return index.Recording{}, false
	}
	if s.replay == nil || s.objects == nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "the archive is not available"})
		return index.Recording{}, false
	}
	rec, err := s.replay.Recording(r.Context(), id)
	if err == nil {
		if p, _ := PrincipalFrom(r.Context()); p.Role == index.RoleOfficer &&
			(p.OfficerID == nil || rec.OfficerID == nil || *p.OfficerID != *rec.OfficerID) {
			err = fmt.Errorf("recording %s: %w", id, index.ErrNotFound)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return index.Recording{}, false
	}
	return rec, true
}

// viewAudit records that a user is viewing a recording: once per user and
// recording per 10 minutes (a playback session), not per segment.
type viewAudit struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

const viewSession = 10 * time.Minute

func (s *Server) auditView(r *http.Request, rec index.Recording, how string) error {
	p, _ := PrincipalFrom(r.Context())
	key := p.Login + "/" + rec.ID.String()
	now := time.Now()
	s.views.mu.Lock()
	if s.views.seen == nil {
		s.views.seen = map[string]time.Time{}
	}
	if last, ok := s.views.seen[key]; ok && now.Sub(last) < viewSession {
		s.views.mu.Unlock()
		return nil
	}
	for k, t := range s.views.seen {
		if now.Sub(t) >= viewSession {
			delete(s.views.seen, k)
		}
	}
	s.views.seen[key] = now
	s.views.mu.Unlock()
	id := rec.ID
	err := s.audit(r, index.AuditEvent{Action: "evidence.view", ObjectType: "recording", ObjectID: id.String(), RecordingID: &id,
		Details: map[string]any{"how": how, "range": r.URL.RawQuery}})
	if err != nil {
		s.views.mu.Lock()
		delete(s.views.seen, key)
		s.views.mu.Unlock()
	}
	return err
}

// timeRange reads from/to (RFC 3339); zero when absent.
func timeRange(r *http.Request) (from, to time.Time, err error) {
	q := r.URL.Query()
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := q.Get(p.name); v != "" {
			t, perr := time.Parse(time.RFC3339Nano, v)
			if perr != nil {
				return from, to, &index.FieldError{Field: p.name, Reason: "must be an RFC 3339 time"}
			}
			*p.dst = t
		}
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		return from, to, &index.FieldError{Field: "to", Reason: "must be after from"}
	}
	return from, to, nil
}

// segmentsFor returns the recording's segments in [from, to) (all when
// both are zero).
func (s *Server) segmentsFor(ctx context.Context, rec uuid.UUID, from, to time.Time) ([]index.Segment, error) {
	if from.IsZero() && to.IsZero() {
		return s.replay.Segments(ctx, rec)
	}
	if to.IsZero() {
		to = time.Now().Add(24 * time.Hour)
	}
	segs, err := s.replay.SegmentsInRange(ctx, rec, from, to)
	return replay.Trim(segs, from, to), err
}

// hlsPlaylist: the recording (or a wall-clock range of it) as an HLS
// playlist: EVENT while live, VOD once ended.
func (s *Server) hlsPlaylist(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.viewable(w, r)
	if !ok {
		return
	}
	from, to, err := timeRange(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	segs, err := s.segmentsFor(r.Context(), rec.ID, from, to)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(segs) == 0 {
		writeJSON(w, http.StatusNotFound, apiError{Error: replay.ErrNoSegments.Error()})
		return
	}
	if err := s.auditView(r, rec, "hls"); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "audit trail unavailable: playback refused"})
		return
	}
	live := rec.Status != index.RecordingEnded && (to.IsZero() || to.After(time.Now()))
	pl := replay.Playlist{Segments: segs, Live: live,
		InitURI:    func(n int) string { return fmt.Sprintf("init/%d.mp4", n) },
		SegmentURI: func(seq int64) string { return fmt.Sprintf("segments/%06d.m4s", seq) }}
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, pl.String())
}

// serveObject streams an archived object with range support.
func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, key, name, ctype string) {
	o, err := s.objects.Open(r.Context(), key)
	if err != nil {
		if errors.Is(err, blob.ErrNoObject) {
			s.log.Error("indexed object missing from the bucket: run bwc verify", "key", key)
			writeJSON(w, http.StatusNotFound, apiError{Error: "object missing from the archive"})
			return
		}
		s.fail(w, r, err)
		return
	}
	defer o.Close()
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "private, max-age=3600, immutable") // write-once objects
	http.ServeContent(w, r, name, o.ModTime, o)
}

func (s *Server) initObject(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.viewable(w, r)
	if !ok {
		return
	}
	n, err := strconv.Atoi(strings.TrimSuffix(r.PathValue("file"), ".mp4"))
	if err != nil || n < 0 {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no such init segment"})
		return
	}
	in, err := s.replay.InitSegment(r.Context(), rec.ID, n)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.serveObject(w, r, in.Key, r.PathValue("file"), "video/mp4")
}

func (s *Server) segmentObject(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.viewable(w, r)
	if !ok {
		return
	}
	seq, err := strconv.ParseInt(strings.TrimSuffix(r.PathValue("file"), ".m4s"), 10, 64)
	if err != nil || seq < 0 {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no such segment"})
		return
	}
	seg, err := s.replay.Segment(r.Context(), rec.ID, seq)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.auditView(r, rec, "segment"); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "audit trail unavailable: playback refused"})
		return
	}
	s.serveObject(w, r, seg.Key, r.PathValue("file"), "video/iso.segment")
}

// seekAnswer locates a wall-clock instant.
type seekAnswer struct {
	Seq       int64     `json:"seq"`
	StartedAt time.Time `json:"segment_started_at"`
	Offset    float64   `json:"offset"`     // seconds into the segment
	MediaTime float64   `json:"media_time"` // seconds on the recording's timeline
	InGap     bool      `json:"in_gap"`     // the instant had no media; this is the next
	Playlist  string    `json:"playlist"`   // HLS starting at that segment
}

// seek answers GET /api/recordings/{id}/seek?at=: one index lookup.
func (s *Server) seek(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.viewable(w, r)
	if !ok {
		return
	}
	at, err := time.Parse(time.RFC3339Nano, r.URL.Query().Get("at"))
	if err != nil {
		s.fail(w, r, &index.FieldError{Field: "at", Reason: "must be an RFC 3339 time"})
		return
	}
	seg, err := s.replay.SegmentAt(r.Context(), rec.ID, at)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	off, media := replay.Seek(seg, at)
	writeJSON(w, http.StatusOK, seekAnswer{Seq: seg.Seq, StartedAt: seg.StartedAt, Offset: off.Seconds(), MediaTime: media.Seconds(),
		InGap:    at.Before(seg.StartedAt),
		Playlist: fmt.Sprintf("/api/recordings/%s/hls.m3u8?from=%s", rec.ID, seg.StartedAt.UTC().Format(time.RFC3339Nano))})
}

// playbackSegment is one segment for the browser's player.
type playbackSegment struct {
	Seq       int64     `json:"seq"`
	Init      int       `json:"init"`
	URL       string    `json:"url"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	Start     float64   `json:"start"` // seconds on the recording's media timeline
	End       float64   `json:"end"`
	Gap       bool      `json:"gap"`
}

type playbackInfo struct {
	RecordingID uuid.UUID         `json:"recording_id"`
	StartedAt   time.Time         `json:"started_at"`
	Live        bool              `json:"live"`
	File        string            `json:"file,omitempty"` // an uploaded file: played by byte ranges
	Duration    float64           `json:"duration,omitempty"`
	Codecs      map[int]string    `json:"codecs"` // init segment -> RFC 6381 codecs
	Inits       map[int]string    `json:"inits"`  // init segment -> URL
	Segments    []playbackSegment `json:"segments"`
}

// playback lists what the browser's MSE player needs: segment URLs with
// their wall-clock and media times, and each init segment's codecs.
func (s *Server) playback(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.viewable(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	segs, err := s.replay.Segments(ctx, rec.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.auditView(r, rec, "player"); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "audit trail unavailable: playback refused"})
		return
	}
	info := playbackInfo{RecordingID: rec.ID, StartedAt: rec.StartedAt, Live: rec.Status != index.RecordingEnded, Codecs: map[int]string{},
		Inits: map[int]string{}, Segments: make([]playbackSegment, 0, len(segs))}
	if rec.Source == index.SourceUpload {
		u, err := s.replay.UploadOfRecording(ctx, rec.ID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		info.File = "/api/recordings/" + rec.ID.String() + "/file"
		info.Duration = float64(u.DurationMS) / 1000
	}
	base := "/api/recordings/" + rec.ID.String()
	for _, sg := range segs {
		if _, ok := info.Inits[sg.InitN]; !ok {
			info.Inits[sg.InitN] = fmt.Sprintf("%s/init/%d.mp4", base, sg.InitN)
			if c, err := s.codecsOf(ctx, rec.ID, sg.InitN); err == nil {
				info.Codecs[sg.InitN] = c
			} else {
				s.log.Warn("init segment codecs unknown", "recording", rec.ID, "init", sg.InitN, "err", err)
			}
		}
		info.Segments = append(info.Segments, playbackSegment{Seq: sg.Seq, Init: sg.InitN, URL: fmt.Sprintf("%s/segments/%06d.m4s", base, sg.Seq),
			StartedAt: sg.StartedAt, EndedAt: sg.EndedAt, Start: sg.StartDTS.Seconds(), End: sg.EndDTS.Seconds(), Gap: sg.Gap})
	}
	writeJSON(w, http.StatusOK, info)
}

// codecsOf reads an init segment (a few hundred bytes) for its codecs.
func (s *Server) codecsOf(ctx context.Context, rec uuid.UUID, n int) (string, error) {
	in, err := s.replay.InitSegment(ctx, rec, n)
	if err != nil {
		return "", err
	}
	o, err := s.objects.Open(ctx, in.Key)
	if err != nil {
		return "", err
	}
	defer o.Close()
	b, err := io.ReadAll(io.LimitReader(o, 1<<20))
	if err != nil {
		return "", err
	}
	return replay.Codecs(b)
}

// timelineRecording is one recording on an incident's timeline.
type timelineRecording struct {
	index.Recording
	Gaps  []index.Gap          `json:"gaps"`
	Links []index.IncidentLink `json:"links"`
}

type timeline struct {
	Incident    index.Incident      `json:"incident"`
	Assignments []index.Assignment  `json:"assignments"`
	Recordings  []timelineRecording `json:"recordings"`
	From        *time.Time          `json:"from"`
	To          *time.Time          `json:"to"`
}

// timeline: an incident with every linked recording (officer, device,
// span, gaps, how it was linked) on one wall-clock axis, earliest first.
func (s *Server) timeline(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "id")
	if !ok {
		return
	}
	if s.replay == nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "the archive is not available"})
		return
	}
	ctx := r.Context()
	inc, err := s.domain.Incident(ctx, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	tl := timeline{Incident: inc, Recordings: []timelineRecording{}}
	if tl.Assignments, err = s.domain.Assignments(ctx, id); err != nil {
		s.fail(w, r, err)
		return
	}
	recs, _, err := s.replay.IncidentRecordings(ctx, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, rec := range recs {
		tr := timelineRecording{Recording: rec}
		if tr.Gaps, err = s.replay.Gaps(ctx, rec.ID); err == nil {
			tr.Links, err = s.replay.RecordingLinks(ctx, rec.ID, true)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		tl.Recordings = append(tl.Recordings, tr)
		start, end := rec.StartedAt, time.Now().UTC()
		if rec.EndedAt != nil {
			end = *rec.EndedAt
		}
		if tl.From == nil || start.Before(*tl.From) {
			tl.From = &start
		}
		if tl.To == nil || end.After(*tl.To) {
			tl.To = &end
		}
	}
	_ = s.audit(r, index.AuditEvent{Action: "incident.view", ObjectType: "incident", ObjectID: id.String(), IncidentID: &id})
	writeJSON(w, http.StatusOK, tl)
}

// originalFile streams an uploaded file as it was received, with range
// requests: browsers and players play an MP4 this way without a derived
// copy.
func (s *Server) originalFile(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.viewable(w, r)
	if !ok {
		return
	}
	if rec.Source != index.SourceUpload {
		writeJSON(w, http.StatusNotFound, apiError{Error: "only uploads have an original file; recordings replay by segments"})
		return
	}
	u, err := s.replay.UploadOfRecording(r.Context(), rec.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.auditView(r, rec, "file"); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "audit trail unavailable: playback refused"})
		return
	}
	ctype := "video/mp4"
	if u.Container == "mov" {
		ctype = "video/quicktime"
	}
	s.serveObject(w, r, u.Key, u.Filename, ctype)
}
