// Upload page: a small tus 1.0.0 client (create, PATCH in chunks, HEAD to
// resume). Each file's upload URL is remembered in localStorage, so an
// upload cut by a dropped connection, a closed tab or a reboot resumes
// where it stopped. The SHA-256 is declared when the browser can compute
// it (files up to 1 GiB), so the server refuses a damaged transfer.
import { api, csrf, loadLocale, session, header, t, el } from './app.js';

await loadLocale();
header(await session());
const CHUNK = 8 << 20;
const tus = { 'Tus-Resumable': '1.0.0', 'X-CSRF-Token': csrf() };
const b64 = (s) => btoa(unescape(encodeURIComponent(s)));

async function sha256(file) {
  if (!crypto.subtle || file.size > 1 << 30) return '';
  const d = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function upload(file, form, row) {
  const bar = row.querySelector('progress'), status = row.querySelector('.status');
  const key = `bwc.tus.${file.name}.${file.size}.${file.lastModified}`;
  let url = localStorage.getItem(key);
  if (!url) {
    status.textContent = t('up.hashing');
    const meta = { filename: file.name, sha256: await sha256(file), incident: form.incident.value.trim(), notes: form.notes.value,
      recorded_at: new Date(file.lastModified).toISOString().replace(/\.\d{3}Z$/, 'Z') };
    const res = await fetch('/api/uploads/', { method: 'POST', headers: { ...tus, 'Upload-Length': String(file.size),
      'Upload-Metadata': Object.entries(meta).filter(([, v]) => v).map(([k, v]) => `${k} ${b64(v)}`).join(',') } });
    if (res.status !== 201) {
      const body = await res.text();
      throw new Error(body.startsWith('ERR_INCIDENT_NOT_ASSIGNED') ? t('up.notAssigned') : body);
    }
    url = res.headers.get('Location');
    localStorage.setItem(key, url);
  }
  for (let tries = 0; ; ) {
    try {
      const head = await fetch(url, { method: 'HEAD', headers: tus });
      if (head.status === 404) { localStorage.removeItem(key); throw new Error(t('up.expired')); }
      let off = Number(head.headers.get('Upload-Offset'));
      while (off < file.size) {
        bar.value = off / file.size;
        status.textContent = t('up.sending');
        const res = await fetch(url, { method: 'PATCH', headers: { ...tus, 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': String(off) },
          body: file.slice(off, off + CHUNK) });
        const text = await res.text();
        if (res.status >= 400) { localStorage.removeItem(key); throw Object.assign(new Error(text), { final: true }); }
        off = Number(res.headers.get('Upload-Offset'));
        if (off >= file.size) {
          localStorage.removeItem(key);
          bar.value = 1;
          status.textContent = res.headers.get('X-BWC-Duplicate-Of') ? t('up.duplicate')
            : res.headers.get('X-BWC-Upload-Status') === 'storing' ? t('up.storing') : t('up.done');
          return;
        }
      }
      return;
    } catch (e) {
      if (e.final || ++tries > 20) throw e;
      status.textContent = t('up.retrying');
      await new Promise((r) => setTimeout(r, Math.min(30000, 1000 * 2 ** tries)));
    }
  }
}

async function listDone() {
  const list = await api('GET', '/api/uploads').catch(() => []);
  document.querySelector('#done tbody').replaceChildren(...list.map((u) => el('tr', {},
    el('td', {}, u.filename), el('td', {}, new Date(u.recorded_at).toLocaleString()), el('td', {}, `${(u.size / 1e6).toFixed(1)} MB`),
    el('td', { class: 'muted' }, [...atob(u.sha256)].map((c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('').slice(0, 16) + '…'))));
}

const incidents = await api('GET', '/api/incidents').catch(() => []);
document.querySelector('#incidents').replaceChildren(...incidents.map((i) => el('option', { value: i.number })));
document.querySelector('#pick').onsubmit = async (e) => {
  e.preventDefault();
  const form = e.target;
  for (const file of form.files.files) {
    const row = el('tr', {}, el('td', {}, file.name), el('td', {}, el('progress', { max: '1', value: '0' })), el('td', { class: 'status' }, ''));
    document.querySelector('#queue tbody').append(row);
    try { await upload(file, form, row); } catch (err) { row.querySelector('.status').textContent = err.message; }
  }
  listDone();
};
listDone();
