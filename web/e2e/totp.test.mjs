// Browser test of the second factor in headless Debian Chromium, with the
// server's default -mfa-required-roles (admin,supervisor): the admin is
// sent to enrolment after the password, enrols from the QR page's key
// (codes computed here, RFC 6238 with node's HMAC-SHA1), and from then on
// cannot sign in without the code, in English and Chinese.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import path from 'node:path';
import { startPlatform, launchBrowser, screenshots } from './platform.mjs';

let platform, browser, secret;
before(async () => { platform = await startPlatform({ mfaRequiredRoles: null }); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await platform?.stop(); });

function base32(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0, value = 0;
  const out = [];
  for (const c of s.replace(/=+$/, '').toUpperCase()) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error(`not base32: ${c}`);
    value = ((value << 5) | i) & 0xffff;
    bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 0xff); bits -= 8; }
  }
  return Buffer.from(out);
}

// totp is the RFC 6238 code (SHA-1, 6 digits, 30 s) of secret at time ms.
function totp(key, ms) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(ms / 1000 / 30)));
  const h = createHmac('sha1', base32(key)).update(counter).digest();
  const off = h[h.length - 1] & 0xf;
  return String((h.readUInt32BE(off) & 0x7fffffff) % 1000000).padStart(6, '0');
}

// RFC 6238 appendix B: the SHA-1 vector at 59 s (8 digits: 94287082)
test('the test computes RFC 6238 codes', () => {
  const key = Buffer.from('12345678901234567890').toString('hex');
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(1n);
  const h = createHmac('sha1', Buffer.from(key, 'hex')).update(counter).digest();
  const off = h[h.length - 1] & 0xf;
  assert.equal(String((h.readUInt32BE(off) & 0x7fffffff) % 1e8).padStart(8, '0'), '94287082');
  assert.equal(base32('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ').toString(), '12345678901234567890');
});

async function signIn(page, password, login = 'admin') {
  await page.goto(platform.url + '/');
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
}

test('an admin without a second factor is sent to enrolment and enrols', async () => {
  const page = await browser.newPage();
  await signIn(page, 'demo-admin-pass');
  await page.waitForURL((u) => u.pathname === '/mfa');
  await page.locator('#required').waitFor({ state: 'visible' }); // the role requires a second factor
  // nothing else is open to this session yet
  const before = await page.evaluate(async () => (await fetch('/api/users')).status);
  assert.equal(before, 403);
  await page.click('#start');
  await page.waitForFunction(() => document.querySelector('#qr').src.startsWith('data:image/png;base64,'));
  assert.equal(await page.evaluate(() => document.querySelector('#qr').naturalWidth > 100), true);
  secret = await page.inputValue('#secret');
  await page.screenshot({ path: path.join(screenshots, 'mfa-enrol.png'), fullPage: true });
  assert.match(secret, /^[A-Z2-7]{32}$/);
  await page.fill('#confirm input[name=code]', '000000' === totp(secret, Date.now()) ? '111111' : '000000');
  await page.click('#confirm button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#error').textContent.length > 0);
  // the previous time step's code: the current one stays free for the login below
  await page.fill('#confirm input[name=code]', totp(secret, Date.now() - 30000));
  await page.click('#confirm button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#recovery li').length === 10);
  await page.screenshot({ path: path.join(screenshots, 'mfa-recovery-codes.png'), fullPage: true });
  assert.equal(await page.evaluate(async () => (await fetch('/api/users')).status), 200);
  await page.close();
});

test('an admin with TOTP enrolled cannot sign in without the code (Chinese page)', async () => {
  const ctx = await browser.newContext({ locale: 'zh-CN' });
  const page = await ctx.newPage();
  await signIn(page, 'demo-admin-pass');
  await page.locator('#code-row').waitFor({ state: 'visible' });
  await page.waitForFunction(() => document.querySelector('#error').textContent.includes('验证码'));
  assert.equal(new URL(page.url()).pathname, '/');
  assert.equal((await ctx.cookies()).some((c) => c.name === 'bwc_session'), false, 'no session without the code');
  assert.equal(await page.evaluate(async () => (await fetch('/api/session')).status), 401);
  await page.screenshot({ path: path.join(screenshots, 'login-code-zh.png') });
  // a wrong code is refused too
  await page.fill('input[name=code]', totp(secret, Date.now()) === '123456' ? '654321' : '123456');
  await page.click('button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#error').textContent.includes('错误'));
  assert.equal((await ctx.cookies()).some((c) => c.name === 'bwc_session'), false, 'no session with a wrong code');
  await ctx.close();
});

test('an admin with TOTP enrolled signs in with the code', async () => {
  const ctx = await browser.newContext({ locale: 'en-US' });
  const page = await ctx.newPage();
  await signIn(page, 'demo-admin-pass');
  await page.locator('#code-row').waitFor({ state: 'visible' });
  assert.match(await page.locator('#error').innerText(), /authenticator app/);
  await page.fill('input[name=code]', totp(secret, Date.now()));
  await Promise.all([page.waitForURL((u) => u.pathname === '/admin'), page.click('button[type=submit]')]);
  assert.equal((await ctx.cookies()).some((c) => c.name === 'bwc_session'), true);
  await page.screenshot({ path: path.join(screenshots, 'admin-after-totp.png') });
  await ctx.close();
});

test('an admin resets a supervisor\'s second factor from the admin page', async () => {
  // the supervisor enrols
  const sv = await browser.newPage();
  await signIn(sv, 'demo-supervisor-pass', 'supervisor');
  await sv.waitForURL((u) => u.pathname === '/mfa');
  await sv.locator('#start').waitFor({ state: 'visible' });
  await sv.click('#start');
  await sv.waitForFunction(() => document.querySelector('#secret').value.length > 0);
  const svSecret = await sv.inputValue('#secret');
  await sv.fill('#confirm input[name=code]', totp(svSecret, Date.now() - 30000));
  await sv.click('#confirm button[type=submit]');
  await sv.waitForFunction(() => document.querySelectorAll('#recovery li').length === 10);
  await sv.close();

  // the admin (a code of the next time step: the current one may be used)
  const ctx = await browser.newContext({ locale: 'en-US' });
  const page = await ctx.newPage();
  await signIn(page, 'demo-admin-pass');
  await page.locator('#code-row').waitFor({ state: 'visible' });
  await page.fill('input[name=code]', totp(secret, Date.now() + 30000));
  await Promise.all([page.waitForURL((u) => u.pathname === '/admin'), page.click('button[type=submit]')]);
  const row = page.locator('#users tr[data-login=supervisor]');
  await row.waitFor();
  await row.locator('input[name=mfa-reason]').fill('lost phone');
  await row.locator('button.reset-mfa').click();
  await page.waitForFunction(() => document.querySelector('#user-done').textContent.includes('supervisor'));
  assert.match(await page.locator('#user-done').innerText(), /reset/);
  await page.screenshot({ path: path.join(screenshots, 'admin-mfa-reset.png'), fullPage: true });
  await ctx.close();

  // the supervisor signs in with the password alone and must enrol again
  const again = await browser.newPage();
  await signIn(again, 'demo-supervisor-pass', 'supervisor');
  await again.waitForURL((u) => u.pathname === '/mfa');
  await again.locator('#required').waitFor({ state: 'visible' });
  await again.close();
});
