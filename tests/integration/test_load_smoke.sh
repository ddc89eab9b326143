#!/usr/bin/env bash
# The load generator's workloads against the real server, briefly: each must complete, and the
# relay must lose nothing; the production-shape workload over UDP, TCP and TLS too. Batching
# (with its threshold lowered) must stay off while nothing is relayed and engage under the
# closed-loop relay. (Speed is measured by scripts/bench.sh, never by tests.)
. "$(dirname "$0")/lib.sh"
: "${FERRY_LOAD:?FERRY_LOAD must name the ferry-load binary}"

PORT=$(free_port)
TLS_PORT=$(free_port)
ECHO=$(free_port)
ADMIN=$(free_port)
make_cert server
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
batching:
  delay_us: 500
  above_pps: 500
listen:
  - address: 127.0.0.1
    port: $PORT
    transports: [udp, tcp]
  - address: 127.0.0.1
    port: $TLS_PORT
    transports: [tls]
tls:
  certificate: $WORK/server.crt
  private_key: $WORK/server.key
admin:
  port: $ADMIN
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
batched() { curl -sf "http://127.0.0.1:$ADMIN/metrics" | awk '/^ferry_batched_passes_total / {print $2}'; }
out=$(timeout 20 "$FERRY_LOAD" binding --server "127.0.0.1:$PORT" --sockets 4 --seconds 1) || fail "binding: $out"
expect binding "$out"
[ "$(batched)" = 0 ] || fail "batching engaged with nothing relayed: ferry_batched_passes_total $(batched)"
pass "no batching while nothing is relayed"
for mode in "" "--send"; do
    out=$(timeout 20 "$FERRY_LOAD" relay --server "127.0.0.1:$PORT" --peer "127.0.0.1:$ECHO" --sockets 4 --window 4 --seconds 1 $mode) ||
        fail "relay $mode: $out"
    expect "relay ${mode:-channels}" "$out"
    [[ "$out" == *" lost=0 "* ]] || fail "relay ${mode:-channels} lost packets: $out"
done
[ "$(batched)" -gt 0 ] || fail "batching never engaged under the closed-loop relay"
pass "batching engaged under load: ferry_batched_passes_total $(batched)"

# The production shape, small: 20 allocations at 50 packets/s each, each with its own echo port.
FIRST=$(free_port 20)
"$FERRY_LOAD" echo --bind "127.0.0.1:$FIRST" --ports 20 --seconds 30 >"$WORK/echo-ports.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q "^echo ready" "$WORK/echo-ports.out" && break; sleep 0.1; done
for via in udp tcp tls; do
    server=127.0.0.1:$PORT
    [ "$via" = tls ] && server=127.0.0.1:$TLS_PORT
    out=$(timeout 30 "$FERRY_LOAD" calls --transport "$via" --server "$server" --peer "127.0.0.1:$FIRST" --sockets 20 \
        --rate 50 --seconds 1 --setup-rate 200 --server-pid "$FERRY_PID") || fail "calls over $via: $out"
    [[ "$out" =~ received=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] || fail "calls over $via: nothing received: $out"
    [[ "$out" == *" bad=0 lost=0 "* ]] || fail "calls over $via lost or mangled packets: $out"
    # Round trips end at the kernel's receive timestamp (over TCP and TLS too): on loopback they
    # are positive and well under a second, or the clocks were mixed up.
    [[ "$out" =~ p50_us=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] && [ "${BASH_REMATCH[1]}" -lt 1000000 ] ||
        fail "calls over $via: no sane round-trip time: $out"
    pass "calls over $via: $(grep -o 'sent=[0-9]* received=[0-9]*' <<<"$out"), none lost"
done
out=$(timeout 20 "$FERRY_LOAD" allocate --server "127.0.0.1:$PORT" --seconds 1) || fail "allocate: $out"
expect allocate "$out"
out=$(timeout 20 "$FERRY_LOAD" hold --server "127.0.0.1:$PORT" --sockets 50 --seconds 0.5) || fail "hold: $out"
grep -q "^ready allocations=50" <<<"$out" || fail "hold: $out"
pass "hold: 50 allocations"
stop_ferry
