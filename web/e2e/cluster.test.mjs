// Two nodes of one platform (one database, one bucket, one signing key) in
// headless Debian Chromium: ffmpeg publishes to node B only, a supervisor
// signed in on node A's wall sees the camera, listed as node B's, and plays
// it over WebRTC (WHEP on node A, which pulls the camera once from node B
// over the internal link: bwc_peer_streams_in on A, _out on B).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startPlatform, launchBrowser, login, screenshots, camera, expectTilePlays } from './platform.mjs';

let a, b, browser, cam;
before(async () => {
  a = await startPlatform({ extraArgs: ['-node', 'e2e-a'] });
  b = await startPlatform({ extraArgs: ['-node', 'e2e-b'], sharing: a });
  browser = await launchBrowser();
  cam = camera(b.rtsp, { seconds: 45 });
});
after(async () => { cam?.stop(); await browser?.close(); await b?.stop(); await a?.stop(); });

// gauge reads one metric of a node's /metrics.
async function gauge(node, name) {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  assert.ok(m, `${name} missing from ${node.url}/metrics`);
  return Number(m[1]);
}

test("the wall on node A plays a camera held by node B, pulled once over the nodes' link", async () => {
  const page = await browser.newPage();
  await login(page, a.url, 'supervisor', 'demo-supervisor-pass');
  assert.match(new URL(page.url()).pathname, /\/wall$/);
  const tile = page.locator('.tile').first();
  await tile.waitFor({ timeout: 30000 });
  await page.waitForFunction(() => document.querySelector('.tile .who')?.textContent.includes('DEMO-001'), null, { timeout: 30000 });
  // node A lists it as node B's
  const id = await tile.getAttribute('data-recording');
  const live = await page.evaluate(async () => (await fetch('/api/live')).json());
  const entry = live.find((r) => r.recording_id === id);
  assert.ok(entry, `recording ${id} not in node A's /api/live: ${JSON.stringify(live)}`);
  assert.equal(entry.node, 'e2e-b');
  assert.equal(entry.device, 'DEMO-CAM-01');
  // decoded frames on node A: a picture size, and frame callbacks that keep coming
  await expectTilePlays(page, tile, 640, 360);
  await page.screenshot({ path: path.join(screenshots, 'wall-cluster.png') });
  // one inter-node stream: into A, out of B
  assert.equal(await gauge(a, 'bwc_peer_streams_in'), 1);
  assert.equal(await gauge(b, 'bwc_peer_streams_out'), 1);
  await page.close();
});
