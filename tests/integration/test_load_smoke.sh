#!/usr/bin/env bash
# The load generator's workloads against the real server, briefly: each must complete, and the
# relay must lose nothing. (Speed is measured by scripts/bench.sh, never by tests.)
. "$(dirname "$0")/lib.sh"
: "${FERRY_LOAD:?FERRY_LOAD must name the ferry-load binary}"

PORT=$(free_port)
ECHO=$(free_port)
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
    transports: [udp]
turn:
  users:
    - name: load
      password: load
  allowed_peer_ranges: [127.0.0.0/8]
YAML
start_ferry "$WORK/ferry.yaml"
"$FERRY_LOAD" echo --bind "127.0.0.1:$ECHO" --seconds 30 >"$WORK/echo.out" 2>&1 &
PIDS+=($!)
sleep 0.2

expect() { # NAME OUTPUT: received > 0, nothing bad
    [[ "$2" =~ received=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] || fail "$1: nothing received: $2"
    [[ "$2" == *" bad=0 "* ]] || fail "$1: malformed answers: $2"
    pass "$1: $(grep -o 'received=[0-9]* .*loss_pct=[0-9.]*' <<<"$2")"
}
out=$(timeout 20 "$FERRY_LOAD" binding --server "127.0.0.1:$PORT" --sockets 4 --seconds 1) || fail "binding: $out"
expect binding "$out"
for mode in "" "--send"; do
    out=$(timeout 20 "$FERRY_LOAD" relay --server "127.0.0.1:$PORT" --peer "127.0.0.1:$ECHO" --sockets 4 --window 4 --seconds 1 $mode) ||
        fail "relay $mode: $out"
    expect "relay ${mode:-channels}" "$out"
    [[ "$out" == *" lost=0 "* ]] || fail "relay ${mode:-channels} lost packets: $out"
done
out=$(timeout 20 "$FERRY_LOAD" allocate --server "127.0.0.1:$PORT" --seconds 1) || fail "allocate: $out"
expect allocate "$out"
out=$(timeout 20 "$FERRY_LOAD" hold --server "127.0.0.1:$PORT" --sockets 50 --seconds 0.5) || fail "hold: $out"
grep -q "^ready allocations=50" <<<"$out" || fail "hold: $out"
pass "hold: 50 allocations"
stop_ferry
