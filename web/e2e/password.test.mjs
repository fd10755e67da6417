// Browser test of passwords: an administrator resets a user's password on
// the admin page; the user signs in with it, is sent to /account (the API
// refuses everything else until then), changes it and reaches their page.
// The user's part runs in Chinese, the administrator's in English.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startPlatform, launchBrowser, login, screenshots } from './platform.mjs';

let platform, browser;
before(async () => { platform = await startPlatform(); browser = await launchBrowser(); });
after(async () => { await browser?.close(); await platform?.stop(); });

test('an admin resets a password; the user must change it, then reaches their page', async () => {
  const admin = await browser.newContext({ locale: 'en-US' });
  const page = await admin.newPage();
  await login(page, platform.url, 'admin', 'demo-admin-pass');
  assert.match(new URL(page.url()).pathname, /\/admin$/);
  const row = page.locator('#users tr[data-login="reviewer"]');
  await row.waitFor();
  // the policy refuses a weak password, with the rule named
  await row.locator('input[name=reset-password]').fill('reviewer-2026-x');
  await row.locator('button.reset-password').click();
  await page.waitForFunction(() => /login/.test(document.querySelector('#error').textContent));
  await row.locator('input[name=reset-password]').fill('temporary phrase 7');
  await row.locator('button.reset-password').click();
  await page.waitForFunction(() => document.querySelector('#user-done').textContent.includes('reviewer'));
  assert.match(await page.locator('#users tr[data-login="reviewer"]').innerText(), /must change password/);
  await page.screenshot({ path: path.join(screenshots, 'admin-reset-password.png'), fullPage: true });
  await admin.close();

  const ctx = await browser.newContext({ locale: 'zh-CN' });
  const user = await ctx.newPage();
  await login(user, platform.url, 'reviewer', 'temporary phrase 7');
  assert.equal(new URL(user.url()).pathname, '/account');
  await user.waitForFunction(() => !document.querySelector('#must-change').hidden);
  assert.equal(await user.locator('#password h3').innerText(), '修改密码');
  // its other pages send it back here until the password is changed
  await user.goto(platform.url + '/incidents');
  assert.equal(new URL(user.url()).pathname, '/account');
  await user.waitForFunction(() => !document.querySelector('#must-change').hidden && document.querySelector('header.top .who').textContent !== '');
  await user.screenshot({ path: path.join(screenshots, 'account-must-change-zh.png') });

  await user.fill('input[name=current]', 'temporary phrase 7');
  await user.fill('input[name=new]', 'my own fresh phrase 9');
  await user.fill('input[name=confirm]', 'my own fresh phrase 9');
  await Promise.all([user.waitForURL((u) => u.pathname === '/incidents'), user.click('#password button[type=submit]')]);
  await user.locator('header.top nav a[href="/account"]').waitFor();
  await ctx.close();

  // the new password is the one that works now
  const again = await browser.newPage();
  await login(again, platform.url, 'reviewer', 'my own fresh phrase 9');
  assert.equal(new URL(again.url()).pathname, '/incidents');
  await again.close();
});
