// The supervisor's live wall: a tile per live body camera, each playing
// over WebRTC (WHEP). New streams appear and ended ones leave without a
// reload (server-sent events); unbound cameras stand out; a click enlarges
// a tile and turns its audio on. The map panel beside it (map.js) shows
// where each unit is; the layout fits 16 or 36 tiles on a duty-room screen.
import { api, loadLocale, session, header, t, el } from './app.js';
import { WHEPViewer } from './whep.js';
import { UnitMap } from './map.js';

await loadLocale();
header(await session());

const wall = document.querySelector('#wall');
const empty = document.querySelector('#empty');
const tiles = new Map(); // recording id -> { node, viewer, rec }

function recID(rec) { return rec.recording_id || rec.id; }

function describe(rec) {
  const o = rec.officer;
  const who = o && (o.name || o.badge) ? `${o.name || ''} ${o.badge ? '#' + o.badge : ''}`.trim() : (rec.device_serial || rec.device?.serial || '');
  const incidents = (rec.incidents || []).map((i) => i.number || i.incident_number || i).join(', ') || t('wall.noincident');
  return { who, incidents };
}

function since(ts) {
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(ts)) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? h + ':' : '') + String(m).padStart(2, '0') + ':' + String(sec).padStart(2, '0');
}

function addTile(rec) {
  const id = recID(rec);
  const video = el('video', { autoplay: '', playsinline: '', muted: '' });
  video.muted = true;
  const who = el('span', { class: 'who' });
  const tech = el('span', { class: 'tech' });
  const where = el('span', { class: 'where' });
  const badge = el('span', { class: 'badge' });
  const node = el('div', { class: 'tile', 'data-recording': id, 'data-frames': '0', tabindex: '0' }, video, badge, el('div', { class: 'label' }, who, el('span', { class: 'info muted' }, where, tech)));
  node.onclick = () => { node.classList.toggle('big'); video.muted = !node.classList.contains('big'); };
  node.ondblclick = () => window.open(`/live?id=${id}`, '_blank');
  node.onkeydown = (e) => { if (e.key === 'Enter') node.onclick(); };
  wall.append(node);
  const tile = { node, video, who, where, tech, badge, rec, viewer: null };
  tiles.set(id, tile);
  countFrames(video, node);
  connect(tile);
  update(tile, rec);
}

function countFrames(video, node) {
  if (!video.requestVideoFrameCallback) return;
  const tick = () => { node.dataset.frames = String(Number(node.dataset.frames) + 1); video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
}

async function connect(tile) {
  const id = recID(tile.rec);
  tile.badge.textContent = t('wall.connecting');
  try {
    tile.viewer = await new WHEPViewer(`/api/live/${id}/whep`, tile.video).start();
    if (tile.viewer.audioNote) tile.node.title = t('wall.noaudio');
    tile.badge.textContent = '';
    update(tile, tile.rec);
  } catch (e) {
    tile.badge.textContent = e.message;
    setTimeout(() => { if (tiles.has(id)) connect(tile); }, 3000);
  }
}

function update(tile, rec) {
  tile.rec = rec;
  const { who, incidents } = describe(rec);
  tile.who.textContent = who;
  // officer, then incident and time live always; the figures only where
  // the tile is wide enough (app.css), and in the tile's title
  tile.where.textContent = `${incidents} · ${t('wall.live', { time: since(rec.started_at) })}`;
  const bits = [];
  if (rec.bitrate_kbps) bits.push(`${Math.round(rec.bitrate_kbps)} kb/s`);
  if (rec.packet_loss !== undefined && rec.packet_loss > 0) bits.push(`${(100 * rec.packet_loss).toFixed(1)}% loss`);
  if (rec.viewers !== undefined) bits.push(t('wall.viewers', { n: rec.viewers }));
  tile.tech.textContent = bits.length ? ' · ' + bits.join(' · ') : '';
  tile.node.title = `${who} · ${tile.where.textContent}${tile.tech.textContent}`;
  const unbound = rec.unbound || !rec.officer;
  tile.node.classList.toggle('unbound', !!unbound);
  tile.node.classList.toggle('reconnecting', rec.status === 'reconnecting');
  if (!tile.viewer || tile.badge.textContent === '') {
    tile.badge.textContent = unbound ? t('wall.unbound') : rec.status === 'reconnecting' ? t('wall.reconnecting') : '';
    tile.badge.classList.toggle('warn', !!unbound);
  }
}

async function refresh(list) {
  const live = list || await api('GET', '/api/live');
  unitMap?.update(live);
  const seen = new Set();
  for (const rec of live) {
    const id = recID(rec);
    seen.add(id);
    if (tiles.has(id)) update(tiles.get(id), rec); else addTile(rec);
  }
  for (const [id, tile] of tiles) {
    if (!seen.has(id)) { tile.viewer?.stop(); tile.node.remove(); tiles.delete(id); }
  }
  empty.hidden = tiles.size > 0;
}

// the layout: as many tiles as fit, or a fixed 4 × 4 or 6 × 6 grid that
// fills the screen (a duty room's wall)
const layout = document.querySelector('#layout');
function applyLayout() {
  const cols = layout.value;
  wall.classList.toggle('fit', cols !== 'auto');
  wall.style.setProperty('--cols', cols === 'auto' ? '' : cols);
  localStorage.setItem('bwc.wall.layout', cols);
}
layout.value = localStorage.getItem('bwc.wall.layout') || 'auto';
layout.onchange = applyLayout;
applyLayout();

// the map panel beside the wall (hidden or shown, remembered)
const panel = document.querySelector('#mappanel');
let unitMap = null;
function applyMap() {
  const shown = localStorage.getItem('bwc.wall.map') !== 'off';
  panel.hidden = !shown;
  document.querySelector('main.duty').classList.toggle('withmap', shown);
  if (shown && !unitMap) unitMap = new UnitMap(panel, { list: true });
  unitMap?.map.invalidateSize();
}
document.querySelector('#maptoggle').onclick = () => {
  localStorage.setItem('bwc.wall.map', panel.hidden ? 'on' : 'off');
  applyMap();
  refresh();
};
applyMap();

await refresh();
// the server pushes the whole live list on every change (event "live")
const events = new EventSource('/api/live/events');
events.addEventListener('live', (e) => refresh(JSON.parse(e.data)));
setInterval(() => { for (const tile of tiles.values()) update(tile, tile.rec); }, 1000);
setInterval(refresh, 15000);
addEventListener('pagehide', () => { for (const tile of tiles.values()) tile.viewer?.stop(); });
