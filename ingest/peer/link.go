// Package peer is the link between the nodes sharing one database for live
// viewing: a node serves its cameras' streams to the other nodes, and
// pulls a camera held by another node once, however many of its viewers
// watch it, into a local media.Stream that the relay fans out; it lists
// every node's live recordings and wakes the wall's event streams when any
// node's list changes (PostgreSQL LISTEN on index.LiveChannel).
//
// A pull is an HTTP GET of the holding node's internal route (web) with a
// token made with the link key (HMAC-SHA256; the key is derived from the
// platform's signing key, which every node holds); the answer is the
// stream in a compact framed format (wire.go): the tracks, the stream's
// description, then its frames from the last keyframe on.
package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwcplatform/bwc/ingest"
	"github.com/bwcplatform/bwc/ingest/media"
	"github.com/bwcplatform/bwc/storage/index"
)

// Config of the link.
type Config struct {
	Node      string        // this node's name (-node)
	Key       []byte        // the link key (at least 32 bytes), the same on every node
	Linger    time.Duration // a pulled stream stops this long after its last reader left
	KeepAlive time.Duration // a holder sends a keepalive after this long without a frame; a pull silent for 3× is reconnected
	TokenTTL  time.Duration // lifetime of a pull's token
	HTTPS     bool          // the nodes serve HTTPS: a pull is https://<holder's advertised HTTP address>
	// Advertise, when set, gives the address the other nodes reach this
	// node's HTTP server at (host:port), written to its node row at Run
	// (the bound address is known only once the web server listens).
	Advertise func() string
}

// ErrConfig: an invalid field of Config (each named).
var ErrConfig = errors.New("invalid inter-node link configuration")

func (c Config) validate() error {
	var errs []error
	bad := func(field, why string) { errs = append(errs, fmt.Errorf("%w: %s %s", ErrConfig, field, why)) }
	if c.Node == "" {
		bad("Node", "is empty")
	}
	if len(c.Key) < 32 {
		bad("Key", fmt.Sprintf("has %d bytes, want at least 32", len(c.Key)))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Linger", c.Linger}, {"KeepAlive", c.KeepAlive}, {"TokenTTL", c.TokenTTL}} {
		if d.v <= 0 {
			bad(d.name, fmt.Sprintf("is %v, must be positive", d.v))
		}
	}
	return errors.Join(errs...)
}

// ErrUnreachable: the node holding a recording could not be reached (or
// its stream broke off before it began).
var ErrUnreachable = errors.New("the node holding the recording is unreachable")

// errEnded: the holder said the recording ended.
var errEnded = errors.New("recording ended on its node")

// Directory is what the link needs of the database.
type Directory interface {
	LiveHolder(ctx context.Context, rec uuid.UUID) (index.Node, error)
	LiveElsewhere(ctx context.Context, self string) ([]index.LiveRecording, error)
	AdvertiseHTTP(ctx context.Context, node, addr string) error
	ListenLive(ctx context.Context) (*index.LiveListener, error)
}

var _ Directory = (*index.DB)(nil)

// Local is what the link needs of this node's ingest.
type Local interface {
	Stream(id uuid.UUID) (*media.Stream, bool)
	Live() []ingest.Live
	Watch() (<-chan struct{}, func())
}

// Live is a live recording of the cluster and the node that holds it.
// Figures measured where the camera is (bitrate, loss, reconnects, clock
// offset) are those of this node's own recordings only; another node's
// recording shows what its row says (officer, incidents, codecs, status)
// and zero figures.
type Live struct {
	ingest.Live
	Node string `json:"node"`
}

// Link serves this node's streams to the other nodes and pulls theirs.
type Link struct {
	cfg    Config
	dir    Directory
	local  Local
	log    *slog.Logger
	met    *metrics
	client *http.Client
	now    func() time.Time
	ready  chan struct{}
	stop   chan struct{}

	workers sync.WaitGroup // pulls and Run's goroutines

	mu       sync.Mutex
	closed   bool
	pulls    map[uuid.UUID]*pull
	watchers map[chan struct{}]struct{}
	others   []Live // other nodes' live recordings, cached
	othersAt time.Time
	gen      uint64 // bumped by every announcement: the cache is stale
	otherGen uint64
}

// othersFor is how long the other nodes' list is cached when no
// announcement arrives (the LISTEN connection could be down).
const othersFor = 2 * time.Second

// New validates cfg. Nothing runs until Run.
func New(cfg Config, dir Directory, local Local, reg prometheus.Registerer, log *slog.Logger) (*Link, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 5 * time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       time.Minute,
		ForceAttemptHTTP2:     false, // one TCP connection per stream: a slow stream never holds up another
	}
	return &Link{cfg: cfg, dir: dir, local: local, log: log, met: newMetrics(reg), client: &http.Client{Transport: tr},
		now: time.Now, ready: make(chan struct{}), stop: make(chan struct{}),
		pulls: map[uuid.UUID]*pull{}, watchers: map[chan struct{}]struct{}{}}, nil
}

// Ready is closed once Run has advertised the node's address.
func (l *Link) Ready() <-chan struct{} { return l.ready }

// Run advertises this node's HTTP address (Config.Advertise; retried
// while the database is down), closes Ready, then until ctx ends or Close:
// listens for the cluster's live
// announcements (one connection, reconnected), wakes the watchers on them
// and on this node's own changes, and stops pulls nobody reads.
func (l *Link) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.workers.Add(1) // Close waits for Run
	l.mu.Unlock()
	defer l.workers.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-l.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	advertised := l.advertise(ctx, true)
	close(l.ready)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.listen(ctx) }()
	go func() { defer wg.Done(); l.forwardLocal(ctx) }()
	tick := time.NewTicker(max(l.cfg.Linger/4, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
			l.reap()
			if !advertised {
				advertised = l.advertise(ctx, false)
			}
		}
	}
}

// advertise writes this node's HTTP address to its row (Config.Advertise)
// and reports whether it is done. The database may be down (the node
// records on meanwhile): Run tries again until it is written.
func (l *Link) advertise(ctx context.Context, first bool) bool {
	if l.cfg.Advertise == nil {
		return true
	}
	addr := l.cfg.Advertise()
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := l.dir.AdvertiseHTTP(actx, l.cfg.Node, addr); err != nil {
		if first {
			l.log.Warn("inter-node link: this node's HTTP address not advertised yet (retrying): other nodes cannot pull its cameras",
				"node", l.cfg.Node, "http_addr", addr, "err", err)
		}
		return false
	}
	l.log.Info("inter-node link ready", "node", l.cfg.Node, "http_addr", addr)
	return true
}

// Close stops every pull and Run, and waits for their goroutines.
func (l *Link) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.stop)
	for _, p := range l.pulls {
		p.cancel()
	}
	l.mu.Unlock()
	l.workers.Wait()
	l.client.CloseIdleConnections()
	return nil
}

// --- the cluster's live list and its changes ---

// Watch returns a channel that receives (coalesced) when this node's live
// list changes or any node announces a change, and a function to stop.
func (l *Link) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	l.watchers[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.watchers, ch)
		l.mu.Unlock()
	}
}

// wake signals every watcher; stale marks the other nodes' list as stale.
func (l *Link) wake(stale bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if stale {
		l.gen++
	}
	for ch := range l.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// forwardLocal wakes the watchers on this node's own changes.
func (l *Link) forwardLocal(ctx context.Context) {
	ch, stop := l.local.Watch()
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			l.wake(false)
		}
	}
}

// listen LISTENs for the cluster's announcements on a connection of its
// own, reconnecting after a loss (with the watchers woken: an announcement
// may have been missed meanwhile).
func (l *Link) listen(ctx context.Context) {
	wait := 100 * time.Millisecond
	failing := false
	for ctx.Err() == nil {
		ln, err := l.dir.ListenLive(ctx)
		if err != nil {
			if !failing && ctx.Err() == nil {
				l.log.Warn("cluster live announcements: cannot listen; the wall sees other nodes' changes late", "err", err)
			}
			failing = true
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			wait = min(2*wait, 5*time.Second)
			continue
		}
		if failing {
			l.log.Info("cluster live announcements: listening again")
		}
		failing, wait = false, 100*time.Millisecond
		l.met.listening.Set(1)
		l.wake(true)
		for {
			node, err := ln.Wait(ctx)
			if err != nil {
				break
			}
			l.met.announcements.Inc()
			l.wake(node != l.cfg.Node || node == "")
		}
		l.met.listening.Set(0)
		ln.Close()
	}
}

// ClusterLive lists the live recordings of every node, oldest first: this
// node's from its ingest (with their figures), the others' from the
// database (cached until an announcement or for othersFor).
func (l *Link) ClusterLive(ctx context.Context) ([]Live, error) {
	local := l.local.Live()
	out := make([]Live, 0, len(local))
	seen := make(map[uuid.UUID]bool, len(local))
	for _, x := range local {
		out = append(out, Live{Live: x, Node: l.cfg.Node})
		seen[x.RecordingID] = true
	}
	others, err := l.othersLive(ctx)
	if err != nil {
		return nil, err
	}
	for _, x := range others {
		if !seen[x.RecordingID] { // moving here: this node's own entry wins
			out = append(out, x)
		}
	}
	slices.SortStableFunc(out, func(a, b Live) int { return a.StartedAt.Compare(b.StartedAt) })
	return out, nil
}

func (l *Link) othersLive(ctx context.Context) ([]Live, error) {
	l.mu.Lock()
	gen := l.gen
	if l.othersAt != (time.Time{}) && l.otherGen == gen && l.now().Sub(l.othersAt) < othersFor {
		out := l.others
		l.mu.Unlock()
		return out, nil
	}
	l.mu.Unlock()
	recs, err := l.dir.LiveElsewhere(ctx, l.cfg.Node)
	if err != nil {
		return nil, err
	}
	out := make([]Live, len(recs))
	for i, r := range recs {
		out[i] = fromRow(r)
	}
	l.mu.Lock()
	if l.gen == gen { // no announcement meanwhile
		l.others, l.othersAt, l.otherGen = out, l.now(), gen
	}
	l.mu.Unlock()
	return out, nil
}

// fromRow describes another node's live recording from its row.
func fromRow(r index.LiveRecording) Live {
	x := Live{Node: r.NodeID, Live: ingest.Live{RecordingID: r.ID, Device: r.DeviceSerial, Indexed: true,
		Unbound: r.OfficerID == nil, StartedAt: r.StartedAt, Status: r.Status, RemoteAddr: r.RemoteAddr,
		VideoCodec: r.VideoCodec, AudioCodec: r.AudioCodec, Width: r.Width, Height: r.Height,
		ClockOffsetMS: r.ClockOffsetMS, Incidents: []ingest.Incident{}}}
	if r.OfficerID != nil {
		x.Officer = &ingest.Officer{ID: *r.OfficerID, Name: r.OfficerName, Badge: r.OfficerBadge}
	}
	for _, i := range r.Incidents {
		x.Incidents = append(x.Incidents, ingest.Incident{ID: i.ID, Number: i.Number, Method: i.Method})
	}
	return x
}

// --- serving this node's streams ---

// Outgoing is an authorized pull of one of this node's streams.
type Outgoing struct {
	l    *Link
	st   *media.Stream
	rec  uuid.UUID
	from string
}

// Open authorizes a pull of rec (the request's Authorization header):
// ErrRefused for a bad token, media.ErrNotLive when this node does not hold
// the recording. Nothing is written yet.
func (l *Link) Open(rec uuid.UUID, authorization string) (*Outgoing, error) {
	from, err := verify(l.cfg.Key, authorization, rec, l.now(), 2*l.cfg.TokenTTL)
	if err != nil {
		l.met.refused.Inc()
		l.log.Warn("inter-node pull refused", "recording", rec, "err", err)
		return nil, err
	}
	st, ok := l.local.Stream(rec)
	if !ok {
		return nil, fmt.Errorf("pull of %s by node %s: %w", rec, from, media.ErrNotLive)
	}
	return &Outgoing{l: l, st: st, rec: rec, from: from}, nil
}

// countWriter counts the bytes written.
type countWriter struct {
	w io.Writer
	n func(int)
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n(n)
	return n, err
}

// Send writes the stream to the pulling node until the recording ends (an
// end message), ctx ends or a write fails: its description, the frames
// from the last keyframe on, a keepalive when no frame went for
// KeepAlive. flush pushes what was written to the network. Its own reader
// of the stream is bounded: a pulling node that falls behind loses frames
// up to the next keyframe, never the camera's other readers.
func (o *Outgoing) Send(ctx context.Context, w io.Writer, flush func() error) error {
	l := o.l
	// woken by each picture, the audio between pictures sent with it, and
	// flushed once what is queued is written: a write (and the pulling
	// node's read) per picture, not per frame
	r := o.st.Subscribe(media.ReaderOptions{Name: "peer " + o.from, Size: 1024, FromKeyframe: true, Batch: sendBatch,
		OnDrop: func(n int) { l.met.droppedOut.Add(float64(n)) }})
	defer r.Close()
	l.met.streamsOut.Inc()
	defer l.met.streamsOut.Dec()
	l.log.Info("inter-node stream out", "recording", o.rec, "node", o.from)
	defer l.log.Info("inter-node stream out ended", "recording", o.rec, "node", o.from)
	enc := newEncoder(countWriter{w, func(n int) { l.met.bytesOut.Add(float64(n)) }})
	info := o.st.Info()
	if _, err := enc.info(info); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	for {
		var f *media.Frame
		var err error
		if r.Len() > 0 {
			f, err = r.Read(ctx) // at once
		} else {
			rctx, cancel := context.WithTimeout(ctx, l.cfg.KeepAlive)
			f, err = r.Read(rctx)
			cancel()
		}
		switch {
		case err == nil:
			if !slices.Contains(info.Tracks, f.Track) {
				if now := o.st.Info(); !slices.Equal(now.Tracks, info.Tracks) {
					info = now
					if _, err := enc.info(info); err != nil {
						return err
					}
				}
			}
			if _, err := enc.frame(f); err != nil {
				return err
			}
			if r.Len() > 0 {
				continue // flushed with what follows
			}
		case errors.Is(err, io.EOF):
			if _, err := enc.send(msgEnd, nil); err != nil {
				return err
			}
			return flush()
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			if _, err := enc.send(msgKeep, nil); err != nil {
				return err
			}
		default:
			return err
		}
		if err := flush(); err != nil {
			return err
		}
	}
}

// sendBatch: an outgoing stream's reader is woken by each picture or each
// sendBatch frames (a stream without video), not by every frame.
const sendBatch = 8

// --- pulling other nodes' streams ---

// pull is one recording held by another node, pulled here once: a local
// stream every viewer of this node reads.
type pull struct {
	id     uuid.UUID
	cancel context.CancelFunc
	ready  chan struct{} // closed once the stream exists (stream set) or the first try failed (err set)
	stream *media.Stream
	err    error

	lastDTS map[media.Kind]time.Duration // of the frames written, per kind (run's goroutine only)

	lastUsed time.Time // guarded by Link.mu
}

// Pull returns the local stream of a recording held by another node,
// pulling it from its holder if no viewer of this node watches it yet (one
// inter-node stream per recording, however many viewers). It waits until
// the holder has sent the stream's description. media.ErrNotLive when the
// recording is not live on another node; ErrUnreachable when its holder
// cannot be reached; ErrRefused when it refuses the link key. The stream
// ends when the recording ends, or Linger after its last reader left.
func (l *Link) Pull(ctx context.Context, id uuid.UUID) (*media.Stream, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("pull %s: link closed: %w", id, media.ErrNotLive)
	}
	p := l.pulls[id]
	if p == nil {
		pctx, cancel := context.WithCancel(context.Background())
		p = &pull{id: id, cancel: cancel, ready: make(chan struct{}), lastDTS: map[media.Kind]time.Duration{}}
		l.pulls[id] = p
		l.workers.Add(1)
		go func() {
			defer l.workers.Done()
			l.run(pctx, p)
		}()
	}
	p.lastUsed = l.now()
	l.mu.Unlock()
	select {
	case <-p.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if p.err != nil {
		return nil, p.err
	}
	return p.stream, nil
}

// Streams counts the inter-node streams running: pulled here (in) and
// served to other nodes (out).
func (l *Link) Streams() (in, out int) {
	return int(gaugeValue(l.met.streamsIn)), int(gaugeValue(l.met.streamsOut))
}

// reap stops the pulls nobody has read for Linger.
func (l *Link) reap() {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, p := range l.pulls {
		select {
		case <-p.ready:
		default:
			continue // still connecting: Pull waits for it
		}
		if p.stream != nil && p.stream.Readers() > 0 {
			p.lastUsed = now
			continue
		}
		if now.Sub(p.lastUsed) >= l.cfg.Linger {
			delete(l.pulls, id)
			p.cancel()
		}
	}
}

// run pulls one recording, reconnecting after a drop (with backoff) until
// the recording ends, the link refuses, the pull is stopped, or its first
// try fails (Pull reports that at once).
func (l *Link) run(ctx context.Context, p *pull) {
	defer func() {
		l.mu.Lock()
		if l.pulls[p.id] == p {
			delete(l.pulls, p.id)
		}
		l.mu.Unlock()
		if p.stream != nil {
			p.stream.Close() // the relay's feed ends its viewers: "recording ended"
		}
		p.cancel()
	}()
	wait := 200 * time.Millisecond
	for {
		started := p.stream != nil
		err := l.pullOnce(ctx, p)
		switch {
		case ctx.Err() != nil:
			if !started && p.stream == nil {
				p.err = fmt.Errorf("pull %s: stopped: %w", p.id, media.ErrNotLive)
				close(p.ready)
			}
			return
		case p.stream == nil: // the first try failed: Pull says why
			p.err = err
			close(p.ready)
			return
		case errors.Is(err, errEnded), errors.Is(err, media.ErrNotLive):
			l.log.Info("inter-node stream in ended", "recording", p.id, "why", err)
			return
		case errors.Is(err, ErrRefused):
			l.log.Error("inter-node stream in refused: do the nodes hold the same signing key?", "recording", p.id, "err", err)
			return
		}
		l.met.reconnects.Inc()
		l.log.Warn("inter-node stream in broke off: reconnecting", "recording", p.id, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// url is where a holder serves rec.
func (l *Link) url(addr string, rec uuid.UUID) string {
	if !strings.Contains(addr, "://") {
		scheme := "http://"
		if l.cfg.HTTPS {
			scheme = "https://"
		}
		addr = scheme + addr
	}
	return strings.TrimRight(addr, "/") + "/internal/live/" + rec.String()
}

// pullOnce finds the recording's holder, connects and copies its stream
// into p.stream (made from the first description) until the connection
// ends. A frame the holder sends again after a reconnect (its GOP cache)
// is not written twice.
func (l *Link) pullOnce(ctx context.Context, p *pull) error {
	holder, err := l.dir.LiveHolder(ctx, p.id)
	switch {
	case errors.Is(err, index.ErrNotFound):
		return fmt.Errorf("pull %s: %w", p.id, media.ErrNotLive)
	case err != nil:
		return fmt.Errorf("pull %s: %w: %w", p.id, ErrUnreachable, err)
	case holder.ID == l.cfg.Node:
		// held here now: this node's own stream serves new viewers
		return fmt.Errorf("pull %s: held by this node: %w", p.id, media.ErrNotLive)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, l.url(holder.HTTPAddr, p.id), nil)
	if err != nil {
		return fmt.Errorf("pull %s from node %s: %w: %w", p.id, holder.ID, ErrUnreachable, err)
	}
	req.Header.Set("Authorization", token(l.cfg.Key, l.cfg.Node, p.id, l.now().Add(l.cfg.TokenTTL)))
	resp, err := l.client.Do(req)
	if err != nil {
		return fmt.Errorf("pull %s from node %s: %w: %w", p.id, holder.ID, ErrUnreachable, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusForbidden:
		return fmt.Errorf("pull %s from node %s: %w (403)", p.id, holder.ID, ErrRefused)
	case http.StatusNotFound:
		return fmt.Errorf("pull %s from node %s: %w", p.id, holder.ID, media.ErrNotLive)
	default:
		return fmt.Errorf("pull %s from node %s: %w: %s", p.id, holder.ID, ErrUnreachable, resp.Status)
	}
	l.met.streamsIn.Inc()
	defer l.met.streamsIn.Dec()
	l.log.Info("inter-node stream in", "recording", p.id, "node", holder.ID)
	// a holder silent for 3 keepalives is gone: cut the connection
	watchdog := time.AfterFunc(3*l.cfg.KeepAlive, cancel)
	defer watchdog.Stop()
	dec := newDecoder(resp.Body)
	reconnect := p.stream != nil
	skipped := 0
	for {
		m, err := dec.next()
		if err != nil {
			if errors.Is(err, ErrWire) {
				l.log.Error("inter-node stream in: bad data", "recording", p.id, "node", holder.ID, "err", err)
			}
			return fmt.Errorf("pull %s from node %s: %w: %w", p.id, holder.ID, ErrUnreachable, err)
		}
		watchdog.Reset(3 * l.cfg.KeepAlive)
		l.met.bytesIn.Add(float64(m.size))
		switch m.typ {
		case msgInfo:
			if p.stream == nil {
				p.stream = media.NewStream(*m.info)
				close(p.ready)
			} else {
				p.stream.SetTracks(m.info.Tracks)
				p.stream.SetOfficer(m.info.OfficerID)
			}
		case msgFrame:
			if p.stream == nil {
				return fmt.Errorf("pull %s from node %s: %w: a frame before the description", p.id, holder.ID, ErrWire)
			}
			f := m.frame
			if last, ok := p.lastDTS[f.Track.Kind]; reconnect && ok && f.DTS <= last && skipped < media.StreamGOPFrames {
				skipped++ // sent before the reconnect
				continue
			}
			if reconnect {
				f.Gap, reconnect = true, false
			}
			p.lastDTS[f.Track.Kind] = f.DTS
			p.stream.Write(f)
		case msgEnd:
			return errEnded
		}
	}
}
