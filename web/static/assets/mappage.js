// /map: the units on the map, with the list of units, kept current by the
// live list's server-sent events.
import { api, loadLocale, session, header } from './app.js';
import { UnitMap } from './map.js';

await loadLocale();
header(await session());
const map = new UnitMap(document.querySelector('#mapbox'), { list: true, id: 'map' });
try {
  map.update(await api('GET', '/api/live'));
} catch (e) {
  document.querySelector('#error').textContent = e.message;
}
const events = new EventSource('/api/live/events');
events.addEventListener('live', (e) => map.update(JSON.parse(e.data)));
