// Shared by every page: locale, API calls with the session's CSRF token,
// the header. Plain modern JavaScript, no build step.
const state = { dict: {}, csrf: sessionStorage.getItem('bwc.csrf') || '', me: null };

export function lang() {
  const chosen = localStorage.getItem('bwc.lang');
  if (chosen) return chosen;
  return (navigator.language || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

export async function loadLocale() {
  const res = await fetch(`/assets/i18n/${lang()}.json`);
  state.dict = await res.json();
  document.documentElement.lang = lang() === 'zh' ? 'zh-CN' : 'en';
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  if (document.title && state.dict[document.body.dataset.title]) document.title = t(document.body.dataset.title);
}

// t translates a key; {name} placeholders are filled from vars.
export function t(key, vars = {}) {
  const s = state.dict[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? '');
}

export class APIError extends Error {
  constructor(status, body) { super(body.error || `HTTP ${status}`); this.status = status; this.field = body.field; }
}

// api calls the JSON API; state-changing calls carry the CSRF token.
export async function api(method, path, body) {
  const headers = { 'Accept': 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const text = await res.text();
  const data = text ? JSON.parse(text) : {};
  if (res.status === 401 && !path.endsWith('/login')) { location.href = '/?next=' + encodeURIComponent(location.pathname + location.search); }
  if (!res.ok) throw new APIError(res.status, data);
  return data;
}

export function setCSRF(token) { state.csrf = token; sessionStorage.setItem('bwc.csrf', token); }
export function csrf() { return state.csrf; }

// session fetches who is logged in (and refreshes the CSRF token).
export async function session() {
  const me = await api('GET', '/api/session');
  setCSRF(me.csrf_token);
  state.me = me;
  return me;
}

// header fills the page's top bar: navigation by role, language, logout.
export function header(me) {
  const nav = document.querySelector('header.top nav');
  const links = {
    officer: [['/upload', 'nav.upload']],
    supervisor: [['/wall', 'nav.wall'], ['/map', 'nav.map'], ['/incidents', 'nav.incidents'], ['/dashboard', 'nav.dashboard'], ['/upload', 'nav.upload']],
    reviewer: [['/incidents', 'nav.incidents']],
    admin: [['/wall', 'nav.wall'], ['/map', 'nav.map'], ['/incidents', 'nav.incidents'], ['/dashboard', 'nav.dashboard'], ['/upload', 'nav.upload'], ['/admin', 'nav.admin']],
  }[me.role] || [];
  nav.replaceChildren(...[...links, ['/account', 'nav.account'], ['/mfa', 'nav.mfa']].map(([href, key]) => { const a = document.createElement('a'); a.href = href; a.textContent = t(key); return a; }));
  document.querySelector('header.top .who').textContent = `${me.login} · ${t('role.' + me.role)}`;
  const sel = document.querySelector('#lang');
  sel.value = lang();
  sel.onchange = () => { localStorage.setItem('bwc.lang', sel.value); location.reload(); };
  document.querySelector('#logout').onclick = async () => { await api('POST', '/api/logout'); sessionStorage.removeItem('bwc.csrf'); location.href = '/'; };
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else if (k.startsWith('on')) e[k] = v; else e.setAttribute(k, v);
  }
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}
