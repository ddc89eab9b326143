#!/usr/bin/env bash
# SIGTERM drains: /readyz turns 503, a relaying allocation finishes with nothing lost, a new
# Allocate gets 300 Try Alternate signed with the user's key and naming the configured
# alternate, and ferry exits 0 once the last allocation has ended. A second SIGTERM stops at
# once. Then Chromium, given a draining ferry whose alternate is a second ferry, gets its relay
# candidate from the second.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
ALT=$(free_port)
PEER=$(free_port)
ADMIN=$(free_port)
write_config() { # FILE PORT ADMIN RELAY_MIN RELAY_MAX
    cat >"$1" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $2
    transports: [udp, tcp]
turn:
  users:
    - name: ninefingers
      password: youhavetoberealistic
  allowed_peer_ranges: [127.0.0.0/8]
  alternate_servers: ["127.0.0.1:$ALT"]
  relay_port_min: $4
  relay_port_max: $5
admin:
  port: $3
drain_timeout: 60
YAML
}
write_config "$WORK/ferry.yaml" "$PORT" "$ADMIN" 50000 50999
start_ferry "$WORK/ferry.yaml"
turnutils_peer -L 127.0.0.1 -p "$PEER" >"$WORK/peer.log" 2>&1 &
PIDS+=($!)
readyz() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$ADMIN/readyz"; }
[ "$(readyz)" = 200 ] || fail "/readyz is not 200 before the drain"

# One client relaying 250 messages 20 ms apart (about 5 s) over TCP; SIGTERM once it has its
# allocation. (Over TCP each allocation ends with its connection: uclient deletes only some of
# the allocations it makes, and the others would outlive it by their lifetime.)
timeout 60 turnutils_uclient -t -p "$PORT" -n 250 -l 120 -m 1 -c -z 20 -r "$PEER" \
    -u ninefingers -w youhavetoberealistic -e 127.0.0.1 127.0.0.1 >"$WORK/uclient.out" 2>&1 &
UCLIENT=$!
PIDS+=("$UCLIENT")
for _ in $(seq 100); do grep -q "allocation created" "$WORK/ferry.log" && break; sleep 0.05; done
grep -q "allocation created" "$WORK/ferry.log" || fail "the client made no allocation"
sleep 0.5
kill -TERM "$FERRY_PID"
for _ in $(seq 20); do [ "$(readyz)" = 503 ] && break; sleep 0.05; done
[ "$(readyz)" = 503 ] || fail "/readyz is $(readyz) during the drain, want 503"
pass "/readyz 503 while draining"

out=$(timeout 10 python3 "$HERE/ops.py" redirect --port "$PORT" --user ninefingers --password youhavetoberealistic) ||
    fail "redirect: $out"
[ "$out" = "alternate=127.0.0.1:$ALT mi_ok=True" ] || fail "redirect: $out"
pass "a new Allocate gets 300 Try Alternate to 127.0.0.1:$ALT with a valid MESSAGE-INTEGRITY"

rc=0
wait "$UCLIENT" || rc=$?
[ "$rc" -eq 0 ] || fail "uclient exited with $rc: $(tail -3 "$WORK/uclient.out")"
grep -q "tot_send_msgs=250, tot_recv_msgs=250" "$WORK/uclient.out" && grep -q "Total lost packets 0 (0.000000%)" "$WORK/uclient.out" ||
    fail "the relaying allocation lost packets during the drain: $(grep -E 'tot_|lost' "$WORK/uclient.out" | tail -2)"
pass "the relaying allocation finished during the drain: 250 sent, 250 received, 0 lost"
# ferry exits by itself once the last allocation is gone (the drain would end any left at
# drain_timeout, 60 s, which the test's 20 s would not reach).
exited=""
for _ in $(seq 200); do kill -0 "$FERRY_PID" 2>/dev/null || { exited=yes; break; }; sleep 0.1; done
[ -n "$exited" ] || fail "ferry still runs 20 s after its last allocation ended"
rc=0
wait "$FERRY_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "ferry exited with $rc after the drain"
grep -q "drained: the last allocation ended" "$WORK/ferry.log" || fail "no 'drained' line"
grep -qE 'transport=tcp .*to_peer_packets=250 .*reason=(deleted|"connection closed")' "$WORK/ferry.log" ||
    fail "no usage record for the relaying allocation: $(grep 'allocation ended' "$WORK/ferry.log")"
pass "ferry exited 0 after the last allocation ended"
PIDS=("${PIDS[@]/$FERRY_PID}")

# A second SIGTERM stops a drain at once, ending what is left as drained.
start_ferry "$WORK/ferry.yaml"
timeout 60 turnutils_uclient -p "$PORT" -n 2000 -l 120 -m 1 -c -z 20 -r "$PEER" \
    -u ninefingers -w youhavetoberealistic -e 127.0.0.1 127.0.0.1 >"$WORK/uclient2.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "allocation created" "$WORK/ferry.log" && break; sleep 0.05; done
kill -TERM "$FERRY_PID"
sleep 0.3
kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry did not drain with an allocation live"
kill -TERM "$FERRY_PID"
rc=0
timeout 5 tail --pid="$FERRY_PID" -f /dev/null || fail "ferry still runs after a second SIGTERM"
wait "$FERRY_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "exit $rc after a second SIGTERM"
grep -q "reason=drained" "$WORK/ferry.log" || fail "the allocation left was not ended as drained"
pass "a second SIGTERM stops at once; what was left ends as drained"
PIDS=("${PIDS[@]/$FERRY_PID}")

# Chromium: the first ferry drains, its alternate (a second ferry) serves the relay candidate.
# Chromium refuses a redirect to a loopback address (crbug 649118), so the servers run in a
# network namespace of this test's own, on two addresses, and Chromium in a second one joined
# to it by a veth pair: like a client on the internet, it reaches both from one address.
BROWSER_DIR="$HERE/../browser"
[ -d "$BROWSER_DIR/node_modules/playwright-core" ] || fail "playwright-core is missing (scripts/test.sh installs it)"
SERVERS="ferry-drain-s-$$" CLIENT="ferry-drain-c-$$"
NETNS="$SERVERS $CLIENT"
ip netns add "$SERVERS" || fail "cannot create a network namespace (needs root)"
ip netns add "$CLIENT" || fail "cannot create a network namespace (needs root)"
# (Background processes are started with ip netns exec itself, which execs them: $! is theirs.)
in_s() { ip netns exec "$SERVERS" "$@"; }
in_c() { ip netns exec "$CLIENT" "$@"; }
in_s ip link set lo up
in_c ip link set lo up
in_s ip link add s0 type veth peer name c0 netns "$CLIENT"
in_s ip addr add 10.199.0.1/24 dev s0
in_s ip addr add 10.199.0.2/24 dev s0
in_c ip addr add 10.199.0.10/24 dev c0
in_s ip link set s0 up
in_c ip link set c0 up
FIRST_IP=10.199.0.1 SECOND_IP=10.199.0.2 NS_PORT=3478 NS_ADMIN=9641
ns_config() { # FILE IP RELAY_MIN RELAY_MAX
    cat >"$1" <<YAML
threads: 1
listen:
  - address: $2
    port: $NS_PORT
    transports: [udp]
turn:
  users:
    - name: ninefingers
      password: youhavetoberealistic
  alternate_servers: ["$SECOND_IP:$NS_PORT"]
  nonce_secret: shared-by-the-fleet-$$
  relay_port_min: $3
  relay_port_max: $4
admin:
  address: $2
  port: $NS_ADMIN
drain_timeout: 60
log:
  level: debug
YAML
}
ns_config "$WORK/first.yaml" "$FIRST_IP" 50000 50999
ns_config "$WORK/second.yaml" "$SECOND_IP" 51000 51999
ip netns exec "$SERVERS" "$FERRY_BIN" --config "$WORK/first.yaml" >"$WORK/first.log" 2>&1 &
FIRST=$!
PIDS+=("$FIRST")
ip netns exec "$SERVERS" "$FERRY_BIN" --config "$WORK/second.yaml" >"$WORK/second.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q " started: " "$WORK/first.log" && grep -q " started: " "$WORK/second.log" && break; sleep 0.1; done
grep -q " started: " "$WORK/second.log" || fail "the ferrys in the namespace did not start: $(tail -3 "$WORK/first.log" "$WORK/second.log")"
# An allocation keeps the first draining while Chromium asks.
ip netns exec "$CLIENT" timeout 60 python3 "$HERE/ops.py" hold --host "$FIRST_IP" --port "$NS_PORT" --user ninefingers \
    --password youhavetoberealistic --seconds 50 >"$WORK/uclient3.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "allocation created" "$WORK/first.log" && break; sleep 0.05; done
grep -q "allocation created" "$WORK/first.log" || fail "no allocation on the first ferry: $(tail -3 "$WORK/uclient3.out")"
kill -TERM "$FIRST"
ns_ready() { in_c curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$FIRST_IP:$NS_ADMIN/readyz"; }
for _ in $(seq 20); do [ "$(ns_ready)" = 503 ] && break; sleep 0.05; done
[ "$(ns_ready)" = 503 ] || fail "the first ferry is not draining: readyz $(ns_ready); $(tail -5 "$WORK/first.log")"
out=$(cd "$BROWSER_DIR" && HOME="$WORK" in_c timeout 120 node relay.mjs --url "turn:$FIRST_IP:$NS_PORT" \
      --user ninefingers --password youhavetoberealistic --relay-ports 51000-51999 2>&1) ||
    fail "Chromium: $out; first: $(grep -E 'Allocate' "$WORK/first.log" | tail -3); second: $(grep -E 'Allocate|allocation' "$WORK/second.log" | tail -3)"
grep -q "Allocate from .*: 300, try $SECOND_IP:$NS_PORT" "$WORK/first.log" || fail "the first ferry sent no 300 to Chromium"
grep -q "allocation created" "$WORK/second.log" || fail "the alternate ferry made no allocation"
pass "Chromium followed 300 Try Alternate from the draining ferry: $(grep -o 'relay candidate.*' <<<"$out" | head -1)"
kill -INT "$FIRST" 2>/dev/null || true
