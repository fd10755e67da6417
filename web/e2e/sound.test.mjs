// Sound in headless Debian Chromium: a G.711 camera's recording (archived
// as LPCM, which browsers refuse) and an AAC camera's replay on the
// incident page with audio: the audio decodes, the clock advances, no MSE
// error, and both keep playing after a seek. Then the live wall receives an
// AAC camera's audio as Opus over WebRTC while the video keeps its frame
// rate, and no transcoder runs once nobody watches.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPlatform, launchBrowser, login, camera } from './platform.mjs';

let platform, browser;
before(async () => {
  platform = await startPlatform();
  browser = await launchBrowser();
});
after(async () => { await browser?.close(); await platform?.stop(); });

// archived waits until the incident's recordings have ended and are archived.
async function archived(page, n) {
  const deadline = Date.now() + 60000;
  for (;;) {
    const state = await page.evaluate(async () => {
      const inc = (await (await fetch('/api/incidents')).json()).find((i) => i.number === 'DEMO-110-0001');
      const tl = await (await fetch(`/api/incidents/${inc.id}/timeline`)).json();
      const recs = [];
      for (const r of tl.recordings) {
        const pb = await (await fetch(`/api/recordings/${r.id}/playback`)).json();
        const last = pb.segments[pb.segments.length - 1];
        recs.push({ id: r.id, ended: r.status === 'ended', done: last && Date.parse(last.ended_at) >= Date.parse(r.ended_at || 0) - 1000, audio: pb.audio });
      }
      return { id: inc.id, recs };
    });
    if (state.recs.length === n && state.recs.every((r) => r.ended && r.done)) return state;
    if (Date.now() > deadline) throw new Error(`footage not archived: ${JSON.stringify(state)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

test('G.711 and AAC recordings replay with sound on the incident page, and after a seek', async () => {
  await Promise.all([camera(platform.rtsp, { serial: 'DEMO-CAM-01', seconds: 10, audio: 'g711' }).done,
    camera(platform.rtsp, { serial: 'DEMO-CAM-02', seconds: 10, audio: 'aac' }).done]);
  const page = await browser.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));
  await login(page, platform.url, 'reviewer', 'demo-reviewer-pass');
  const state = await archived(page, 2);
  await page.goto(`${platform.url}/incident?id=${state.id}`);
  await page.waitForFunction(() => [...document.querySelectorAll('.player')].filter((p) => Number(p.dataset.wall) > 0).length === 2, null, { timeout: 20000 });
  // the G.711 one is served converted (and says so), the AAC one as archived
  const notes = await page.evaluate(() => [...document.querySelectorAll('.player')].map((p) => p.dataset.audio || ''));
  assert.deepEqual(notes.sort(), ['', 'converted'], `audio notes ${notes}`);
  const figures = () => page.evaluate(() => [...document.querySelectorAll('.player video')].map((v) => ({
    t: v.currentTime, audio: v.webkitAudioDecodedByteCount, video: v.webkitVideoDecodedByteCount, error: v.error && v.error.message,
  })));
  const play = async () => {
    await page.evaluate(() => document.querySelectorAll('.player video').forEach((v) => { v.muted = false; }));
    await page.click('#play');
  };
  const advances = async (what) => {
    const a = await figures();
    await page.waitForFunction((a) => [...document.querySelectorAll('.player video')].every((v, i) => v.currentTime > a[i].t + 1
      && v.webkitAudioDecodedByteCount > a[i].audio), a, { timeout: 15000 })
      .catch(async (e) => { throw new Error(`${what}: ${e.message}: ${JSON.stringify(a)} → ${JSON.stringify(await figures())}; ${errors}`); });
  };
  await play();
  await advances('from the start');
  // seek to 6 s into the recordings: both play on, with sound
  await page.click('#pause');
  const target = await page.evaluate(async (id) => {
    const tl = await (await fetch(`/api/incidents/${id}/timeline`)).json();
    return Math.floor(Math.max(...tl.recordings.map((r) => Date.parse(r.started_at))) / 1000) * 1000 + 6000;
  }, state.id);
  await page.evaluate((ms) => { // the page's "go to time" field, as typed
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, '0');
    const f = document.querySelector('#goto');
    f.at.value = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    f.requestSubmit();
  }, target);
  await page.waitForFunction(() => [...document.querySelectorAll('.player video')].every((v) => v.currentTime > 4), null, { timeout: 15000 })
    .catch(async (e) => { throw new Error(`seek: ${e.message}: ${JSON.stringify(await figures())}`); });
  await play();
  await advances('after the seek');
  const after = await figures();
  assert.ok(after.every((f) => f.error === null), `media errors: ${JSON.stringify(after)}`);
  assert.deepEqual(errors.filter((e) => /player|MSE|audio|stsd/i.test(e)), []);
  await page.close();
});

// transcoders reads the server's count of running AAC-to-Opus converters.
async function transcoders() {
  const text = await (await fetch(`${platform.url}/metrics`)).text();
  const m = text.match(/^bwc_relay_audio_transcoders (\S+)$/m);
  assert.ok(m, 'bwc_relay_audio_transcoders missing from /metrics');
  return Number(m[1]);
}

test('the wall hears an AAC camera as Opus while the video keeps its frame rate; no viewer, no transcoder', async () => {
  const cam = camera(platform.rtsp, { serial: 'DEMO-CAM-02', seconds: 40, audio: 'aac' });
  const page = await browser.newPage();
  try {
    // keep the wall's peer connections reachable for getStats
    await page.addInitScript(() => {
      const PC = window.RTCPeerConnection;
      window.bwcPCs = [];
      window.RTCPeerConnection = function (...a) { const pc = new PC(...a); window.bwcPCs.push(pc); return pc; };
      window.RTCPeerConnection.prototype = PC.prototype;
    });
    await login(page, platform.url, 'supervisor', 'demo-supervisor-pass');
    await page.locator('.tile').first().waitFor({ timeout: 30000 });
    // the figures of the peer connection that receives audio
    const stats = () => page.evaluate(async () => {
      let best = { audio: null, video: null, pcs: window.bwcPCs.length };
      for (const pc of window.bwcPCs) {
        const out = { audio: null, video: null, pcs: window.bwcPCs.length };
        const report = await pc.getStats();
        report.forEach((r) => {
          if (r.type === 'inbound-rtp') out[r.kind] = { packets: r.packetsReceived, samples: r.totalSamplesReceived, frames: r.framesDecoded, codecId: r.codecId };
        });
        if (out.audio) out.audio.mime = report.get(out.audio.codecId)?.mimeType;
        if (out.audio && (!best.audio || out.audio.packets > best.audio.packets)) best = out;
      }
      return best;
    });
    const until = async (what, ok) => {
      const deadline = Date.now() + 30000;
      for (;;) {
        const st = await stats();
        if (ok(st)) return st;
        if (Date.now() > deadline) throw new Error(`${what}: ${JSON.stringify(st)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    const a = await until('audio packets', (st) => st.audio?.packets > 25 && st.video);
    assert.equal(a.audio.mime, 'audio/opus');
    // a second of sound more: packets and samples increase, and the video
    // decodes frames at its rate meanwhile (25 fps camera)
    await until('a second more of audio samples', (st) => st.audio?.samples >= a.audio.samples + 48000);
    const b = await stats();
    assert.ok(b.audio.packets > a.audio.packets, `audio packets ${a.audio.packets} → ${b.audio.packets}`);
    assert.ok(b.video.frames - a.video.frames >= 15, `${b.video.frames - a.video.frames} video frames decoded during a second of audio`);
    assert.equal(await transcoders(), 1);
  } finally {
    await page.close();
  }
  // nobody watches: the converter is stopped (the camera still publishes)
  const deadline = Date.now() + 15000;
  while (await transcoders() !== 0) {
    if (Date.now() > deadline) throw new Error('a transcoder still runs without viewers');
    await new Promise((r) => setTimeout(r, 250));
  }
  cam.stop();
  await cam.done;
});
