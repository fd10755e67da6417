// Test harness for the browser end-to-end tests: a real `bwc serve` on a
// fresh database and bucket of the services scripts/services.sh started,
// and headless Debian Chromium driven by playwright-core (never a
// downloaded browser).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const screenshots = path.join(path.dirname(new URL(import.meta.url).pathname), 'screenshots');
mkdirSync(screenshots, { recursive: true });

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run scripts/test.sh (or scripts/services.sh up && source /var/tmp/bwc/env, and BWC_BIN=path/to/bwc, BWC_TESTOP_BIN=path/to/bwc-testop)`);
  return v;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
    srv.on('error', reject);
  });
}

// selfSignedCert makes a certificate for 127.0.0.1 and localhost with
// openssl, valid for a day: { cert, key } file paths.
export function selfSignedCert() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bwc-cert-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-days', '1', '-subj', '/CN=bwc e2e', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', key, '-out', cert], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`openssl: ${made.stderr}`);
  return { cert, key };
}

// ready asks /readyz; over HTTPS it trusts only the test's certificate.
function ready(url, ca) {
  if (!ca) return fetch(url + '/readyz').then((r) => r.ok);
  return new Promise((resolve, reject) => {
    https.get(url + '/readyz', { ca }, (res) => { res.resume(); resolve(res.statusCode === 200); }).on('error', reject);
  });
}

// startPlatform creates a database, seeds the demo data and accounts, starts
// bwc serve and waits until it is ready. extraArgs go to bwc serve; tls
// ({ cert, key } files) serves it over HTTPS. mfaRequiredRoles is
// -mfa-required-roles: none by default, as the tests sign in as admin and
// supervisor with a password; null keeps the server's default
// (admin,supervisor). sharing (a platform startPlatform returned) starts
// another node of that platform: its database, bucket and signing key (the
// platform's one), nothing created or seeded, and its stop leaves them to
// the first node's (give each node its own -node).
export async function startPlatform({ extraArgs = [], extraEnv = {}, tls = null, mfaRequiredRoles = '', httpPort = null, sharing = null } = {}) {
  const bin = need('BWC_BIN');
  const admin = new URL(need('BWC_TEST_DATABASE_URL'));
  const name = sharing ? sharing.name : `e2e_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  // owned by the schema owner, who migrates it (-migrate-database-url);
  // the server logs in as the application's login
  if (!sharing) {
    const created = spawnSync('psql', [admin.href, '-qc', `CREATE DATABASE ${name} OWNER bwc_owner`], { encoding: 'utf8' });
    if (created.status !== 0) throw new Error(`create database: ${created.stderr}`);
  }
  const db = new URL(need('BWC_TEST_DATABASE_APP_URL'));
  db.pathname = '/' + name;
  const owner = new URL(need('BWC_TEST_DATABASE_OWNER_URL'));
  owner.pathname = '/' + name;
  httpPort ??= await freePort(); // a caller may choose it (a URL it registers elsewhere first)
  const rtspPort = await freePort();
  const webrtcPort = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bwc-e2e-'));
  const env = {
    ...process.env,
    BWC_DATABASE_URL: db.href,
    BWC_MIGRATE_DATABASE_URL: owner.href,
    BWC_S3_ENDPOINT: need('BWC_TEST_S3_ENDPOINT'),
    BWC_S3_ACCESS_KEY: need('BWC_TEST_S3_ACCESS_KEY'),
    BWC_S3_SECRET_KEY: need('BWC_TEST_S3_SECRET_KEY'),
    // the tests' least-privilege identity works in buckets named t-*
    BWC_S3_BUCKET: 't-' + name.replace(/_/g, '-'),
    BWC_RETENTION_MODE: 'governance', // test buckets: the administrator can clean up
    BWC_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    BWC_RTSP_ADDR: `127.0.0.1:${rtspPort}`,
    BWC_WEBRTC_UDP_ADDR: `127.0.0.1:${webrtcPort}`,
    BWC_WEBRTC_TCP_ADDR: `127.0.0.1:${webrtcPort}`,
    BWC_SPOOL_DIR: path.join(dir, 'spool'),
    BWC_UPLOAD_DIR: path.join(dir, 'uploads'),
    BWC_SIGNING_KEY: sharing ? sharing.env.BWC_SIGNING_KEY : path.join(dir, 'signing-key.pem'),
    BWC_RECONNECT_GRACE: '2s',
    BWC_LOG_LEVEL: process.env.BWC_E2E_LOG_LEVEL || 'warn',
    ...(tls ? { BWC_TLS_CERT: tls.cert, BWC_TLS_KEY: tls.key } : {}),
    ...extraEnv,
  };
  // the operator's step: the bucket, as the MinIO administrator (the
  // server's identity may not create buckets); the tests' identity and its
  // policy on t-* stay as scripts/services.sh made them
  if (!sharing) {
    const storage = spawnSync(bin, ['setup-storage', '-s3-policy-buckets', 't-*'], {
      env: { ...env, BWC_S3_ADMIN_ACCESS_KEY: need('BWC_TEST_S3_ADMIN_ACCESS_KEY'), BWC_S3_ADMIN_SECRET_KEY: need('BWC_TEST_S3_ADMIN_SECRET_KEY') },
      encoding: 'utf8',
    });
    if (storage.status !== 0) throw new Error(`setup-storage: ${storage.stderr}`);
    const seeded = spawnSync(bin, ['seed-demo'], { env, encoding: 'utf8' });
    if (seeded.status !== 0) throw new Error(`seed-demo: ${seeded.stderr}`);
  }
  const mfaArgs = mfaRequiredRoles === null ? [] : [`-mfa-required-roles=${mfaRequiredRoles}`];
  const proc = spawn(bin, ['serve', ...mfaArgs, ...extraArgs], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${httpPort}`;
  const ca = tls ? readFileSync(tls.cert) : null;
  const deadline = Date.now() + 30000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`bwc serve exited with ${proc.exitCode}`);
    try { if (await ready(url, ca)) break; } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error('bwc serve did not become ready in 30 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url, env, name, database: db.href, rtsp: `127.0.0.1:${rtspPort}`, pid: proc.pid,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
      if (!sharing) spawnSync('psql', [admin.href, '-qc', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`]);
    },
  };
}

// startTestOP starts cmd/bwc-testop (BWC_TESTOP_BIN, built by
// scripts/test.sh), a real OpenID provider with one client and the users
// given as username:password:group,group[:unit[:badge]]; it resolves to
// { issuer, stop() } once the provider prints its issuer URL.
export async function startTestOP({ clientID = 'bwc', clientSecret, redirectURL, users = [] }) {
  const bin = need('BWC_TESTOP_BIN');
  const args = ['-client-id', clientID, '-client-secret', clientSecret, '-redirect-url', redirectURL, ...users.flatMap((u) => ['-user', u])];
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const issuer = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('bwc-testop printed no issuer in 10 s')), 10000);
    proc.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) { clearTimeout(timer); resolve(out.slice(0, nl).trim()); }
    });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`bwc-testop exited with ${code}`)); });
  });
  proc.stdout.resume();
  return {
    issuer,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
    // playwright gives every launch a new, empty profile directory of its own

  });
}

// login signs a page in through the login form.
export async function login(page, url, user, password) {
  await page.goto(url + '/');
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith('/') || u.search !== ''), page.click('button[type=submit]')]);
}

// camera starts ffmpeg publishing a test picture (H.264 baseline + G.711)
// over RTSP as the demo body camera, until stopped.
export function camera(rtsp, { serial = 'DEMO-CAM-01', secret = 'demo-camera-secret', seconds = 60, audio = 'g711' } = {}) {
  const audioArgs = audio === 'aac' ? ['-c:a', 'aac', '-ar', '48000'] : ['-c:a', 'pcm_alaw', '-ar', '8000', '-ac', '1'];
  const proc = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=25:duration=${seconds}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=${audio === 'aac' ? 48000 : 8000}:duration=${seconds}`,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-profile:v', 'baseline', '-pix_fmt', 'yuv420p', '-g', '25',
    ...audioArgs,
    '-f', 'rtsp', '-rtsp_transport', 'tcp', `rtsp://${serial}:${secret}@${rtsp}/live/${serial}`], { stdio: ['ignore', 'inherit', 'inherit'] });
  const done = new Promise((r) => proc.once('exit', r));
  return { stop() { proc.kill('SIGTERM'); }, done };
}

// expectTilePlays waits until the wall's first tile decodes video of the
// given size, and checks that its frames keep coming (data-frames, counted
// by the wall's frame callbacks, still rising a second later).
export async function expectTilePlays(page, tile, width, height) {
  await page.waitForFunction(() => {
    const v = document.querySelector('.tile video');
    return v && v.videoWidth > 0 && Number(document.querySelector('.tile').dataset.frames) > 25;
  }, null, { timeout: 30000 });
  const size = await page.evaluate(() => {
    const v = document.querySelector('.tile video');
    return { width: v.videoWidth, height: v.videoHeight };
  });
  assert.deepEqual(size, { width, height });
  const before = Number(await tile.getAttribute('data-frames'));
  await page.waitForTimeout(1000);
  const after = Number(await tile.getAttribute('data-frames'));
  assert.ok(after > before, `frames stopped at ${before}`);
}
