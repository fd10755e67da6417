// The map of units (Leaflet, vendored in /assets/leaflet): each live unit
// at its latest fix (officer, unit, incident, age of the fix, status live /
// reconnecting / offline), the incidents' locations, and the selected
// unit's track over the last N minutes. A click on a unit opens its live
// video. Used by /map and by the panel beside the wall; both feed it the
// live list (GET /api/live and its server-sent events).
import { api, t, el } from './app.js';

const L = window.L;

const colors = { live: '#3fb950', reconnecting: '#e5534b', offline: '#8b98a5' };
const trackMinutes = [5, 15, 60];

function age(ts) {
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(ts)) / 1000));
  if (s < 60) return t('map.age.s', { n: s });
  if (s < 3600) return t('map.age.m', { n: Math.floor(s / 60) });
  return t('map.age.h', { n: Math.floor(s / 3600) });
}

export class UnitMap {
  // container: the element the map and its list go in. opts.list: show the
  // list of units beside the map.
  constructor(container, opts = {}) {
    this.units = new Map(); // device serial -> { rec, marker, status, row }
    this.officers = new Map(); // officer id -> Promise of the officer (for the unit)
    this.selected = null;
    this.minutes = Number(localStorage.getItem('bwc.track.minutes')) || 15;
    const mapDiv = el('div', { class: 'unitmap', id: opts.id || 'unitmap' });
    const controls = el('div', { class: 'row mapcontrols' });
    const sel = el('select', { 'aria-label': t('map.track') });
    for (const m of trackMinutes) {
      const o = el('option', { value: String(m) }, t('map.trackmin', { n: m }));
      sel.append(o);
    }
    sel.value = String(this.minutes);
    sel.onchange = () => { this.minutes = Number(sel.value); localStorage.setItem('bwc.track.minutes', sel.value); this.drawTrack(); };
    controls.append(el('span', { class: 'muted' }, t('map.track')), sel);
    this.list = opts.list ? el('table', { class: 'units' }) : null;
    container.append(controls, mapDiv);
    if (this.list) container.append(this.list);

    const tiles = document.querySelector('meta[name="bwc-map-tiles"]')?.content || '';
    this.map = L.map(mapDiv, { zoomControl: true, attributionControl: !!tiles, worldCopyJump: true });
    if (tiles) L.tileLayer(tiles, { maxZoom: 19, crossOrigin: false }).addTo(this.map);
    else mapDiv.classList.add('plain');
    this.map.setView([0, 0], 2);
    this.fitted = false;
    this.incidents = L.layerGroup().addTo(this.map);
    this.track = L.polyline([], { color: '#3d8bfd', weight: 3, opacity: .8 }).addTo(this.map);
    this.loadIncidents();
    setInterval(() => this.tick(), 1000);
    setInterval(() => this.loadIncidents(), 60000);
    window.bwcMap = this; // the browser tests read the markers' positions
  }

  // markerOf is the unit's marker (undefined without a fix), for tests.
  markerOf(serial) { return this.units.get(serial)?.marker; }

  async loadIncidents() {
    let list;
    try { list = await api('GET', '/api/incidents'); } catch { return; }
    this.incidents.clearLayers();
    for (const inc of list) {
      if (inc.lat == null || inc.lon == null || inc.status === 'closed') continue;
      const m = L.marker([inc.lat, inc.lon], { title: inc.number, icon: L.divIcon({ className: 'incident-icon', html: '', iconSize: [14, 14] }) });
      m.bindTooltip(`${inc.number} ${inc.type || ''} ${inc.address || ''}`.trim());
      m.on('click', () => window.open(`/incident?id=${inc.id}`, '_blank'));
      m.addTo(this.incidents);
    }
  }

  // update takes the live list: units come, move, and go offline.
  update(live) {
    const seen = new Set();
    for (const rec of live) {
      const serial = rec.device;
      seen.add(serial);
      let u = this.units.get(serial);
      if (!u) { u = { rec }; this.units.set(serial, u); }
      u.rec = rec;
      u.status = rec.status === 'reconnecting' ? 'reconnecting' : 'live';
      this.place(serial, u);
    }
    for (const [serial, u] of this.units) {
      if (!seen.has(serial) && u.status !== 'offline') { u.status = 'offline'; this.place(serial, u); }
    }
    if (!this.fitted) {
      const pts = [...this.units.values()].filter((u) => u.marker).map((u) => u.marker.getLatLng());
      if (pts.length) { this.map.fitBounds(L.latLngBounds(pts).pad(0.3), { maxZoom: 16 }); this.fitted = true; }
    }
    this.renderList();
  }

  place(serial, u) {
    const p = u.rec.position;
    if (!p) return;
    const at = [p.lat, p.lon];
    const style = { radius: 9, color: '#000', weight: 2, fillColor: colors[u.status], fillOpacity: 1 };
    if (!u.marker) {
      u.marker = L.circleMarker(at, style).addTo(this.map);
      u.marker.on('click', () => this.open(serial));
      u.marker.bindTooltip('', { direction: 'top', offset: [0, -8] });
    } else {
      const moved = !u.marker.getLatLng().equals(L.latLng(at));
      u.marker.setLatLng(at);
      u.marker.setStyle(style);
      if (moved && this.selected === serial) this.track.addLatLng(at);
    }
    u.marker.getElement()?.setAttribute('data-device', serial);
    u.marker.setTooltipContent(this.label(u));
  }

  // describe: what the map tells of a unit.
  describe(u) {
    const rec = u.rec, o = rec.officer;
    return {
      who: o ? `${o.name || ''} ${o.badge ? '#' + o.badge : ''}`.trim() : `${rec.device} (${t('wall.unbound')})`,
      unit: this.unitOf(o),
      incidents: (rec.incidents || []).map((i) => i.number).join(', ') || t('wall.noincident'),
      fix: rec.position ? t('map.fix', { age: age(rec.position.at) }) : t('map.nofix'),
      status: t('map.status.' + u.status),
    };
  }

  label(u) {
    const d = this.describe(u);
    return [d.who, d.unit, d.incidents, d.fix, d.status].filter(Boolean).join(' · ');
  }

  // unitOf is the officer's unit, looked up once per officer.
  unitOf(o) {
    if (!o) return '';
    if (!this.officers.has(o.id)) {
      this.officers.set(o.id, null);
      api('GET', `/api/officers/${o.id}`).then((off) => { this.officers.set(o.id, off.unit || '—'); this.renderList(); }).catch(() => {});
    }
    return this.officers.get(o.id) || '';
  }

  // open: a unit's track is drawn and its live video opens.
  open(serial) {
    this.select(serial);
    const u = this.units.get(serial);
    if (u && u.status !== 'offline') window.open(`/live?id=${u.rec.recording_id}`, '_blank');
  }

  select(serial) {
    this.selected = serial;
    this.drawTrack();
    const m = this.markerOf(serial);
    if (m) this.map.panTo(m.getLatLng());
    this.renderList();
  }

  async drawTrack() {
    const serial = this.selected;
    if (!serial) { this.track.setLatLngs([]); return; }
    const from = new Date(Date.now() - this.minutes * 60000).toISOString();
    try {
      const fixes = await api('GET', `/api/devices/${encodeURIComponent(serial)}/positions?from=${encodeURIComponent(from)}`);
      if (this.selected === serial) this.track.setLatLngs(fixes.map((p) => [p.lat, p.lon]));
    } catch { this.track.setLatLngs([]); }
  }

  renderList() {
    if (!this.list) return;
    const head = el('tr', {}, ...['map.officer', 'map.unit', 'map.incident', 'map.lastfix', 'map.status'].map((k) => el('th', {}, t(k))));
    const rows = [...this.units.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([serial, u]) => {
      const { who, unit, incidents, fix, status } = this.describe(u);
      const tr = el('tr', { class: 'unitrow ' + u.status + (this.selected === serial ? ' selected' : ''), 'data-device': serial },
        el('td', {}, who), el('td', {}, unit), el('td', {}, incidents), el('td', {}, fix), el('td', {}, el('span', { class: 'st ' + u.status }, status)));
      tr.onclick = () => this.select(serial);
      tr.ondblclick = () => this.open(serial);
      return tr;
    });
    this.list.replaceChildren(head, ...rows);
  }

  tick() {
    for (const u of this.units.values()) if (u.marker) u.marker.setTooltipContent(this.label(u));
    this.renderList();
  }
}
