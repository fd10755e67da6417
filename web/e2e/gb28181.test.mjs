// Browser tests of GB/T 28181: the device fields on the administration
// page, in Chinese: an admin registers a camera with its 20-digit GB/T
// 28181 device ID and UDP media; the list shows them; a second camera with
// the same ID is refused with a message. And a GB/T 28181 camera (the Go
// device simulator, ingest/gb28181/gbtest, run as a command) plays on the
// supervisor's wall.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPlatform, launchBrowser, login, screenshots, freePort } from './platform.mjs';

let platform, browser, sipPort;
before(async () => {
  sipPort = await freePort();
  platform = await startPlatform({ extraEnv: {
    BWC_GB_SIP_ADDR: `127.0.0.1:${sipPort}`, BWC_GB_MEDIA_ADDR: `127.0.0.1:${await freePort()}`,
    // the simulator's stream is 6 s; it is INVITEd again and continues
    BWC_RECONNECT_GRACE: '30s',
  } });
  browser = await launchBrowser();
});
after(async () => { await browser?.close(); await platform?.stop(); });

// simulator starts the GB/T 28181 body camera simulator (BWC_GBSIM_BIN, or
// built here with go test -c) and resolves once it registered.
async function simulator(env) {
  let bin = process.env.BWC_GBSIM_BIN;
  const built = !bin;
  if (built) {
    bin = path.join(os.tmpdir(), `bwc-gbsim-${process.pid}`);
    const root = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..');
    const made = spawnSync('go', ['test', '-c', '-o', bin, './ingest/gb28181/gbtest'], { cwd: root, encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`build the simulator: ${made.stderr}`);
  }
  const proc = spawn(bin, ['-test.run', '^TestSimulate$', '-test.v'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => { proc.kill('SIGTERM'); reject(new Error(`the simulator did not register in 60 s: ${out}`)); }, 60000);
    proc.stdout.on('data', (d) => {
      out += d;
      if (out.includes('registered\n')) { clearTimeout(timer); resolve(); }
    });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the simulator exited with ${code}: ${out}`)); });
  });
  proc.stdout.resume();
  return {
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
      if (built) rmSync(bin, { force: true });
    },
  };
}

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

test('a GB/T 28181 camera plays on the wall', async () => {
  // the admin gives the demo camera (worn by DEMO-001) a GB/T 28181 ID
  const res = await fetch(platform.url + '/api/login', { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ login: 'admin', password: 'demo-admin-pass' }) });
  assert.equal(res.status, 200);
  const { csrf_token: csrf } = await res.json();
  const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const gbID = '34020000001320000078';
  const set = await fetch(platform.url + '/api/devices/DEMO-CAM-01/gb28181', { method: 'POST',
    headers: { 'Content-Type': 'application/json', Cookie: cookie, 'X-CSRF-Token': csrf },
    body: JSON.stringify({ gb_id: gbID, gb_transport: 'tcp' }) });
  assert.equal(set.status, 200, await set.text());

  const cam = await simulator({ BWC_GBSIM_SIP: `127.0.0.1:${sipPort}`, BWC_GBSIM_SERVER_ID: '34020000002000000001',
    BWC_GBSIM_DOMAIN: '3402000000', BWC_GBSIM_ID: gbID, BWC_GBSIM_SECRET: 'demo-camera-secret' });
  try {
    const page = await browser.newPage();
    await login(page, platform.url, 'supervisor', 'demo-supervisor-pass');
    assert.match(new URL(page.url()).pathname, /\/wall$/);
    await page.waitForFunction(() => document.querySelector('.tile .who')?.textContent.includes('DEMO-001'), null, { timeout: 60000 });
    // decoded frames of the simulator's 320x240 H.264
    await page.waitForFunction(() => {
      const v = document.querySelector('.tile video');
      return v && v.videoWidth > 0 && Number(document.querySelector('.tile').dataset.frames) > 25;
    }, null, { timeout: 60000 });
    const { width, height } = await page.evaluate(() => {
      const v = document.querySelector('.tile video');
      return { width: v.videoWidth, height: v.videoHeight };
    });
    assert.equal(width, 320);
    assert.equal(height, 240);
    await page.screenshot({ path: path.join(screenshots, 'wall-gb28181.png') });
    await page.close();
  } finally {
    await cam.stop();
  }
});
