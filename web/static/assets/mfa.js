// The second factor: set up an authenticator app (QR code, a code to
// confirm, the recovery codes shown once), or turn it off.
import { api, loadLocale, session, header, t, el } from './app.js';

await loadLocale();
const me = await session();
header(me);
const $ = (s) => document.querySelector(s);
const err = $('#error');
const show = (id) => { for (const s of ['#off', '#setup', '#codes', '#on']) $(s).hidden = s !== id; };

async function refresh() {
  const st = await api('GET', '/api/mfa/totp');
  $('#required').hidden = !(st.required && !st.enrolled);
  if (st.enrolled) {
    $('#enabled').textContent = t('mfa.on', { date: new Date(st.enabled_at).toLocaleString(), n: st.recovery_codes });
    show('#on');
  } else {
    show('#off');
  }
}

$('#start').onclick = async () => {
  err.textContent = '';
  try {
    const enr = await api('POST', '/api/mfa/totp');
    $('#qr').src = enr.qr_png;
    $('#secret').value = enr.secret;
    show('#setup');
    $('#confirm input[name=code]').focus();
  } catch (e) { err.textContent = e.message; }
};

$('#confirm').onsubmit = async (ev) => {
  ev.preventDefault();
  err.textContent = '';
  try {
    const res = await api('POST', '/api/mfa/totp/confirm', { code: new FormData(ev.target).get('code').trim() });
    $('#recovery').replaceChildren(...res.recovery_codes.map((c) => el('li', {}, c)));
    $('#required').hidden = true;
    show('#codes');
  } catch (e) { err.textContent = e.field === 'code' ? t('mfa.badcode') : e.message; }
};

$('#disable').onsubmit = async (ev) => {
  ev.preventDefault();
  err.textContent = '';
  const f = new FormData(ev.target);
  try {
    await api('DELETE', '/api/mfa/totp', { password: f.get('password'), code: f.get('code').trim() });
    ev.target.reset();
    await refresh();
    err.textContent = t('mfa.disabled');
  } catch (e) { err.textContent = e.status === 403 ? t('mfa.wrong') : e.message; }
};

await refresh();
