// Who may see what, in the browser: an administrator (in Chinese) sets the
// units the demo supervisor oversees on the admin page; from then on the
// supervisor's dashboard of their old unit is refused (403) and that of
// the unit now overseen is served.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startPlatform, launchBrowser, login, screenshots } from './platform.mjs';

let platform, browser;
before(async () => { platform = await startPlatform(); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await platform?.stop(); });

// status of a GET made by the page (with its session)
async function status(page, url) {
  return page.evaluate(async (u) => (await fetch(u, { credentials: 'same-origin' })).status, url);
}

test('an admin sets the units a supervisor oversees, and the supervisor sees those', async () => {
  const sup = await browser.newPage();
  await login(sup, platform.url, 'supervisor', 'demo-supervisor-pass');
  assert.equal(await status(sup, '/api/dashboard?unit=Patrol%201'), 200);
  assert.equal(await status(sup, '/api/dashboard?unit=Patrol%202'), 403);

  const ctx = await browser.newContext({ locale: 'zh-CN' });
  const admin = await ctx.newPage();
  await login(admin, platform.url, 'admin', 'demo-admin-pass');
  await admin.waitForFunction(() => [...document.querySelectorAll('th')].some((th) => th.textContent.startsWith('督管单位')));
  const row = admin.locator('#users tr', { hasText: 'supervisor' }).first();
  const oversees = row.locator('input').nth(1);
  assert.equal(await oversees.getAttribute('placeholder'), '本单位');
  await oversees.fill('Patrol 2, Patrol 3');
  await row.getByRole('button', { name: '保存' }).click();
  await admin.waitForFunction(() => [...document.querySelectorAll('#users tr')].some((r) =>
    [...r.querySelectorAll('input')].some((i) => i.value === 'Patrol 2, Patrol 3')));
  await admin.screenshot({ path: path.join(screenshots, 'admin-oversees-zh.png'), fullPage: true });
  await ctx.close();

  assert.equal(await status(sup, '/api/dashboard?unit=Patrol%201'), 403);
  assert.equal(await status(sup, '/api/dashboard?unit=Patrol%202'), 200);
  await sup.close();
});
