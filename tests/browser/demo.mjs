// Two headless Chromium browsers (each its own profile, fake camera and microphone) open ferry's
// demo page in one room, relayed paths only (?relay=1), and must show a connected call: each
// page's peer connected, its path relay on both ends, a chat message each way through the data
// channel, and the remote video playing. Usage:
//   node demo.mjs --page http://127.0.0.1:PORT/ --room NAME [--screenshot FILE]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const arg = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const pageUrl = `${arg('page')}?room=${encodeURIComponent(arg('room'))}&relay=1`;

const browsers = [];
const profiles = [];
async function open() {
  const profile = mkdtempSync(join(tmpdir(), 'ferry-demo-'));
  profiles.push(profile);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    chromiumSandbox: false,
    viewport: { width: 1000, height: 640 },
    args: [
      '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
      '--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    ],
  });
  browsers.push(context);
  const page = context.pages()[0] ?? await context.newPage();
  await page.goto(pageUrl);
  return page;
}

let failed = false;
const check = (ok, what) => {
  console.log(`${ok ? 'ok' : 'FAIL'}: ${what}`);
  if (!ok) failed = true;
};

try {
  const a = await open();
  await a.waitForFunction(() => window.ferryDemo && window.ferryDemo.joined, null, { timeout: 15000 });
  const b = await open();
  const connected = () => {
    const peers = Object.values(window.ferryDemo.peers);
    return peers.length === 1 && peers[0].state === 'connected' && peers[0].path !== null;
  };
  await a.waitForFunction(connected, null, { timeout: 30000 });
  await b.waitForFunction(connected, null, { timeout: 30000 });
  for (const [name, page] of [['first', a], ['second', b]]) {
    const path = await page.evaluate(() => Object.values(window.ferryDemo.peers)[0].path);
    check(path.local === 'relay' && path.remote === 'relay',
          `${name} page: connected over ${path.local}/${path.remote} (${path.protocol}, relayed over ${path.relayProtocol})`);
  }
  // A chat message each way through the data channel, typed into the page's form.
  await a.waitForFunction(() => !document.getElementById('text').disabled, null, { timeout: 15000 });
  await b.waitForFunction(() => !document.getElementById('text').disabled, null, { timeout: 15000 });
  await a.fill('#text', 'hello from the first');
  await a.press('#text', 'Enter');
  await b.fill('#text', 'hello from the second');
  await b.press('#text', 'Enter');
  const got = (text) => (page) => page.waitForFunction(
    (t) => window.ferryDemo.messages.some((m) => m.from !== 'me' && m.text === t), text, { timeout: 15000 });
  await got('hello from the first')(b);
  await got('hello from the second')(a);
  check(true, 'a chat message each way through the data channel');
  // The remote video plays (the fake camera's frames arrive through the relay).
  for (const [name, page] of [['first', a], ['second', b]]) {
    await page.waitForFunction(() => {
      const v = document.querySelectorAll('video')[1];
      return v && v.videoWidth > 0 && v.currentTime > 0.2;
    }, null, { timeout: 20000 });
    check(true, `${name} page: the remote video plays`);
  }
  const caption = await a.evaluate(() => document.querySelectorAll('figcaption')[1].textContent);
  check(caption.includes('relay'), `the first page shows the path: "${caption}"`);
  if (arg('screenshot')) await a.screenshot({ path: arg('screenshot') });
} catch (e) {
  check(false, `${e.message.split('\n')[0]}`);
} finally {
  for (const c of browsers) await c.close();
  for (const p of profiles) rmSync(p, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
