// My account: change one's own password. A user whose password an
// administrator reset is sent here and may do nothing else until changed.
import { api, loadLocale, session, header, t } from './app.js';

await loadLocale();
const me = await session();
header(me);
document.querySelector('#must-change').hidden = !me.must_change_password;

const form = document.querySelector('#password');
const errorBox = document.querySelector('#error');
const done = document.querySelector('#done');
form.onsubmit = async (ev) => {
  ev.preventDefault();
  const f = new FormData(form);
  errorBox.textContent = '';
  done.textContent = '';
  if (f.get('new') !== f.get('confirm')) {
    errorBox.textContent = t('account.mismatch');
    return;
  }
  try {
    await api('POST', '/api/password', { current: f.get('current'), new: f.get('new') });
  } catch (e) {
    if (e.status === 403 && e.field === 'current') errorBox.textContent = t('account.wrongCurrent');
    else if (e.status === 429) errorBox.textContent = t('login.locked');
    else errorBox.textContent = (e.field === 'new' ? t('account.rejected') + ' ' : '') + e.message;
    return;
  }
  form.reset();
  done.textContent = t('account.changed');
  // the server sends a logged-in user to their role's page
  if (me.must_change_password) location.href = '/';
};
