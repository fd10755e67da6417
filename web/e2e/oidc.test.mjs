// Single sign-on in headless Debian Chromium: a supervisor signs in through
// a real OpenID provider (cmd/bwc-testop: zitadel's pkg/op) and lands on the
// live wall; a person in no mapped group gets the refusal page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPlatform, startTestOP, launchBrowser, freePort, screenshots } from './platform.mjs';

let platform, op, browser;
before(async () => {
  const httpPort = await freePort();
  const redirectURL = `http://127.0.0.1:${httpPort}/auth/oidc/callback`;
  const secret = 'e2e-client-secret';
  op = await startTestOP({
    clientSecret: secret, redirectURL,
    users: ['sv.chen:sv-password:staff,bwc-supervisors:north', 'cook:cook-password:cafeteria'],
  });
  const secretFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'bwc-oidc-')), 'secret');
  writeFileSync(secretFile, secret + '\n', { mode: 0o600 });
  platform = await startPlatform({
    httpPort,
    extraArgs: ['-oidc-issuer', op.issuer, '-oidc-name', 'Police ID', '-oidc-client-id', 'bwc',
      '-oidc-client-secret-file', secretFile, '-oidc-redirect-url', redirectURL],
  });
  browser = await launchBrowser();
});
after(async () => { await browser?.close(); await platform?.stop(); await op?.stop(); });

// signInThroughProvider clicks "Sign in with Police ID" and fills in the
// provider's own login form.
async function signInThroughProvider(page, username, password) {
  await page.goto(platform.url + '/');
  const link = page.locator('#sso-link');
  await link.waitFor();
  await Promise.all([page.waitForURL((u) => u.href.startsWith(op.issuer + '/login')), link.click()]);
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
}

test('a supervisor signs in through the OpenID provider and lands on the wall', async () => {
  const page = await browser.newPage();
  await signInThroughProvider(page, 'sv.chen', 'sv-password');
  await page.waitForURL((u) => u.href === platform.url + '/wall', { timeout: 15000 });
  await page.waitForFunction(() => document.querySelector('header.top .who').textContent.startsWith('sv.chen'));
  const me = await page.evaluate(() => fetch('/api/session').then((r) => r.json()));
  assert.equal(me.role, 'supervisor');
  assert.equal(me.unit, 'north');
  await page.screenshot({ path: path.join(screenshots, 'oidc-wall.png') });
  await page.close();
});

test('the login page offers single sign-on in Chinese', async () => {
  const ctx = await browser.newContext({ locale: 'zh-CN' });
  const page = await ctx.newPage();
  await page.goto(platform.url + '/');
  await page.waitForFunction(() => document.querySelector('#sso-link').textContent === '使用 Police ID 登录');
  await ctx.close();
});

test('a person in no mapped group is refused', async () => {
  const page = await browser.newPage();
  await signInThroughProvider(page, 'cook', 'cook-password');
  await page.waitForURL((u) => u.pathname === '/auth/oidc/callback');
  assert.match(await page.locator('#sso-error').innerText(), /no group that may use this platform/);
  // no session: the browser context's cookies get 401 (the refusal page
  // itself may run no script)
  const res = await page.request.get(platform.url + '/api/session');
  assert.equal(res.status(), 401);
  await page.close();
});
