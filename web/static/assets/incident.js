// Incident review: the incident, every officer's footage on one wall-clock
// timeline, synchronized replay of up to four recordings (one clock, one
// scrubber, seek by wall-clock time), the export request, the audit trail.
import { api, loadLocale, session, header, t, el } from './app.js';
import { Player } from './player.js';

await loadLocale();
const me = await session();
header(me);

const id = new URLSearchParams(location.search).get('id');
const err = document.querySelector('#error');
const players = []; // { player, node, rec }
let tl;

const time = (ms) => new Date(ms).toLocaleTimeString([], { hourCycle: 'h23' });
const who = (r) => (r.officer_name ? `${r.officer_name} #${r.officer_badge}` : `${t('wall.unbound')} (${r.device_serial})`);

function details(inc) {
  document.querySelector('#details').replaceChildren(
    el('h2', {}, `${inc.number} · ${inc.type || ''}`),
    el('p', { class: 'muted' }, `${inc.address || ''} · ${t('admin.opened')} ${new Date(inc.opened_at).toLocaleString()} · ${inc.status}`));
}

// timeline draws one bar per recording over [from, to], gaps darker.
function drawTimeline() {
  const from = Date.parse(tl.from), to = Date.parse(tl.to);
  const pct = (ms) => `${(100 * (ms - from)) / Math.max(1, to - from)}%`;
  const rows = tl.recordings.map((r) => {
    const start = Date.parse(r.started_at), end = r.ended_at ? Date.parse(r.ended_at) : Date.now();
    const bar = el('div', { class: 'bar' + (r.status !== 'ended' ? ' live' : ''), title: `${time(start)} – ${time(end)}` });
    bar.style.left = pct(start);
    bar.style.width = `calc(${pct(end)} - ${pct(start)})`;
    const gaps = (r.gaps || []).map((g) => {
      const x = el('div', { class: 'gap', title: t('inc.gap') });
      x.style.left = pct(Date.parse(g.started_at));
      x.style.width = `calc(${pct(Date.parse(g.ended_at))} - ${pct(Date.parse(g.started_at))})`;
      return x;
    });
    const link = (r.links || []).find((l) => l.incident_id === id && !l.unlinked_at);
    const how = link ? (link.method === 'auto' ? t('inc.auto') : t('inc.manual', { by: link.linked_by })) : '';
    const box = el('input', { type: 'checkbox', 'aria-label': who(r) });
    box.checked = players.some((p) => p.rec.id === r.id);
    box.onchange = () => (box.checked ? addPlayer(r) : removePlayer(r));
    const track = el('div', { class: 'track' }, bar, ...gaps);
    track.onclick = (e) => {
      const rect = track.getBoundingClientRect();
      seekAll(from + ((e.clientX - rect.left) / rect.width) * (to - from));
    };
    return el('div', { class: 'tlrow', 'data-recording': r.id }, el('label', { class: 'tlname' }, box, ` ${who(r)}`, el('small', { class: 'muted' }, ` ${how}`)), track);
  });
  document.querySelector('#timeline').replaceChildren(...rows);
  if (!rows.length) document.querySelector('#timeline').append(el('p', { class: 'muted' }, t('inc.nofootage')));
}

async function addPlayer(rec) {
  if (players.length >= 4 || players.some((p) => p.rec.id === rec.id)) return;
  const video = el('video', { playsinline: '', muted: '' });
  video.muted = players.length > 0; // the first one speaks
  const label = el('div', { class: 'label' }, el('span', {}, who(rec)), el('span', { class: 'wall' }, '--:--:--'));
  const node = el('div', { class: 'player tile', 'data-recording': rec.id, 'data-wall': '' }, video, label);
  document.querySelector('#players').append(node);
  const entry = { player: new Player(video, rec.id), node, rec };
  players.push(entry);
  try {
    await entry.player.load();
    // audio the browser cannot play as archived: converted, or left out
    const audio = entry.player.audioNote();
    if (audio) {
      node.dataset.audio = audio;
      label.append(el('span', { class: 'muted sound' }, t(audio === 'converted' ? 'inc.soundconverted' : 'inc.soundnone')));
    }
    if (players[0] !== entry) await entry.player.seekWall(players[0].player.wallNow());
  } catch (e) {
    err.textContent = `${who(rec)}: ${e.message}`;
  }
}

function removePlayer(rec) {
  const i = players.findIndex((p) => p.rec.id === rec.id);
  if (i < 0) return;
  players[i].player.video.pause();
  players[i].node.remove();
  players.splice(i, 1);
}

// seekAll puts every player at the same wall-clock instant.
async function seekAll(ms) {
  await Promise.all(players.map((p) => p.player.info && p.player.seekWall(ms)));
  tick();
}

// keep the others on the first player's clock
function sync() {
  const master = players[0];
  if (!master?.player.info) return;
  const w = master.player.wallNow();
  for (const p of players.slice(1)) {
    if (!p.player.info) continue;
    const m = p.player.wallToMedia(w);
    if (m === null) { p.player.video.pause(); continue; }
    if (Math.abs(p.player.video.currentTime - m) > 0.3) p.player.seekWall(w);
    if (!master.player.video.paused && p.player.video.paused) p.player.video.play().catch(() => {});
    if (master.player.video.paused && !p.player.video.paused) p.player.video.pause();
  }
}

function tick() {
  for (const p of players) {
    if (!p.player.info) continue;
    const w = p.player.wallNow();
    p.node.dataset.wall = String(Math.floor(w));
    p.node.querySelector('.wall').textContent = time(w);
  }
  const clock = document.querySelector('#clock');
  const master = players[0];
  if (master?.player.info) {
    const w = master.player.wallNow();
    clock.dataset.wall = String(Math.floor(w));
    clock.textContent = time(w);
    const from = Date.parse(tl.from), to = Date.parse(tl.to);
    const scrub = document.querySelector('#scrub');
    if (document.activeElement !== scrub) scrub.value = String(Math.round((1000 * (w - from)) / Math.max(1, to - from)));
  }
}

async function audit() {
  const rows = await api('GET', `/api/audit?incident=${id}&limit=50`).catch(() => []);
  document.querySelector('#audit tbody').replaceChildren(...rows.map((e) => el('tr', {},
    el('td', {}, new Date(e.at).toLocaleString()), el('td', {}, e.actor), el('td', {}, e.action))));
}

// exports of the incident: supervisors approve or reject others' requests;
// a ready package downloads (audited)
async function exportsList() {
  const list = await api('GET', `/api/exports?incident=${id}`).catch(() => []);
  const canDecide = me.role === 'supervisor' || me.role === 'admin';
  document.querySelector('#exports tbody').replaceChildren(...list.map((x) => {
    const actions = el('td', {});
    if (x.status === 'requested' && canDecide && x.requested_by !== me.login) {
      actions.append(el('button', { onclick: async () => { await api('POST', `/api/exports/${x.id}/approve`, { reason: '' }); exportsList(); audit(); } }, t('inc.approve')),
        el('button', { onclick: async () => { const r = prompt(t('inc.reason')); if (r) { await api('POST', `/api/exports/${x.id}/reject`, { reason: r }); exportsList(); audit(); } } }, t('inc.reject')));
    }
    if (x.status === 'ready') actions.append(el('a', { href: `/api/exports/${x.id}/download` }, t('inc.download')));
    return el('tr', { 'data-export': x.id }, el('td', {}, new Date(x.requested_at).toLocaleString()), el('td', {}, x.requested_by),
      el('td', {}, x.reason), el('td', {}, t('inc.status.' + x.status)), actions);
  }));
}
exportsList();
setInterval(exportsList, 5000);

try {
  tl = await api('GET', `/api/incidents/${id}/timeline`);
  details(tl.incident);
  const playable = tl.recordings.filter((r) => r.video_codec);
  // an incident with only uploads still plays
  for (const r of playable.slice(0, 2)) await addPlayer(r);
  drawTimeline();
} catch (e) {
  err.textContent = e.message;
}
audit();

document.querySelector('#play').onclick = () => players.forEach((p) => p.player.video.play().catch(() => {}));
document.querySelector('#pause').onclick = () => players.forEach((p) => p.player.video.pause());
document.querySelector('#scrub').oninput = (e) => {
  const from = Date.parse(tl.from), to = Date.parse(tl.to);
  seekAll(from + (Number(e.target.value) / 1000) * (to - from));
};
document.querySelector('#goto').onsubmit = (e) => {
  e.preventDefault();
  const ms = Date.parse(e.target.at.value); // local time, as typed
  if (!Number.isNaN(ms)) seekAll(ms);
};
document.querySelector('#export').onclick = async () => {
  const reason = prompt(t('inc.reason'));
  if (!reason) return;
  try {
    await api('POST', '/api/exports', { incident_id: id, reason });
    err.textContent = t('inc.requested');
  } catch (e) { err.textContent = e.message; }
  audit();
  exportsList();
};
setInterval(() => { sync(); tick(); }, 250);
