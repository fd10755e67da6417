package gb28181

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
)

// subscribeExpires is how long a MobilePosition subscription is asked for
// (seconds); it is renewed at three quarters of what the device grants.
const subscribeExpires = 3600

// subscription is the platform's MobilePosition subscription to a device
// (GB/T 28181 9.11: SUBSCRIBE with a MANSCDP Query, the device NOTIFYs
// its position every Interval); guarded by Server.mu. It ends with the
// device's registration (the device is forgotten, nothing is renewed).
type subscription struct {
	callID  string // the subscription's dialog; empty: none yet
	fromTag string
	toTag   string
	cseq    uint32
	renewAt time.Time // when to SUBSCRIBE (again); zero: now
	busy    bool      // a SUBSCRIBE is under way
}

// subscribeDue (with Server.mu held) says whether a device's subscription
// is to be sent or renewed now: positions asked for, its Catalog asked.
func (s *Server) subscribeDue(d *device, now time.Time) bool {
	return s.cfg.PositionInterval > 0 && d.catalogDone && !d.sub.busy && !now.Before(d.sub.renewAt)
}

// subscribe sends (or renews, in the same dialog) a device's
// MobilePosition subscription. A failure is logged, counted by reason and
// retried after RetryInterval in a new dialog.
func (s *Server) subscribe(id string) {
	s.mu.Lock()
	d := s.devs[id]
	if d == nil || !s.subscribeDue(d, s.now()) {
		s.mu.Unlock()
		return
	}
	d.sub.busy = true
	if d.sub.callID == "" {
		d.sub = subscription{callID: uuid.NewString(), fromTag: sip.GenerateTagN(16), busy: true}
	}
	d.sub.cseq++
	d.sn++
	interval := max(1, int((s.cfg.PositionInterval+time.Second/2)/time.Second))
	body := fmt.Appendf(nil, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Query>\r\n<CmdType>MobilePosition</CmdType>\r\n<SN>%d</SN>\r\n<DeviceID>%s</DeviceID>\r\n<Interval>%d</Interval>\r\n</Query>\r\n", d.sn, id, interval)
	req := s.toDevice(d, sip.SUBSCRIBE, id, body, "Application/MANSCDP+xml")
	req.From().Params.Add("tag", d.sub.fromTag)
	if d.sub.toTag != "" {
		req.To().Params.Add("tag", d.sub.toTag)
	}
	callID := sip.CallIDHeader(d.sub.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: d.sub.cseq, MethodName: sip.SUBSCRIBE})
	host, portS, _ := net.SplitHostPort(s.SIPAddr())
	port, _ := strconv.Atoi(portS)
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: s.cfg.ID, Host: hostOr(host, "127.0.0.1"), Port: port}})
	req.AppendHeader(sip.NewHeader("Event", "presence"))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(subscribeExpires)))
	renewing := d.sub.toTag != ""
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.InviteTimeout)
	res, err := s.client.Do(ctx, req)
	cancel()
	reason, why := "", ""
	switch {
	case err != nil && s.ctx.Err() != nil:
		return // closing
	case errors.Is(err, context.DeadlineExceeded):
		reason, why = "timeout", fmt.Sprintf("no answer within %s", s.cfg.InviteTimeout)
	case err != nil:
		reason, why = "unreachable", err.Error()
	case res.StatusCode == 489 || res.StatusCode == sip.StatusMethodNotAllowed || res.StatusCode == sip.StatusNotImplemented:
		reason, why = "unsupported", res.StartLine() // 489 Bad Event: the device does not offer MobilePosition
	case !res.IsSuccess():
		reason, why = "refused", res.StartLine()
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	d = s.devs[id]
	if d == nil {
		return // went offline meanwhile: the subscription is forgotten with it
	}
	if reason != "" {
		d.sub = subscription{renewAt: now.Add(s.cfg.RetryInterval)}
		s.met.subscribe.WithLabelValues(reason).Inc()
		s.log.Warn("GB/T 28181 MobilePosition subscription failed: retrying", "device", id, "reason", reason, "why", why,
			"retry_in", s.cfg.RetryInterval)
		return
	}
	granted := subscribeExpires
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > 0 && n < granted {
			granted = n
		}
	}
	if t := res.To(); t != nil {
		if tag, ok := t.Params.Get("tag"); ok && tag != "" {
			d.sub.toTag = tag
		}
	}
	d.sub.busy = false
	d.sub.renewAt = now.Add(time.Duration(granted) * time.Second * 3 / 4)
	if !renewing {
		s.log.Info("GB/T 28181 MobilePosition subscribed", "device", id, "interval", interval, "expires", granted)
	}
}
