package index

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Officer is a police officer who can wear a camera.
type Officer struct {
	ID        uuid.UUID `json:"id"`
	Badge     string    `json:"badge"`
	Name      string    `json:"name"`
	Unit      string    `json:"unit"`
	CreatedAt time.Time `json:"created_at"`
}

// Device status values.
const (
	DeviceActive   = "active"
	DeviceDisabled = "disabled"
	DeviceLost     = "lost"
	DeviceRetired  = "retired"
)

// Device is a body camera. Serial is the ID the camera uses for itself (its
// RTSP path); Secret is its RTSP digest-authentication secret.
type Device struct {
	ID        uuid.UUID `json:"id"`
	Serial    string    `json:"serial"`
	Model     string    `json:"model"`
	Secret    string    `json:"secret,omitempty"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	// GB/T 28181: the 20-digit device ID the camera registers with over
	// SIP ("" when it does not speak GB/T 28181; its password is Secret)
	// and the transport it is asked to send media over (GBTransports).
	GBID        string `json:"gb_id"`
	GBTransport string `json:"gb_transport"`
}

// GB/T 28181 media transports a device can be asked for: TCP passive (the
// device connects to the platform; works behind a carrier's NAT) or UDP.
const (
	GBTransportTCP = "tcp"
	GBTransportUDP = "udp"
)

var gbIDRe = regexp.MustCompile(`^[0-9]{20}$`)

// ValidGBID reports whether s is a GB/T 28181 device ID (20 digits).
func ValidGBID(s string) bool { return gbIDRe.MatchString(s) }

// checkGB validates and normalises a device's GB/T 28181 fields.
func checkGB(d *Device) error {
	d.GBID = strings.TrimSpace(d.GBID)
	if d.GBTransport == "" {
		d.GBTransport = GBTransportTCP
	}
	switch {
	case d.GBID != "" && !ValidGBID(d.GBID):
		return invalid("gb_id", "20 digits (the GB/T 28181 device ID set on the camera)")
	case d.GBTransport != GBTransportTCP && d.GBTransport != GBTransportUDP:
		return invalid("gb_transport", "tcp or udp")
	}
	return nil
}

// Checkout says that an officer wore a device from CheckedOutAt until
// CheckedInAt (nil while still on shift).
type Checkout struct {
	ID           uuid.UUID  `json:"id"`
	DeviceID     uuid.UUID  `json:"device_id"`
	OfficerID    uuid.UUID  `json:"officer_id"`
	CheckedOutAt time.Time  `json:"checked_out_at"`
	CheckedInAt  *time.Time `json:"checked_in_at"`
}

// Incident is a dispatch (110) incident.
type Incident struct {
	ID        uuid.UUID  `json:"id"`
	Number    string     `json:"number"`
	Type      string     `json:"type"`
	Address   string     `json:"address"`
	Lat       *float64   `json:"lat"`
	Lon       *float64   `json:"lon"`
	OpenedAt  time.Time  `json:"opened_at"`
	ClosedAt  *time.Time `json:"closed_at"`
	Status    string     `json:"status"`
	CreatedAt time.Time  `json:"created_at"`
}

// Assignment says that an officer was sent to an incident from AssignedAt
// (dispatched) until ClearedAt (nil while still assigned).
type Assignment struct {
	ID         uuid.UUID  `json:"id"`
	IncidentID uuid.UUID  `json:"incident_id"`
	OfficerID  uuid.UUID  `json:"officer_id"`
	AssignedAt time.Time  `json:"assigned_at"`
	ClearedAt  *time.Time `json:"cleared_at"`
}

var serialRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidSerial reports whether s can be a device serial (and so a path
// element of an RTSP URL).
func ValidSerial(s string) bool { return serialRe.MatchString(s) }

func (db *DB) stamp(t time.Time) time.Time {
	if t.IsZero() {
		t = db.now()
	}
	return t.UTC().Truncate(time.Microsecond) // PostgreSQL keeps microseconds
}

// --- officers ---

// CreateOfficer stores a new officer and returns it with its ID.
func (db *DB) CreateOfficer(ctx context.Context, o Officer) (Officer, error) {
	o.Badge, o.Name, o.Unit = strings.TrimSpace(o.Badge), strings.TrimSpace(o.Name), strings.TrimSpace(o.Unit)
	switch {
	case o.Badge == "":
		return Officer{}, invalid("badge", "required")
	case len(o.Badge) > 32:
		return Officer{}, invalid("badge", "at most 32 characters")
	case o.Name == "":
		return Officer{}, invalid("name", "required")
	}
	o.ID = uuid.Must(uuid.NewV7())
	err := db.pool.QueryRow(ctx,
		`INSERT INTO officers (id, badge, name, unit) VALUES ($1, $2, $3, $4) RETURNING created_at`,
		o.ID, o.Badge, o.Name, o.Unit).Scan(&o.CreatedAt)
	if err != nil {
		return Officer{}, mapErr("create officer "+o.Badge, err)
	}
	return o, nil
}

const officerCols = `id, badge, name, unit, created_at`

func scanOfficer(r pgx.Row) (Officer, error) {
	var o Officer
	err := r.Scan(&o.ID, &o.Badge, &o.Name, &o.Unit, &o.CreatedAt)
	return o, err
}

// Officer returns one officer.
func (db *DB) Officer(ctx context.Context, id uuid.UUID) (Officer, error) {
	o, err := scanOfficer(db.pool.QueryRow(ctx, `SELECT `+officerCols+` FROM officers WHERE id = $1`, id))
	return o, mapErr("officer "+id.String(), err)
}

// Officers lists every officer by badge.
func (db *DB) Officers(ctx context.Context) ([]Officer, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+officerCols+` FROM officers ORDER BY badge`)
	if err != nil {
		return nil, mapErr("list officers", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Officer, error) { return scanOfficer(r) })
	return out, mapErr("list officers", err)
}

// --- devices ---

// CreateDevice registers a camera.
func (db *DB) CreateDevice(ctx context.Context, d Device) (Device, error) {
	d.Serial = strings.TrimSpace(d.Serial)
	if d.Status == "" {
		d.Status = DeviceActive
	}
	switch {
	case !ValidSerial(d.Serial):
		return Device{}, invalid("serial", "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	case len(d.Secret) < 8:
		return Device{}, invalid("secret", "at least 8 characters")
	case len(d.Secret) > 128 || strings.ContainsAny(d.Secret, "\"\\\r\n"):
		return Device{}, invalid("secret", "at most 128 characters, no quotes, backslashes or line breaks")
	case !validStatus(d.Status):
		return Device{}, invalid("status", "one of active, disabled, lost, retired")
	}
	if err := checkGB(&d); err != nil {
		return Device{}, err
	}
	d.ID = uuid.Must(uuid.NewV7())
	err := db.pool.QueryRow(ctx,
		`INSERT INTO devices (id, serial, model, secret, status, gb_id, gb_transport) VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), $7) RETURNING created_at`,
		d.ID, d.Serial, d.Model, d.Secret, d.Status, d.GBID, d.GBTransport).Scan(&d.CreatedAt)
	if err != nil {
		return Device{}, mapErr("create device "+d.Serial, err)
	}
	return d, nil
}

func validStatus(s string) bool {
	switch s {
	case DeviceActive, DeviceDisabled, DeviceLost, DeviceRetired:
		return true
	}
	return false
}

const deviceCols = `id, serial, model, secret, status, created_at, coalesce(gb_id, ''), gb_transport`

func scanDevice(r pgx.Row) (Device, error) {
	var d Device
	err := r.Scan(&d.ID, &d.Serial, &d.Model, &d.Secret, &d.Status, &d.CreatedAt, &d.GBID, &d.GBTransport)
	return d, err
}

// Device returns one device by ID.
func (db *DB) Device(ctx context.Context, id uuid.UUID) (Device, error) {
	d, err := scanDevice(db.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id))
	return d, mapErr("device "+id.String(), err)
}

// DeviceBySerial returns one device by the serial it calls itself.
func (db *DB) DeviceBySerial(ctx context.Context, serial string) (Device, error) {
	d, err := scanDevice(db.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE serial = $1`, serial))
	return d, mapErr("device "+serial, err)
}

// DeviceByGBID returns the device that registers over GB/T 28181 with a
// 20-digit device ID.
func (db *DB) DeviceByGBID(ctx context.Context, gbID string) (Device, error) {
	if !ValidGBID(gbID) {
		return Device{}, fmt.Errorf("device %q: %w", gbID, ErrNotFound)
	}
	d, err := scanDevice(db.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE gb_id = $1`, gbID))
	return d, mapErr("device "+gbID, err)
}

// SetDeviceGB sets (or, with an empty gbID, clears) a device's GB/T 28181
// device ID and media transport.
func (db *DB) SetDeviceGB(ctx context.Context, id uuid.UUID, gbID, transport string) (Device, error) {
	d := Device{GBID: gbID, GBTransport: transport}
	if err := checkGB(&d); err != nil {
		return Device{}, err
	}
	d, err := scanDevice(db.pool.QueryRow(ctx,
		`UPDATE devices SET gb_id = NULLIF($2, ''), gb_transport = $3 WHERE id = $1 RETURNING `+deviceCols, id, d.GBID, d.GBTransport))
	return d, mapErr("set GB/T 28181 fields of device "+id.String(), err)
}

// Devices lists every device by serial.
func (db *DB) Devices(ctx context.Context) ([]Device, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+deviceCols+` FROM devices ORDER BY serial`)
	if err != nil {
		return nil, mapErr("list devices", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Device, error) { return scanDevice(r) })
	return out, mapErr("list devices", err)
}

// SetDeviceStatus enables, disables or retires a device.
func (db *DB) SetDeviceStatus(ctx context.Context, id uuid.UUID, status string) (Device, error) {
	if !validStatus(status) {
		return Device{}, invalid("status", "one of active, disabled, lost, retired")
	}
	d, err := scanDevice(db.pool.QueryRow(ctx,
		`UPDATE devices SET status = $2 WHERE id = $1 RETURNING `+deviceCols, id, status))
	return d, mapErr("set status of device "+id.String(), err)
}

// --- check-outs ---

// CheckOut records that an officer takes a device at the given time (now
// when zero). The database refuses a device that is already checked out and
// an officer who already wears one: both are ErrConflict.
func (db *DB) CheckOut(ctx context.Context, deviceID, officerID uuid.UUID, at time.Time) (Checkout, error) {
	c := Checkout{ID: uuid.Must(uuid.NewV7()), DeviceID: deviceID, OfficerID: officerID, CheckedOutAt: db.stamp(at)}
	var status string
	if err := db.pool.QueryRow(ctx, `SELECT status FROM devices WHERE id = $1`, deviceID).Scan(&status); err != nil {
		return Checkout{}, mapErr("check out device "+deviceID.String(), err)
	}
	if status != DeviceActive {
		return Checkout{}, fmt.Errorf("check out device %s: device is %s: %w", deviceID, status, ErrConflict)
	}
	_, err := db.pool.Exec(ctx,
		`INSERT INTO checkouts (id, device_id, officer_id, checked_out_at) VALUES ($1, $2, $3, $4)`,
		c.ID, c.DeviceID, c.OfficerID, c.CheckedOutAt)
	if err != nil {
		constraint := constraintOf(err)
		err = mapErr("check out device "+deviceID.String(), err)
		switch {
		case errors.Is(err, ErrConflict) && strings.Contains(constraint, "device"):
			return Checkout{}, fmt.Errorf("device %s is already checked out: %w", deviceID, ErrConflict)
		case errors.Is(err, ErrConflict):
			return Checkout{}, fmt.Errorf("officer %s already has a device checked out: %w", officerID, ErrConflict)
		case errors.Is(err, ErrNotFound):
			return Checkout{}, fmt.Errorf("check out device %s: officer %s: %w", deviceID, officerID, ErrNotFound)
		}
		return Checkout{}, err
	}
	return c, nil
}

// CheckIn closes the open check-out of a device. A device that is not
// checked out is ErrConflict.
func (db *DB) CheckIn(ctx context.Context, deviceID uuid.UUID, at time.Time) (Checkout, error) {
	at = db.stamp(at)
	var c Checkout
	err := db.pool.QueryRow(ctx,
		`UPDATE checkouts SET checked_in_at = greatest($2, checked_out_at)
		 WHERE device_id = $1 AND checked_in_at IS NULL
		 RETURNING id, device_id, officer_id, checked_out_at, checked_in_at`, deviceID, at).
		Scan(&c.ID, &c.DeviceID, &c.OfficerID, &c.CheckedOutAt, &c.CheckedInAt)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, derr := db.Device(ctx, deviceID); derr != nil {
			return Checkout{}, fmt.Errorf("check in: %w", derr)
		}
		return Checkout{}, fmt.Errorf("check in device %s: device is not checked out: %w", deviceID, ErrConflict)
	}
	return c, mapErr("check in device "+deviceID.String(), err)
}

const checkoutCols = `id, device_id, officer_id, checked_out_at, checked_in_at`

func scanCheckout(r pgx.Row) (Checkout, error) {
	var c Checkout
	err := r.Scan(&c.ID, &c.DeviceID, &c.OfficerID, &c.CheckedOutAt, &c.CheckedInAt)
	return c, err
}

// Checkouts lists check-outs, newest first; only the open ones when
// openOnly.
func (db *DB) Checkouts(ctx context.Context, openOnly bool) ([]Checkout, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+checkoutCols+` FROM checkouts
		WHERE NOT $1 OR checked_in_at IS NULL ORDER BY checked_out_at DESC, id`, openOnly)
	if err != nil {
		return nil, mapErr("list check-outs", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Checkout, error) { return scanCheckout(r) })
	return out, mapErr("list check-outs", err)
}

// WearerAt returns the check-out of a device that covers the instant at:
// who wore the camera then. ErrNotFound when nobody did.
func (db *DB) WearerAt(ctx context.Context, deviceID uuid.UUID, at time.Time) (Checkout, error) {
	c, err := scanCheckout(db.pool.QueryRow(ctx, `SELECT `+checkoutCols+` FROM checkouts
		WHERE device_id = $1 AND tstzrange(checked_out_at, checked_in_at, '[)') @> $2::timestamptz`,
		deviceID, at))
	return c, mapErr("wearer of device "+deviceID.String(), err)
}

// --- incidents ---

// CreateIncident stores a dispatch incident.
func (db *DB) CreateIncident(ctx context.Context, in Incident) (Incident, error) {
	in.Number = strings.TrimSpace(in.Number)
	if in.Status == "" {
		in.Status = "open"
	}
	in.OpenedAt = db.stamp(in.OpenedAt)
	switch {
	case in.Number == "":
		return Incident{}, invalid("number", "required")
	case len(in.Number) > 64:
		return Incident{}, invalid("number", "at most 64 characters")
	case (in.Lat == nil) != (in.Lon == nil):
		return Incident{}, invalid("lat", "lat and lon come together")
	case in.Lat != nil && (math.IsNaN(*in.Lat) || *in.Lat < -90 || *in.Lat > 90):
		return Incident{}, invalid("lat", "between -90 and 90")
	case in.Lon != nil && (math.IsNaN(*in.Lon) || *in.Lon < -180 || *in.Lon > 180):
		return Incident{}, invalid("lon", "between -180 and 180")
	case in.Status != "open" && in.Status != "closed":
		return Incident{}, invalid("status", "open or closed")
	case in.ClosedAt != nil && in.ClosedAt.Before(in.OpenedAt):
		return Incident{}, invalid("closed_at", "before opened_at")
	}
	in.ID = uuid.Must(uuid.NewV7())
	err := db.pool.QueryRow(ctx,
		`INSERT INTO incidents (id, number, type, address, lat, lon, opened_at, closed_at, status)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING created_at`,
		in.ID, in.Number, in.Type, in.Address, in.Lat, in.Lon, in.OpenedAt, in.ClosedAt, in.Status).Scan(&in.CreatedAt)
	if err != nil {
		return Incident{}, mapErr("create incident "+in.Number, err)
	}
	return in, nil
}

const incidentCols = `id, number, type, address, lat, lon, opened_at, closed_at, status, created_at`

func scanIncident(r pgx.Row) (Incident, error) {
	var in Incident
	err := r.Scan(&in.ID, &in.Number, &in.Type, &in.Address, &in.Lat, &in.Lon, &in.OpenedAt, &in.ClosedAt, &in.Status, &in.CreatedAt)
	return in, err
}

// Incident returns one incident.
func (db *DB) Incident(ctx context.Context, id uuid.UUID) (Incident, error) {
	in, err := scanIncident(db.pool.QueryRow(ctx, `SELECT `+incidentCols+` FROM incidents WHERE id = $1`, id))
	return in, mapErr("incident "+id.String(), err)
}

// Incidents lists incidents, newest first.
func (db *DB) Incidents(ctx context.Context) ([]Incident, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+incidentCols+` FROM incidents ORDER BY opened_at DESC, id`)
	if err != nil {
		return nil, mapErr("list incidents", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Incident, error) { return scanIncident(r) })
	return out, mapErr("list incidents", err)
}

// --- assignments ---

// Assign sends an officer to an incident from the given time (now when
// zero). An overlapping assignment of the same officer to the same incident
// is ErrConflict.
func (db *DB) Assign(ctx context.Context, incidentID, officerID uuid.UUID, at time.Time) (Assignment, error) {
	a := Assignment{ID: uuid.Must(uuid.NewV7()), IncidentID: incidentID, OfficerID: officerID, AssignedAt: db.stamp(at)}
	_, err := db.pool.Exec(ctx,
		`INSERT INTO assignments (id, incident_id, officer_id, assigned_at) VALUES ($1, $2, $3, $4)`,
		a.ID, a.IncidentID, a.OfficerID, a.AssignedAt)
	if err != nil {
		err = mapErr(fmt.Sprintf("assign officer %s to incident %s", officerID, incidentID), err)
		if errors.Is(err, ErrConflict) {
			return Assignment{}, fmt.Errorf("officer %s is already assigned to incident %s: %w", officerID, incidentID, ErrConflict)
		}
		return Assignment{}, err
	}
	return a, nil
}

// ClearAssignment ends an assignment (the officer cleared the incident).
func (db *DB) ClearAssignment(ctx context.Context, incidentID, assignmentID uuid.UUID, at time.Time) (Assignment, error) {
	at = db.stamp(at)
	var a Assignment
	err := db.pool.QueryRow(ctx,
		`UPDATE assignments SET cleared_at = greatest($3, assigned_at)
		 WHERE id = $1 AND incident_id = $2 AND cleared_at IS NULL
		 RETURNING id, incident_id, officer_id, assigned_at, cleared_at`, assignmentID, incidentID, at).
		Scan(&a.ID, &a.IncidentID, &a.OfficerID, &a.AssignedAt, &a.ClearedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		var cleared bool
		if err := db.pool.QueryRow(ctx, `SELECT cleared_at IS NOT NULL FROM assignments WHERE id = $1 AND incident_id = $2`,
			assignmentID, incidentID).Scan(&cleared); err != nil {
			return Assignment{}, mapErr("clear assignment "+assignmentID.String(), err)
		}
		return Assignment{}, fmt.Errorf("clear assignment %s: already cleared: %w", assignmentID, ErrConflict)
	}
	return a, mapErr("clear assignment "+assignmentID.String(), err)
}

// Assignments lists the assignments of an incident, oldest first.
func (db *DB) Assignments(ctx context.Context, incidentID uuid.UUID) ([]Assignment, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, incident_id, officer_id, assigned_at, cleared_at
		FROM assignments WHERE incident_id = $1 ORDER BY assigned_at, id`, incidentID)
	if err != nil {
		return nil, mapErr("list assignments", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Assignment, error) {
		var a Assignment
		err := r.Scan(&a.ID, &a.IncidentID, &a.OfficerID, &a.AssignedAt, &a.ClearedAt)
		return a, err
	})
	return out, mapErr("list assignments", err)
}
