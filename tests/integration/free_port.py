"""Prints a port P such that P..P+N-1 can be bound for UDP and TCP on 127.0.0.1 (and ::1 when
the host has IPv6). Picks at random below the kernel's ephemeral range, so that the many client
sockets of tests running in parallel can never be given the port between this check and the
server's bind (and away from ferry's relay range, 49152 and up).

Tests running in parallel never get the same port: each port handed out is claimed by a file in
/tmp/ferry-test-ports named after it, holding the PID of the test script that asked (its
second argument); a claim whose PID has ended is free again."""
import os
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


CLAIMS = "/tmp/ferry-test-ports"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def claim(port: int, owner: int) -> bool:
    """Claims `port` for `owner` atomically; False if a live test holds it."""
    path = os.path.join(CLAIMS, str(port))
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path) as f:
                    holder = int(f.read().strip() or 0)
            except (OSError, ValueError):
                return False
            if holder and alive(holder):
                return False
            try:  # a claim left by a test that has ended
                os.unlink(path)
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(owner))
        return True
    return False


def release(port: int) -> None:
    try:
        os.unlink(os.path.join(CLAIMS, str(port)))
    except FileNotFoundError:
        pass


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    owner = int(sys.argv[2]) if len(sys.argv) > 2 else os.getppid()
    os.makedirs(CLAIMS, exist_ok=True)
    high = min(ephemeral_low(), 49152) - count - 1
    for _ in range(500):
        base = random.randint(10000, max(10001, high))
        got = []
        for i in range(count):
            if not claim(base + i, owner):
                break
            got.append(base + i)
        if len(got) == count and all(usable(base + i) for i in range(count)):
            print(base)
            return
        for p in got:
            release(p)
    sys.exit("no free port found")


main()
