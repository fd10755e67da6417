package gb28181

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/bwcplatform/bwc/storage/index"
)

// maxExpires caps the registration a device asks for (seconds).
const maxExpires = 86400

// respond answers a request, with extra headers.
func respond(req *sip.Request, tx sip.ServerTransaction, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	_ = tx.Respond(res)
}

// refuse counts and logs a refused request (with the device ID) and
// answers it.
func (s *Server) refuse(req *sip.Request, tx sip.ServerTransaction, devID, reason string, code int, text string, hdrs ...sip.Header) {
	s.met.refused.WithLabelValues(reason).Inc()
	s.log.Warn("GB/T 28181 request refused", "device", devID, "method", string(req.Method), "remote", req.Source(),
		"transport", req.Transport(), "reason", reason, "status", code, "why", text)
	respond(req, tx, code, text, hdrs...)
}

// fromUser is the user part of a request's From header (the device ID).
func fromUser(req *sip.Request) string {
	if f := req.From(); f != nil {
		return f.Address.User
	}
	return ""
}

// onRegister authenticates a device (digest; user = its 20-digit ID,
// password = its secret), and registers, refreshes or unregisters it.
// Unknown device IDs are refused with 403 before any challenge (a field
// engineer sees at once that the ID on the camera is not the one on the
// platform); a wrong password is a 401 and counted.
func (s *Server) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	id := fromUser(req)
	if !index.ValidGBID(id) {
		s.refuse(req, tx, id, "bad_device_id", sip.StatusForbidden, "Device ID Must Be 20 Digits")
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 3*time.Second)
	dev, err := s.db.DeviceByGBID(ctx, id)
	cancel()
	switch {
	case errors.Is(err, index.ErrNotFound):
		s.refuse(req, tx, id, "unknown_device", sip.StatusForbidden, "Unknown Device ID")
		return
	case err != nil:
		s.log.Error("cannot check GB/T 28181 device: database unreachable", "device", id, "err", err)
		respond(req, tx, sip.StatusServiceUnavailable, "Service Unavailable", sip.NewHeader("Retry-After", "10"))
		return
	case dev.Status != index.DeviceActive:
		s.refuse(req, tx, id, "disabled", sip.StatusForbidden, "Device "+dev.Status)
		return
	}
	h := req.GetHeader("Authorization")
	if h == nil {
		// the first request of a digest exchange: challenge, count nothing
		respond(req, tx, sip.StatusUnauthorized, "Unauthorized", s.challenge(false))
		return
	}
	switch err := s.checkDigest(req, h.Value(), id, dev.Secret); {
	case errors.Is(err, errStaleNonce):
		s.met.refused.WithLabelValues("stale_nonce").Inc()
		respond(req, tx, sip.StatusUnauthorized, "Unauthorized", s.challenge(true))
		return
	case err != nil:
		s.refuse(req, tx, id, "bad_credentials", sip.StatusUnauthorized, "Unauthorized: "+err.Error(), s.challenge(false))
		return
	}
	expires := requestExpires(req)
	if expires == 0 {
		respond(req, tx, sip.StatusOK, "OK", sip.NewHeader("Expires", "0"), dateHeader(s.now()))
		s.unregister(id, "the device unregistered")
		return
	}
	expires = min(expires, maxExpires)
	s.met.registers.Inc()
	s.registered(dev, req, time.Duration(expires)*time.Second) // registered before the device hears so
	respond(req, tx, sip.StatusOK, "OK", sip.NewHeader("Expires", strconv.Itoa(expires)), dateHeader(s.now()))
	s.bringUp(dev.GBID)
}

// dateHeader: GB/T 28181 devices set their clock from the REGISTER answer.
func dateHeader(t time.Time) sip.Header {
	return sip.NewHeader("Date", t.Local().Format("2006-01-02T15:04:05.000"))
}

// requestExpires is the registration time asked (Expires header, or the
// Contact's expires parameter; 3600 when neither).
func requestExpires(req *sip.Request) int {
	if h := req.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n >= 0 {
			return n
		}
	}
	if c := req.Contact(); c != nil {
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return n
			}
		}
	}
	return 3600
}

func (s *Server) challenge(stale bool) sip.Header {
	v := fmt.Sprintf(`Digest realm="%s", nonce="%s", algorithm=MD5, qop="auth"`, s.cfg.Domain, s.nonce())
	if stale {
		v += `, stale=true`
	}
	return sip.NewHeader("WWW-Authenticate", v)
}

var errStaleNonce = errors.New("stale nonce")

// checkDigest verifies a REGISTER's digest credentials (RFC 2617, MD5,
// with or without qop=auth) against the device's secret.
func (s *Server) checkDigest(req *sip.Request, authz, id, secret string) error {
	c, err := digest.ParseCredentials(authz)
	if err != nil {
		return fmt.Errorf("malformed Authorization: %w", err)
	}
	if c.Username != id {
		return fmt.Errorf("user %q is not the device ID", c.Username)
	}
	if c.Algorithm != "" && !strings.EqualFold(c.Algorithm, "MD5") {
		return fmt.Errorf("algorithm %q (MD5 expected)", c.Algorithm)
	}
	if !s.nonceFresh(c.Nonce) {
		return errStaleNonce
	}
	ha1 := md5hex(c.Username + ":" + c.Realm + ":" + secret)
	ha2 := md5hex(string(req.Method) + ":" + c.URI)
	var want string
	switch c.QOP {
	case "":
		want = md5hex(ha1 + ":" + c.Nonce + ":" + ha2)
	case "auth":
		want = md5hex(ha1 + ":" + c.Nonce + ":" + fmt.Sprintf("%08x", c.Nc) + ":" + c.Cnonce + ":" + c.QOP + ":" + ha2)
	default:
		return fmt.Errorf("qop %q", c.QOP)
	}
	if c.Realm != s.cfg.Domain {
		return fmt.Errorf("realm %q is not the platform's domain %q", c.Realm, s.cfg.Domain)
	}
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(c.Response)), []byte(want)) != 1 {
		return errors.New("wrong password")
	}
	return nil
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// manscdp is a GB/T 28181 MANSCDP XML body (Notify, Response, Query).
type manscdp struct {
	XMLName  xml.Name
	CmdType  string `xml:"CmdType"`
	SN       string `xml:"SN"`
	DeviceID string `xml:"DeviceID"`
	Status   string `xml:"Status"`
	// Catalog
	SumNum     int `xml:"SumNum"`
	DeviceList struct {
		Items []catalogItem `xml:"Item"`
	} `xml:"DeviceList"`
	// MobilePosition
	Time      string  `xml:"Time"`
	Longitude float64 `xml:"Longitude"`
	Latitude  float64 `xml:"Latitude"`
	Speed     float64 `xml:"Speed"`
	Direction float64 `xml:"Direction"`
	Altitude  float64 `xml:"Altitude"`
}

type catalogItem struct {
	DeviceID string `xml:"DeviceID"`
	Name     string `xml:"Name"`
	Status   string `xml:"Status"`
}

// maxBody bounds a MANSCDP body.
const maxBody = 64 << 10

var errBody = errors.New("MANSCDP body")

// parseMANSCDP parses a MESSAGE/NOTIFY body (UTF-8, GB2312 or GBK).
func parseMANSCDP(b []byte) (manscdp, error) {
	var m manscdp
	if len(b) > maxBody {
		return m, fmt.Errorf("%w: %d bytes", errBody, len(b))
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.CharsetReader = func(charset string, r io.Reader) (io.Reader, error) {
		switch strings.ToLower(charset) {
		case "gb2312", "gbk", "gb18030":
			return simplifiedchinese.GB18030.NewDecoder().Reader(r), nil
		case "utf-8", "utf8", "us-ascii":
			return r, nil
		}
		return nil, fmt.Errorf("charset %q", charset)
	}
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("%w: %w", errBody, err)
	}
	if m.CmdType == "" {
		return m, fmt.Errorf("%w: no CmdType", errBody)
	}
	return m, nil
}

// parsePositionTime reads a MobilePosition time (local time of the
// platform's zone, as GB/T 28181 devices send it, or RFC 3339).
func parsePositionTime(v string, now time.Time) time.Time {
	v = strings.TrimSpace(v)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000", "2006-01-02T15:04:05", "2006-01-02 15:04:05"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t
		}
	}
	return now
}

// onMessage takes a device's MANSCDP messages: Keepalive, the Catalog
// answer, MobilePosition. Messages of devices not registered are refused
// (403): the device registers again.
func (s *Server) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	s.manscdpRequest(req, tx)
}

// onNotify takes MobilePosition NOTIFYs of a subscription the same way.
func (s *Server) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	s.manscdpRequest(req, tx)
}

func (s *Server) manscdpRequest(req *sip.Request, tx sip.ServerTransaction) {
	id := fromUser(req)
	m, err := parseMANSCDP(req.Body())
	if err != nil {
		s.refuse(req, tx, id, "bad_body", sip.StatusBadRequest, "Bad MANSCDP Body")
		return
	}
	d, from := s.online(id)
	if d == nil {
		s.refuse(req, tx, id, "not_registered", sip.StatusForbidden, "Not Registered")
		return
	}
	if from != req.Source() {
		// not where the authenticated registration came from (another
		// client naming the device, or the device behind a new NAT
		// mapping): it registers again
		s.refuse(req, tx, id, "source_mismatch", sip.StatusForbidden, "Register Again")
		return
	}
	respond(req, tx, sip.StatusOK, "OK")
	switch strings.ToLower(m.CmdType) {
	case "keepalive":
		s.keepalive(id)
	case "catalog":
		s.catalog(id, m)
	case "mobileposition":
		s.position(*d, m)
	}
}

// position stores a MobilePosition.
func (s *Server) position(d index.Device, m manscdp) {
	s.met.positions.Inc()
	if s.positions == nil {
		return
	}
	speed, dir := m.Speed, m.Direction
	p := index.Position{Device: d.Serial, At: parsePositionTime(m.Time, s.now()), Lat: m.Latitude, Lon: m.Longitude,
		Speed: &speed, Direction: &dir, Source: index.PositionGB28181}
	ctx, cancel := context.WithTimeout(s.ctx, 3*time.Second)
	defer cancel()
	if err := s.positions.AddPosition(ctx, p); err != nil {
		s.log.Warn("device position not stored", "device", d.GBID, "err", err)
	}
}
