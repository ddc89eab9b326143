// Two headless Chromium browsers, each inside a network namespace of the NAT lab (through
// tests/netlab/chromium-in-netns), open ferry's demo page in one room and try to connect with
// the ICE servers of their join answers (?ice=stun: only the STUN ones). Usage:
//   node netcall.mjs --page URL --room NAME --ns-a NS --ns-b NS --wrapper PATH [--ice stun]
//                    --expect connected|none [--messages 200] [--seconds 30]
// connected: both pages connect; prints the selected path; then `--messages` data-channel
// messages each way must arrive in order. none: neither connects within --seconds.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const expect = arg('expect');
const seconds = Number(arg('seconds', '30'));
const count = Number(arg('messages', '200'));
const url = `${arg('page')}?room=${encodeURIComponent(arg('room'))}${arg('ice') ? `&ice=${arg('ice')}` : ''}`;

const contexts = [];
const profiles = [];
async function open(ns) {
  const profile = mkdtempSync(join(tmpdir(), 'ferry-netcall-'));
  profiles.push(profile);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: arg('wrapper'),
    env: { ...process.env, FERRY_NETNS: ns },
    headless: true,
    chromiumSandbox: false,
    args: [
      '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      `--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE ${new URL(arg('page')).hostname}`,
      '--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      // The page is plain http on a lab address: let it use the (fake) camera all the same.
      `--unsafely-treat-insecure-origin-as-secure=${new URL(arg('page')).origin}`,
    ],
  });
  contexts.push(context);
  const page = context.pages()[0] ?? await context.newPage();
  await page.goto(url);
  await page.waitForFunction(() => window.ferryDemo && window.ferryDemo.joined, null, { timeout: 15000 });
  return page;
}

let failed = false;
const check = (ok, what) => {
  console.log(`${ok ? 'ok' : 'FAIL'}: ${what}`);
  if (!ok) failed = true;
};
const state = (page) => page.evaluate(() => Object.values(window.ferryDemo.peers).map((p) => p));

try {
  const a = await open(arg('ns-a'));
  const b = await open(arg('ns-b'));
  const connected = () => {
    const peers = Object.values(window.ferryDemo.peers);
    return peers.length === 1 && peers[0].state === 'connected' && peers[0].path !== null;
  };
  if (expect === 'connected') {
    await a.waitForFunction(connected, null, { timeout: seconds * 1000 });
    await b.waitForFunction(connected, null, { timeout: seconds * 1000 });
    for (const [name, page] of [['a', a], ['b', b]]) {
      const [peer] = await state(page);
      console.log(`path ${name}: ${peer.path.local}/${peer.path.remote} ${peer.path.protocol}` +
                  (peer.path.relayProtocol ? ` relayed over ${peer.path.relayProtocol}` : ''));
    }
    // `count` messages each way, in order.
    await a.waitForFunction(() => !document.getElementById('text').disabled, null, { timeout: 15000 });
    await b.waitForFunction(() => !document.getElementById('text').disabled, null, { timeout: 15000 });
    for (const page of [a, b])
      await page.evaluate((n) => { for (let i = 0; i < n; ++i) window.ferryDemo.send(`m${i}`); }, count);
    for (const [name, page] of [['a', a], ['b', b]]) {
      await page.waitForFunction((n) => window.ferryDemo.messages.filter((m) => m.from !== 'me').length >= n,
                                 count, { timeout: 20000 });
      const got = await page.evaluate(() => window.ferryDemo.messages.filter((m) => m.from !== 'me').map((m) => m.text));
      check(got.length === count && got.every((t, i) => t === `m${i}`), `${name} received ${got.length} of ${count} in order`);
    }
  } else {
    // Until both give up (ICE failed) or the bound passes; connecting at any point fails.
    const deadline = Date.now() + seconds * 1000;
    while (Date.now() < deadline) {
      const states = [...await state(a), ...await state(b)].map((p) => p.state);
      if (states.includes('connected')) break;
      if (states.length === 2 && states.every((s) => s === 'failed')) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    for (const [name, page] of [['a', a], ['b', b]]) {
      const peers = await state(page);
      check(peers.length === 1 && peers[0].state !== 'connected',
            `${name}: not connected (${peers.map((p) => p.state).join(',')}) within ${seconds} s`);
    }
  }
} catch (e) {
  check(false, `${e.message.split('\n')[0]}`);
  // What each page saw: its peer's state and the candidates gathered and received.
  for (const [i, c] of contexts.entries()) {
    const page = c.pages()[0];
    const seen = await page.evaluate(async () => {
      const out = [];
      for (const [id, p] of Object.entries(window.ferryDemo.peers)) out.push(`${id}: ${p.state}, gathered ${p.candidates.join(' | ')}`);
      out.push(document.getElementById('status').textContent);
      return out.join('; ');
    }).catch(() => 'gone');
    console.log(`page ${i}: ${seen}`);
  }
} finally {
  for (const c of contexts) await c.close();
  for (const p of profiles) rmSync(p, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
