package web

import (
	"bytes"
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

// ReplayStore is what replay needs of the index.
type ReplayStore interface {
	Recording(ctx context.Context, id uuid.UUID) (index.Recording, error)
	Segments(ctx context.Context, rec uuid.UUID) ([]index.Segment, error)
	SegmentsInRange(ctx context.Context, rec uuid.UUID, from, to time.Time) ([]index.Segment, error)
	Segment(ctx context.Context, rec uuid.UUID, seq int64) (index.Segment, error)
	SegmentAt(ctx context.Context, rec uuid.UUID, at time.Time) (index.Segment, error)
	InitSegment(ctx context.Context, rec uuid.UUID, n int) (index.InitSegment, error)
	UploadOfRecording(ctx context.Context, recordingID uuid.UUID) (index.Upload, error)
}

// ObjectStore opens archived objects at the version the index holds ("":
// the current one, for rows indexed before version IDs).
type ObjectStore interface {
	OpenVersion(ctx context.Context, key, version string) (*blob.Object, error)
}

// replays: a recording's media for players (HLS, the browser's MSE player,
// an upload's original file) and seeking, by the authorization rule; every
// playback is audited before media flows.
//
// Evidence is streamed through the server, not by presigned URLs: every
// byte a user gets passes the role check, and playback is audited.
type replays struct {
	db    ReplayStore
	files objectFiles
	views viewAudit
	az    *authz
	kit   *kit
	audio replay.AudioEncoder // nil: no conversion
	conv  chan struct{}       // conversions under way (bounded)
}

// maxConversions bounds the segments converted at once for browsers (one
// ffmpeg child each); further requests wait their turn.
const maxConversions = 2

func newReplays(db ReplayStore, objects ObjectStore, audio replay.AudioEncoder, az *authz, k *kit) *replays {
	return &replays{db: db, files: objectFiles{objects, k}, views: viewAudit{seen: map[string]time.Time{}}, az: az, kit: k,
		audio: audio, conv: make(chan struct{}, maxConversions)}
}

// browserCopy is the query of the init and media segments served converted
// for the browser's player (replay.BrowserInit, replay.BrowserSegment):
// the player asks for it when the playback answer's URLs carry it.
const browserCopy = "play=browser"

func (h *replays) routes(r *router) {
	r.handle("GET /api/recordings/{id}/hls.m3u8", anyone, h.hlsPlaylist)
	r.handle("GET /api/recordings/{id}/init/{file}", anyone, h.initObject)
	r.handle("GET /api/recordings/{id}/segments/{file}", anyone, h.segmentObject)
	r.handle("GET /api/recordings/{id}/seek", anyone, h.seek)
	r.handle("GET /api/recordings/{id}/playback", anyone, h.playback)
	r.handle("GET /api/recordings/{id}/file", anyone, h.originalFile)
}

// viewable loads the path's recording if the request may see it (the
// authorization rule: out of scope is 403 and audited).
func (h *replays) viewable(w http.ResponseWriter, r *http.Request) (index.Recording, bool) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return index.Recording{}, false
	}
	if !h.az.recording(w, r, ResRecording, id) {
		return index.Recording{}, false
	}
	rec, err := h.db.Recording(r.Context(), id)
	if err != nil {
		h.kit.fail(w, r, err)
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

func (h *replays) auditView(r *http.Request, rec index.Recording, how string) error {
	p, _ := PrincipalFrom(r.Context())
	key := p.Login + "/" + rec.ID.String()
	now := time.Now()
	h.views.mu.Lock()
	if last, ok := h.views.seen[key]; ok && now.Sub(last) < viewSession {
		h.views.mu.Unlock()
		return nil
	}
	for k, t := range h.views.seen {
		if now.Sub(t) >= viewSession {
			delete(h.views.seen, k)
		}
	}
	h.views.seen[key] = now
	h.views.mu.Unlock()
	id := rec.ID
	err := h.kit.audit(r, index.AuditEvent{Action: "evidence.view", ObjectType: "recording", ObjectID: id.String(), RecordingID: &id,
		Details: map[string]any{"how": how, "range": r.URL.RawQuery}})
	if err != nil {
		h.views.mu.Lock()
		delete(h.views.seen, key)
		h.views.mu.Unlock()
	}
	return err
}

// segmentsFor returns the recording's segments in [from, to) (all when
// both are zero).
func (h *replays) segmentsFor(ctx context.Context, rec uuid.UUID, from, to time.Time) ([]index.Segment, error) {
	if from.IsZero() && to.IsZero() {
		return h.db.Segments(ctx, rec)
	}
	if to.IsZero() {
		to = time.Now().Add(24 * time.Hour)
	}
	segs, err := h.db.SegmentsInRange(ctx, rec, from, to)
	return replay.Trim(segs, from, to), err
}

// hlsPlaylist: the recording (or a wall-clock range of it) as an HLS
// playlist: EVENT while live, VOD once ended.
func (h *replays) hlsPlaylist(w http.ResponseWriter, r *http.Request) {
	rec, ok := h.viewable(w, r)
	if !ok {
		return
	}
	from, to, err := timeRange(r)
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	segs, err := h.segmentsFor(r.Context(), rec.ID, from, to)
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	if len(segs) == 0 {
		writeJSON(w, http.StatusNotFound, apiError{Error: replay.ErrNoSegments.Error()})
		return
	}
	if err := h.auditView(r, rec, "hls"); err != nil {
		refused(w, "playback")
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

func (h *replays) initObject(w http.ResponseWriter, r *http.Request) {
	rec, ok := h.viewable(w, r)
	if !ok {
		return
	}
	n, err := strconv.Atoi(strings.TrimSuffix(r.PathValue("file"), ".mp4"))
	if err != nil || n < 0 {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no such init segment"})
		return
	}
	if r.URL.RawQuery == browserCopy {
		b, err := h.initBytes(r.Context(), rec.ID, n)
		if err == nil {
			b, _, err = replay.BrowserInit(b, h.audio != nil)
		}
		if err != nil {
			h.kit.fail(w, r, err)
			return
		}
		serveBytes(w, r, b, r.PathValue("file"), "video/mp4")
		return
	}
	in, err := h.db.InitSegment(r.Context(), rec.ID, n)
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	h.files.serve(w, r, in.Key, in.VersionID, r.PathValue("file"), "video/mp4")
}

func (h *replays) segmentObject(w http.ResponseWriter, r *http.Request) {
	rec, ok := h.viewable(w, r)
	if !ok {
		return
	}
	seq, err := strconv.ParseInt(strings.TrimSuffix(r.PathValue("file"), ".m4s"), 10, 64)
	if err != nil || seq < 0 {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no such segment"})
		return
	}
	seg, err := h.db.Segment(r.Context(), rec.ID, seq)
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	if err := h.auditView(r, rec, "segment"); err != nil {
		refused(w, "playback")
		return
	}
	if r.URL.RawQuery == browserCopy {
		b, err := h.browserSegment(r.Context(), rec.ID, seg)
		if err != nil {
			h.kit.fail(w, r, err)
			return
		}
		serveBytes(w, r, b, r.PathValue("file"), "video/iso.segment")
		return
	}
	h.files.serve(w, r, seg.Key, seg.VersionID, r.PathValue("file"), "video/iso.segment")
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
func (h *replays) seek(w http.ResponseWriter, r *http.Request) {
	rec, ok := h.viewable(w, r)
	if !ok {
		return
	}
	at, err := time.Parse(time.RFC3339Nano, r.URL.Query().Get("at"))
	if err != nil {
		h.kit.fail(w, r, &index.FieldError{Field: "at", Reason: "must be an RFC 3339 time"})
		return
	}
	seg, err := h.db.SegmentAt(r.Context(), rec.ID, at)
	if err != nil {
		h.kit.fail(w, r, err)
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
	RecordingID uuid.UUID      `json:"recording_id"`
	StartedAt   time.Time      `json:"started_at"`
	Live        bool           `json:"live"`
	File        string         `json:"file,omitempty"` // an uploaded file: played by byte ranges
	Duration    float64        `json:"duration,omitempty"`
	Codecs      map[int]string `json:"codecs"` // init segment -> RFC 6381 codecs
	Inits       map[int]string `json:"inits"`  // init segment -> URL
	// init segment -> what the player gets of its audio when not the
	// archived track: "converted" (to AAC, for playback only) or "none"
	// (the picture alone: audio that cannot be converted here)
	Audio    map[int]string    `json:"audio,omitempty"`
	Segments []playbackSegment `json:"segments"`
}

// playback lists what the browser's MSE player needs: segment URLs with
// their wall-clock and media times, and each init segment's codecs.
func (h *replays) playback(w http.ResponseWriter, r *http.Request) {
	rec, ok := h.viewable(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	segs, err := h.db.Segments(ctx, rec.ID)
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	if err := h.auditView(r, rec, "player"); err != nil {
		refused(w, "playback")
		return
	}
	info := playbackInfo{RecordingID: rec.ID, StartedAt: rec.StartedAt, Live: rec.Status != index.RecordingEnded, Codecs: map[int]string{},
		Inits: map[int]string{}, Audio: map[int]string{}, Segments: make([]playbackSegment, 0, len(segs))}
	if rec.Source == index.SourceUpload {
		u, err := h.db.UploadOfRecording(ctx, rec.ID)
		if err != nil {
			h.kit.fail(w, r, err)
			return
		}
		info.File = "/api/recordings/" + rec.ID.String() + "/file"
		info.Duration = float64(u.DurationMS) / 1000
	}
	base := "/api/recordings/" + rec.ID.String()
	query := map[int]string{} // init segment -> the query of its browser copy
	for _, sg := range segs {
		if _, ok := info.Inits[sg.InitN]; !ok {
			c, audio, err := h.codecsOf(ctx, rec.ID, sg.InitN)
			if audio != "" {
				query[sg.InitN] = "?" + browserCopy
				info.Audio[sg.InitN] = audio
			}
			info.Inits[sg.InitN] = fmt.Sprintf("%s/init/%d.mp4%s", base, sg.InitN, query[sg.InitN])
			if err == nil {
				info.Codecs[sg.InitN] = c
			} else {
				h.kit.log.Warn("init segment codecs unknown", "recording", rec.ID, "init", sg.InitN, "err", err)
			}
		}
		info.Segments = append(info.Segments, playbackSegment{Seq: sg.Seq, Init: sg.InitN, URL: fmt.Sprintf("%s/segments/%06d.m4s%s", base, sg.Seq, query[sg.InitN]),
			StartedAt: sg.StartedAt, EndedAt: sg.EndedAt, Start: sg.StartDTS.Seconds(), End: sg.EndDTS.Seconds(), Gap: sg.Gap})
	}
	writeJSON(w, http.StatusOK, info)
}

// codecsOf reads an init segment (a few hundred bytes) for the codecs of
// what the browser's player gets: the archived segments, or their browser
// copy when browsers cannot play the archived audio; audio says what the
// copy has of it ("converted", "none"; empty: the archived segments).
func (h *replays) codecsOf(ctx context.Context, rec uuid.UUID, n int) (codecs, audio string, err error) {
	orig, err := h.initBytes(ctx, rec, n)
	if err != nil {
		return "", "", err
	}
	b, changed, err := replay.BrowserInit(orig, h.audio != nil)
	if err != nil {
		return "", "", err
	}
	codecs, err = replay.Codecs(b)
	if changed {
		audio = "none"
		if strings.Count(codecs, ",") > 0 {
			audio = "converted"
		}
	}
	return codecs, audio, err
}

// initBytes reads an init segment as archived.
func (h *replays) initBytes(ctx context.Context, rec uuid.UUID, n int) ([]byte, error) {
	in, err := h.db.InitSegment(ctx, rec, n)
	if err != nil {
		return nil, err
	}
	return h.files.read(ctx, in.Key, in.VersionID, 1<<20)
}

// maxSegmentBytes bounds a media segment read whole for its browser copy.
const maxSegmentBytes = 256 << 20

// browserSegment converts a media segment for the browser's player, at
// most maxConversions at once. A segment whose audio fails to convert is
// served with its picture alone (and logged).
func (h *replays) browserSegment(ctx context.Context, rec uuid.UUID, seg index.Segment) ([]byte, error) {
	init, err := h.initBytes(ctx, rec, seg.InitN)
	if err != nil {
		return nil, err
	}
	media, err := h.files.read(ctx, seg.Key, seg.VersionID, maxSegmentBytes)
	if err != nil {
		return nil, err
	}
	select {
	case h.conv <- struct{}{}:
		defer func() { <-h.conv }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := replay.BrowserSegment(cctx, init, media, h.audio)
	if errors.Is(err, replay.ErrConvert) {
		h.kit.log.Error("replay: audio conversion failed: the segment plays without sound", "recording", rec, "seq", seg.Seq, "err", err)
		return replay.BrowserSegment(ctx, init, media, nil)
	}
	return out, err
}

// originalFile streams an uploaded file as it was received, with range
// requests: browsers and players play an MP4 this way without a derived
// copy.
func (h *replays) originalFile(w http.ResponseWriter, r *http.Request) {
	rec, ok := h.viewable(w, r)
	if !ok {
		return
	}
	if rec.Source != index.SourceUpload {
		writeJSON(w, http.StatusNotFound, apiError{Error: "only uploads have an original file; recordings replay by segments"})
		return
	}
	u, err := h.db.UploadOfRecording(r.Context(), rec.ID)
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	if err := h.auditView(r, rec, "file"); err != nil {
		refused(w, "playback")
		return
	}
	ctype := "video/mp4"
	if u.Container == "mov" {
		ctype = "video/quicktime"
	}
	w.Header().Set("Content-Disposition", uploadDisposition(u))
	h.files.serve(w, r, u.Key, u.VersionID, u.Filename, ctype)
}

// objectFiles serves archived objects (replay's media, export packages).
type objectFiles struct {
	objects ObjectStore
	kit     *kit
}

// read reads the indexed version of an archived object whole, up to limit
// bytes.
func (f objectFiles) read(ctx context.Context, key, version string, limit int64) ([]byte, error) {
	o, err := f.objects.OpenVersion(ctx, key, version)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	b, err := io.ReadAll(io.LimitReader(o, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("object %s over %d bytes", key, limit)
	}
	return b, nil
}

// serveBytes serves a copy made for playback (never evidence as archived).
func serveBytes(w http.ResponseWriter, r *http.Request, b []byte, name, ctype string) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "private, max-age=3600")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// serve streams the indexed version of an archived object with range
// support: a version PUT over the key later, or a delete marker, changes
// nothing served.
func (f objectFiles) serve(w http.ResponseWriter, r *http.Request, key, version, name, ctype string) {
	o, err := f.objects.OpenVersion(r.Context(), key, version)
	if err != nil {
		if errors.Is(err, blob.ErrNoObject) {
			f.kit.log.Error("indexed object missing from the bucket: run bwc verify", "key", key, "version", version)
			writeJSON(w, http.StatusNotFound, apiError{Error: "object missing from the archive"})
			return
		}
		f.kit.fail(w, r, err)
		return
	}
	defer o.Close()
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "private, max-age=3600, immutable") // write-once objects
	http.ServeContent(w, r, name, o.ModTime, o)
}
