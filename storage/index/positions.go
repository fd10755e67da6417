package index

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Where a position came from.
const (
	PositionAPI     = "api"     // the camera posted it (POST /api/devices/{serial}/positions)
	PositionGB28181 = "gb28181" // GB/T 28181 MobilePosition
)

// Bounds of a position fix, checked by ValidatePosition (and the table's
// checks for the values).
const (
	// MaxPositionBatch is the most fixes stored in one call.
	MaxPositionBatch = 100
	// MaxPositionAhead is how far in the future (by the server's clock) a
	// fix may be: a device's clock a little ahead is accepted, a wrong
	// date is not.
	MaxPositionAhead = 2 * time.Minute
	// MaxPositionAge is how old a fix may be when it arrives: a camera
	// uploads the fixes it kept while out of coverage, not last year's.
	MaxPositionAge = 7 * 24 * time.Hour
	// MaxSpeed in km/h.
	MaxSpeed = 1000
	// MaxTrack is the most fixes one track query returns (the oldest
	// first; ask again from the last one's time for more).
	MaxTrack = 10000
)

// Position is one GPS fix of a body camera. Device is the camera's
// serial; Speed (km/h) and Direction (degrees clockwise from north, 0 to
// 360) are nil when the device did not report them.
type Position struct {
	Device    string    `json:"device"`
	At        time.Time `json:"at"`
	Lat       float64   `json:"lat"`
	Lon       float64   `json:"lon"`
	Speed     *float64  `json:"speed,omitempty"`
	Direction *float64  `json:"direction,omitempty"`
	Source    string    `json:"source"`
}

// ValidatePosition checks a fix against the bounds, now being the
// server's clock; the error is a *FieldError naming the field.
func ValidatePosition(p Position, now time.Time) error {
	finite := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	switch {
	case !ValidSerial(p.Device):
		return invalid("device", "not a device serial")
	case p.At.IsZero():
		return invalid("at", "required (RFC 3339 time of the fix)")
	case p.At.After(now.Add(MaxPositionAhead)):
		return invalid("at", fmt.Sprintf("%s is more than %v ahead of the server's clock (%s)", p.At.UTC().Format(time.RFC3339), MaxPositionAhead, now.UTC().Format(time.RFC3339)))
	case p.At.Before(now.Add(-MaxPositionAge)):
		return invalid("at", fmt.Sprintf("%s is older than %v", p.At.UTC().Format(time.RFC3339), MaxPositionAge))
	case !finite(p.Lat) || p.Lat < -90 || p.Lat > 90:
		return invalid("lat", "a latitude from -90 to 90 degrees")
	case !finite(p.Lon) || p.Lon < -180 || p.Lon > 180:
		return invalid("lon", "a longitude from -180 to 180 degrees")
	case p.Lat == 0 && p.Lon == 0:
		return invalid("lat", "0,0 is what a receiver without a fix reports: send no position instead")
	case p.Speed != nil && (!finite(*p.Speed) || *p.Speed < 0 || *p.Speed > MaxSpeed):
		return invalid("speed", fmt.Sprintf("km/h from 0 to %d", MaxSpeed))
	case p.Direction != nil && (!finite(*p.Direction) || *p.Direction < 0 || *p.Direction >= 360):
		return invalid("direction", "degrees from 0 (north) to less than 360")
	case p.Source != PositionAPI && p.Source != PositionGB28181:
		return invalid("source", "api or gb28181")
	}
	return nil
}

// AddPosition stores one fix (see AddPositions).
func (db *DB) AddPosition(ctx context.Context, p Position) error {
	return db.AddPositions(ctx, []Position{p})
}

// AddPositions stores fixes, all or none: every fix is validated first
// (ErrInvalid, a *FieldError naming the field and the fix's index), and a
// device unknown to the platform stores nothing (ErrNotFound). Watchers
// (WatchPositions) are woken once the fixes are stored.
func (db *DB) AddPositions(ctx context.Context, ps []Position) error {
	switch {
	case len(ps) == 0:
		return invalid("positions", "at least one")
	case len(ps) > MaxPositionBatch:
		return invalid("positions", fmt.Sprintf("at most %d in one batch, not %d", MaxPositionBatch, len(ps)))
	}
	now := db.now()
	n := len(ps)
	devs, ats, lats, lons := make([]string, n), make([]time.Time, n), make([]float64, n), make([]float64, n)
	speeds, dirs, srcs := make([]*float64, n), make([]*float64, n), make([]string, n)
	for i, p := range ps {
		if err := ValidatePosition(p, now); err != nil {
			fe := err.(*FieldError)
			if n > 1 {
				return invalid(fmt.Sprintf("positions[%d].%s", i, fe.Field), fe.Reason)
			}
			return err
		}
		devs[i], ats[i], lats[i], lons[i], speeds[i], dirs[i], srcs[i] = p.Device, p.At, p.Lat, p.Lon, p.Speed, p.Direction, p.Source
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO positions (device_id, at, latitude, longitude, speed, direction, source)
			SELECT d.id, f.at, f.lat, f.lon, f.speed, f.dir, f.src
			FROM unnest($1::text[], $2::timestamptz[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::text[])
			     AS f(serial, at, lat, lon, speed, dir, src)
			JOIN devices d ON d.serial = f.serial`,
			devs, ats, lats, lons, speeds, dirs, srcs)
		if err != nil {
			return err
		}
		if int(tag.RowsAffected()) != n {
			return fmt.Errorf("device not registered: %w", ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return mapErr("store positions", err)
	}
	db.positions.wake()
	return nil
}

// Positions is a device's track: its fixes from from up to to (both
// included), oldest first, at most limit of them (1 to MaxTrack).
func (db *DB) Positions(ctx context.Context, serial string, from, to time.Time, limit int) ([]Position, error) {
	if limit <= 0 || limit > MaxTrack {
		limit = MaxTrack
	}
	rows, err := db.pool.Query(ctx, `SELECT d.serial, p.at, p.latitude, p.longitude, p.speed, p.direction, p.source
		FROM positions p JOIN devices d ON d.id = p.device_id
		WHERE d.serial = $1 AND p.at >= $2 AND p.at <= $3 ORDER BY p.at LIMIT $4`, serial, from, to, limit)
	if err != nil {
		return nil, mapErr("positions of "+serial, err)
	}
	out, err := pgx.CollectRows(rows, scanPosition)
	return out, mapErr("positions of "+serial, err)
}

// LatestPositions is the newest fix of each of the devices (by serial)
// that has one.
func (db *DB) LatestPositions(ctx context.Context, serials []string) (map[string]Position, error) {
	out := map[string]Position{}
	if len(serials) == 0 {
		return out, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT d.serial, p.at, p.latitude, p.longitude, p.speed, p.direction, p.source
		FROM devices d CROSS JOIN LATERAL (
			SELECT * FROM positions p WHERE p.device_id = d.id ORDER BY p.at DESC LIMIT 1) p
		WHERE d.serial = ANY($1)`, serials)
	if err != nil {
		return nil, mapErr("latest positions", err)
	}
	ps, err := pgx.CollectRows(rows, scanPosition)
	if err != nil {
		return nil, mapErr("latest positions", err)
	}
	for _, p := range ps {
		out[p.Device] = p
	}
	return out, nil
}

func scanPosition(r pgx.CollectableRow) (Position, error) {
	var p Position
	err := r.Scan(&p.Device, &p.At, &p.Lat, &p.Lon, &p.Speed, &p.Direction, &p.Source)
	return p, err
}

// WatchPositions signals (coalesced: a channel of one) every time fixes
// are stored through this DB; stop releases the watch.
func (db *DB) WatchPositions() (<-chan struct{}, func()) {
	return db.positions.watch()
}

// positionWatch: the watchers of new positions (the wall's events). Its
// zero value is ready.
type positionWatch struct {
	mu       sync.Mutex
	watchers map[chan struct{}]struct{}
}

func (w *positionWatch) watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.watchers == nil {
		w.watchers = map[chan struct{}]struct{}{}
	}
	w.watchers[ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.watchers, ch)
		w.mu.Unlock()
	}
}

func (w *positionWatch) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.watchers {
		select {
		case ch <- struct{}{}:
		default: // already signalled: the watcher reads the latest anyway
		}
	}
}
