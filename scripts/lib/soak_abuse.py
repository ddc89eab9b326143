#!/usr/bin/env python3
"""Abuse for scripts/soak.sh: bad input and dropped connections at a bounded rate until a unix time.

Each round: garbage and truncated datagrams to the UDP port, a TCP connection that stops
mid-message, a TLS connection dropped mid-frame after its handshake, and over DTLS a handshake
abandoned halfway and a session dropped without close_notify (openssl s_client). Prints one
summary line at the end. Loopback only; every socket has a timeout.
"""
import argparse
import os
import socket
import ssl
import struct
import subprocess
import time


def hostport(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def stun_header(method=0x0003, length=0):
    return struct.pack("!HHI12s", method, length, 0x2112A442, os.urandom(12))


def udp_garbage(addr, counts):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for payload in (
            os.urandom(64),                                   # noise
            stun_header(length=400),                          # claims more than it has
            stun_header(length=8) + b"\x00\x19\x00\x20\x11",  # an attribute that runs off the end
            b"\x40\x00\xff\xff" + os.urandom(20),             # ChannelData longer than the datagram
            b"\x40\x01\x00\x04abcd",                          # ChannelData on no allocation
            stun_header(method=0x0001)[:12],                  # a truncated header
        ):
            s.sendto(payload, addr)
            counts["udp"] += 1


def tcp_cut(addr, counts):
    with socket.create_connection(addr, timeout=2) as s:
        s.sendall(stun_header(length=200)[:20] + os.urandom(30))  # 50 of 220 bytes, then gone
        counts["tcp"] += 1


def tls_cut(addr, counts):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(addr, timeout=2) as raw:
        with ctx.wrap_socket(raw) as s:
            s.sendall(b"\x40\x00\x03\xe8" + os.urandom(100))  # ChannelData of 1000 bytes, 100 sent
            counts["tls"] += 1
            # closed without close_notify: the TCP connection is shut under the TLS session
            s.shutdown(socket.SHUT_RDWR)


def dtls(addr, counts, complete):
    # A full handshake then a kill (no close_notify), or a kill during the handshake.
    p = subprocess.Popen(["openssl", "s_client", "-dtls1_2", "-quiet", "-connect", f"{addr[0]}:{addr[1]}"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3 if complete else 0.005)
    p.kill()
    p.wait()
    counts["dtls"] += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--udp", type=hostport, required=True)
    ap.add_argument("--tcp", type=hostport, required=True)
    ap.add_argument("--tls", type=hostport, required=True)
    ap.add_argument("--dtls", type=hostport, required=True)
    ap.add_argument("--until", type=float, required=True, help="unix time to stop")
    a = ap.parse_args()
    counts = {"udp": 0, "tcp": 0, "tls": 0, "dtls": 0, "errors": 0}
    n = 0
    while time.time() < a.until:
        for step in (lambda: udp_garbage(a.udp, counts), lambda: tcp_cut(a.tcp, counts),
                     lambda: tls_cut(a.tls, counts), lambda: dtls(a.dtls, counts, n % 2 == 0)):
            try:
                step()
            except OSError:
                counts["errors"] += 1
        n += 1
        time.sleep(0.2)
    print("abuse: {udp} bad datagrams, {tcp} TCP and {tls} TLS connections cut mid-message, "
          "{dtls} DTLS sessions abandoned; {errors} attempts refused".format(**counts), flush=True)


if __name__ == "__main__":
    main()
