"""Operations checks for the integration tests, from RFC 8489 with Python's standard library
(it shares no code with ferry; the STUN pieces come from stun_probe.py). Subcommands:

  redirect --port P --user U --password W
      an authenticated Allocate that must be answered 300 Try Alternate; verifies its
      MESSAGE-INTEGRITY with the user's key and prints "alternate=ADDR mi_ok=True|False"
  allocate --port P --user U --password W
      one Allocate; prints "code=N" (200 for success)
  hold --port P --user U --password W --seconds S
      one Allocate, then holds it S seconds without a word (prints "allocated" first)
  until-allocated --hosts H1,H2,... --port P --user U --password W --seconds S
      prints "ready", then tries an Allocate on each host in turn (a new socket each time) until
      each has succeeded once, for at most S seconds; prints "HOST EPOCH_MS" as each first
      succeeds (the clock's milliseconds, to compare with the moment a change was made)
  flood --port P --count N
      N unauthenticated Allocates from one socket, back to back; prints "answered=K" (the
      answers that came within a second of the last)
  notify --socket PATH --seconds S
      listens as systemd's NOTIFY_SOCKET for S seconds and prints each datagram's lines,
      one datagram a line, with its arrival time: "T.TTT READY=1|STATUS=..."
--source IP binds the client's socket to that address first (127.0.0.2 and so on: loopback
addresses stand in for different clients).
"""
import argparse
import hashlib
import hmac
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stun_probe as sp  # noqa: E402


def integrity_ok(data: bytes, key: bytes) -> bool:
    """Checks MESSAGE-INTEGRITY (HMAC-SHA1 over the message up to it, with the header's length
    covering it) the way RFC 8489 14.5 says a receiver does."""
    pos = 20
    while pos + 4 <= len(data):
        atype, alen = struct.unpack("!HH", data[pos:pos + 4])
        if atype == 0x0008:
            head = data[:2] + struct.pack("!H", pos - 20 + 24) + data[4:20]
            want = hmac.new(key, head + data[20:pos], hashlib.sha1).digest()
            return hmac.compare_digest(want, data[pos + 4:pos + 24])
        pos += 4 + ((alen + 3) & ~3)
    return False


def read_plain_address(value: bytes) -> str:
    fam, port = value[1], struct.unpack("!H", value[2:4])[0]
    if fam == 1:
        return f"{socket.inet_ntop(socket.AF_INET, value[4:8])}:{port}"
    return f"[{socket.inet_ntop(socket.AF_INET6, value[4:20])}]:{port}"


def udp_exchange(args):
    s = socket.socket(sp.family_of(args.host), socket.SOCK_DGRAM)
    s.settimeout(1)
    if args.source:
        s.bind((args.source, 0))
    s.connect((args.host, args.port))
    raw = {}

    def exchange(msg, txid):
        for _ in range(3):
            s.send(msg)
            try:
                data = s.recv(4096)
            except socket.timeout:
                continue
            raw["last"] = data
            return sp.with_attrs(data, txid)
        raise SystemExit("no answer")
    return exchange, raw


def redirect(args) -> None:
    exchange, raw = udp_exchange(args)
    key, _, r = sp.turn_allocate(exchange, args.user, args.password, check=False)
    if r.get("error") != 300:
        raise SystemExit(f"expected 300, got {r.get('error') or 'success'}")
    alt = r["attrs"].get(0x8023)
    if alt is None:
        raise SystemExit("300 without ALTERNATE-SERVER")
    print(f"alternate={read_plain_address(alt)} mi_ok={integrity_ok(raw['last'], key)}")


def allocate(args) -> None:
    exchange, _ = udp_exchange(args)
    _, _, r = sp.turn_allocate(exchange, args.user, args.password, check=False)
    print(f"code={r.get('error') or 200}")


def hold(args) -> None:
    exchange, _ = udp_exchange(args)
    sp.turn_allocate(exchange, args.user, args.password)
    print("allocated", flush=True)
    time.sleep(args.seconds)


def until_allocated(args) -> None:
    pending = [h for h in args.hosts.split(",") if h]
    print("ready", flush=True)
    end = time.monotonic() + args.seconds
    while pending and time.monotonic() < end:
        for host in list(pending):
            args.host = host
            exchange, _ = udp_exchange(args)
            try:
                _, _, r = sp.turn_allocate(exchange, args.user, args.password, check=False)
            except SystemExit:
                continue
            if not r.get("error"):
                print(f"{host} {int(time.time() * 1000)}", flush=True)
                pending.remove(host)
        time.sleep(0.02)
    if pending:
        raise SystemExit(f"no Allocate succeeded on {','.join(pending)} within {args.seconds} s")


def flood(args) -> None:
    s = socket.socket(sp.family_of(args.host), socket.SOCK_DGRAM)
    if args.source:
        s.bind((args.source, 0))
    s.connect((args.host, args.port))
    body = sp.attr(0x0019, bytes([17, 0, 0, 0]))
    for _ in range(args.count):
        s.send(struct.pack("!HHI", 0x0003, len(body), sp.COOKIE) + os.urandom(12) + body)
    answered = 0
    s.settimeout(1)
    try:
        while True:
            s.recv(4096)
            answered += 1
    except socket.timeout:
        pass
    print(f"answered={answered}")


def notify(args) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(args.socket)
    print("listening", flush=True)
    start = time.monotonic()
    end = start + args.seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data = s.recv(4096)
        except socket.timeout:
            break
        print(f"{time.monotonic() - start:.3f} " + data.decode(errors="replace").replace("\n", "|"), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["redirect", "allocate", "hold", "flood", "notify", "until-allocated"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--hosts", default="")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--user", default="")
    ap.add_argument("--password", default="")
    ap.add_argument("--socket", default="")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--source", default="")
    args = ap.parse_args()
    {"redirect": redirect, "allocate": allocate, "hold": hold, "flood": flood,
     "notify": notify, "until-allocated": until_allocated}[args.command](args)


if __name__ == "__main__":
    main()
