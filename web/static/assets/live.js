// One live recording over WebRTC (WHEP), with sound when the camera's
// audio can play in a browser: /live?id=<recording>.
import { api, loadLocale, session, header, t } from './app.js';
import { WHEPViewer } from './whep.js';

await loadLocale();
header(await session());
const id = new URLSearchParams(location.search).get('id');
const video = document.querySelector('#video');
const tile = document.querySelector('#tile');
if (video.requestVideoFrameCallback) {
  const tick = () => { tile.dataset.frames = String(Number(tile.dataset.frames) + 1); video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
}
try {
  const viewer = await new WHEPViewer(`/api/live/${id}/whep`, video).start();
  if (viewer.audioNote) document.querySelector('#info').textContent = t('wall.noaudio');
  addEventListener('pagehide', () => viewer.stop());
  const rec = (await api('GET', '/api/live')).find((r) => r.recording_id === id);
  if (rec) document.querySelector('#who').textContent = rec.officer ? `${rec.officer.name} #${rec.officer.badge}` : rec.device;
} catch (e) {
  document.querySelector('#error').textContent = e.message;
}
