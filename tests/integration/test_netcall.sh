#!/usr/bin/env bash
# WebRTC through real NATs: ferry (TURN and signaling) on the lab's public network, and two
# headless Chromium browsers, each inside a client network behind a NAT router of the lab
# (tests/netlab), joining one room on ferry's demo page with ferry as their only ICE server:
#   - endpoint-independent NATs, only the join answer's stun: servers -> connected over srflx
#     (or prflx) pairs: the hole punch works, and ferry relayed nothing;
#   - symmetric NATs, only stun: -> no connection within 20 s (the lab really is symmetric);
#   - symmetric NATs, the join answer's iceServers -> connected over relay, 200 data-channel
#     messages each way in order;
#   - networks where only TCP gets out -> connected over relay, TURN over TCP.
# Without root, nftables, Chromium or playwright-core: SKIP (exit 77) with the reason.
. "$(dirname "$0")/lib.sh"
. "$HERE/../netlab/netlab.sh"
BROWSER_DIR="$HERE/../browser"

why=$(netlab_unavailable)
[ -z "$why" ] && [ ! -x /usr/bin/chromium ] && why="/usr/bin/chromium is missing"
[ -z "$why" ] && [ ! -d "$BROWSER_DIR/node_modules/playwright-core" ] && why="playwright-core is missing"
if [ -n "$why" ]; then
    echo "SKIP: $why"
    exit 77
fi
trap 'netlab_cleanup; cleanup' EXIT
netlab_init
netlab_public 203.0.113.1
netlab_client 1 eim
EIM_A=$NL_CLIENT
netlab_client 2 eim
EIM_B=$NL_CLIENT
netlab_client 3 symmetric
SYM_A=$NL_CLIENT
netlab_client 4 symmetric
SYM_B=$NL_CLIENT
netlab_client 5 tcp-only
TCP_A=$NL_CLIENT
netlab_client 6 tcp-only
TCP_B=$NL_CLIENT

# Fixed ports on purpose: ferry listens inside this run's own namespace ($NL_PUB, a random
# name), where no other test can hold them, on the standard port a client would be given.
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 203.0.113.1
    port: 3478
    transports: [udp, tcp]
turn:
  realm: netcall.test
  static_auth_secrets: [netcall-rest-secret]
  # The lab's public network is a documentation prefix, refused as a peer by default; relayed
  # calls send to the other side's relayed address on it.
  allowed_peer_ranges: [203.0.113.0/24]
signaling:
  address: 203.0.113.1
  port: 8443
admin:
  address: 127.0.0.1
  port: 9641
drain_timeout: 0
log:
  level: info
YAML
netlab_start_ferry "$WORK/ferry.yaml"
relayed() {
    nl_exec "$NL_PUB" curl -s http://127.0.0.1:9641/metrics |
        awk '$1 ~ /^ferry_relayed_packets_total/ {s += $2} END {printf "%d", s}'
}

call() { # NAME NS_A NS_B ARGS...
    local name=$1 a=$2 b=$3 out
    shift 3
    out=$(cd "$BROWSER_DIR" && timeout 150 node netcall.mjs --page "http://203.0.113.1:8443/" --room "$name" \
        --ns-a "$a" --ns-b "$b" --wrapper "$HERE/../netlab/chromium-in-netns" "$@" 2>&1) || fail "$name: $out"
    echo "$out" | sed "s/^/  [$name] /"
    CALL_OUT=$out
}

before=$(relayed)
call eim-stun "$EIM_A" "$EIM_B" --ice stun --expect connected --messages 200
grep -Eq "path a: (srflx|prflx)/(srflx|prflx) udp" <<<"$CALL_OUT" || fail "EIM NATs: not a server-reflexive path: $CALL_OUT"
after=$(relayed)
[ "$after" = "$before" ] || fail "EIM NATs with STUN only: ferry relayed $((after - before)) packets"
pass "endpoint-independent NATs, STUN only: the hole punch worked (srflx/prflx), ferry relayed nothing"

call sym-stun "$SYM_A" "$SYM_B" --ice stun --expect none --seconds 20
pass "symmetric NATs, STUN only: no connection within 20 s (ICE failed)"

# A relayed pair may be relay/relay, or relay on one end and the other side's peer-reflexive
# mapping towards that relay (prflx/relay): either way ferry carries it.
before=$(relayed)
call sym-turn "$SYM_A" "$SYM_B" --expect connected --messages 200
grep -Eq "path a: ([a-z]+/relay|relay/[a-z]+) udp" <<<"$CALL_OUT" || fail "symmetric NATs: not relayed: $CALL_OUT"
after=$(relayed)
[ $((after - before)) -ge 400 ] || fail "symmetric NATs: ferry relayed only $((after - before)) packets"
pass "symmetric NATs with the join answer's iceServers: connected over relay ($(sed -n 's/.*path a: \([^ ]*\).*/\1/p' <<<"$CALL_OUT")), 200 messages each way in order, $((after - before)) packets through ferry"

call tcp-only "$TCP_A" "$TCP_B" --expect connected --messages 200
grep -q "relayed over tcp" <<<"$CALL_OUT" || fail "TCP-only networks: not relayed over TCP: $CALL_OUT"
pass "networks where only TCP leaves: connected over relay, TURN over TCP, 200 messages each way in order"
