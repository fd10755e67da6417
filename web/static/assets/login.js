import { api, loadLocale, setCSRF, t, lang } from './app.js';

await loadLocale();
const sel = document.querySelector('#lang');
sel.value = lang();
sel.onchange = () => { localStorage.setItem('bwc.lang', sel.value); location.reload(); };

// single sign-on, when the server has an identity provider
api('GET', '/api/login/options').then((o) => {
  if (!o.oidc) return;
  const a = document.querySelector('#sso-link');
  a.href = o.oidc.url;
  a.textContent = t('login.sso', { name: o.oidc.name });
  document.querySelector('#sso').hidden = false;
}).catch(() => {});

const homes = { supervisor: '/wall', admin: '/admin', reviewer: '/incidents', officer: '/upload' };
const codeRow = document.querySelector('#code-row');
document.querySelector('#login').onsubmit = async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const err = document.querySelector('#error');
  err.textContent = '';
  const body = { login: f.get('login'), password: f.get('password') };
  if (!codeRow.hidden) body.code = (f.get('code') || '').trim();
  try {
    const res = await api('POST', '/api/login', body);
    setCSRF(res.csrf_token);
    const next = new URLSearchParams(location.search).get('next');
    if (res.user.must_change_password) { location.href = '/account'; return; } // an administrator reset it
    if (res.mfa_enrolment_required) { location.href = '/mfa'; return; } // the role requires a second factor
    location.href = next && next.startsWith('/') && !next.startsWith('//') ? next : (homes[res.user.role] || '/account');
  } catch (e) {
    if (e.status === 401 && e.field === 'code') {
      // the password was right; the account has a second factor
      const asked = !codeRow.hidden && body.code;
      codeRow.hidden = false;
      codeRow.querySelector('input').required = true;
      codeRow.querySelector('input').focus();
      err.textContent = asked ? t('login.codewrong') : t('login.codeneeded');
      return;
    }
    err.textContent = e.status === 429 ? t('login.locked') : t('login.failed');
  }
};
