package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
)

// PositionStore is what device positions need of the index: storing a
// camera's fixes (all or none), its track, the latest fix of live units,
// and a signal when fixes are stored (the wall's events).
type PositionStore interface {
	DeviceBySerial(ctx context.Context, serial string) (index.Device, error)
	AddPositions(ctx context.Context, ps []index.Position) error
	Positions(ctx context.Context, serial string, from, to time.Time, limit int) ([]index.Position, error)
	LatestPositions(ctx context.Context, serials []string) (map[string]index.Position, error)
	WatchPositions() (<-chan struct{}, func())
}

// maxPositionBody bounds a position request's body: a full batch of fixes
// with room for whitespace, far below the API's general bound.
const maxPositionBody = 64 << 10

// defaultTrack is the period of a track asked for without from.
const defaultTrack = time.Hour

// positions: cameras report their GPS fixes (authenticated by their own
// secret, like RTSP publishing), and the wall reads a unit's track.
type positions struct {
	db  PositionStore
	az  *authz
	kit *kit
	now func() time.Time
}

func (h *positions) routes(r *router) {
	// public for the router: the camera authenticates with its serial and
	// secret (deviceAuth), not a session; the edge limits it per address
	// like every request without a session
	r.handle("POST /api/devices/{serial}/positions", public, h.post)
	r.handle("GET /api/devices/{serial}/positions", supervisors, h.track)
}

// positionFix is one fix as a camera sends it. Lat and Lon are pointers
// so that a missing one is told from 0.
type positionFix struct {
	At        time.Time `json:"at"`
	Lat       *float64  `json:"lat"`
	Lon       *float64  `json:"lon"`
	Speed     *float64  `json:"speed"`
	Direction *float64  `json:"direction"`
}

// ParsePositions reads a camera's position body: one fix as a JSON object
// {"at","lat","lon","speed"?,"direction"?}, or a batch as a JSON array of
// them (1 to index.MaxPositionBatch). Unknown fields, trailing data and
// out-of-range values are refused; the error names the fix and the field.
// The fixes are the device serial's, from source api; now is the
// server's clock.
func ParsePositions(body []byte, serial string, now time.Time) ([]index.Position, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, errors.New("empty body: send a fix {\"at\",\"lat\",\"lon\"} or an array of them")
	}
	batch := body[0] == '['
	var fixes []positionFix
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var err error
	if batch {
		err = dec.Decode(&fixes)
	} else {
		var f positionFix
		err = dec.Decode(&f)
		fixes = []positionFix{f}
	}
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON value")
	}
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err != nil {
		var timeErr *time.ParseError
		if errors.As(err, &timeErr) {
			return nil, fmt.Errorf("invalid JSON body: times are RFC 3339, e.g. 2026-11-22T08:30:00Z: %w", err)
		}
		return nil, fmt.Errorf("invalid JSON body: %w", err)
	}
	switch {
	case len(fixes) == 0:
		return nil, errors.New("an empty batch: send at least one fix")
	case len(fixes) > index.MaxPositionBatch:
		return nil, fmt.Errorf("%d fixes in one batch: at most %d", len(fixes), index.MaxPositionBatch)
	}
	out := make([]index.Position, len(fixes))
	for i, f := range fixes {
		where := ""
		if batch {
			where = fmt.Sprintf("[%d].", i)
		}
		if f.Lat == nil || f.Lon == nil {
			return nil, &index.FieldError{Field: where + "lat/lon", Reason: "both are required (decimal degrees, WGS 84)"}
		}
		p := index.Position{Device: serial, At: f.At, Lat: *f.Lat, Lon: *f.Lon, Speed: f.Speed, Direction: f.Direction, Source: index.PositionAPI}
		if err := index.ValidatePosition(p, now); err != nil {
			var fe *index.FieldError
			if errors.As(err, &fe) {
				return nil, &index.FieldError{Field: where + fe.Field, Reason: fe.Reason}
			}
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// deviceAuth checks a camera's HTTP Basic credentials: user = the path's
// serial, password = the device's secret (the one it publishes RTSP
// with). An unknown device and a wrong secret get the same answer. A
// disabled or retired camera is refused; a lost one still reports where
// it is.
func (h *positions) deviceAuth(w http.ResponseWriter, r *http.Request, serial string) bool {
	user, pass, ok := r.BasicAuth()
	if !ok || user != serial {
		w.Header().Set("WWW-Authenticate", `Basic realm="bwc devices", charset="UTF-8"`)
		writeJSON(w, http.StatusUnauthorized, apiError{Error: "device authentication required: HTTP Basic with the device serial (as in the path) and its secret, over HTTPS"})
		return false
	}
	d, err := h.db.DeviceBySerial(r.Context(), serial)
	switch {
	case errors.Is(err, index.ErrNotFound):
		d.Secret = ""
	case err != nil:
		h.kit.fail(w, r, err)
		return false
	}
	// compared in constant time (of hashes: nor the length tells); an
	// unknown device is compared too
	want := d.Secret
	if want == "" {
		want = "\x00no device\x00"
	}
	got, exp := sha256.Sum256([]byte(pass)), sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(got[:], exp[:]) != 1 || d.Secret == "" {
		h.kit.log.Warn("position refused: wrong device secret or unknown device", "device", serial, "remote", clientAddr(r))
		w.Header().Set("WWW-Authenticate", `Basic realm="bwc devices", charset="UTF-8"`)
		writeJSON(w, http.StatusUnauthorized, apiError{Error: "unknown device or wrong secret"})
		return false
	}
	if d.Status == index.DeviceDisabled || d.Status == index.DeviceRetired {
		writeJSON(w, http.StatusForbidden, apiError{Error: "device " + serial + " is " + d.Status})
		return false
	}
	return true
}

// post: POST /api/devices/{serial}/positions, a camera's fix or batch of
// fixes (ParsePositions). 201 {"stored": n}; a bad body is 400 naming the
// field, and nothing of it is stored.
func (h *positions) post(w http.ResponseWriter, r *http.Request) {
	serial := r.PathValue("serial")
	if !index.ValidSerial(serial) {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "serial in the path is not a device serial", Field: "serial"})
		return
	}
	if !h.deviceAuth(w, r, serial) {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPositionBody))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: fmt.Sprintf("request body larger than %d bytes", maxPositionBody)})
		return
	}
	ps, err := ParsePositions(body, serial, h.now())
	if err != nil {
		var fe *index.FieldError
		if errors.As(err, &fe) {
			writeJSON(w, http.StatusBadRequest, apiError{Error: fe.Error(), Field: fe.Field})
		} else {
			writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error()})
		}
		return
	}
	if err := h.db.AddPositions(r.Context(), ps); err != nil {
		h.kit.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]int{"stored": len(ps)})
}

// track: GET /api/devices/{serial}/positions?from=&to= (RFC 3339; to
// defaults to now, from to an hour before to), the fixes oldest first, at
// most index.MaxTrack. Scoped as the camera's live view (ResTrack).
func (h *positions) track(w http.ResponseWriter, r *http.Request) {
	serial := r.PathValue("serial")
	if !index.ValidSerial(serial) {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "serial in the path is not a device serial", Field: "serial"})
		return
	}
	q := r.URL.Query()
	to, from := h.now(), time.Time{}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"to", &to}, {"from", &from}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, apiError{Error: p.name + " must be an RFC 3339 time, e.g. 2026-11-22T08:30:00Z", Field: p.name})
				return
			}
			*p.dst = t
		}
	}
	if from.IsZero() {
		from = to.Add(-defaultTrack)
	}
	if from.After(to) {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "from is after to", Field: "from"})
		return
	}
	d, err := h.db.DeviceBySerial(r.Context(), serial)
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	if !h.az.track(w, r, d.ID) {
		return
	}
	ps, err := h.db.Positions(r.Context(), serial, from, to, index.MaxTrack)
	if ps == nil {
		ps = []index.Position{}
	}
	h.kit.reply(w, r, http.StatusOK, ps, err)
}
