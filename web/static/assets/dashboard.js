// Supervision dashboard: the share of incidents with linked footage, the
// incidents without footage (red) or with footage from only some of the
// assigned officers (yellow) first, unbound recordings, drop-offs.
import { api, loadLocale, session, header, t, el } from './app.js';

const fmt = (s) => (s ? new Date(s).toLocaleString() : '—');
const day = (d) => d.toISOString().slice(0, 10);

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
  if (!rows.length) tbody.append(el('tr', {}, el('td', { colspan: '6', class: 'muted' }, t('dash.nothing'))));
}

async function show(form) {
  const from = new Date(form.from.value + 'T00:00:00');
  const to = new Date(form.to.value + 'T00:00:00');
  to.setDate(to.getDate() + 1); // the whole last day
  const q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
  if (form.unit.value.trim()) q.set('unit', form.unit.value.trim());
  const err = document.querySelector('#error');
  err.textContent = '';
  let d;
  try { d = await api('GET', '/api/dashboard?' + q); } catch (e) { err.textContent = e.message; return; }
  const pct = Math.round(d.association_rate * 1000) / 10;
  const count = (c) => d.incidents.filter((i) => i.coverage === c).length;
  document.querySelector('#summary').replaceChildren(
    el('div', { class: 'card stat' }, el('strong', {}, `${pct}%`), el('span', {}, t('dash.rate'))),
    el('div', { class: 'card stat' }, el('strong', {}, String(d.incidents.length)), el('span', {}, t('dash.total'))),
    el('div', { class: 'card stat none' }, el('strong', {}, String(count('none'))), el('span', {}, t('dash.cov.none'))),
    el('div', { class: 'card stat partial' }, el('strong', {}, String(count('partial'))), el('span', {}, t('dash.cov.partial'))),
    el('div', { class: 'card stat' }, el('strong', {}, String(d.unbound.length)), el('span', {}, t('dash.unbound'))),
  );
  fill(document.querySelector('#incidents tbody'), d.incidents.map((i) => el('tr', { class: 'cov-row ' + i.coverage },
    el('td', {}, el('a', { href: `/incident?id=${i.id}` }, i.number)), el('td', {}, i.type || '—'), el('td', {}, fmt(i.opened_at)),
    el('td', {}, el('span', { class: 'cov ' + i.coverage }, t('dash.cov.' + i.coverage))),
    el('td', {}, `${i.filming_officers} / ${i.assigned_officers}`), el('td', {}, i.missing.join(', ') || '—'))));
  fill(document.querySelector('#unbound tbody'), d.unbound.map((r) => el('tr', {},
    el('td', {}, r.device_serial), el('td', {}, fmt(r.started_at)), el('td', {}, fmt(r.ended_at)))));
  fill(document.querySelector('#dropoffs tbody'), d.dropoffs.map((x) => el('tr', {},
    el('td', {}, x.incident_number), el('td', {}, x.officer || t('wall.unbound')), el('td', {}, x.device),
    el('td', {}, t('dash.kind.' + x.kind)), el('td', {}, fmt(x.from)), el('td', {}, fmt(x.to)))));
}

await loadLocale();
header(await session());
const form = document.querySelector('#period');
const now = new Date();
const weekAgo = new Date(now.getTime() - 6 * 864e5);
form.from.value = day(weekAgo);
form.to.value = day(now);
form.onsubmit = (e) => { e.preventDefault(); show(form); };
show(form);
