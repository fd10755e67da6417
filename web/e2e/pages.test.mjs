// Browser tests of the pages in headless Debian Chromium: sign-in by role,
// the 403 an officer gets on the wall, administration, both languages.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startPlatform, launchBrowser, login, screenshots } from './platform.mjs';

let platform, browser;
before(async () => { platform = await startPlatform(); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await platform?.stop(); });

test('an officer cannot open the live wall', async () => {
  const page = await browser.newPage();
  await login(page, platform.url, 'officer', 'demo-officer-pass');
  assert.match(new URL(page.url()).pathname, /\/upload$/);
  const res = await page.goto(platform.url + '/wall');
  assert.equal(res.status(), 403);
  await page.screenshot({ path: path.join(screenshots, 'wall-403-officer.png') });
  await page.close();
});

test('a wrong password is refused with a message', async () => {
  const page = await browser.newPage();
  await page.goto(platform.url + '/');
  await page.fill('input[name=login]', 'supervisor');
  await page.fill('input[name=password]', 'not-the-password');
  await page.click('button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#error').textContent.length > 0);
  assert.equal(new URL(page.url()).pathname, '/');
  await page.close();
});

test('an admin sees the demo camera and can check it in and out', async () => {
  const page = await browser.newPage();
  await login(page, platform.url, 'admin', 'demo-admin-pass');
  assert.match(new URL(page.url()).pathname, /\/admin$/);
  const row = page.locator('#devices tr', { hasText: 'DEMO-CAM-01' });
  await row.waitFor();
  assert.match(await row.innerText(), /DEMO-001/); // checked out to the demo officer
  await row.getByRole('button').click(); // check in
  await page.waitForFunction(() => [...document.querySelectorAll('#devices tr')].some((r) => r.innerText.includes('DEMO-CAM-01') && r.querySelector('select')));
  await page.screenshot({ path: path.join(screenshots, 'admin.png'), fullPage: true });
  await page.close();
});

test('the pages speak Chinese', async () => {
  const ctx = await browser.newContext({ locale: 'zh-CN' });
  const page = await ctx.newPage();
  await login(page, platform.url, 'supervisor', 'demo-supervisor-pass');
  assert.match(new URL(page.url()).pathname, /\/wall$/);
  await page.waitForFunction(() => document.querySelector('h1').textContent === '实时监看墙');
  await page.screenshot({ path: path.join(screenshots, 'wall-zh.png') });
  await ctx.close();
});

test('the supervision dashboard lists the incident without footage in red', async () => {
  const page = await browser.newPage();
  await login(page, platform.url, 'supervisor', 'demo-supervisor-pass');
  await page.goto(platform.url + '/dashboard');
  const row = page.locator('#incidents tr.cov-row', { hasText: 'DEMO-110-0001' });
  await row.waitFor();
  assert.match(await row.getAttribute('class'), /\bnone\b/);
  assert.match(await page.locator('#summary').innerText(), /0%/);
  await page.screenshot({ path: path.join(screenshots, 'dashboard.png'), fullPage: true });
  await page.close();
});
