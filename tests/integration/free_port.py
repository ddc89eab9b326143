"""Prints a port P such that P..P+N-1 can be bound for UDP and TCP on 127.0.0.1 (and ::1 when
the host has IPv6). Picks at random below the kernel's ephemeral range, so that the many client
sockets of tests running in parallel can never be given the port between this check and the
server's bind (and away from ferry's relay range, 49152 and up)."""
import random
import socket
import sys


def usable(port: int) -> bool:
    families = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "127.0.0.2")]
    try:
        socket.socket(socket.AF_INET6).close()
        families.append((socket.AF_INET6, "::1"))
    except OSError:
        pass
    for fam, host in families:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(fam, kind)
            try:
                s.bind((host, port))
            except OSError:
                return False
            finally:
                s.close()
    return True


def ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    high = min(ephemeral_low(), 49152) - count - 1
    for _ in range(500):
        base = random.randint(10000, max(10001, high))
        if all(usable(base + i) for i in range(count)):
            print(base)
            return
    sys.exit("no free port found")


main()
