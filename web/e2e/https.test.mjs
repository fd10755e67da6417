// Browser test over HTTPS: bwc serve with a certificate this test made;
// Chromium (told to accept that certificate) loads the pages, signs in and
// sees the supervisor's wall; the session cookie is Secure and HSTS is sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startPlatform, launchBrowser, login, screenshots, selfSignedCert } from './platform.mjs';

let platform, browser;
before(async () => { platform = await startPlatform({ tls: selfSignedCert() }); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await platform?.stop(); });

test('a supervisor signs in over HTTPS and sees the wall', async () => {
  assert.match(platform.url, /^https:\/\//);
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await ctx.newPage();
  const first = await page.goto(platform.url + '/');
  assert.equal(first.status(), 200);
  assert.match((await first.allHeaders())['strict-transport-security'] ?? '', /max-age=\d+/);
  await login(page, platform.url, 'supervisor', 'demo-supervisor-pass');
  assert.match(new URL(page.url()).pathname, /\/wall$/);
  assert.equal(new URL(page.url()).protocol, 'https:');
  await page.locator('h1').waitFor();
  const cookie = (await ctx.cookies()).find((c) => c.name === 'bwc_session');
  assert.ok(cookie, 'no session cookie');
  assert.equal(cookie.secure, true);
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  const session = await page.evaluate(async () => (await fetch('/api/session')).json());
  assert.equal(session.role, 'supervisor');
  await page.screenshot({ path: path.join(screenshots, 'wall-https.png') });
  await ctx.close();
});
