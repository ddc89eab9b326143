"""WebSocket clients for test_signaling.sh, on the websockets library (Debian's
python3-websockets, run by /usr/bin/python3): it shares no code with ferry. Join tokens are
minted here the way an application's backend would (docs/signaling.md), with hmac/hashlib.

  pair   URL ROOM SECRET TURN_SECRET  two members join, check what each learns (peers, the
         iceServers and their TURN REST credential), exchange 200 messages each way in order;
         prints the first member's TURN username and credential as "user=... credential=..."
  abuse  URL SECRET   each misuse gets its defined answer (see the checks below)
  tokens URL SECRET   a good token joins; a missing, expired, forged or other-room one is refused
  idle   HOST PORT COUNT SECONDS   COUNT raw connections complete the handshake and then neither
         send nor read; prints how many got their 101 and how many the server closed within SECONDS
  slow   HOST PORT SECRET   a member that never reads while another sends it 20 MB: the server
         cuts the reader off (its stream ends) and the sender stays connected
  wss    URL CAFILE SECRET   two members over TLS, trusting CAFILE, exchange a message
Every step is bounded by a timeout; a failed check exits non-zero with the reason.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import sys
import time

import websockets


def fail(why):
    print(f"FAIL: {why}", flush=True)
    sys.exit(1)


def mint(secret, room, expiry):
    mac = hmac.new(secret.encode(), f"{room}\n{expiry}".encode(), hashlib.sha256).digest()
    return f"{expiry}." + base64.urlsafe_b64encode(mac).decode().rstrip("=")


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def join(url, room, token):
    ws = await websockets.connect(url, open_timeout=5, max_size=2**20)
    await ws.send(json.dumps({"type": "join", "room": room, "token": token}))
    return ws, await recv_json(ws)


async def pair(url, room, secret, turn_secret):
    token = mint(secret, room, int(time.time()) + 300)
    a, ja = await join(url, room, token)
    if ja.get("type") != "joined" or ja.get("peers") != []:
        fail(f"first member's answer: {ja}")
    b, jb = await join(url, room, token)
    if jb.get("type") != "joined" or jb.get("peers") != [{"id": ja["id"]}]:
        fail(f"second member's answer: {jb}")
    note = await recv_json(a)
    if note != {"type": "peer-joined", "id": jb["id"]}:
        fail(f"the first member heard: {note}")
    # The iceServers: STUN and TURN URLs, and a TURN REST credential for this member.
    servers = ja.get("iceServers", [])
    turn = [s for s in servers if "username" in s]
    if not turn or not any(u.startswith("stun:") for s in servers for u in s["urls"]):
        fail(f"iceServers: {servers}")
    user, credential = turn[0]["username"], turn[0]["credential"]
    expiry, _, member = user.partition(":")
    if member != ja["id"] or int(expiry) < time.time() + 60:
        fail(f"TURN username {user}")
    want = base64.b64encode(hmac.new(turn_secret.encode(), user.encode(), hashlib.sha1).digest()).decode()
    if credential != want:
        fail(f"TURN credential {credential}, expected {want}")
    # 200 messages each way, addressed and broadcast, in order.
    for i in range(200):
        await a.send(json.dumps({"type": "message", "to": jb["id"], "data": {"seq": i, "sdp": "x" * 100}}))
        await b.send(json.dumps({"type": "message", "data": {"seq": i}}))
    for ws, other, label in ((b, ja["id"], "b"), (a, jb["id"], "a")):
        for i in range(200):
            m = await recv_json(ws)
            if m.get("type") != "message" or m.get("from") != other or m["data"]["seq"] != i:
                fail(f"{label} got {m} as message {i}")
    await b.close()
    left = await recv_json(a)
    if left != {"type": "peer-left", "id": jb["id"]}:
        fail(f"after b closed, a heard {left}")
    await a.close()
    print(f"ok: joined, iceServers {[u for s in servers for u in s['urls']]}, 200 messages each way in order, "
          f"peer-left seen", flush=True)
    print(f"user={user} credential={credential}", flush=True)


async def expect_close(ws, code, what):
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    except websockets.ConnectionClosed as e:
        if e.rcvd is None or e.rcvd.code != code:
            fail(f"{what}: closed with {e.rcvd}, expected {code}")


async def abuse(url, secret):
    room = "abuse"
    token = mint(secret, room, int(time.time()) + 300)
    ws, j = await join(url, room, token)
    # Not JSON, no type, an unknown type: an error each, and the connection stays.
    for text, code in (("not json", "bad-message"), ("{}", "bad-message"), ('{"type":"dance"}', "unknown-type"),
                       ('{"type":"message","to":"nobody","data":1}', "no-such-peer")):
        await ws.send(text)
        m = await recv_json(ws)
        if m.get("code") != code:
            fail(f"{text!r}: {m}, expected {code}")
    # A flood: past the rate, dropped with a rate-limited error.
    for i in range(1000):
        await ws.send(json.dumps({"type": "message", "data": i}))
    m = await recv_json(ws)
    if m.get("code") != "rate-limited":
        fail(f"a flood of 1000: {m}")
    # The room holds 2: a second member joins, a third is refused.
    other, j2 = await join(url, room, token)
    third, j3 = await join(url, room, token)
    if j2.get("type") != "joined" or j3.get("code") != "room-full":
        fail(f"room of 2: {j2}, then {j3}")
    # A message over max_message (64 KiB): closed with 1009.
    await other.send(json.dumps({"type": "message", "data": "x" * 70000}))
    await expect_close(other, 1009, "an oversize message")
    # Binary: closed with 1003.
    await third.send(b"\x00\x01")
    await expect_close(third, 1003, "a binary message")
    await ws.close()
    print("ok: bad JSON, unknown type, unknown peer, a flood (rate-limited), a full room (room-full), "
          "an oversize message (1009), binary (1003)", flush=True)


async def tokens(url, secret):
    now = int(time.time())
    room = "guarded"
    cases = (("missing", ""), ("expired", mint(secret, room, now - 10)),
             ("forged", mint("not-the-secret-at-all", room, now + 300)),
             ("for another room", mint(secret, "elsewhere", now + 300)))
    for label, token in cases:
        ws, j = await join(url, room, token)
        if j.get("code") != "bad-token":
            fail(f"a {label} token: {j}")
        await expect_close(ws, 1008, f"a {label} token")
    ws, j = await join(url, room, mint(secret, room, now + 300))
    if j.get("type") != "joined":
        fail(f"a good token: {j}")
    await ws.close()
    print("ok: missing, expired, forged and other-room tokens refused (bad-token, 1008); a good one joins", flush=True)


def idle(host, port, count, seconds):
    socks, upgraded = [], 0
    for _ in range(count):
        s = socket.create_connection((host, port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        socks.append(s)
    for s in socks:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        if head.startswith(b"HTTP/1.1 101"):
            upgraded += 1
    print(f"upgraded={upgraded}", flush=True)
    # Read nothing more until the end, then count the connections the server has closed.
    time.sleep(seconds)
    closed = 0
    for s in socks:
        s.settimeout(0.5)
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    closed += 1
                    break
        except (socket.timeout, OSError):
            pass
        s.close()
    print(f"closed={closed}", flush=True)


def raw_join(host, port, room, token):
    """A member on a plain socket: handshake and join by hand (masked frames), then silence."""
    s = socket.create_connection((host, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    payload = json.dumps({"type": "join", "room": room, "token": token}).encode()
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return s


async def slow(host, port, secret):
    room = "slow-reader"
    token = mint(secret, room, int(time.time()) + 300)
    reader = raw_join(host, int(port), room, token)
    await asyncio.sleep(0.5)
    ws, j = await join(f"ws://{host}:{port}/ws", room, token)
    if j.get("type") != "joined" or len(j.get("peers", [])) != 1:
        fail(f"the sender's join: {j}")
    target = j["peers"][0]["id"]
    blob = "x" * 60000
    for i in range(340):
        await ws.send(json.dumps({"type": "message", "to": target, "data": blob}))
    # The server cut the reader off: what it holds ends (after what the kernel had buffered),
    # and the sender hears that it left.
    left = await recv_json(ws, 20)
    if left != {"type": "peer-left", "id": target}:
        fail(f"the sender heard {left}, not that the slow reader left")
    reader.settimeout(10)
    total = 0
    try:
        while True:
            data = reader.recv(1 << 20)
            if not data:
                break
            total += len(data)
    except socket.timeout:
        fail(f"the slow reader's stream did not end ({total} bytes read)")
    await ws.close()
    print(f"ok: a member that never read was cut off after {total // 1000} kB had reached it "
          f"(of {340 * 60} kB sent to it); the room heard it leave", flush=True)


async def wss(url, cafile, secret):
    import ssl
    ctx = ssl.create_default_context(cafile=cafile)
    room = "secure"
    token = mint(secret, room, int(time.time()) + 300)
    a = await websockets.connect(url, ssl=ctx, open_timeout=5)
    await a.send(json.dumps({"type": "join", "room": room, "token": token}))
    ja = await recv_json(a)
    b = await websockets.connect(url, ssl=ctx, open_timeout=5)
    await b.send(json.dumps({"type": "join", "room": room, "token": token}))
    jb = await recv_json(b)
    await recv_json(a)  # peer-joined
    await b.send(json.dumps({"type": "message", "data": "over tls"}))
    m = await recv_json(a)
    if ja.get("type") != "joined" or jb.get("type") != "joined" or m.get("data") != "over tls":
        fail(f"wss: {ja}, {jb}, {m}")
    turns = [u for s in ja.get("iceServers", []) for u in s["urls"] if u.startswith("turns:")]
    await a.close()
    await b.close()
    print(f"ok: wss:// with the configured certificate: joined, a message through; iceServers name {turns}",
          flush=True)


def main():
    cmd = sys.argv[1]
    if cmd == "pair":
        asyncio.run(asyncio.wait_for(pair(*sys.argv[2:6]), 60))
    elif cmd == "abuse":
        asyncio.run(asyncio.wait_for(abuse(*sys.argv[2:4]), 60))
    elif cmd == "tokens":
        asyncio.run(asyncio.wait_for(tokens(*sys.argv[2:4]), 60))
    elif cmd == "slow":
        asyncio.run(asyncio.wait_for(slow(*sys.argv[2:5]), 90))
    elif cmd == "wss":
        asyncio.run(asyncio.wait_for(wss(*sys.argv[2:5]), 60))
    elif cmd == "idle":
        idle(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    else:
        fail(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
