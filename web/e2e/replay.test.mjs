// Evidence replay in headless Debian Chromium: two officers' cameras
// (ffmpeg over RTSP) are archived; a reviewer opens the incident, seeks to
// a wall-clock instant and sees that time; two recordings play side by
// side on one clock and show the same instant after a seek.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startPlatform, launchBrowser, login, screenshots, camera } from './platform.mjs';

let platform, browser, incidentID, recordings;

before(async () => {
  platform = await startPlatform();
  browser = await launchBrowser();
  const cams = ['DEMO-CAM-01', 'DEMO-CAM-02'].map((serial) => camera(platform.rtsp, { serial, seconds: 14, audio: 'aac' }));
  await Promise.all(cams.map((c) => c.done));
  // wait until both recordings have ended and are entirely archived
  const page = await browser.newPage();
  await login(page, platform.url, 'reviewer', 'demo-reviewer-pass');
  const deadline = Date.now() + 60000;
  for (;;) {
    const state = await page.evaluate(async () => {
      const incs = await (await fetch('/api/incidents')).json();
      const inc = incs.find((i) => i.number === 'DEMO-110-0001');
      const tl = await (await fetch(`/api/incidents/${inc.id}/timeline`)).json();
      const recs = [];
      for (const r of tl.recordings) {
        const pb = await (await fetch(`/api/recordings/${r.id}/playback`)).json();
        const last = pb.segments[pb.segments.length - 1];
        recs.push({ id: r.id, ended: r.status === 'ended', archivedTo: last ? Date.parse(last.ended_at) : 0, endedAt: Date.parse(r.ended_at || 0), start: Date.parse(r.started_at) });
      }
      return { id: inc.id, recs };
    });
    if (state.recs.length === 2 && state.recs.every((r) => r.ended && r.archivedTo >= r.endedAt - 1000)) {
      incidentID = state.id;
      recordings = state.recs;
      break;
    }
    if (Date.now() > deadline) throw new Error(`footage not archived: ${JSON.stringify(state)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  await page.close();
});
after(async () => { await browser?.close(); await platform?.stop(); });

// gotoTime types a wall-clock instant into the page's "go to time" field.
async function gotoTime(page, ms) {
  await page.evaluate((ms) => {
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, '0');
    const f = document.querySelector('#goto');
    f.at.value = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    f.requestSubmit();
  }, ms);
}

test('a reviewer seeks an incident recording to a wall-clock instant', async () => {
  const page = await browser.newPage();
  await login(page, platform.url, 'reviewer', 'demo-reviewer-pass');
  await page.goto(`${platform.url}/incident?id=${incidentID}`);
  await page.waitForFunction(() => document.querySelectorAll('.tlrow').length === 2);
  await page.waitForFunction(() => Number(document.querySelector('#clock').dataset.wall) > 0, null, { timeout: 20000 });
  const target = Math.floor(Math.max(...recordings.map((r) => r.start)) / 1000) * 1000 + 7000;
  await gotoTime(page, target);
  await page.waitForFunction((t) => Math.abs(Number(document.querySelector('#clock').dataset.wall) - t) < 1000, target, { timeout: 20000 })
    .catch(async (e) => { throw new Error(`${e.message}: clock at ${await page.locator('#clock').getAttribute('data-wall')}, want ${target}`); });
  // the displayed time is the player's wall-clock position (within a second of the target)
  const { shown, wall } = await page.evaluate(() => ({ shown: document.querySelector('#clock').textContent, wall: Number(document.querySelector('#clock').dataset.wall) }));
  assert.equal(shown, new Date(wall).toLocaleTimeString([], { hourCycle: 'h23' }));
  assert.ok(Math.abs(wall - target) < 1000, `clock at ${wall}, target ${target}`);
  // the picture is there: decoded frames at that position
  assert.ok(await page.evaluate(() => document.querySelector('.player video').videoWidth === 640));
  await page.screenshot({ path: path.join(screenshots, 'incident-seek.png'), fullPage: true });
  await page.close();
});

test('two recordings play synchronized on one clock', async () => {
  const page = await browser.newPage();
  await login(page, platform.url, 'reviewer', 'demo-reviewer-pass');
  await page.goto(`${platform.url}/incident?id=${incidentID}`);
  await page.waitForFunction(() => [...document.querySelectorAll('.player')].filter((p) => Number(p.dataset.wall) > 0).length === 2, null, { timeout: 20000 });
  const target = Math.floor(Math.max(...recordings.map((r) => r.start)) / 1000) * 1000 + 5000;
  await gotoTime(page, target);
  const walls = () => page.evaluate(() => [...document.querySelectorAll('.player')].map((p) => Number(p.dataset.wall)));
  await page.waitForFunction((t) => [...document.querySelectorAll('.player')].every((p) => Math.abs(Number(p.dataset.wall) - t) < 600), target, { timeout: 20000 })
    .catch(async (e) => { throw new Error(`${e.message}: players at ${await walls()}, want ${target}`); });
  await page.click('#play');
  await page.waitForTimeout(2500);
  const [a, b] = await walls();
  assert.ok(a > target + 1000, `playback did not advance: ${a - target} ms`);
  assert.ok(Math.abs(a - b) < 600, `players ${Math.abs(a - b)} ms apart while playing`);
  await page.screenshot({ path: path.join(screenshots, 'incident-sync.png'), fullPage: true });
  await page.close();
});
