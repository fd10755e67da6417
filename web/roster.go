package web

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/bwcplatform/bwc/storage/index"
)

// RosterStore is what the roster (officers, cameras, check-outs) needs of
// the database.
type RosterStore interface {
	CreateOfficer(ctx context.Context, o index.Officer) (index.Officer, error)
	Officer(ctx context.Context, id uuid.UUID) (index.Officer, error)
	Officers(ctx context.Context) ([]index.Officer, error)
	CreateDevice(ctx context.Context, d index.Device) (index.Device, error)
	Device(ctx context.Context, id uuid.UUID) (index.Device, error)
	DeviceBySerial(ctx context.Context, serial string) (index.Device, error)
	Devices(ctx context.Context) ([]index.Device, error)
	SetDeviceStatus(ctx context.Context, id uuid.UUID, status string) (index.Device, error)
	SetDeviceGB(ctx context.Context, id uuid.UUID, gbID, transport string) (index.Device, error)
	CheckOut(ctx context.Context, deviceID, officerID uuid.UUID, at time.Time) (index.Checkout, error)
	CheckIn(ctx context.Context, deviceID uuid.UUID, at time.Time) (index.Checkout, error)
	Checkouts(ctx context.Context, openOnly bool) ([]index.Checkout, error)
}

// CameraEndpoint tells the URL cameras publish to (the ingest's).
type CameraEndpoint interface {
	CameraURL() string
}

// GBRegistry tells which GB/T 28181 devices are registered now.
type GBRegistry interface {
	// GBOnline maps the GB/T 28181 IDs of the devices registered and
	// keeping alive to when they were last heard from.
	GBOnline() map[string]time.Time
}

// roster: officers, cameras and their check-outs, and the URL cameras
// publish to.
type roster struct {
	db     RosterStore
	scoped ScopedStore
	camera CameraEndpoint
	gb     GBRegistry // nil: GB/T 28181 off
	az     *authz
	kit    *kit
}

func (h *roster) routes(r *router) {
	r.handle("POST /api/officers", adminOnly, h.createOfficer)
	r.handle("GET /api/officers", staff, h.listOfficers)
	r.handle("GET /api/officers/{id}", staff, h.getOfficer)

	r.handle("POST /api/devices", adminOnly, h.createDevice)
	r.handle("GET /api/devices", supervisors, h.listDevices)
	r.handle("GET /api/devices/{id}", supervisors, h.getDevice)
	r.handle("POST /api/devices/{id}/status", adminOnly, h.setDeviceStatus)
	r.handle("POST /api/devices/{id}/gb28181", adminOnly, h.setDeviceGB)
	r.handle("POST /api/devices/{id}/checkout", supervisors, h.checkOut)
	r.handle("POST /api/devices/{id}/checkin", supervisors, h.checkIn)
	r.handle("GET /api/checkouts", supervisors, h.listCheckouts)

	r.handle("GET /api/info", anyone, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"camera_url": h.camera.CameraURL()})
	})
}

func (h *roster) createOfficer(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Badge string `json:"badge"`
		Name  string `json:"name"`
		Unit  string `json:"unit"`
	}
	if !decode(w, r, &in) {
		return
	}
	o, err := h.db.CreateOfficer(r.Context(), index.Officer{Badge: in.Badge, Name: in.Name, Unit: in.Unit})
	h.kit.reply(w, r, http.StatusCreated, o, err)
}

// listOfficers: the officers in the principal's scope (authz.go).
func (h *roster) listOfficers(w http.ResponseWriter, r *http.Request) {
	list, err := h.scoped.OfficersInScope(r.Context(), h.az.scope(r, ResOfficer))
	if list == nil {
		list = []index.Officer{}
	}
	h.kit.reply(w, r, http.StatusOK, list, err)
}

func (h *roster) getOfficer(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !h.az.officer(w, r, id) {
		return
	}
	o, err := h.db.Officer(r.Context(), id)
	h.kit.reply(w, r, http.StatusOK, o, err)
}

func (h *roster) createDevice(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Serial string `json:"serial"`
		Model  string `json:"model"`
		Secret string `json:"secret"`
		Status string `json:"status"`
		// GB/T 28181: the 20-digit device ID it registers with over SIP
		// (optional) and its media transport (tcp, the default, or udp)
		GBID        string `json:"gb_id"`
		GBTransport string `json:"gb_transport"`
	}
	if !decode(w, r, &in) {
		return
	}
	d, err := h.db.CreateDevice(r.Context(), index.Device{Serial: in.Serial, Model: in.Model, Secret: in.Secret, Status: in.Status,
		GBID: in.GBID, GBTransport: in.GBTransport})
	h.kit.reply(w, r, http.StatusCreated, d, err)
}

// device resolves the {id} path element, which may be the device's UUID or
// its serial, and checks the rule (authz.go).
func (h *roster) device(w http.ResponseWriter, r *http.Request) (index.Device, bool) {
	ref := r.PathValue("id")
	var (
		d   index.Device
		err error
	)
	if id, perr := uuid.Parse(ref); perr == nil {
		d, err = h.db.Device(r.Context(), id)
	} else {
		d, err = h.db.DeviceBySerial(r.Context(), ref)
	}
	if err != nil {
		h.kit.fail(w, r, err)
		return index.Device{}, false
	}
	return d, h.az.device(w, r, d.ID)
}

func (h *roster) getDevice(w http.ResponseWriter, r *http.Request) {
	if d, ok := h.device(w, r); ok {
		writeJSON(w, http.StatusOK, h.view(r, d, h.gbOnline()))
	}
}

// deviceView is a device as the API shows it: with, for a GB/T 28181
// device while the platform takes GB/T 28181, whether it is online
// (registered and keeping alive) and when it was last heard from.
type deviceView struct {
	index.Device
	GBOnline   *bool      `json:"gb_online,omitempty"`
	GBLastSeen *time.Time `json:"gb_last_seen,omitempty"`
}

func (h *roster) gbOnline() map[string]time.Time {
	if h.gb == nil {
		return nil
	}
	return h.gb.GBOnline()
}

func (h *roster) view(r *http.Request, d index.Device, online map[string]time.Time) deviceView {
	v := deviceView{Device: redactDevice(r, d)}
	if d.GBID != "" && h.gb != nil {
		seen, ok := online[d.GBID]
		v.GBOnline = &ok
		if ok {
			v.GBLastSeen = &seen
		}
	}
	return v
}

func (h *roster) listDevices(w http.ResponseWriter, r *http.Request) {
	ds, err := h.scoped.DevicesInScope(r.Context(), h.az.scope(r, ResCamera))
	if err != nil {
		h.kit.fail(w, r, err)
		return
	}
	out := make([]deviceView, 0, len(ds))
	online := h.gbOnline()
	for _, d := range ds {
		out = append(out, h.view(r, d, online))
	}
	writeJSON(w, http.StatusOK, out)
}

// redactDevice hides a camera's RTSP secret from everyone but admins; an
// admin's read of it is audited as secret.read.
func redactDevice(r *http.Request, d index.Device) index.Device {
	if p, _ := PrincipalFrom(r.Context()); p.Role != index.RoleAdmin {
		d.Secret = ""
	} else if d.Secret != "" {
		disclosed(r, "device secret")
	}
	return d
}

func (h *roster) setDeviceStatus(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Status string `json:"status"`
	}
	if !decode(w, r, &in) {
		return
	}
	d, ok := h.device(w, r)
	if !ok {
		return
	}
	d, err := h.db.SetDeviceStatus(r.Context(), d.ID, in.Status)
	h.kit.reply(w, r, http.StatusOK, d, err)
}

// setDeviceGB sets (or, with an empty gb_id, clears) a device's GB/T
// 28181 device ID and media transport.
func (h *roster) setDeviceGB(w http.ResponseWriter, r *http.Request) {
	var in struct {
		GBID        string `json:"gb_id"`
		GBTransport string `json:"gb_transport"`
	}
	if !decode(w, r, &in) {
		return
	}
	d, ok := h.device(w, r)
	if !ok {
		return
	}
	d, err := h.db.SetDeviceGB(r.Context(), d.ID, in.GBID, in.GBTransport)
	h.kit.reply(w, r, http.StatusOK, redactDevice(r, d), err)
}

func (h *roster) checkOut(w http.ResponseWriter, r *http.Request) {
	var in struct {
		OfficerID string    `json:"officer_id"`
		At        time.Time `json:"at"`
	}
	if !decode(w, r, &in) {
		return
	}
	officer, err := uuid.Parse(in.OfficerID)
	if err != nil {
		h.kit.fail(w, r, &index.FieldError{Field: "officer_id", Reason: "must be an officer's UUID"})
		return
	}
	d, ok := h.device(w, r)
	if !ok || !h.az.officer(w, r, officer) {
		return
	}
	c, err := h.db.CheckOut(r.Context(), d.ID, officer, in.At)
	h.kit.reply(w, r, http.StatusCreated, c, err)
}

func (h *roster) checkIn(w http.ResponseWriter, r *http.Request) {
	var in struct {
		At time.Time `json:"at"`
	}
	if !decode(w, r, &in) {
		return
	}
	d, ok := h.device(w, r)
	if !ok {
		return
	}
	c, err := h.db.CheckIn(r.Context(), d.ID, in.At)
	h.kit.reply(w, r, http.StatusOK, c, err)
}

func (h *roster) listCheckouts(w http.ResponseWriter, r *http.Request) {
	open := r.URL.Query().Get("open")
	if open != "" && open != "true" && open != "false" {
		h.kit.fail(w, r, &index.FieldError{Field: "open", Reason: "true or false"})
		return
	}
	cs, err := h.scoped.CheckoutsInScope(r.Context(), open == "true", h.az.scope(r, ResCamera))
	if cs == nil {
		cs = []index.Checkout{}
	}
	h.kit.reply(w, r, http.StatusOK, cs, err)
}
