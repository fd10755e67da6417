package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/ingest"
	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/ingest/peer"
	"github.com/bwcplatform/bwc/relay"
	"github.com/bwcplatform/bwc/storage/index"
)

// LiveSource is what web needs of the ingest: the live recordings, a
// signal when they change, and a way to reload one after a binding change.
type LiveSource interface {
	Live() []ingest.Live
	Watch() (<-chan struct{}, func())
	Refresh(id uuid.UUID) error
}

// LiveRelay is what web needs of the WebRTC relay.
type LiveRelay interface {
	Offer(ctx context.Context, rec uuid.UUID, who relay.Viewer, offer string) (relay.Answer, error)
	Patch(session, frag string) error
	Delete(session string) error
	Session(session string) (rec uuid.UUID, owner string, ok bool)
	Viewers(rec uuid.UUID) int
	LinkHeaders() []string
	OnViewerEnd(func(relay.ViewerStats, string))
}

// LiveCluster is the live view over every node sharing the database
// (peer.Link): every node's live recordings, and a signal when any node's
// list changes. Options.Cluster; nil: this node's recordings only.
type LiveCluster interface {
	ClusterLive(ctx context.Context) ([]peer.Live, error)
	Watch() (<-chan struct{}, func())
}

// PeerLink serves this node's live streams to the other nodes
// (peer.Link): Open checks a pull's token (peer.ErrRefused) and that this
// node holds the recording (media.ErrNotLive). Options.Peers; nil: the
// internal route answers 404.
type PeerLink interface {
	Open(rec uuid.UUID, authorization string) (*peer.Outgoing, error)
}

// maxSDP bounds an SDP offer or fragment.
const maxSDP = 64 << 10

// live: the live list (and its server-sent events) for the wall, and live
// views over WebRTC (WHEP), audited from start to end.
type live struct {
	ingest  LiveSource
	cluster LiveCluster // nil: this node's recordings only
	peers   PeerLink    // nil: no inter-node pulls served
	relay   LiveRelay
	closing <-chan struct{} // closed when the server stops: event streams end
	az      *authz
	kit     *kit
	pos     PositionStore // latest fixes of the live units, and their updates (nil: none)
}

// withPositions adds the units' latest positions to the live list, and
// wakes the wall's events on every new fix (positions.go).
func (h *live) withPositions(p PositionStore) *live {
	h.pos = p
	return h
}

// newLive builds the live group; the relay reports to it the end of every
// view, for the audit trail.
func newLive(src LiveSource, cluster LiveCluster, peers PeerLink, rl LiveRelay, closing <-chan struct{}, az *authz, k *kit) *live {
	h := &live{ingest: src, cluster: cluster, peers: peers, relay: rl, closing: closing, az: az, kit: k}
	rl.OnViewerEnd(h.viewEnded)
	return h
}

func (h *live) routes(r *router) {
	r.handle("GET /api/live", supervisors, h.listLive)
	r.handle("GET /api/live/events", supervisors, h.liveEvents)
	r.handle("POST /api/live/{id}/whep", supervisors, h.whepOffer)
	r.handle("PATCH /api/live/{id}/whep/{session}", supervisors, h.whepPatch)
	r.handle("DELETE /api/live/{id}/whep/{session}", supervisors, h.whepDelete)
	// the inter-node link: another node pulls a camera this node holds
	// (authenticated by the link's token, not a user: see peerStream)
	r.handle("GET /internal/live/{id}", nil, h.peerStream)
}

// liveItem is a live recording on the wall, with the node that holds it
// and its viewer count on this node.
type liveItem struct {
	peer.Live
	Viewers  int             `json:"viewers"`
	Position *index.Position `json:"position"` // the camera's latest fix (nil: none)
}

// list is every live recording: the cluster's, or this node's alone.
func (h *live) list(ctx context.Context) ([]peer.Live, error) {
	if h.cluster != nil {
		return h.cluster.ClusterLive(ctx)
	}
	l := h.ingest.Live()
	out := make([]peer.Live, len(l))
	for i, x := range l {
		out[i] = peer.Live{Live: x}
	}
	return out, nil
}

// watch signals a change of the list.
func (h *live) watch() (<-chan struct{}, func()) {
	if h.cluster != nil {
		return h.cluster.Watch()
	}
	return h.ingest.Watch()
}

// liveItems is the live list, filtered by the request's scope (authz.go).
func (h *live) liveItems(r *http.Request) ([]liveItem, error) {
	l, err := h.list(r.Context())
	if err != nil {
		return nil, err
	}
	ids := make([]uuid.UUID, len(l))
	for i, x := range l {
		ids[i] = x.RecordingID
	}
	in, err := h.az.inScope(r, ResLive, ids)
	if err != nil {
		return nil, err
	}
	out := make([]liveItem, 0, len(l))
	for _, x := range l {
		if in[x.RecordingID] {
			out = append(out, liveItem{Live: x, Viewers: h.relay.Viewers(x.RecordingID)})
		}
	}
	h.addPositions(r.Context(), out)
	return out, nil
}

// addPositions sets each item's latest fix, looked up by device. The wall
// goes on without positions when the index cannot answer.
func (h *live) addPositions(ctx context.Context, items []liveItem) {
	if h.pos == nil || len(items) == 0 {
		return
	}
	serials := make([]string, len(items))
	for i, x := range items {
		serials[i] = x.Device
	}
	latest, err := h.pos.LatestPositions(ctx, serials)
	if err != nil {
		if ctx.Err() == nil {
			h.kit.log.Warn("live list without positions", "err", err)
		}
		return
	}
	for i := range items {
		if p, ok := latest[items[i].Device]; ok {
			items[i].Position = &p
		}
	}
}

func (h *live) listLive(w http.ResponseWriter, r *http.Request) {
	items, err := h.liveItems(r)
	h.kit.reply(w, r, http.StatusOK, items, err)
}

// liveEvents streams the live list as server-sent events: at once, on
// every change, at most twice a second.
func (h *live) liveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w) // reaches Flush through the middleware's writers
	ch, stop := h.watch()
	defer stop()
	var moved <-chan struct{} // new positions (nil: never)
	if h.pos != nil {
		c, stop := h.pos.WatchPositions()
		defer stop()
		moved = c
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func() bool {
		items, err := h.liveItems(r)
		if err != nil {
			h.kit.log.Warn("live list not sent", "actor", actor(r), "err", err)
			return false
		}
		b, err := json.Marshal(items)
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "event: live\ndata: %s\n\n", b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send() {
		return
	}
	changed := func() bool {
		if !send() {
			return false
		}
		select { // coalesce bursts
		case <-time.After(500 * time.Millisecond):
			return true
		case <-r.Context().Done():
			return false
		}
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.closing:
			return
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-ch:
			if !changed() {
				return
			}
		case <-moved:
			if !changed() {
				return
			}
		}
	}
}

// readSDP reads a body of the given content type.
func (h *live) readSDP(w http.ResponseWriter, r *http.Request, want string) (string, bool) {
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

func (h *live) relayFail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, media.ErrNotLive), errors.Is(err, relay.ErrNoSession):
		writeJSON(w, http.StatusNotFound, apiError{Error: err.Error()})
	case errors.Is(err, relay.ErrBadOffer):
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
	case errors.Is(err, relay.ErrTooMany):
		w.Header().Set("Retry-After", "10")
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
	case errors.Is(err, peer.ErrUnreachable), errors.Is(err, peer.ErrRefused):
		// the camera is held by another node, which this node could not pull from
		h.kit.log.Warn("live view: the node holding the recording could not be pulled from", "actor", actor(r), "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusBadGateway, apiError{Error: "the node holding this camera cannot be reached; try again"})
	default:
		h.kit.fail(w, r, err)
	}
}

// whepOffer: POST an SDP offer, get the answer (201, Location of the
// session). The view is audited before any video flows.
func (h *live) whepOffer(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	if !h.az.recording(w, r, ResLive, id) {
		return
	}
	offer, ok := h.readSDP(w, r, "application/sdp")
	if !ok {
		return
	}
	p, _ := PrincipalFrom(r.Context())
	owner := viewOwner(p)
	if owner == "" {
		writeJSON(w, http.StatusForbidden, apiError{Error: "a live view needs a user or an API token it belongs to"})
		return
	}
	a, err := h.relay.Offer(r.Context(), id, relay.Viewer{Name: p.Login, Owner: owner}, offer)
	if err != nil {
		h.relayFail(w, r, err)
		return
	}
	// the session's ID goes to its opener only (Location below); the
	// trail, which reviewers read, gets its reference
	if err := h.kit.audit(r, index.AuditEvent{Action: "live.view.start", ObjectType: "recording", ObjectID: id.String(),
		RecordingID: &id, Details: map[string]any{"session": relay.SessionRef(a.Session)}}); err != nil {
		_ = h.relay.Delete(a.Session) // no unaudited viewing
		refused(w, "live view")
		return
	}
	for _, l := range h.relay.LinkHeaders() {
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

// viewOwner is the identity a viewing session belongs to: the user's ID,
// or for an API token (no user) the token's ID; never a login, which a
// renamed or re-created account could share. "" when there is neither.
func viewOwner(p Principal) string {
	switch {
	case p.UserID != uuid.Nil:
		return "user:" + p.UserID.String()
	case p.TokenID != uuid.Nil:
		return "token:" + p.TokenID.String()
	}
	return ""
}

// mayTouchView: a viewing session is its opener's; an admin may also end
// (DELETE) anyone's.
func mayTouchView(p Principal, owner string, ending bool) bool {
	if o := viewOwner(p); o != "" && o == owner {
		return true
	}
	return ending && p.Role == index.RoleAdmin
}

// whepSession checks that the path's session views the path's recording
// and that the principal may act on it (mayTouchView); otherwise the
// session is answered 404, as if it did not exist: whether someone else's
// session exists is not told.
func (h *live) whepSession(w http.ResponseWriter, r *http.Request, ending bool) (string, bool) {
	id, ok := pathID(w, r, "id")
	if !ok || !h.az.recording(w, r, ResLive, id) {
		return "", false
	}
	sess := r.PathValue("session")
	p, _ := PrincipalFrom(r.Context())
	if rec, owner, ok := h.relay.Session(sess); !ok || rec != id || !mayTouchView(p, owner, ending) {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no such viewing session"})
		return "", false
	}
	return sess, true
}

// whepPatch: trickled ICE candidates.
func (h *live) whepPatch(w http.ResponseWriter, r *http.Request) {
	sess, ok := h.whepSession(w, r, false)
	if !ok {
		return
	}
	frag, ok := h.readSDP(w, r, "application/trickle-ice-sdpfrag")
	if !ok {
		return
	}
	if err := h.relay.Patch(sess, frag); err != nil {
		h.relayFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// whepDelete ends a viewing session (audited when it ends): the opener's,
// or anyone's for an admin.
func (h *live) whepDelete(w http.ResponseWriter, r *http.Request) {
	sess, ok := h.whepSession(w, r, true)
	if !ok {
		return
	}
	if err := h.relay.Delete(sess); err != nil {
		h.relayFail(w, r, err)
		return
	}
	// the change, as every API change is audited, with the session's
	// reference in place of its ID (the route's generic event would put the
	// path, ID included, in the trail)
	ref := relay.SessionRef(sess)
	id, _ := uuid.Parse(r.PathValue("id"))
	_ = h.kit.audit(r, index.AuditEvent{Action: "api.change", ObjectType: "route",
		ObjectID: strings.Replace(r.URL.Path, sess, ref, 1), RecordingID: &id,
		Details: map[string]any{"route": "DELETE /api/live/{id}/whep/{session}", "status": http.StatusOK, "session": ref}})
	w.WriteHeader(http.StatusOK)
}

// peerStream serves one of this node's live recordings to another node
// of the cluster (the inter-node link): 403 without a valid token of the
// link key naming the recording, 404 when this node does not hold it;
// then the framed stream until the recording ends, the puller leaves or
// the server stops. The supervisors' views are audited where they watch.
func (h *live) peerStream(w http.ResponseWriter, r *http.Request) {
	if h.peers == nil {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no inter-node link on this node"})
		return
	}
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	out, err := h.peers.Open(id, r.Header.Get("Authorization"))
	switch {
	case errors.Is(err, peer.ErrRefused):
		writeJSON(w, http.StatusForbidden, apiError{Error: "inter-node pull refused"})
		return
	case errors.Is(err, media.ErrNotLive):
		writeJSON(w, http.StatusNotFound, apiError{Error: "this node does not hold the recording"})
		return
	case err != nil:
		h.kit.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-h.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	w.Header().Set("Content-Type", "application/vnd.bwc.live-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = out.Send(ctx, w, rc.Flush)
}

// viewEnded audits the end of a live view, however it ended.
func (h *live) viewEnded(st relay.ViewerStats, why string) {
	rec := st.RecordingID
	e := index.AuditEvent{Actor: st.Viewer, Action: "live.view.stop", ObjectType: "recording", ObjectID: rec.String(),
		RecordingID: &rec, Details: map[string]any{"session": st.Ref, "why": why,
			"seconds": int(time.Since(st.Since).Seconds()), "packets": st.Packets, "dropped_frames": st.Dropped}}
	_ = h.kit.auditEvent(context.Background(), e)
}
