// Administration: cameras (with the URL and secret to configure them),
// check-out and check-in, officers, incidents and accounts.
import { api, loadLocale, session, header, t, el } from './app.js';

await loadLocale();
header(await session());
const errorBox = document.querySelector('#error');
const info = await api('GET', '/api/info').catch(() => ({}));

function show(e) { errorBox.textContent = e ? (e.field ? `${e.field}: ` : '') + e.message : ''; }

function form(id, path, transform = (x) => x) {
  document.getElementById(id).onsubmit = async (ev) => {
    ev.preventDefault();
    const data = Object.fromEntries(new FormData(ev.target));
    for (const k of Object.keys(data)) if (data[k] === '') delete data[k];
    try { await api('POST', path, transform(data)); ev.target.reset(); show(null); await load(); } catch (e) { show(e); }
  };
}

function cameraURL(d) {
  if (!info.camera_url) return '—';
  const u = new URL(info.camera_url.replace(/^rtsp:/, 'http:'));
  return `rtsp://${encodeURIComponent(d.serial)}:${encodeURIComponent(d.secret || '')}@${u.host}${u.pathname.replace(/\/$/, '')}/${d.serial}`;
}

async function load() {
  const [officers, devices, open, incidents, users] = await Promise.all([
    api('GET', '/api/officers'), api('GET', '/api/devices'), api('GET', '/api/checkouts?open=true'),
    api('GET', '/api/incidents'), api('GET', '/api/users')]);
  const byID = new Map(officers.map((o) => [o.id, o]));
  const wearer = new Map(open.map((c) => [c.device_id, byID.get(c.officer_id)]));

  document.querySelector('#officers').replaceChildren(...officers.map((o) => el('tr', {}, el('td', {}, o.badge), el('td', {}, o.name), el('td', {}, o.unit))));
  const officerOptions = () => officers.map((o) => el('option', { value: o.id }, `${o.badge} ${o.name}`));
  document.querySelector('#user-officer').replaceChildren(el('option', { value: '' }, '—'), ...officerOptions());

  document.querySelector('#devices').replaceChildren(...devices.map((d) => {
    const who = wearer.get(d.id);
    let action;
    if (who) {
      action = el('button', { onclick: async () => { try { await api('POST', `/api/devices/${d.id}/checkin`, {}); await load(); } catch (e) { show(e); } } }, t('admin.checkin'));
    } else {
      const pick = el('select', {}, ...officerOptions());
      action = el('span', {}, pick, ' ', el('button', { onclick: async () => { try { await api('POST', `/api/devices/${d.id}/checkout`, { officer_id: pick.value }); await load(); } catch (e) { show(e); } } }, t('admin.checkout')));
    }
    return el('tr', {}, el('td', {}, d.serial), el('td', {}, d.model), el('td', {}, d.status),
      el('td', {}, el('code', {}, cameraURL(d))), el('td', {}, d.gb_id ? el('span', {}, el('code', {}, `${d.gb_id} (${(d.gb_transport || 'tcp').toUpperCase()})`),
        d.gb_online === undefined ? '' : el('span', { class: d.gb_online ? 'gb-online' : 'gb-offline' }, ' ', t(d.gb_online ? 'admin.gbOnline' : 'admin.gbOffline'))) : '—'),
      el('td', {}, who ? `${who.badge} ${who.name}` : '—'), el('td', {}, action));
  }));
  document.querySelector('#incidents').replaceChildren(...incidents.map((i) => el('tr', {}, el('td', {}, i.number), el('td', {}, i.type), el('td', {}, i.address), el('td', {}, new Date(i.opened_at).toLocaleString()))));
  document.querySelector('#users').replaceChildren(...users.map(userRow));
}

// a user's unit and (for supervisors) the units they oversee, editable:
// PUT /api/users/{id}; the scope rule is web/authz.go
function userRow(u) {
  const unit = el('input', { value: u.unit || '', size: 10 });
  const oversees = el('input', { value: (u.oversees || []).join(', '), size: 20, placeholder: t('admin.ownunit') });
  const save = el('button', { onclick: async () => {
    const list = oversees.value.split(',').map((x) => x.trim()).filter((x) => x);
    try { await api('PUT', `/api/users/${u.id}`, { unit: unit.value.trim(), oversees: list }); show(null); await load(); } catch (e) { show(e); }
  } }, t('admin.save'));
  return el('tr', { 'data-login': u.login },
    el('td', {}, u.login, u.must_change_password ? el('span', { class: 'muted' }, ` (${t('admin.mustChange')})`) : null), el('td', {}, t('role.' + u.role)), el('td', {}, unit),
    el('td', {}, u.role === 'supervisor' ? oversees : '—'), el('td', {}, save), el('td', {}, resetPassword(u)), el('td', {}, resetMFA(u)));
}

// resetPassword: a new password for a user, who must change it at their
// next sign-in (the server applies the password policy).
function resetPassword(u) {
  const pw = el('input', { type: 'password', name: 'reset-password', autocomplete: 'new-password', minlength: '12', placeholder: t('admin.newPassword'), 'aria-label': t('admin.newPassword') });
  const done = document.querySelector('#user-done');
  const button = el('button', { class: 'reset-password', onclick: async () => {
    done.textContent = '';
    try {
      await api('POST', `/api/users/${u.id}/password`, { password: pw.value });
      show(null);
      await load();
      done.textContent = t('admin.resetDone', { login: u.login });
    } catch (e) { show(e); }
  } }, t('admin.resetPassword'));
  return el('span', {}, pw, ' ', button);
}

// resetMFA removes a user's second factor (a lost phone), with a reason
// for the audit trail; the user then signs in with the password alone and
// enrols again.
function resetMFA(u) {
  const reason = el('input', { name: 'mfa-reason', placeholder: t('admin.mfaReason'), 'aria-label': t('admin.mfaReason') });
  const done = document.querySelector('#user-done');
  const button = el('button', { class: 'reset-mfa', onclick: async () => {
    done.textContent = '';
    try {
      await api('DELETE', `/api/users/${u.id}/mfa`, { reason: reason.value });
      show(null);
      reason.value = '';
      done.textContent = t('admin.mfaResetDone', { login: u.login });
    } catch (e) {
      if (e.status === 409) { show(null); done.textContent = t('admin.noMFA', { login: u.login }); } else show(e);
    }
  } }, t('admin.resetMFA'));
  return el('span', {}, reason, ' ', button);
}

form('add-device', '/api/devices');
form('add-officer', '/api/officers');
form('add-incident', '/api/incidents');
form('add-user', '/api/users');
await load();
