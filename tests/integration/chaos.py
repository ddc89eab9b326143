"""Chaos against a running ferry, seeded and bounded in time; shares no code with ferry.

  streams --port P --tls-port T --user U --password W --seconds S --seed N
      Many TCP and TLS clients at once. Good ones allocate a UDP relay, bind a channel to a
      local UDP peer and send numbered ChannelData frames written in pieces split at random
      points, with random pauses. Bad ones send garbage, truncated or oversized frames, stop
      mid-handshake, wait until just around the handshake and idle deadlines before their
      first byte, or close at random moments. Prints "delivered=N sent=N corrupt=N" for the good
      clients' payloads as the peer saw them; any corrupt or missing one fails.
  firstbyte --port P --count N --rounds R --deadline D
      N connections to a [tcp, tls] port send their first byte right at the handshake deadline.
  dtls-noise --port P --seconds S
      garbage, truncated and handshake-looking datagrams to a DTLS port.
  udp --port P --user U --password W --rounds R --seed N
      UDP clients whose ChannelData, Refresh(0) and new Allocates land in the same receive
      batch. Every payload carries its sender; the peer checks that each arrived from that
      sender's own relayed address, never from another allocation's. Prints
      "checked=N foreign=N".
"""
import argparse
import hashlib
import os
import random
import socket
import ssl
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stun_probe import (COOKIE, attr, signed, tcp_transact, transact, turn_allocate,  # noqa: E402
                        xor_peer)


class Peer:
    """A UDP peer on 127.0.0.1 that records (source port, payload) of everything it gets."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.got = []
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            try:
                data, src = self.sock.recvfrom(70000)
            except socket.timeout:
                continue
            self.got.append((src[1], data))

    def stop(self):
        time.sleep(0.5)
        self.running = False
        self.thread.join()


def channel_bind(exchange, key, creds, channel: int, peer_port: int) -> dict:
    txid_body = attr(0x000C, struct.pack("!HH", channel, 0)) + xor_peer("127.0.0.1", peer_port, b"\0" * 12)
    msg, txid = signed(0x0009, txid_body + creds, key)
    return exchange(msg, txid)


def channel_data(channel: int, payload: bytes, pad: bool) -> bytes:
    frame = struct.pack("!HH", channel, len(payload)) + payload
    if pad:
        frame += b"\0" * ((4 - len(payload) % 4) % 4)
    return frame


# --- streams ------------------------------------------------------------------------------


def connect(port: int, tls: bool, timeout: float = 5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    return s


def send_in_pieces(s, data: bytes, rng: random.Random) -> None:
    pos = 0
    while pos < len(data):
        n = rng.randint(1, max(1, min(len(data) - pos, rng.choice([1, 3, 7, 64, 1500, 9000]))))
        s.sendall(data[pos:pos + n])
        pos += n
        if rng.random() < 0.2:
            time.sleep(rng.random() * 0.01)


def good_stream_client(args, tls: bool, ident: int, peer: Peer, seed: int, sent: list, errors: list) -> None:
    rng = random.Random(seed)
    try:
        # The server's deadlines are short here (1 s to finish a TLS handshake) and the machine
        # busy: a client whose handshake is cut off tries again, as a real one would. Once it
        # has an allocation, nothing may be lost.
        for attempt in range(3):
            try:
                s = connect(args.tls_port if tls else args.port, tls)
                ex = lambda m, t: tcp_transact(s, m, t)
                key, creds, _ = turn_allocate(ex, args.user, args.password)
                if channel_bind(ex, key, creds, 0x4000, peer.port)["type"] != 0x0109:
                    raise RuntimeError("ChannelBind failed")
                break
            except (OSError, ssl.SSLError, SystemExit) as e:
                if attempt == 2:
                    raise RuntimeError(f"no allocation after 3 tries: {e!r}")
                time.sleep(0.2)
        stream = b""
        for i in range(args.frames):
            size = rng.choice([1, 4, 17, 100, 1000, 4000, 5000, 9000])
            payload = f"{ident}:{i}:".encode() + bytes(rng.getrandbits(8) for _ in range(size))
            sent.append(payload)
            stream += channel_data(0x4000, payload, True)
            if len(stream) > 20000 or i == args.frames - 1:
                send_in_pieces(s, stream, rng)
                stream = b""
        time.sleep(0.3)
        s.close()
    except Exception as e:  # noqa: BLE001 - any failure of a good client is reported
        errors.append(f"good {'tls' if tls else 'tcp'} client {ident}: {e!r}")


def bad_stream_client(args, tls: bool, seed: int, deadline: float) -> None:
    rng = random.Random(seed)
    port = args.tls_port if tls else args.port
    while time.monotonic() < deadline:
        kind = rng.randrange(7)
        try:
            if kind == 0:  # the first byte just around the handshake deadline (1 s)
                s = socket.create_connection(("127.0.0.1", args.tls_port), timeout=5)
                time.sleep(0.95 + rng.random() * 0.1)
                s.send(bytes([rng.choice([0x00, 0x16, 0x40])]))
                time.sleep(rng.random() * 0.05)
                s.close()
                continue
            if kind == 1:  # a TLS handshake record cut off half way
                raw = socket.create_connection(("127.0.0.1", args.tls_port), timeout=5)
                raw.send(b"\x16\x03\x01" + os.urandom(rng.randint(1, 40)))
                time.sleep(rng.random() * 0.2)
                raw.close()
                continue
            s = connect(port, tls)
            if kind == 2:  # garbage
                send_in_pieces(s, os.urandom(rng.randint(1, 3000)), rng)
            elif kind == 3:  # a frame declaring more than follows, then silence or close
                s.sendall(struct.pack("!HHI", 0x0001, rng.choice([0x0100, 0xFFFC]), COOKIE) + os.urandom(12))
                time.sleep(rng.random() * 0.3)
            elif kind == 4:  # ChannelData for a channel nobody bound, in pieces
                send_in_pieces(s, channel_data(0x4001, os.urandom(rng.randint(0, 9000)), True), rng)
            elif kind == 5:  # an unauthenticated Allocate, then close before reading
                body = attr(0x0019, bytes([17, 0, 0, 0]))
                s.sendall(struct.pack("!HHI", 0x0003, len(body), COOKIE) + os.urandom(12) + body)
            else:  # idle until about the idle deadline (2 s), then one byte
                time.sleep(1.9 + rng.random() * 0.2)
                s.send(b"\x00")
            time.sleep(rng.random() * 0.05)
            s.close()
        except (OSError, ssl.SSLError):
            pass


def streams(args) -> None:
    peer = Peer()
    sent, errors = [], []
    deadline = time.monotonic() + args.seconds
    threads = []
    for i in range(args.bad):
        threads.append(threading.Thread(target=bad_stream_client,
                                        args=(args, i % 2 == 1, args.seed * 1000 + i, deadline)))
    for i in range(args.good):
        threads.append(threading.Thread(target=good_stream_client,
                                        args=(args, i % 2 == 1, i, peer, args.seed * 7919 + i, sent, errors)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=args.seconds + 60)
    peer.stop()
    got = {}
    for _, data in peer.got:
        got[data] = got.get(data, 0) + 1
    missing = [p for p in sent if p not in got]
    corrupt = [d for d in got if d not in set(sent)]
    print(f"delivered={len(sent) - len(missing)} sent={len(sent)} corrupt={len(corrupt)}")
    for e in errors:
        print(e, file=sys.stderr)
    if errors or missing or corrupt or not sent:
        sys.exit(1)


def firstbyte(args) -> None:
    """--count connections to a [tcp, tls] port, each sending its first byte right at the
    handshake deadline (--deadline seconds, give or take 20 ms), --rounds times. The deadline's
    handler and the byte's arrival then often meet in one pass of the event loop."""
    rng = random.Random(args.seed)
    for _ in range(args.rounds):
        socks = []
        for _ in range(args.count):
            try:
                socks.append(socket.create_connection(("127.0.0.1", args.port), timeout=5))
            except OSError:
                pass
        opened = time.monotonic()
        order = list(range(len(socks)))
        rng.shuffle(order)
        for i in order:
            delay = args.deadline + (rng.random() - 0.5) * 0.04 - (time.monotonic() - opened)
            if delay > 0 and rng.random() < 0.3:
                time.sleep(min(delay, 0.002))
            try:
                socks[i].send(bytes([rng.choice([0x00, 0x16])]))
            except OSError:
                pass
            if i == order[0]:
                time.sleep(max(0.0, args.deadline - 0.02 - (time.monotonic() - opened)))
        time.sleep(0.2)
        for s in socks:
            s.close()
    print(f"connections={args.count * args.rounds}")


def dtls_noise(args) -> None:
    """Datagrams to a DTLS port for --seconds: handshake-looking garbage, truncated records and
    random bytes, from many source ports."""
    rng = random.Random(args.seed)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(20)]
    deadline = time.monotonic() + args.seconds
    sent = 0
    while time.monotonic() < deadline:
        kind = rng.randrange(3)
        if kind == 0:
            data = b"\x16\xfe\xfd" + os.urandom(rng.randint(0, 200))
        elif kind == 1:
            data = b"\x17\xfe\xfd" + os.urandom(rng.randint(0, 1400))
        else:
            data = os.urandom(rng.randint(1, 1500))
        rng.choice(socks).sendto(data, ("127.0.0.1", args.port))
        sent += 1
        if sent % 50 == 0:
            time.sleep(0.01)
    print(f"datagrams={sent}")


# --- udp ----------------------------------------------------------------------------------


def udp(args) -> None:
    """Rounds of: A relays a tagged payload, then A deletes its allocation and B allocates, all
    sent back to back so that they share the server's receive batch."""
    rng = random.Random(args.seed)
    peer = Peer()
    relay_of = {}   # tag -> the relayed port its payloads must come from
    checked_tags = []

    def new_client():
        # B's allocations of earlier rounds live on after their sockets close (they are never
        # deleted), so a new socket may get the port of one of them: that 5-tuple answers 437
        # (RFC 8656 §7.2 step 2), rightly, and the client takes another port.
        for _ in range(5):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            s.connect(("127.0.0.1", args.port))
            ex = lambda m, t, s=s: transact(s, m, t)
            key, creds, r = turn_allocate(ex, args.user, args.password, check=False)
            if r.get("error") != 437:
                break
            s.close()
        if r["type"] != 0x0103:
            raise SystemExit(f"Allocate failed: {r.get('error')}")
        relayed = r["attrs"][0x0016]
        rport = struct.unpack("!H", relayed[2:4])[0] ^ (COOKIE >> 16)
        if channel_bind(ex, key, creds, 0x4000, peer.port)["type"] != 0x0109:
            raise SystemExit("ChannelBind failed")
        return s, key, creds, rport

    for round_ in range(args.rounds):
        a, akey, acreds, aport = new_client()
        tag = f"round{round_}:".encode()
        relay_of[tag] = aport
        checked_tags.append(tag)
        # B's Allocate is signed in advance: its 401 round trip happens now.
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b.settimeout(2)
        b.connect(("127.0.0.1", args.port))
        txid = os.urandom(12)
        body = attr(0x0019, bytes([17, 0, 0, 0]))
        first = transact(b, struct.pack("!HHI", 0x0003, len(body), COOKIE) + txid + body, txid)
        realm, nonce = first["attrs"][0x0014], first["attrs"][0x0015]
        bkey = hashlib.md5(args.user.encode() + b":" + realm + b":" + args.password.encode()).digest()
        bcreds = attr(0x0006, args.user.encode()) + attr(0x0014, realm) + attr(0x0015, nonce)
        allocate_b, _ = signed(0x0003, body + bcreds, bkey)
        refresh_a, _ = signed(0x0004, attr(0x000D, struct.pack("!I", 0)) + acreds, akey)
        burst = rng.randint(1, 8)
        for i in range(burst):
            a.send(channel_data(0x4000, tag + str(i).encode() + os.urandom(rng.randint(1, 1200)), False))
        a.send(refresh_a)
        b.send(allocate_b)
        for s in (a, b):
            s.settimeout(0.2)
            try:
                while True:
                    s.recv(4096)
            except socket.timeout:
                pass
        a.close()
        b.close()
    peer.stop()
    checked = foreign = 0
    for src, data in peer.got:
        for tag, port in relay_of.items():
            if data.startswith(tag):
                checked += 1
                if src != port:
                    foreign += 1
                    print(f"{data[:20]!r} left from port {src}, not {port}", file=sys.stderr)
    print(f"checked={checked} foreign={foreign}")
    if foreign or checked == 0:
        sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["streams", "udp", "firstbyte", "dtls-noise"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-port", type=int, default=0)
    ap.add_argument("--user", default="")
    ap.add_argument("--password", default="")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--good", type=int, default=8)
    ap.add_argument("--bad", type=int, default=16)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--deadline", type=float, default=1.0)
    args = ap.parse_args()
    {"streams": streams, "udp": udp, "firstbyte": firstbyte, "dtls-noise": dtls_noise}[args.command](args)


if __name__ == "__main__":
    main()
