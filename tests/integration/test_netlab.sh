#!/usr/bin/env bash
# ferry through real NATs (tests/netlab: network namespaces, veth pairs, nftables): ferry on a
# public network (203.0.113.1 and .2, RFC 5780 on both), and three client networks behind NAT
# routers of different kinds. In each, ferry-probe finds what the lab built:
#   - endpoint-independent mapping: `ferry-probe nat` says so, and TURN over UDP relays;
#   - symmetric (a new public port per destination): `ferry-probe nat` says
#     address-and-port-dependent, and TURN over UDP still relays (to a peer on the public side);
#   - only TCP gets out: STUN over UDP gets no answer, TURN over TCP relays.
# Without root or nftables, SKIP (exit 77) with the reason.
. "$(dirname "$0")/lib.sh"
. "$HERE/../netlab/netlab.sh"
: "${FERRY_PROBE:?FERRY_PROBE must name the ferry-probe binary}"

why=$(netlab_unavailable)
if [ -n "$why" ]; then
    echo "SKIP: the NAT lab cannot be built here: $why"
    exit 77
fi
trap 'netlab_cleanup; cleanup' EXIT
netlab_init
netlab_public 203.0.113.1 203.0.113.2
netlab_client 1 eim
EIM=$NL_CLIENT
netlab_client 2 symmetric
SYM=$NL_CLIENT
netlab_client 3 tcp-only
TCP=$NL_CLIENT

# Fixed ports on purpose: ferry listens inside this run's own namespace ($NL_PUB, a random
# name), where no other test can hold them, on the standard port a client would be given.
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 203.0.113.1
    port: 3478
    transports: [udp, tcp]
nat_discovery:
  alternate_address: 203.0.113.2
turn:
  realm: netlab.test
  users:
    - name: ninefingers
      password: youhavetoberealistic
  # The lab's public network is a documentation prefix, refused as a peer by default.
  allowed_peer_ranges: [203.0.113.0/24]
admin: ~
drain_timeout: 0
log:
  level: info
YAML
netlab_start_ferry "$WORK/ferry.yaml"
# An echo peer on the public network (what a symmetric NAT's client relays to).
nl_exec "$NL_PUB" turnutils_peer -L 203.0.113.1 -p 7000 >"$WORK/peer.log" 2>&1 &
PIDS+=($!)
sleep 0.3

probe() { # NS EXPECTED_EXIT ARGS...
    local ns=$1 want=$2 rc=0
    shift 2
    out=$(timeout 60 ip netns exec "$ns" "$FERRY_PROBE" "$@" 2>&1) || rc=$?
    [ "$rc" -eq "$want" ] || fail "ferry-probe $* in $ns exited $rc, not $want: $out"
}
json_field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get(sys.argv[1], ""))' "$1" <<<"$out"; }

# Endpoint-independent mapping.
probe "$EIM" 0 nat 203.0.113.1:3478 --json --timeout 1000
[ "$(json_field mapping)" = "endpoint-independent" ] || fail "behind the EIM NAT, mapping: $out"
grep -q "203.0.113.11:" <<<"$out" || fail "behind the EIM NAT: not mapped to the router's address: $out"
pass "EIM NAT: ferry-probe nat reports endpoint-independent mapping ($(json_field filtering) filtering)"
probe "$EIM" 0 turn turn:203.0.113.1:3478 --user ninefingers --password youhavetoberealistic --peer 203.0.113.1:7000
pass "EIM NAT: TURN over UDP relays to a public peer"

# Symmetric: a new mapping for each destination.
probe "$SYM" 0 nat 203.0.113.1:3478 --json --timeout 1000
[ "$(json_field mapping)" = "address-and-port-dependent" ] || fail "behind the symmetric NAT, mapping: $out"
pass "symmetric NAT: ferry-probe nat reports address-and-port-dependent mapping"
probe "$SYM" 0 turn turn:203.0.113.1:3478 --user ninefingers --password youhavetoberealistic --peer 203.0.113.1:7000
pass "symmetric NAT: TURN over UDP relays to a public peer"

# Only TCP gets out.
probe "$TCP" 3 stun stun:203.0.113.1:3478 --timeout 1000
pass "TCP-only network: STUN over UDP gets no answer"
probe "$TCP" 0 stun "stun:203.0.113.1:3478?transport=tcp"
grep -q "203.0.113.13:" <<<"$out" || fail "TCP-only network: STUN over TCP did not see the router's address: $out"
probe "$TCP" 0 turn "turn:203.0.113.1:3478?transport=tcp" --user ninefingers --password youhavetoberealistic \
    --peer 203.0.113.1:7000
pass "TCP-only network: STUN over TCP sees the router's address, TURN over TCP relays"

# The allocations came from the routers' public addresses, as ferry saw them.
for a in 203.0.113.11 203.0.113.12 203.0.113.13; do
    grep -q "allocation created: .* client $a:" "$WORK/ferry.log" || fail "no allocation from $a in ferry's log"
done
pass "ferry saw each client at its NAT's public address"
