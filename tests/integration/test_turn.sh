#!/usr/bin/env bash
# TURN with clients we did not write: coturn's turnutils_uclient relaying to turnutils_peer
# through ferry, with static long-term credentials and with TURN REST credentials, with and
# without channels, over UDP and TCP, IPv4 and IPv6, 120-byte and 30000-byte datagrams. Every run must report zero lost packets,
# and an allocation made over TCP must end when its connection closes. Then the peer policy under the default configuration: CreatePermission for each
# forbidden address class gets 403, from an independent client that sends nothing to any peer.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
PEER=$(free_port)
V6=""
have_ipv6 && V6=yes
{
    echo "threads: 2"
    echo "listen:"
    echo "  - address: 127.0.0.1"
    echo "    port: $PORT"
    [ -n "$V6" ] && { echo "  - address: \"::1\""; echo "    port: $PORT"; }
    cat <<YAML
turn:
  realm: ferry.test
  users:
    - name: ninefingers
      password: youhavetoberealistic
  static_auth_secrets: [logen, bloody-nine]
  allowed_peer_ranges: [127.0.0.0/8, "::1"]
log:
  level: info
YAML
} >"$WORK/ferry.yaml"
start_ferry "$WORK/ferry.yaml"

PEER_ARGS=(-L 127.0.0.1)
[ -n "$V6" ] && PEER_ARGS+=(-L ::1)
turnutils_peer "${PEER_ARGS[@]}" -p "$PEER" >"$WORK/peer.log" 2>&1 &
PIDS+=($!)
sleep 0.3

# start_uclient NAME ARGS...: 2 clients x 100 messages in the background; check_uclients waits
# for every one started and requires zero loss and everything received of each. Most runs are
# spent in the client's own waiting, so independent runs go side by side.
UC_NAMES=()
UC_PIDS=()
start_uclient() {
    local n=${#UC_NAMES[@]}
    UC_NAMES+=("$1")
    shift
    timeout 60 turnutils_uclient -p "$PORT" -n 100 -l 120 -m 2 -z 5 -r "$PEER" "$@" >"$WORK/uclient-$n.out" 2>&1 &
    UC_PIDS+=($!)
}
check_uclients() {
    local k out name
    for k in "${!UC_PIDS[@]}"; do
        name=${UC_NAMES[$k]}
        wait "${UC_PIDS[$k]}" || fail "$name: turnutils_uclient exited with an error: $(tail -5 "$WORK/uclient-$k.out")"
        out=$(cat "$WORK/uclient-$k.out")
        grep -q "Total lost packets 0 (0.000000%)" <<<"$out" || fail "$name: packets lost: $(grep -E 'lost|tot_' <<<"$out" | tail -4)"
        grep -q "tot_send_msgs=200, tot_recv_msgs=200" <<<"$out" || fail "$name: not all messages came back: $(grep tot_ <<<"$out" | tail -2)"
        pass "$name: 200 sent, 200 received through the relay, 0 lost"
    done
    UC_NAMES=()
    UC_PIDS=()
}

start_uclient "static credentials, Send/Data" -u ninefingers -w youhavetoberealistic -e 127.0.0.1 127.0.0.1
start_uclient "static credentials, channels" -c -u ninefingers -w youhavetoberealistic -e 127.0.0.1 127.0.0.1
start_uclient "REST credentials (-W), channels" -c -u bayaz -W bloody-nine -e 127.0.0.1 127.0.0.1
if [ -n "$V6" ]; then
    start_uclient "IPv6, Send/Data" -u ninefingers -w youhavetoberealistic -e ::1 ::1
    start_uclient "IPv6, channels" -c -u ninefingers -w youhavetoberealistic -e ::1 ::1
fi
check_uclients
# Datagrams far over the 4 KiB that common traffic uses are relayed whole, both ways; one run at
# a time, one every 10 ms: the client's and turnutils_peer's own sockets hold only about six of
# them (the default 208 KiB receive buffer), and a machine busy with the other tests in parallel
# can stall either longer than that (ferry's sockets hold far more). So a run that loses a
# datagram gets one more try; two lossy runs in a row fail.
large_run() {
    local name=$1
    shift
    local out
    start_uclient "$name" "$@"
    out="$WORK/uclient-$((${#UC_PIDS[@]} - 1)).out"
    wait "${UC_PIDS[-1]}" || true
    if ! grep -q "Total lost packets 0 (0.000000%)" "$out"; then
        echo "note: $name lost datagrams on the first try ($(grep -o 'Total lost packets [0-9]*' "$out")); one more try"
        UC_NAMES=()
        UC_PIDS=()
        start_uclient "$name" "$@"
    fi
    check_uclients
}
large_run "30000-byte datagrams, Send/Data" -l 30000 -z 10 -u ninefingers -w youhavetoberealistic -e 127.0.0.1 127.0.0.1
large_run "30000-byte datagrams, channels" -c -l 30000 -z 10 -u ninefingers -w youhavetoberealistic -e 127.0.0.1 127.0.0.1

start_uclient "TCP, Send/Data" -t -u ninefingers -w youhavetoberealistic -e 127.0.0.1 127.0.0.1
start_uclient "TCP, channels" -t -c -u ninefingers -w youhavetoberealistic -e 127.0.0.1 127.0.0.1
start_uclient "TCP, REST credentials, channels" -t -c -u bayaz -W logen -e 127.0.0.1 127.0.0.1
if [ -n "$V6" ]; then
    start_uclient "TCP over IPv6, channels" -t -c -u ninefingers -w youhavetoberealistic -e ::1 ::1
fi
check_uclients
sleep 0.5
tcp_clients=$(sed -n 's/.*allocation created: .* client \(.*\) over tcp,.*/\1/p' "$WORK/ferry.log")
[ -n "$tcp_clients" ] || fail "no allocation was made over TCP"
for c in $tcp_clients; do
    # (grep -c, not -q: an early exit would kill the first grep and fail the pipe.)
    [ "$(grep -F "allocation ended:" "$WORK/ferry.log" | grep -cF "client=$c ")" -gt 0 ] ||
        fail "the TCP allocation of $c outlived its connection"
done
pass "every TCP allocation ($(wc -w <<<"$tcp_clients")) ended with its connection"

# A wrong password gets nowhere, and the server says so once per attempt at info level.
out=$(timeout 20 turnutils_uclient -p "$PORT" -n 5 -m 1 -u ninefingers -w wrong -e 127.0.0.1 -r "$PEER" 127.0.0.1 2>&1) || true
grep -q "tot_recv_msgs=5" <<<"$out" && fail "a wrong password relayed data"
grep -q "wrong credentials for user 'ninefingers'" "$WORK/ferry.log" || fail "no log line for wrong credentials"
pass "wrong password: no relay"

grep -q "allocation ended: user=ninefingers client=127.0.0.1:[0-9]* transport=udp relayed=127.0.0.1:[0-9]* .*duration_s=[0-9.]* to_peer_packets=100 to_peer_bytes=12000 to_client_packets=100 to_client_bytes=12000 reason=deleted" "$WORK/ferry.log" ||
    fail "no usage record with the relayed counters"
pass "usage record when an allocation ends: user, client, transport, relayed address, duration, counters, reason"
stop_ferry

# The default peer policy: no allowed ranges. Nothing is sent to these addresses: a
# CreatePermission only installs state, and each must be refused.
PORT=$(free_port)
cat >"$WORK/default.yaml" <<YAML
threads: 1
listen:
  - address: 127.0.0.1
    port: $PORT
turn:
  users:
    - name: ninefingers
      password: youhavetoberealistic
YAML
start_ferry "$WORK/default.yaml"
FORBIDDEN=(127.0.0.1 0.0.0.0 10.0.0.1 172.16.5.4 192.168.1.1 100.64.0.1 169.254.169.254 224.0.0.1
    255.255.255.255 240.0.0.1 192.0.2.1)
args=()
for p in "${FORBIDDEN[@]}" 8.8.8.8; do args+=(--peer "$p"); done
out=$(probe permit --port "$PORT" --user ninefingers --password youhavetoberealistic "${args[@]}") ||
    fail "permit probe failed: $out"
for p in "${FORBIDDEN[@]}"; do
    grep -qx "$p 403" <<<"$out" || fail "peer $p was not refused with 403: $out"
done
grep -qx "8.8.8.8 200" <<<"$out" || fail "a public peer was refused: $out"
pass "default policy: 403 for ${#FORBIDDEN[@]} forbidden IPv4 classes, 200 for a public peer"
stop_ferry
