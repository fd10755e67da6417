// The supervisor's live wall in headless Debian Chromium: ffmpeg publishes
// over RTSP as a body camera, the wall shows its tile and plays it over
// WebRTC (WHEP): video frames are decoded, repeatedly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startPlatform, launchBrowser, login, screenshots, camera, expectTilePlays } from './platform.mjs';

let platform, browser, cam;
before(async () => {
  platform = await startPlatform();
  browser = await launchBrowser();
  cam = camera(platform.rtsp);
});
after(async () => { cam?.stop(); await browser?.close(); await platform?.stop(); });

test('the live wall plays a body camera over WebRTC', async () => {
  const page = await browser.newPage();
  await login(page, platform.url, 'supervisor', 'demo-supervisor-pass');
  assert.match(new URL(page.url()).pathname, /\/wall$/);
  const tile = page.locator('.tile').first();
  await tile.waitFor({ timeout: 30000 });
  // the officer the camera is checked out to, and the incident
  await page.waitForFunction(() => document.querySelector('.tile .who')?.textContent.includes('DEMO-001'), null, { timeout: 30000 });
  assert.match(await tile.locator('.info').innerText(), /DEMO-110-0001/);
  // decoded frames: a picture size, and frame callbacks that keep coming
  await expectTilePlays(page, tile, 640, 360);
  // the view is counted on the wall
  await page.waitForFunction(() => /1 watching|1 人/.test(document.querySelector('.tile .info').textContent), null, { timeout: 10000 })
    .catch(async (e) => {
      const live = await page.evaluate(async () => (await fetch('/api/live')).text());
      throw new Error(`${e.message}: tile says "${await tile.locator('.info').innerText()}"; /api/live: ${live}`);
    });
  await page.screenshot({ path: path.join(screenshots, 'wall-live.png') });
  // the one-recording page plays it too
  const id = await tile.getAttribute('data-recording');
  const one = await browser.newPage();
  await login(one, platform.url, 'supervisor', 'demo-supervisor-pass');
  await one.goto(`${platform.url}/live?id=${id}`);
  await one.waitForFunction(() => document.querySelector('#video').videoWidth > 0 && Number(document.querySelector('#tile').dataset.frames) > 10, null, { timeout: 30000 });
  await one.screenshot({ path: path.join(screenshots, 'live-one.png') });
  await one.close();
  // a second camera starts publishing: its tile appears without a reload
  const second = camera(platform.rtsp, { serial: 'DEMO-CAM-02', seconds: 30 });
  try {
    await page.waitForFunction(() => document.querySelectorAll('.tile').length === 2
      && [...document.querySelectorAll('.tile .who')].some((w) => w.textContent.includes('DEMO-002')), null, { timeout: 30000 });
    await page.waitForFunction(() => [...document.querySelectorAll('.tile video')].every((v) => v.videoWidth > 0), null, { timeout: 30000 });
    await page.screenshot({ path: path.join(screenshots, 'wall-two.png') });
  } finally {
    second.stop();
  }
  await page.close();
});
