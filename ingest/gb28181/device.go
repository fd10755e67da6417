package gb28181

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/bwcplatform/bwc/storage/index"
)

// device is a registered GB/T 28181 device (guarded by Server.mu).
type device struct {
	id        string // GB/T 28181 device ID
	dev       index.Device
	transport string // SIP transport it registered over: UDP or TCP
	source    string // host:port its requests come from (behind NAT: the carrier's)
	expiresAt time.Time
	lastSeen  time.Time
	channels  []string
	catalog   chan struct{} // closed when its Catalog answer arrived
	sess      *session      // the media session, nil when none
	retryAt   time.Time     // when to INVITE again (zero: now)
	bringing  bool          // a catalog query / INVITE is under way
	// catalogDone: the Catalog was asked (answered or not); the
	// MobilePosition subscription follows it
	catalogDone bool
	sub         subscription
	sn          int
}

// registered records a successful REGISTER (the caller then answers it and
// brings the device's media up: Catalog query, then INVITE).
func (s *Server) registered(dev index.Device, req *sip.Request, exp time.Duration) {
	now := s.now()
	s.mu.Lock()
	d := s.devs[dev.GBID]
	isNew := d == nil
	if isNew {
		d = &device{id: dev.GBID, catalog: make(chan struct{})}
		s.devs[dev.GBID] = d
		s.met.online.Inc()
	}
	moved := d.source != req.Source() || d.transport != strings.ToUpper(req.Transport())
	d.dev, d.source, d.transport = dev, req.Source(), strings.ToUpper(req.Transport())
	d.expiresAt, d.lastSeen = now.Add(exp), now
	s.mu.Unlock()
	if isNew || moved {
		s.log.Info("GB/T 28181 device registered", "device", dev.GBID, "serial", dev.Serial, "remote", d.source,
			"transport", d.transport, "expires", exp)
	}
}

// unregister ends a device's registration and its media session.
func (s *Server) unregister(id, why string) {
	s.mu.Lock()
	d := s.devs[id]
	if d == nil {
		s.mu.Unlock()
		return
	}
	delete(s.devs, id)
	s.met.online.Dec()
	sess := d.sess
	d.sess = nil
	s.mu.Unlock()
	s.log.Warn("GB/T 28181 device offline", "device", id, "serial", d.dev.Serial, "why", why)
	if sess != nil {
		s.goTracked(func() { sess.stop(fmt.Errorf("device offline: %s", why)) })
	}
}

// online returns the registered device with the ID (nil when none) and
// the address its registration came from.
func (s *Server) online(id string) (*index.Device, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.devs[id]; d != nil {
		dev := d.dev
		return &dev, d.source
	}
	return nil, ""
}

func (s *Server) keepalive(id string) {
	s.mu.Lock()
	if d := s.devs[id]; d != nil {
		d.lastSeen = s.now()
	}
	s.mu.Unlock()
}

func (s *Server) catalog(id string, m manscdp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devs[id]
	if d == nil {
		return
	}
	for _, it := range m.DeviceList.Items {
		if index.ValidGBID(it.DeviceID) && !containsStr(d.channels, it.DeviceID) {
			d.channels = append(d.channels, it.DeviceID)
		}
	}
	select {
	case <-d.catalog:
	default:
		close(d.catalog)
	}
}

func containsStr(l []string, v string) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

// DeviceState is a registered device as the admin page shows it.
type DeviceState struct {
	GBID      string    `json:"gb_id"`
	Serial    string    `json:"serial"`
	Remote    string    `json:"remote"`
	Transport string    `json:"transport"`
	LastSeen  time.Time `json:"last_seen"`
	Channels  []string  `json:"channels"`
	Streaming bool      `json:"streaming"`
}

// Devices lists the devices registered now (online).
func (s *Server) Devices() []DeviceState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]DeviceState, 0, len(s.devs))
	for _, d := range s.devs {
		out = append(out, DeviceState{GBID: d.id, Serial: d.dev.Serial, Remote: d.source, Transport: d.transport,
			LastSeen: d.lastSeen, Channels: append([]string(nil), d.channels...), Streaming: d.sess != nil && d.sess.streaming()})
	}
	return out
}

// GBOnline maps the IDs of the devices registered now to when they were
// last heard from (the admin page's online state).
func (s *Server) GBOnline() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.devs))
	for id, d := range s.devs {
		out[id] = d.lastSeen
	}
	return out
}

// sweep (every second) takes offline the devices whose registration
// expired or that stopped keeping alive, fails media sessions that got no
// video in time, INVITEs online devices without media, and subscribes to
// (or renews) their MobilePosition once their Catalog was asked.
func (s *Server) sweep(now time.Time) {
	type off struct{ id, why string }
	var offline []off
	var failed []*session
	var bring, subscribe []string
	s.mu.Lock()
	for id, d := range s.devs {
		switch {
		case now.After(d.expiresAt):
			offline = append(offline, off{id, "registration expired"})
			continue
		case now.Sub(d.lastSeen) > s.cfg.KeepaliveTimeout:
			offline = append(offline, off{id, fmt.Sprintf("no keepalive for %s", s.cfg.KeepaliveTimeout)})
			continue
		}
		if d.sess != nil && d.sess.overdue(now, s.cfg.MediaWait) {
			failed = append(failed, d.sess)
		}
		if d.sess == nil && !d.bringing && !now.Before(d.retryAt) {
			bring = append(bring, id)
		}
		if s.subscribeDue(d, now) {
			subscribe = append(subscribe, id)
		}
	}
	s.mu.Unlock()
	for _, o := range offline {
		s.unregister(o.id, o.why)
	}
	for _, ss := range failed {
		reason, why := ss.failure()
		s.met.media.WithLabelValues(reason).Inc()
		s.log.Warn("GB/T 28181 media session failed: retrying", "device", ss.devID, "reason", reason, "why", why,
			"ssrc", ss.ssrcString(), "media", s.MediaAddr(), "transport", ss.transport)
		s.goTracked(func() { ss.stop(fmt.Errorf("%s: %s", reason, why)) })
	}
	for _, id := range bring {
		s.bringUp(id)
	}
	for _, id := range subscribe {
		s.goTracked(func() { s.subscribe(id) })
	}
}

// bringUp asks a device for its Catalog (once) and INVITEs its channel,
// on a goroutine, unless already under way or streaming.
func (s *Server) bringUp(id string) {
	s.mu.Lock()
	d := s.devs[id]
	if d == nil || d.bringing || d.sess != nil || s.now().Before(d.retryAt) {
		s.mu.Unlock()
		return
	}
	d.bringing = true
	s.mu.Unlock()
	ok := s.goTracked(func() {
		err := s.invite(id)
		s.mu.Lock()
		if d := s.devs[id]; d != nil {
			d.bringing = false
			if err != nil {
				d.retryAt = s.now().Add(s.cfg.RetryInterval)
			}
		}
		s.mu.Unlock()
	})
	if !ok {
		s.mu.Lock()
		d.bringing = false
		s.mu.Unlock()
	}
}

// toDevice builds a request to a registered device, sent where its
// registration came from (the NAT's address), over the same transport.
func (s *Server) toDevice(d *device, method sip.RequestMethod, target string, body []byte, ctype string) *sip.Request {
	host, portS, _ := net.SplitHostPort(d.source)
	port, _ := strconv.Atoi(portS)
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: target, Host: host, Port: port})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: s.cfg.ID, Host: s.cfg.Domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: target, Host: s.cfg.Domain}, Params: sip.NewParams()})
	req.SetTransport(d.transport)
	req.SetDestination(d.source)
	if body != nil {
		req.AppendHeader(sip.NewHeader("Content-Type", ctype))
		req.SetBody(body)
	}
	return req
}

// queryCatalog asks a device for its channels and waits for the answer
// (at most InviteTimeout).
func (s *Server) queryCatalog(ctx context.Context, id string) {
	s.mu.Lock()
	d := s.devs[id]
	if d == nil || len(d.channels) > 0 {
		s.mu.Unlock()
		return
	}
	d.sn++
	body := fmt.Appendf(nil, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Query>\r\n<CmdType>Catalog</CmdType>\r\n<SN>%d</SN>\r\n<DeviceID>%s</DeviceID>\r\n</Query>\r\n", d.sn, id)
	req := s.toDevice(d, sip.MESSAGE, id, body, "Application/MANSCDP+xml")
	wait := d.catalog
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.InviteTimeout)
	defer cancel()
	res, err := s.client.Do(ctx, req)
	if err != nil || res.StatusCode != sip.StatusOK {
		s.log.Warn("GB/T 28181 Catalog query not answered: inviting the device ID as its channel", "device", id, "err", err, "response", res)
		return
	}
	select {
	case <-wait:
	case <-ctx.Done():
		s.log.Warn("GB/T 28181 device sent no Catalog: inviting the device ID as its channel", "device", id)
	}
}
