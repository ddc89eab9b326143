"""An independent STUN client for the integration tests, written from RFC 8489 with nothing
but Python's struct module (it shares no code with ferry). Subcommands:

  binding  --host H --port P [--tcp] [--fingerprint]  one Binding request; prints
           "mapped=ADDR origin=ADDR local=ADDR" and fails unless mapped == local
  garbage  --host H --port P --count N                  N malformed UDP datagrams, then one
           valid Binding request that must still be answered
  stall    --host H --port P --bytes N                  TCP: send N bytes of a frame, then
           wait; prints the seconds until the server closes the connection
  slowreader --host H --port P --user U --password W
           TURN over TCP: allocate, bind a channel to a local UDP peer, flood the relayed
           address from that peer (bounded) without ever reading; prints "closed" when the
           server cuts the connection off
  idle     --host H --port P --count N --bytes B
           opens N TCP connections, sends B bytes of a partial frame on each (0: nothing),
           and prints how many the server closed, and after how many seconds
  permit   --host H --port P --user U --password W --peer A [--peer B ...]
           TURN: allocate with long-term credentials, then one CreatePermission per peer;
           prints "PEER CODE" per line (200 for success). Sends nothing to any peer.
"""
import argparse
import binascii
import hashlib
import hmac
import os
import random
import socket
import struct
import sys
import time

COOKIE = 0x2112A442


def binding_request(fingerprint: bool = False) -> tuple[bytes, bytes]:
    txid = os.urandom(12)
    attrs = b""
    if fingerprint:
        length = 8
        head = struct.pack("!HHI", 0x0001, length, COOKIE) + txid
        crc = binascii.crc32(head) ^ 0x5354554E
        attrs = struct.pack("!HHI", 0x8028, 4, crc & 0xFFFFFFFF)
    return struct.pack("!HHI", 0x0001, len(attrs), COOKIE) + txid + attrs, txid


def read_address(value: bytes, txid: bytes, xor: bool) -> str:
    family, port = value[1], struct.unpack("!H", value[2:4])[0]
    raw = value[4:]
    if xor:
        port ^= COOKIE >> 16
        pad = struct.pack("!I", COOKIE) + txid
        raw = bytes(b ^ pad[i] for i, b in enumerate(raw))
    if family == 1:
        return f"{socket.inet_ntop(socket.AF_INET, raw)}:{port}"
    return f"[{socket.inet_ntop(socket.AF_INET6, raw)}]:{port}"


def parse_response(data: bytes, txid: bytes) -> dict:
    mtype, length, cookie = struct.unpack("!HHI", data[:8])
    if cookie != COOKIE or data[8:20] != txid:
        raise SystemExit("response does not match the request")
    if len(data) != 20 + length:
        raise SystemExit(f"response length {len(data)} != 20 + {length}")
    out = {"type": mtype}
    pos = 20
    while pos < len(data):
        atype, alen = struct.unpack("!HH", data[pos:pos + 4])
        value = data[pos + 4:pos + 4 + alen]
        if atype == 0x0020:
            out["mapped"] = read_address(value, txid, True)
        elif atype == 0x802B:
            out["origin"] = read_address(value, txid, False)
        elif atype == 0x8028:
            crc = binascii.crc32(data[:pos]) ^ 0x5354554E
            out["fingerprint_ok"] = struct.unpack("!I", value)[0] == crc & 0xFFFFFFFF
        elif atype == 0x0009:
            out["error"] = value[2] * 100 + value[3]
        pos += 4 + ((alen + 3) & ~3)
    return out


def fmt(addr) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def binding(args) -> None:
    req, txid = binding_request(args.fingerprint)
    fam = family_of(args.host)
    if args.tcp:
        s = socket.create_connection((args.host, args.port), timeout=5)
        s.sendall(req)
        head = b""
        while len(head) < 20:
            chunk = s.recv(20 - len(head))
            if not chunk:
                raise SystemExit("connection closed before a response")
            head += chunk
        body_len = struct.unpack("!H", head[2:4])[0]
        body = b""
        while len(body) < body_len:
            chunk = s.recv(body_len - len(body))
            if not chunk:
                raise SystemExit("connection closed inside a response")
            body += chunk
        data = head + body
    else:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.connect((args.host, args.port))
        for _ in range(3):
            s.send(req)
            try:
                data = s.recv(2048)
                break
            except socket.timeout:
                continue
        else:
            raise SystemExit("no response after 3 tries")
    local = fmt(s.getsockname())
    r = parse_response(data, txid)
    if r["type"] != 0x0101:
        raise SystemExit(f"not a success response: type {r['type']:#06x} error {r.get('error')}")
    print(f"mapped={r.get('mapped')} origin={r.get('origin')} local={local}"
          + (f" fingerprint_ok={r['fingerprint_ok']}" if "fingerprint_ok" in r else ""))
    if r.get("mapped") != local:
        raise SystemExit(f"XOR-MAPPED-ADDRESS {r.get('mapped')} != local address {local}")


def garbage(args) -> None:
    rng = random.Random(1234)
    s = socket.socket(family_of(args.host), socket.SOCK_DGRAM)
    s.connect((args.host, args.port))
    req, _ = binding_request()
    for i in range(args.count):
        kind = i % 5
        if kind == 0:
            d = os.urandom(rng.randint(1, 200))
        elif kind == 1:
            d = req[: rng.randint(0, len(req) - 1)]
        elif kind == 2:  # header claims more than was sent
            d = struct.pack("!HHI", 0x0001, 400, COOKIE) + os.urandom(12) + os.urandom(40)
        elif kind == 3:  # attribute runs past the end
            d = struct.pack("!HHI", 0x0001, 8, COOKIE) + os.urandom(12) + struct.pack("!HH", 0x8022, 300) + b"abcd"
        else:  # ChannelData without an allocation
            d = struct.pack("!HH", 0x4001, 4) + b"data"
        try:
            s.send(d)
        except OSError:
            pass
    s.close()
    binding(argparse.Namespace(host=args.host, port=args.port, tcp=False, fingerprint=False))


def attr(atype: int, value: bytes) -> bytes:
    return struct.pack("!HH", atype, len(value)) + value + b"\0" * ((4 - len(value) % 4) % 4)


def xor_peer(ip: str, port: int, txid: bytes) -> bytes:
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    raw = socket.inet_pton(fam, ip)
    pad = struct.pack("!I", COOKIE) + txid
    x = bytes(b ^ pad[i] for i, b in enumerate(raw))
    return attr(0x0012, struct.pack("!BBH", 0, 1 if fam == socket.AF_INET else 2, port ^ (COOKIE >> 16)) + x)


def signed(mtype: int, body: bytes, key: bytes) -> tuple[bytes, bytes]:
    txid = os.urandom(12)
    # MESSAGE-INTEGRITY covers the header with the length up to and including itself.
    head = struct.pack("!HHI", mtype, len(body) + 24, COOKIE) + txid
    mac = hmac.new(key, head + body, hashlib.sha1).digest()
    return head + body + attr(0x0008, mac), txid


def with_attrs(data: bytes, txid: bytes) -> dict:
    r = parse_response(data, txid)
    pos, attrs = 20, {}
    while pos < len(data):
        atype, alen = struct.unpack("!HH", data[pos:pos + 4])
        attrs[atype] = data[pos + 4:pos + 4 + alen]
        pos += 4 + ((alen + 3) & ~3)
    r["attrs"] = attrs
    return r


def transact(s, msg: bytes, txid: bytes) -> dict:
    for _ in range(3):
        s.send(msg)
        try:
            data = s.recv(2048)
        except socket.timeout:
            continue
        return with_attrs(data, txid)
    raise SystemExit("no answer")


def turn_allocate(exchange, user: str, password: str, transport: int = 17,
                  check: bool = True) -> tuple[bytes, bytes, dict]:
    """The long-term credential dance over `exchange` (transact or tcp_transact bound to a
    socket): 401, then a signed Allocate. Returns (key, credential attributes, response)."""
    txid = os.urandom(12)
    body = attr(0x0019, bytes([transport, 0, 0, 0]))
    first = exchange(struct.pack("!HHI", 0x0003, len(body), COOKIE) + txid + body, txid)
    if first.get("error") != 401:
        raise SystemExit(f"expected 401, got {first}")
    realm, nonce = first["attrs"][0x0014], first["attrs"][0x0015]
    key = hashlib.md5(user.encode() + b":" + realm + b":" + password.encode()).digest()
    creds = attr(0x0006, user.encode()) + attr(0x0014, realm) + attr(0x0015, nonce)
    msg, txid = signed(0x0003, body + creds, key)
    r = exchange(msg, txid)
    if check and r["type"] != 0x0103:
        raise SystemExit(f"Allocate failed: {r.get('error')}")
    return key, creds, r


def tcp_signed(sock, method: int, body: bytes, creds: bytes, key: bytes) -> dict:
    """A signed request on a TCP socket; on 438 (the nonce is bound to the client's address and
    port, so a new connection needs its own) once more with the fresh nonce, as clients do."""
    msg, txid = signed(method, body + creds, key)
    r = tcp_transact(sock, msg, txid)
    if r.get("error") == 438:
        pos, parts = 0, []
        while pos < len(creds):
            atype, alen = struct.unpack("!HH", creds[pos:pos + 4])
            end = pos + 4 + ((alen + 3) & ~3)
            if atype != 0x0015:
                parts.append(creds[pos:end])
            pos = end
        fresh = b"".join(parts) + attr(0x0015, r["attrs"][0x0015])
        msg, txid = signed(method, body + fresh, key)
        r = tcp_transact(sock, msg, txid)
    return r


def permit(args) -> None:
    s = socket.socket(family_of(args.host), socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect((args.host, args.port))
    key, creds, _ = turn_allocate(lambda m, t: transact(s, m, t), args.user, args.password)
    for peer in args.peer:
        ptx = os.urandom(12)
        body = xor_peer(peer, 9, ptx) + creds
        head = struct.pack("!HHI", 0x0008, len(body) + 24, COOKIE) + ptx
        mac = hmac.new(key, head + body, hashlib.sha1).digest()
        r = transact(s, head + body + attr(0x0008, mac), ptx)
        print(peer, 200 if r["type"] == 0x0108 else r.get("error"))


def tcp_transact(s, msg: bytes, txid: bytes) -> dict:
    s.sendall(msg)
    return with_attrs(tcp_read(s), txid)


def tcp_read(s) -> bytes:
    """One STUN message from a stream."""
    head = b""
    while len(head) < 20:
        chunk = s.recv(20 - len(head))
        if not chunk:
            raise SystemExit("connection closed")
        head += chunk
    body = b""
    need = struct.unpack("!H", head[2:4])[0]
    while len(body) < need:
        chunk = s.recv(need - len(body))
        if not chunk:
            raise SystemExit("connection closed")
        body += chunk
    return head + body


def slowreader(args) -> None:
    s = socket.create_connection((args.host, args.port), timeout=5)
    key, creds, r = turn_allocate(lambda m, t: tcp_transact(s, m, t), args.user, args.password)
    relayed = r["attrs"][0x0016]
    rport = struct.unpack("!H", relayed[2:4])[0] ^ (COOKIE >> 16)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    ptx = os.urandom(12)
    pbody = attr(0x000C, struct.pack("!HH", 0x4000, 0)) + xor_peer("127.0.0.1", peer.getsockname()[1], ptx) + creds
    head = struct.pack("!HHI", 0x0009, len(pbody) + 24, COOKIE) + ptx
    mac = hmac.new(key, head + pbody, hashlib.sha1).digest()
    r = tcp_transact(s, head + pbody + attr(0x0008, mac), ptx)
    if r["type"] != 0x0109:
        raise SystemExit(f"ChannelBind failed: {r.get('error')}")
    # Flood the relayed address and never read the TCP side (bounded: 20000 datagrams).
    payload = os.urandom(1200)
    for i in range(20000):
        try:
            peer.sendto(payload, ("127.0.0.1", rport))
        except OSError:
            pass
        if i % 2000 == 1999:
            time.sleep(0.05)
    # Now read: a server that cut us off has closed the stream after what it had queued.
    s.settimeout(5)
    total = 0
    try:
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                print(f"closed after {total} bytes")
                return
            total += len(chunk)
    except (ConnectionResetError, socket.timeout) as e:
        print(f"closed after {total} bytes" if isinstance(e, ConnectionResetError) else f"still open after {total} bytes")


def idle(args) -> None:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.count + 100)), hard))
    conns = [socket.create_connection((args.host, args.port), timeout=5) for _ in range(args.count)]
    frame = struct.pack("!HHI", 0x0001, 0x0100, COOKIE) + os.urandom(12)
    for c in conns:
        if args.bytes:
            c.sendall(frame[: args.bytes])
        c.setblocking(False)
    start = time.monotonic()
    open_ = set(range(len(conns)))
    while open_ and time.monotonic() - start < 15:
        for i in list(open_):
            try:
                if conns[i].recv(10) == b"":
                    open_.discard(i)
            except BlockingIOError:
                pass
            except ConnectionResetError:
                open_.discard(i)
        time.sleep(0.1)
    print(f"closed={len(conns) - len(open_)} of={len(conns)} seconds={time.monotonic() - start:.1f}")


def stall(args) -> None:
    req, _ = binding_request()
    frame = struct.pack("!HHI", 0x0001, 0xFFFC, COOKIE) + req[8:20]  # declares 65532 bytes
    s = socket.create_connection((args.host, args.port), timeout=60)
    s.sendall(frame[: args.bytes])
    start = time.monotonic()
    try:
        data = s.recv(10)
    except ConnectionResetError:
        data = b""
    if data:
        raise SystemExit(f"server sent {data!r} to a stalled frame")
    print(f"closed_after={time.monotonic() - start:.1f}")


def recv_exactly(s, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def closed_soon(s, seconds: float = 3) -> bool:
    s.settimeout(seconds)
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def tcprelay(args) -> None:
    """RFC 6062 step by step; prints one "step result" line each. Peers are local TCP sockets
    on 127.0.0.1 (and a refused one from 127.0.0.2), so nothing leaves the machine."""
    import threading
    host, port = args.host, args.port

    # Over UDP, a TCP allocation is refused (RFC 6062 §5.1).
    u = socket.socket(family_of(host), socket.SOCK_DGRAM)
    u.settimeout(2)
    u.connect((host, port))
    _, _, r = turn_allocate(lambda m, t: transact(u, m, t), args.user, args.password, transport=6, check=False)
    print("udp-allocate", r.get("error", 200))

    ctl = socket.create_connection((host, port), timeout=5)
    key, creds, r = turn_allocate(lambda m, t: tcp_transact(ctl, m, t), args.user, args.password, transport=6)
    relayed = r["attrs"][0x0016]
    rport = struct.unpack("!H", relayed[2:4])[0] ^ (COOKIE >> 16)
    print("tcp-allocate", 200)

    def request(sock, method: int, body: bytes) -> dict:
        return tcp_signed(sock, method, body, creds, key)

    def with_peer(method: int, ip: str, p: int, sock=None) -> dict:
        txid = os.urandom(12)
        body = xor_peer(ip, p, txid) + creds
        head = struct.pack("!HHI", method, len(body) + 24, COOKIE) + txid
        mac = hmac.new(key, head + body, hashlib.sha1).digest()
        return tcp_transact(sock or ctl, head + body + attr(0x0008, mac), txid)

    echo = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    echo.bind(("127.0.0.1", 0))
    echo.listen(4)
    eport = echo.getsockname()[1]

    def serve_echo():
        while True:
            try:
                c, _ = echo.accept()
            except OSError:
                return
            def pump(c=c):
                while True:
                    d = c.recv(65536)
                    if not d:
                        c.close()
                        return
                    c.sendall(d)
            threading.Thread(target=pump, daemon=True).start()
    threading.Thread(target=serve_echo, daemon=True).start()

    print("connect-without-permission", with_peer(0x000A, "127.0.0.1", eport).get("error", 200))
    r = with_peer(0x0008, "127.0.0.1", eport)
    print("create-permission", 200 if r["type"] == 0x0108 else r.get("error"))
    print("connect-denied-range", with_peer(0x000A, args.denied, eport).get("error", 200))
    r = with_peer(0x000A, "127.0.0.1", eport)
    if r["type"] != 0x010A:
        raise SystemExit(f"Connect failed: {r.get('error')}")
    cid = r["attrs"][0x002A]
    print("connect", 200)
    print("connect-again", with_peer(0x000A, "127.0.0.1", eport).get("error", 200))
    dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there: the connection is refused
    print("connect-refused", with_peer(0x000A, "127.0.0.1", dead_port).get("error", 200))

    bogus = socket.create_connection((host, port), timeout=5)
    print("bind-unknown-id", request(bogus, 0x000B, attr(0x002A, b"\x00\x00\x00\x01")).get("error", 200))
    bogus.close()

    data = socket.create_connection((host, port), timeout=5)
    r = request(data, 0x000B, attr(0x002A, cid))
    print("connection-bind", 200 if r["type"] == 0x010B else r.get("error"))
    payload = os.urandom(200000)  # larger than any buffer on the way
    sender = threading.Thread(target=lambda: data.sendall(payload))
    sender.start()
    back = recv_exactly(data, len(payload))
    sender.join()
    print("echo", "ok" if back == payload else f"mismatch {len(back)}")
    print("bind-twice", request(socket.create_connection((host, port), timeout=5), 0x000B,
                                attr(0x002A, cid)).get("error", 200))

    # A peer that connects to the relayed address: permitted from 127.0.0.1 ...
    peer = socket.create_connection(("127.0.0.1", rport), timeout=5)
    raw = tcp_read(ctl)
    attempt = with_attrs(raw, raw[8:20])
    print("connection-attempt", hex(attempt["type"]))
    data2 = socket.create_connection((host, port), timeout=5)
    r = request(data2, 0x000B, attr(0x002A, attempt["attrs"][0x002A]))
    print("attempt-bind", 200 if r["type"] == 0x010B else r.get("error"))
    peer.sendall(b"from the peer")
    got = recv_exactly(data2, 13)
    data2.sendall(b"from the client")
    got2 = recv_exactly(peer, 15)
    print("peer-both-ways", "ok" if (got, got2) == (b"from the peer", b"from the client") else (got, got2))
    # ... and closed at once from 127.0.0.2, which has no permission.
    stranger = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stranger.bind(("127.0.0.2", 0))
    stranger.settimeout(5)
    stranger.connect(("127.0.0.1", rport))
    print("stranger-closed", closed_soon(stranger))

    # Closing the control connection ends the allocation and every connection with it.
    ctl.close()
    print("data-closed-with-allocation", closed_soon(data) and closed_soon(data2) and closed_soon(peer))
    echo.close()


def stalledsplices(args) -> None:
    """RFC 6062 back-pressure: --count splices whose peers never read, each client pushing until
    its socket blocks; then the server's CPU time and thread wake-ups (from /proc, --pid) over
    3 s are printed. A paused splice must cost nothing while it waits (no polling)."""
    host, port = args.host, args.port
    ctl = socket.create_connection((host, port), timeout=5)
    key, creds, _ = turn_allocate(lambda m, t: tcp_transact(ctl, m, t), args.user, args.password, transport=6)

    def signed_peer(method: int, ip: str, p: int) -> dict:
        txid = os.urandom(12)
        body = xor_peer(ip, p, txid) + creds
        head = struct.pack("!HHI", method, len(body) + 24, COOKIE) + txid
        mac = hmac.new(key, head + body, hashlib.sha1).digest()
        return tcp_transact(ctl, head + body + attr(0x0008, mac), txid)

    sinks, held, clients = [], [], []
    for _ in range(args.count):
        sink = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sink.bind(("127.0.0.1", 0))
        sink.listen(1)
        sinks.append(sink)
    r = signed_peer(0x0008, "127.0.0.1", sinks[0].getsockname()[1])
    if r["type"] != 0x0108:
        raise SystemExit(f"CreatePermission failed: {r.get('error')}")
    for sink in sinks:
        r = signed_peer(0x000A, "127.0.0.1", sink.getsockname()[1])
        if r["type"] != 0x010A:
            raise SystemExit(f"Connect failed: {r.get('error')}")
        held.append(sink.accept()[0])  # accepted, never read
        data = socket.create_connection((host, port), timeout=5)
        if tcp_signed(data, 0x000B, attr(0x002A, r["attrs"][0x002A]), creds, key)["type"] != 0x010B:
            raise SystemExit("ConnectionBind failed")
        clients.append(data)
    chunk = b"x" * 65536
    for c in clients:  # push until the whole path is full and the client's socket blocks
        c.setblocking(False)
        deadline = time.monotonic() + 10
        quiet_since = None
        while time.monotonic() < deadline:
            try:
                c.send(chunk)
                quiet_since = None
            except BlockingIOError:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 0.5:
                    break
                time.sleep(0.02)
    time.sleep(0.5)

    def cpu_and_wakeups() -> tuple[int, int]:
        with open(f"/proc/{args.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        wakeups = 0
        for task in os.listdir(f"/proc/{args.pid}/task"):
            with open(f"/proc/{args.pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        wakeups += int(line.split()[1])
        return int(fields[11]) + int(fields[12]), wakeups  # utime + stime, sleeps ended

    cpu0, woke0 = cpu_and_wakeups()
    time.sleep(3)
    cpu1, woke1 = cpu_and_wakeups()
    print(f"cpu_ms={(cpu1 - cpu0) * 1000 // os.sysconf('SC_CLK_TCK')} wakeups={woke1 - woke0}")


def dtls_client_hello() -> bytes:
    """A minimal DTLS 1.2 ClientHello without a cookie (RFC 6347 §4.2.1), in one record."""
    body = (b"\xfe\xfd" + os.urandom(32) + b"\x00"  # client_version, random, no session id
            + b"\x00"  # empty cookie
            + struct.pack("!H", 2) + b"\xc0\x2b"  # ECDHE-ECDSA-AES128-GCM-SHA256
            + b"\x01\x00")  # null compression
    hs = struct.pack("!B", 1) + len(body).to_bytes(3, "big") + struct.pack("!H", 0) + \
        (0).to_bytes(3, "big") + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", 22, 0xFEFD, 0) + (0).to_bytes(6, "big") + struct.pack("!H", len(hs)) + hs


def dtls_hellos(args) -> None:
    """ClientHellos from `count` sockets that never come back with the cookie; counts the
    HelloVerifyRequests (handshake type 3) that answer them."""
    answered = 0
    socks = []
    for i in range(args.count):
        s = socket.socket(family_of(args.host), socket.SOCK_DGRAM)
        s.sendto(dtls_client_hello(), (args.host, args.port))
        socks.append(s)
        if len(socks) == 100 or i == args.count - 1:
            for s in socks:
                s.settimeout(2)
                try:
                    data = s.recv(2048)
                    if len(data) > 13 and data[0] == 22 and data[13] == 3:
                        answered += 1
                except socket.timeout:
                    pass
                s.close()
            socks = []
    print(f"sent={args.count} verify_requests={answered}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["binding", "garbage", "stall", "permit", "slowreader", "idle",
                                        "dtls-hellos", "tcprelay", "stalledsplices"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tcp", action="store_true")
    ap.add_argument("--fingerprint", action="store_true")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--bytes", type=int, default=10)
    ap.add_argument("--user", default="")
    ap.add_argument("--password", default="")
    ap.add_argument("--peer", action="append", default=[])
    ap.add_argument("--denied", default="127.0.0.3")
    ap.add_argument("--pid", type=int, default=0)
    args = ap.parse_args()
    {"binding": binding, "garbage": garbage, "stall": stall, "permit": permit, "slowreader": slowreader,
     "idle": idle, "dtls-hellos": dtls_hellos,
     "tcprelay": tcprelay, "stalledsplices": stalledsplices}[args.command](args)


if __name__ == "__main__":
    main()
