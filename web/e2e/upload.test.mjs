// Upload in headless Debian Chromium: an officer uploads a clip from the
// upload page (tus, chunked), it is stored, listed, and appears on its
// incident's timeline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startPlatform, launchBrowser, login, screenshots } from './platform.mjs';

const clip = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'ingest', 'upload', 'testdata', 'seed.mp4');
let platform, browser;
before(async () => { platform = await startPlatform(); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await platform?.stop(); });

test('an officer uploads a clip for an incident, the connection dropping once', async () => {
  const page = await browser.newPage();
  await login(page, platform.url, 'officer', 'demo-officer-pass');
  assert.match(new URL(page.url()).pathname, /\/upload$/);
  // the first PATCH never arrives: the link drops; the page resumes (HEAD, PATCH)
  let dropped = 0;
  await page.route('**/api/uploads/**', (route) => {
    if (route.request().method() === 'PATCH' && dropped === 0) { dropped++; return route.abort('connectionreset'); }
    return route.continue();
  });
  await page.setInputFiles('input[name=files]', clip);
  await page.fill('input[name=incident]', 'DEMO-110-0001');
  await page.click('#pick button');
  await page.waitForFunction(() => /stored/.test(document.querySelector('#queue .status')?.textContent || ''), null, { timeout: 60000 })
    .catch(async (e) => { throw new Error(`${e.message}: ${await page.locator('#queue').innerText()}`); });
  await page.waitForFunction(() => document.querySelectorAll('#done tbody tr').length === 1);
  assert.match(await page.locator('#done').innerText(), /seed\.mp4/);
  await page.screenshot({ path: path.join(screenshots, 'upload.png'), fullPage: true });
  // on the incident's timeline, as the supervisor sees it
  const sup = await browser.newPage();
  await login(sup, platform.url, 'supervisor', 'demo-supervisor-pass');
  const sources = await sup.evaluate(async () => {
    const inc = (await (await fetch('/api/incidents')).json()).find((i) => i.number === 'DEMO-110-0001');
    return (await (await fetch(`/api/incidents/${inc.id}/timeline`)).json()).recordings.map((r) => r.source);
  });
  assert.deepEqual(sources, ['upload']);
  assert.equal(dropped, 1);
  // and it plays on the incident's page (the original, by byte ranges)
  const inc = await sup.evaluate(async () => (await (await fetch('/api/incidents')).json()).find((i) => i.number === 'DEMO-110-0001').id);
  await sup.goto(`${platform.url}/incident?id=${inc}`);
  await sup.waitForFunction(() => document.querySelector('.player video')?.videoWidth > 0, null, { timeout: 20000 });
  await sup.click('#play');
  await sup.waitForFunction(() => document.querySelector('.player video').currentTime > 0.2, null, { timeout: 10000 });
  await sup.screenshot({ path: path.join(screenshots, 'incident-upload.png'), fullPage: true });
  await page.close();
  await sup.close();
});
