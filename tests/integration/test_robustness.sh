#!/usr/bin/env bash
# Bad input is dropped without hurting anyone else: a flood of malformed datagrams, a TCP
# stream that is not STUN, and a TCP frame that stalls halfway. Meanwhile good clients keep
# being answered, the log stays throttled, and SIGTERM still stops the server cleanly.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
limits:
  tcp_idle_timeout: 2
  max_tcp_connections_per_ip: 3
log:
  level: debug
YAML
start_ferry "$WORK/ferry.yaml"

out=$(probe garbage --port "$PORT" --count 5000) || fail "no answer after 5000 malformed datagrams: $out"
pass "5000 malformed datagrams, then a Binding request answered: $out"
dropped_lines=$(grep -c "dropped" "$WORK/ferry.log" || true)
[ "$dropped_lines" -le 60 ] || fail "$dropped_lines log lines for dropped input: the log is not throttled"
pass "log lines about the garbage: $dropped_lines (throttled)"

# A TCP peer that talks HTTP is closed at once, without an answer.
reply=$(timeout 5 python3 -c "
import socket; s = socket.create_connection(('127.0.0.1', $PORT)); s.sendall(b'GET / HTTP/1.1\r\n\r\n')
print(len(s.recv(100)))") || fail "HTTP on the STUN port: connection not closed"
[ "$reply" = "0" ] || fail "HTTP on the STUN port got $reply bytes back"
pass "TCP stream that is not STUN framing: closed without an answer"

# A frame that declares 65532 bytes and stalls is cut off by the idle timeout, and other
# clients are served while it hangs.
probe stall --port "$PORT" --bytes 12 >"$WORK/stall.out" &
STALL=$!
sleep 0.5
probe binding --port "$PORT" >/dev/null || fail "UDP binding during a stalled TCP frame"
probe binding --port "$PORT" --tcp >/dev/null || fail "TCP binding during a stalled TCP frame"
wait "$STALL" || fail "stalled connection: $(cat "$WORK/stall.out")"
secs=$(sed -n 's/closed_after=//p' "$WORK/stall.out")
python3 -c "import sys; sys.exit(0 if 1.5 <= $secs <= 4.5 else 1)" ||
    fail "stalled connection closed after ${secs}s, expected about 2"
pass "stalled TCP frame closed after ${secs}s (tcp_idle_timeout 2) while others were served"

# At most 3 connections from one address: of five, three are served and two closed at once.
out=$(timeout 10 python3 - "$PORT" <<'PY'
import socket, struct, os, sys, time
port = int(sys.argv[1])
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
time.sleep(0.3)
# Two workers accept concurrently, so any three may be the admitted ones: ask each.
served = closed = 0
for c in conns:
    c.settimeout(1)
    try:
        c.sendall(struct.pack("!HHI", 1, 0, 0x2112A442) + os.urandom(12))
        data = c.recv(100)
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        data = b""
    if len(data) >= 20:
        served += 1
    else:
        closed += 1
print(f"served={served} closed={closed}")
PY
) || fail "connection cap probe failed: $out"
[ "$out" = "served=3 closed=2" ] || fail "per-address connection cap: $out"
grep -q "connection limit reached" "$WORK/ferry.log" || fail "no log line for refused connections"
pass "max_tcp_connections_per_ip 3: of 5 connections 3 served, 2 closed at accept"

stop_ferry
pass "SIGTERM: clean exit"

# Out of descriptors: a UDP Allocate gets 508 (not silence), the worker keeps serving, and once
# descriptors are free again allocations work. One worker, 64 descriptors, 80 TCP connections.
PORT=$(free_port)
cat >"$WORK/fds.yaml" <<YAML
threads: 1
listen:
  - address: 127.0.0.1
    port: $PORT
turn:
  users:
    - name: ninefingers
      password: youhavetoberealistic
admin:
  enabled: false
drain_timeout: 0
YAML
# The Release build (scripts/test.sh builds it before the tests run): the sanitizers need
# descriptors of their own to check memory, and with none left they report every virtual call.
RELEASE_BIN="$HERE/../../build/release/server/ferry"
[ -x "$RELEASE_BIN" ] || fail "no Release build at $RELEASE_BIN (scripts/test.sh builds it)"
(ulimit -n 64 && exec "$RELEASE_BIN" --config "$WORK/fds.yaml") >"$WORK/ferry.log" 2>&1 &
FERRY_PID=$!
PIDS+=("$FERRY_PID")
for _ in $(seq 50); do grep -q " started: " "$WORK/ferry.log" && break; sleep 0.1; done
out=$(timeout 60 python3 - "$PORT" "$HERE" <<'PY'
import socket, subprocess, sys, time
port, here = int(sys.argv[1]), sys.argv[2]
held = []
for _ in range(80):
    try:
        held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    except OSError:
        pass
time.sleep(0.5)
def allocate():
    r = subprocess.run([sys.executable, f"{here}/stun_probe.py", "permit", "--port", str(port),
                        "--user", "ninefingers", "--password", "youhavetoberealistic"],
                       capture_output=True, text=True, timeout=20)
    return "200" if r.returncode == 0 else (r.stderr.strip() or r.stdout.strip())
starved = allocate()
for s in held:
    s.close()
time.sleep(1.5)
print(f"starved={starved!r} freed={allocate()!r}")
PY
) || fail "descriptor exhaustion probe: $out"
[[ "$out" == *"starved='Allocate failed: 508'"* ]] || fail "out of descriptors, an Allocate was not answered 508: $out"
[[ "$out" == *"freed='200'"* ]] || fail "after descriptors were freed, no allocation: $out"
probe binding --host 127.0.0.1 --port "$PORT" >/dev/null || fail "the worker stopped answering Binding"
grep -q "cannot open a relay socket on .*Too many open files" "$WORK/ferry.log" || fail "no log line for the failed relay socket"
pass "out of descriptors: Allocate answered 508, then served again once descriptors were free"
stop_ferry
