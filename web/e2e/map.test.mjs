// The duty room's screen in headless Debian Chromium: sixteen simulated
// units publish over RTSP (small, low-bitrate ffmpeg cameras sending a
// pre-encoded clip, no encoding per camera), three of them post GPS fixes
// with their own secret; the map (tiles served by a local tile server, as
// -map-tiles names it) places them, a new fix moves a marker, a click opens
// the unit's live video; the wall in its 4 × 4 layout decodes frames on all
// sixteen tiles, with the map panel beside it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startPlatform, launchBrowser, login, screenshots, freePort } from './platform.mjs';

const units = Array.from({ length: 16 }, (_, i) => `SIM-${String(i + 1).padStart(2, '0')}`);
const secret = 'sim-camera-secret';
// three units with positions (central Shanghai)
const fixes = { 'SIM-01': [31.2304, 121.4737], 'SIM-02': [31.2402, 121.4901], 'SIM-03': [31.2203, 121.4602] };

let platform, browser, tiles, cams = [];
const tileHits = { n: 0 };

// a 1×1 grey PNG for every tile
const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNoAAAAggCBd81ytgAAAABJRU5ErkJggg==', 'base64');

async function adminAPI(url) {
  const res = await fetch(url + '/api/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ login: 'admin', password: 'demo-admin-pass' }) });
  assert.equal(res.status, 200, await res.clone().text());
  const cookie = res.headers.get('set-cookie').split(';')[0];
  const { csrf_token: csrf } = await res.json();
  return async (method, p, body) => {
    const r = await fetch(url + p, { method, headers: { Cookie: cookie, 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

// postFix reports a unit's position as the camera does (Basic: serial and
// secret).
async function postFix(serial, lat, lon) {
  const res = await fetch(`${platform.url}/api/devices/${serial}/positions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Basic ' + Buffer.from(`${serial}:${secret}`).toString('base64') },
    body: JSON.stringify({ at: new Date().toISOString(), lat, lon, speed: 20, direction: 90 }),
  });
  assert.equal(res.status, 201, await res.text());
}

// cpuTicks is the CPU time (clock ticks) of a process and its descendants
// whose command matches name (all of them without).
function cpuTicks(pid, name) {
  const ps = spawnSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' }).stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
  const tree = new Set([pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [p, pp] of ps) if (tree.has(pp) && !tree.has(p)) { tree.add(p); grew = true; }
  }
  let ticks = 0;
  for (const p of tree) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      if (name && !stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).includes(name)) continue;
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime
    } catch { /* gone */ }
  }
  return ticks;
}

before(async () => {
  const tilePort = await freePort();
  tiles = http.createServer((req, res) => {
    tileHits.n++;
    res.writeHead(200, { 'Content-Type': 'image/png', 'Access-Control-Allow-Origin': '*' });
    res.end(png);
  });
  await new Promise((r) => tiles.listen(tilePort, '127.0.0.1', r));
  platform = await startPlatform({ extraArgs: [`-map-tiles=http://127.0.0.1:${tilePort}/tiles/{z}/{x}/{y}.png`] });
  browser = await launchBrowser();
  const api = await adminAPI(platform.url);
  // sixteen units: a camera each, worn by an officer of the supervisor's unit
  for (const [i, serial] of units.entries()) {
    const dev = await api('POST', '/api/devices', { serial, secret, model: 'simulated' });
    const off = await api('POST', '/api/officers', { badge: `S${String(i + 1).padStart(3, '0')}`, name: `Unit ${serial}`, unit: 'Patrol 1' });
    await api('POST', `/api/devices/${dev.id}/checkout`, { officer_id: off.id });
  }
  await api('POST', '/api/incidents', { number: 'MAP-110-0001', type: 'theft', address: 'Nanjing Road', lat: 31.2350, lon: 121.4800 });
  // one small clip, encoded once; every camera sends it in a loop
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bwc-map-'));
  const clip = path.join(dir, 'clip.mp4');
  const enc = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=10:duration=4',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-profile:v', 'baseline', '-pix_fmt', 'yuv420p', '-g', '10', '-b:v', '150k', clip]);
  assert.equal(enc.status, 0, String(enc.stderr));
  const rtsp = platform.rtsp;
  cams = units.map((serial) => spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', clip, '-c', 'copy',
    '-f', 'rtsp', '-rtsp_transport', 'tcp', `rtsp://${serial}:${secret}@${rtsp}/live/${serial}`], { stdio: ['ignore', 'inherit', 'inherit'] }));
  // all sixteen live before the units report positions
  const deadline = Date.now() + 60000;
  for (;;) {
    const live = await api('GET', '/api/live');
    if (units.every((s) => live.some((r) => r.device === s))) break;
    if (Date.now() > deadline) throw new Error(`only ${live.length} of 16 cameras live in 60 s`);
    await new Promise((r) => setTimeout(r, 500));
  }
  for (const [serial, [lat, lon]] of Object.entries(fixes)) await postFix(serial, lat, lon);
});

after(async () => {
  for (const c of cams) c.kill('SIGTERM');
  await browser?.close();
  await platform?.stop();
  tiles?.close();
});

const latlng = (page, serial) => page.evaluate((s) => { const m = window.bwcMap?.markerOf(s); return m ? [m.getLatLng().lat, m.getLatLng().lng] : null; }, serial);

test('the map places the units, follows a new fix within 2 s, and opens a unit\'s live video', async () => {
  const context = await browser.newContext({ viewport: { width: 1600, height: 900 } });
  const page = await context.newPage();
  await login(page, platform.url, 'supervisor', 'demo-supervisor-pass');
  await page.goto(platform.url + '/map');
  await page.waitForFunction((n) => Object.keys(n).every((s) => window.bwcMap?.markerOf(s)), fixes, { timeout: 20000 });
  for (const [serial, [lat, lon]] of Object.entries(fixes)) {
    const [got, gotLon] = await latlng(page, serial);
    assert.ok(Math.abs(got - lat) < 1e-9 && Math.abs(gotLon - lon) < 1e-9, `${serial} at ${got},${gotLon}, want ${lat},${lon}`);
  }
  // units without a fix have no marker; the list names every unit with
  // its officer, unit, incident, last fix and status
  assert.equal(await latlng(page, 'SIM-04'), null);
  await page.waitForFunction(() => document.querySelectorAll('table.units tr.unitrow').length === 16
    && /Patrol 1/.test(document.querySelector('tr.unitrow[data-device="SIM-01"]').textContent), null, { timeout: 10000 });
  const row = await page.locator('tr.unitrow[data-device="SIM-01"]').innerText();
  assert.match(row, /Unit SIM-01 #S001/);
  assert.match(row, /live/);
  assert.match(row, /fix \d+ s ago/);
  // the incident's location, and tiles from the configured tile server
  await page.waitForSelector('.incident-icon', { timeout: 10000 });
  assert.ok(tileHits.n > 0, 'no tile was requested from the tile server');
  assert.ok(await page.locator('img.leaflet-tile-loaded').count() > 0, 'no tile loaded (Content-Security-Policy?)');

  // a new fix moves the marker: a UI wait bounded by 2 s
  const moved = [31.2450, 121.5000];
  const t0 = Date.now();
  await postFix('SIM-01', ...moved);
  await page.waitForFunction(([s, lat, lon]) => {
    const m = window.bwcMap.markerOf(s).getLatLng();
    return Math.abs(m.lat - lat) < 1e-9 && Math.abs(m.lng - lon) < 1e-9;
  }, ['SIM-01', ...moved], { timeout: 2000, polling: 50 });
  console.log(`# marker moved ${Date.now() - t0} ms after the fix was posted`);
  await page.screenshot({ path: path.join(screenshots, 'map.png') });

  // a click on the unit opens its live video (and draws its track)
  const [live] = await Promise.all([context.waitForEvent('page'), page.locator('path[data-device="SIM-01"]').click()]);
  await live.waitForLoadState();
  assert.match(new URL(live.url()).pathname, /\/live$/);
  await live.waitForFunction(() => document.querySelector('#video').videoWidth > 0 && Number(document.querySelector('#tile').dataset.frames) > 5, null, { timeout: 30000 });
  assert.match(await live.locator('#who').innerText(), /Unit SIM-01/);
  await page.waitForFunction(() => window.bwcMap.track.getLatLngs().length >= 2, null, { timeout: 10000 });
  await context.close();
});

test('the wall decodes sixteen cameras in its 4 × 4 layout, labels readable, map beside it', async () => {
  const context = await browser.newContext({ viewport: { width: 1920, height: 1080 } });
  const page = await context.newPage();
  await login(page, platform.url, 'supervisor', 'demo-supervisor-pass');
  await page.selectOption('#layout', '4');
  await page.waitForFunction(() => {
    const ts = [...document.querySelectorAll('.tile')];
    return ts.length === 16 && ts.every((t) => t.querySelector('video').videoWidth > 0 && Number(t.dataset.frames) > 10);
  }, null, { timeout: 60000 }).catch(async (e) => {
    const state = await page.evaluate(() => [...document.querySelectorAll('.tile')].map((t) => `${t.dataset.recording.slice(0, 8)}:${t.dataset.frames}:${t.querySelector('.badge').textContent}`));
    throw new Error(`${e.message}: tiles ${state.join(' ')}`);
  });
  // CPU while sixteen play (figures, no assertion)
  // the server's process; the browser's processes are this runner's
  // descendants named chrom*
  const serverPid = platform.pid;
  const a = { s: cpuTicks(serverPid), b: cpuTicks(process.pid, 'chrom'), t: Date.now() };
  // decoded frames (the video decoder's count) and painted frames (frame
  // callbacks) per tile
  const frames = () => page.evaluate(() => [...document.querySelectorAll('.tile')].map((t) => [t.querySelector('video').getVideoPlaybackQuality().totalVideoFrames, Number(t.dataset.frames)]));
  const framesBefore = await frames();
  await page.waitForTimeout(5000);
  const framesAfter = await frames();
  const secs = (Date.now() - a.t) / 1000;
  const pct = (ticks) => (100 * ticks / 100 / secs).toFixed(0); // clock ticks of 1/100 s
  console.log(`# 16 tiles: server CPU ${pct(cpuTicks(serverPid) - a.s)}% of one core, browser CPU ${pct(cpuTicks(process.pid, 'chrom') - a.b)}% (over ${secs.toFixed(1)} s); frames decoded/painted per second per tile: ${framesAfter.map((f, i) => `${((f[0] - framesBefore[i][0]) / secs).toFixed(1)}/${((f[1] - framesBefore[i][1]) / secs).toFixed(1)}`).join(' ')} (cameras: 10 fps); machine load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cores`);
  assert.ok(framesAfter.every((f, i) => f[0] > framesBefore[i][0] && f[1] > framesBefore[i][1]), 'a tile stopped decoding');

  // every label readable at this size and at 6 × 6: the officer's line and
  // the incident's line do not overlap, and stay inside the tile
  for (const cols of ['4', '6']) {
    await page.selectOption('#layout', cols);
    await page.waitForTimeout(200);
    const bad = await page.evaluate(() => [...document.querySelectorAll('.tile')].flatMap((t) => {
      const tile = t.getBoundingClientRect(), who = t.querySelector('.label .who').getBoundingClientRect(), info = t.querySelector('.label .info').getBoundingClientRect();
      const problems = [];
      if (who.bottom > info.top + 0.5) problems.push('officer over incident');
      if (who.right > tile.right + 0.5 || info.right > tile.right + 0.5 || info.bottom > tile.bottom + 0.5) problems.push('label outside the tile');
      if (!t.querySelector('.label .who').textContent.includes('Unit SIM-') || !/MAP-110|no incident/.test(t.querySelector('.label .info').textContent)) problems.push('label text missing');
      return problems.map((p) => `${Math.round(tile.width)}px tile: ${p}`);
    }));
    assert.deepEqual(bad, [], `layout ${cols}`);
    const width = await page.evaluate(() => document.querySelector('.tile').getBoundingClientRect().width);
    console.log(`# layout ${cols} × ${cols}: tile width ${Math.round(width)} px`);
    await page.screenshot({ path: path.join(screenshots, `wall-${cols}x${cols}.png`) });
  }
  // the map panel shows the units with positions; a unit whose camera
  // stops goes reconnecting, then offline (its last fix stays, greyed)
  assert.ok(await page.evaluate(() => ['SIM-01', 'SIM-02', 'SIM-03'].every((s) => window.bwcMap.markerOf(s))));
  cams[2].kill('SIGTERM'); // SIM-03
  await page.waitForFunction(() => document.querySelector('tr.unitrow[data-device="SIM-03"] .st.offline')
    && window.bwcMap.markerOf('SIM-03').options.fillColor === '#8b98a5', null, { timeout: 30000 });
  await context.close();
});
