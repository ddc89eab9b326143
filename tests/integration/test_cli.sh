#!/usr/bin/env bash
# The command line: --version, --help, --check-config, usage errors (exit 2), and a start-up
# failure (exit 1) when the address is already taken by another process.
. "$(dirname "$0")/lib.sh"

"$FERRY_BIN" --version | grep -qE '^ferry [0-9]+\.[0-9]+\.[0-9]+$' || fail "--version"
"$FERRY_BIN" --help | grep -q -- "--check-config" || fail "--help"
pass "--version and --help"

"$FERRY_BIN" --check-config "$HERE/../../conf/ferry.yaml" >/dev/null || fail "shipped config rejected"
pass "--check-config accepts conf/ferry.yaml"

printf 'listen:\n  - address: 127.0.0.1\n    port: 99999\n' >"$WORK/bad.yaml"
rc=0
msg=$("$FERRY_BIN" --check-config "$WORK/bad.yaml" 2>&1) || rc=$?
[ "$rc" -eq 2 ] || fail "bad config: exit $rc, want 2"
[[ "$msg" == *"bad.yaml:3: 'listen.port' must be between 1 and 65535"* ]] || fail "bad config message: $msg"
pass "bad config: exit 2, '$msg'"

rc=0
"$FERRY_BIN" --frobnicate >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "unknown argument: exit $rc, want 2"
pass "unknown argument: exit 2"

# Another process holds the UDP port (without SO_REUSEPORT): ferry must refuse, not share it.
# The holder says when it has bound; if it cannot, the test fails here rather than later.
PORT=$(free_port)
python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', $PORT))
print('bound', flush=True); time.sleep(8)" >"$WORK/holder.out" 2>&1 &
HOLDER=$!
PIDS+=("$HOLDER")
for _ in $(seq 50); do
    grep -q bound "$WORK/holder.out" && break
    kill -0 "$HOLDER" 2>/dev/null || fail "the port holder could not bind $PORT: $(cat "$WORK/holder.out")"
    sleep 0.1
done
grep -q bound "$WORK/holder.out" || fail "the port holder did not bind $PORT in 5 s"
printf 'threads: 2\nlisten:\n  - address: 127.0.0.1\n    port: %s\n' "$PORT" >"$WORK/taken.yaml"
rc=0
msg=$(timeout 10 "$FERRY_BIN" --config "$WORK/taken.yaml" 2>&1) || rc=$?
[ "$rc" -eq 1 ] || fail "port in use: exit $rc, want 1 ($msg)"
[[ "$msg" == *"Address already in use"* ]] || fail "port in use: message '$msg'"
pass "port already in use: exit 1"
