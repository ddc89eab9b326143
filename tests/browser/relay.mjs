// Headless Chromium makes two RTCPeerConnections with iceTransportPolicy 'relay' through ferry
// and sends 200 data-channel messages each way. Checks: every message arrives, in order; the
// selected candidate pair is relay/relay on both sides; a wrong password yields no relay
// candidate at all. Usage:
//   node relay.mjs --url turn:127.0.0.1:PORT --user U --password P
//   node relay.mjs --url turn:127.0.0.1:PORT --rest-secret S --rest-user U
//   node relay.mjs --url turn:... --user U --password P --relay-ports MIN-MAX
//     (gathers only, and checks that a relay candidate appears on a port in that range: a
//     draining server's 300 Try Alternate sent Chromium to the server that owns the range)
//   node relay.mjs --url turns:... --user U --password P --expect-no-relay
//     (gathers with the right password and checks that no relay candidate appears, e.g.
//     because the server's certificate is not trusted)
// For turns:, Chromium trusts what the NSS database under $HOME/.pki/nssdb trusts.
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const arg = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};

let username = arg('user');
let credential = arg('password');
if (arg('rest-secret')) {
  // TURN REST API: username "expiry:user", password base64(HMAC-SHA1(secret, username)).
  username = `${Math.floor(Date.now() / 1000) + 3600}:${arg('rest-user')}`;
  credential = createHmac('sha1', arg('rest-secret')).update(username).digest('base64');
}
const url = arg('url');
const wrong = arg('wrong-password') ?? 'not-the-password';
const expectNoRelay = process.argv.includes('--expect-no-relay');
const relayPorts = arg('relay-ports')?.split('-').map(Number);

const profile = mkdtempSync(join(tmpdir(), 'ferry-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  chromiumSandbox: false,
  args: [
    '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
    '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
    '--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter',
  ],
});

let failed = false;
const check = (ok, what) => {
  console.log(`${ok ? 'ok' : 'FAIL'}: ${what}`);
  if (!ok) failed = true;
};

// Gathers candidates with `credential` and returns their types.
const gather = (page, credential) => page.evaluate(async ({ url, username, credential }) => {
  const pc = new RTCPeerConnection({ iceServers: [{ urls: url, username, credential }], iceTransportPolicy: 'relay' });
  const found = [];
  pc.onicecandidate = (e) => e.candidate && found.push({ type: e.candidate.type, port: e.candidate.port });
  pc.createDataChannel('x');
  await pc.setLocalDescription();
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') resolve();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
    setTimeout(resolve, 15000);
  });
  pc.close();
  return found;
}, { url, username, credential });

try {
  const page = await context.newPage();
  await page.goto('about:blank');
  if (expectNoRelay) {
    const types = (await gather(page, credential)).map((c) => c.type);
    check(!types.includes('relay'), `no relay candidate (got [${types.join(', ')}])`);
    throw null; // done
  }
  if (relayPorts) {
    const relays = (await gather(page, credential)).filter((c) => c.type === 'relay');
    const inRange = relays.filter((c) => c.port >= relayPorts[0] && c.port <= relayPorts[1]);
    check(inRange.length > 0, `relay candidate on a port in ${relayPorts.join('-')} (got ports [${relays.map((c) => c.port).join(', ')}])`);
    throw null; // done
  }

  const result = await page.evaluate(async ({ url, username, credential }) => {
    const config = { iceServers: [{ urls: url, username, credential }], iceTransportPolicy: 'relay' };
    const a = new RTCPeerConnection(config);
    const b = new RTCPeerConnection(config);
    a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
    b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
    const count = 200;
    const got = { a: [], b: [] };
    const done = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out: a got ${got.a.length}, b got ${got.b.length}`)), 30000);
      const finish = () => got.a.length === count && got.b.length === count && (clearTimeout(timer), resolve());
      const wire = (channel, into, prefix) => {
        channel.onmessage = (e) => { into.push(e.data); finish(); };
        // The answering side's channel can already be open when 'datachannel' fires, and then
        // no 'open' event follows: send on whichever comes first, once.
        let sent = false;
        const send = () => { if (sent) return; sent = true; for (let i = 0; i < count; i++) channel.send(`${prefix}-${i}`); };
        channel.onopen = send;
        if (channel.readyState === 'open') send();
      };
      const ca = a.createDataChannel('ferry', { ordered: true });
      wire(ca, got.a, 'from-a');
      b.ondatachannel = (e) => wire(e.channel, got.b, 'from-b');
    });
    await a.setLocalDescription();
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription();
    await a.setRemoteDescription(b.localDescription);
    await done;

    const pairOf = async (pc) => {
      const stats = await pc.getStats();
      let pair;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
      });
      if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
      return {
        local: stats.get(pair.localCandidateId).candidateType,
        remote: stats.get(pair.remoteCandidateId).candidateType,
        localAddress: `${stats.get(pair.localCandidateId).address}:${stats.get(pair.localCandidateId).port}`,
      };
    };
    const inOrder = (list, prefix) => list.every((m, i) => m === `${prefix}-${i}`);
    const out = {
      aGot: got.a.length, bGot: got.b.length,
      aOrdered: inOrder(got.a, 'from-b'), bOrdered: inOrder(got.b, 'from-a'),
      pairA: await pairOf(a), pairB: await pairOf(b),
    };
    a.close();
    b.close();
    return out;
  }, { url, username, credential });

  check(result.aGot === 200 && result.bGot === 200, `200 messages each way (${result.aGot}, ${result.bGot})`);
  check(result.aOrdered && result.bOrdered, 'messages arrived in order');
  check(result.pairA.local === 'relay' && result.pairA.remote === 'relay',
    `selected pair A is ${result.pairA.local}/${result.pairA.remote} via ${result.pairA.localAddress}`);
  check(result.pairB.local === 'relay' && result.pairB.remote === 'relay',
    `selected pair B is ${result.pairB.local}/${result.pairB.remote}`);

  const types = await gather(page, wrong);
  check(!types.includes('relay'), `wrong password: no relay candidate (got [${types.join(', ')}])`);
} catch (e) {
  if (e !== null) check(false, `browser test: ${e.message}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
