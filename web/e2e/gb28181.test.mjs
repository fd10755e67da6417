// Browser test of the GB/T 28181 device fields on the administration page,
// in Chinese: an admin registers a camera with its 20-digit GB/T 28181
// device ID and UDP media; the list shows them; a second camera with the
// same ID is refused with a message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startPlatform, launchBrowser, login, screenshots } from './platform.mjs';

let platform, browser;
before(async () => { platform = await startPlatform(); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await platform?.stop(); });

test('an admin registers a GB/T 28181 camera (Chinese page)', async () => {
  const ctx = await browser.newContext({ locale: 'zh-CN' });
  const page = await ctx.newPage();
  await login(page, platform.url, 'admin', 'demo-admin-pass');
  await page.waitForFunction(() => document.querySelector('[data-i18n="admin.gbID"]').textContent.includes('国标设备编码'));
  const form = page.locator('#add-device');
  await form.locator('input[name=serial]').fill('GB-CAM-01');
  await form.locator('input[name=secret]').fill('gb-camera-secret');
  await form.locator('input[name=gb_id]').fill('34020000001320000077');
  await form.locator('select[name=gb_transport]').selectOption('udp');
  await form.locator('button').click();
  const row = page.locator('#devices tr', { hasText: 'GB-CAM-01' });
  await row.waitFor();
  assert.match(await row.innerText(), /34020000001320000077 \(UDP\)/);
  await page.screenshot({ path: path.join(screenshots, 'admin-gb28181-zh.png'), fullPage: true });

  // a second camera with the same GB/T 28181 ID is refused, with a message
  await form.locator('input[name=serial]').fill('GB-CAM-02');
  await form.locator('input[name=secret]').fill('gb-camera-secret');
  await form.locator('input[name=gb_id]').fill('34020000001320000077');
  await form.locator('button').click();
  await page.waitForFunction(() => document.querySelector('#error').textContent.length > 0);
  assert.equal(await page.locator('#devices tr', { hasText: 'GB-CAM-02' }).count(), 0);
  await ctx.close();
});
