// The incidents, newest first, each opening its review page.
import { api, loadLocale, session, header, el } from './app.js';

await loadLocale();
header(await session());
const list = await api('GET', '/api/incidents');
document.querySelector('#incidents tbody').replaceChildren(...list.map((i) => el('tr', {},
  el('td', {}, el('a', { href: `/incident?id=${i.id}` }, i.number)), el('td', {}, i.type || '—'), el('td', {}, i.address || '—'),
  el('td', {}, new Date(i.opened_at).toLocaleString()), el('td', {}, i.status))));
