#!/usr/bin/env bash
# ferry-probe against the real ferry: stun, nat (RFC 5780 on 127.0.0.1 and 127.0.0.2), turn over
# UDP, TCP and TLS with static and REST credentials, and each failure verdict with its exit code:
# wrong password (1), refused peer (1), certificate not trusted (1), closed port (3), usage (2).
. "$(dirname "$0")/lib.sh"
: "${FERRY_PROBE:?FERRY_PROBE must name the ferry-probe binary}"

make_cert ferry-probe
PORT=$(free_port 2)
ALT=$((PORT + 1))
TPORT=$(free_port)
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
  - address: 127.0.0.1
    port: $TPORT
    transports: [tls]
$(have_ipv6 && printf '  - address: "::1"\n    port: %s\n' "$PORT")
nat_discovery:
  alternate_address: 127.0.0.2
  alternate_port: $ALT
tls:
  certificate: $WORK/ferry-probe.crt
  private_key: $WORK/ferry-probe.key
turn:
  realm: probe.example
  users:
    - name: ninefingers
      password: youhavetoberealistic
  static_auth_secrets: [north-south-east-west]
  allowed_peer_ranges: [127.0.0.0/8, "::1/128"]
YAML
start_ferry "$WORK/ferry.yaml"

# run_probe EXPECTED_EXIT ARGS...: runs ferry-probe (bounded), fails unless it exits as expected;
# its output is in $out.
run_probe() {
    local want=$1 rc=0
    shift
    out=$(timeout 60 "$FERRY_PROBE" "$@" 2>&1) || rc=$?
    [ "$rc" -eq "$want" ] || fail "ferry-probe $* exited $rc, not $want: $out"
}
# json_field NAME: a top-level field of the JSON report in $out.
json_field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1" <<<"$out"; }

run_probe 0 stun "stun:127.0.0.1:$PORT" --json
[ "$(json_field mapped_address)" = "$(json_field local_address)" ] || fail "stun: mapped is not local: $out"
[ "$(json_field response_origin)" = "127.0.0.1:$PORT" ] || fail "stun: response origin: $out"
pass "stun over UDP: mapped address $(json_field mapped_address), rtt $(json_field rtt_ms) ms"

run_probe 0 stun "turn:127.0.0.1:$PORT?transport=tcp"
grep -q "binding .*ok .*mapped 127.0.0.1:" <<<"$out" || fail "stun over TCP: $out"
pass "stun over TCP"

run_probe 0 nat "127.0.0.1:$PORT" --timeout 1000 --json
[ "$(json_field other_address)" = "127.0.0.2:$ALT" ] || fail "nat: other address: $out"
grep -q "no NAT" <<<"$(json_field mapping)" || fail "nat: mapping: $out"
[ "$(json_field filtering)" = "endpoint-independent" ] || fail "nat: filtering: $out"
pass "nat: no NAT, endpoint-independent filtering, other address 127.0.0.2:$ALT"

for url in "turn:127.0.0.1:$PORT" "turn:127.0.0.1:$PORT?transport=tcp" "turns:127.0.0.1:$TPORT"; do
    run_probe 0 turn "$url" --user ninefingers --password youhavetoberealistic --ca "$WORK/ferry-probe.crt" --json
    steps=$(python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(" ".join(s["name"] for s in r["steps"] if s["ok"]))' <<<"$out")
    for want in challenge allocate permission send/data channel-bind channel-data release; do
        grep -qw -- "$want" <<<"$steps" || fail "turn $url: step $want did not pass: $out"
    done
    pass "turn $url: $steps, relayed $(json_field relayed_address)"
done
grep -q "TLSv1.3" <<<"$out" || fail "turns: no TLS version in the connect step: $out"
if have_ipv6; then
    run_probe 0 turn "turn:[::1]:$PORT" --user ninefingers --password youhavetoberealistic --json
    grep -q '^\[::1\]:' <<<"$(json_field relayed_address)" || fail "turn over IPv6: relay not IPv6: $out"
    pass "turn over IPv6: relayed $(json_field relayed_address), data both ways"
fi
# The release ended the allocation (ferry's usage record says so), with data counted both ways.
# Each probe relays 36 bytes out and back twice (Send/Data, then ChannelData).
records=$(grep "allocation ended" "$WORK/ferry.log" |
    grep -c "user=ninefingers .*to_peer_packets=2 to_peer_bytes=72 to_client_packets=2 to_client_bytes=72 reason=deleted" || true)
[ "$records" -ge 3 ] || fail "expected usage records of the released probes: $(grep 'allocation ended' "$WORK/ferry.log")"
pass "the probe's $records allocations were released; usage records count 2 packets, 72 bytes each way"

# An external echo peer (coturn's turnutils_peer) instead of the probe's own.
PEER=$(free_port)
turnutils_peer -L 127.0.0.1 -p "$PEER" >"$WORK/peer.log" 2>&1 &
PIDS+=($!)
sleep 0.3
run_probe 0 turn "turn:127.0.0.1:$PORT" --user ninefingers --password youhavetoberealistic --peer "127.0.0.1:$PEER"
grep -q "echo peer 127.0.0.1:$PEER (given)" <<<"$out" && grep -q "channel-data .*ok" <<<"$out" || fail "--peer: $out"
pass "turn with an external echo peer (turnutils_peer)"

run_probe 0 turn "turn:127.0.0.1:$PORT" --secret north-south-east-west --user probe-test
grep -q "rest username: *[0-9]*:probe-test" <<<"$out" || fail "REST: no minted user name: $out"
pass "turn with REST credentials minted from the shared secret"

# USERHASH (RFC 8489 §14.4): SHA-256 credentials, the user named only by SHA-256(name:realm).
run_probe 0 turn "turn:127.0.0.1:$PORT" --user ninefingers --password youhavetoberealistic --userhash --json
[ "$(json_field credentials)" = "SHA-256, USERHASH" ] || fail "--userhash: credentials: $out"
steps=$(python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(" ".join(s["name"] for s in r["steps"] if s["ok"]))' <<<"$out")
for want in allocate permission send/data channel-data release; do
    grep -qw -- "$want" <<<"$steps" || fail "--userhash: step $want did not pass: $out"
done
run_probe 1 turn "turn:127.0.0.1:$PORT" --user ninefingers --password wrong --userhash
run_probe 1 turn "turn:127.0.0.1:$PORT" --user nobody --password youhavetoberealistic --userhash
pass "USERHASH: the user found by its hash relays both ways; a wrong password or unknown hash gets 401"

# Failure verdicts.
run_probe 1 turn "turn:127.0.0.1:$PORT" --user ninefingers --password wrong --realm other.example
grep -q "user name or password is wrong for realm \"probe.example\"" <<<"$out" || fail "wrong password verdict: $out"
grep -q "realm is \"probe.example\", not \"other.example\"" <<<"$out" || fail "wrong realm verdict: $out"
pass "wrong password and realm: exit 1, $(tail -1 <<<"$out")"

run_probe 1 turn "turn:127.0.0.1:$PORT" --secret not-the-secret
grep -q "REST shared secret differs" <<<"$out" || fail "wrong secret verdict: $out"
pass "wrong REST secret: exit 1"

run_probe 1 turn "turns:127.0.0.1:$TPORT" --user ninefingers --password youhavetoberealistic
grep -q "certificate not accepted" <<<"$out" || fail "untrusted certificate verdict: $out"
pass "untrusted certificate: exit 1, $(tail -1 <<<"$out")"
run_probe 1 turn "turns:localhost:$TPORT" --user ninefingers --password youhavetoberealistic --ca "$WORK/ferry-probe.crt"
grep -q "mismatch: the certificate does not name localhost" <<<"$out" || fail "name mismatch verdict: $out"
pass "TLS name mismatch: exit 1, $(tail -1 <<<"$out")"

CLOSED=$(free_port)
run_probe 3 turn "turn:127.0.0.1:$CLOSED" --user a --password b --timeout 1500
grep -q "nothing listens on UDP" <<<"$out" || fail "closed UDP port verdict: $out"
run_probe 3 stun "turn:127.0.0.1:$CLOSED?transport=tcp"
grep -q "connection refused" <<<"$out" || fail "closed TCP port verdict: $out"
pass "closed port over UDP and TCP: exit 3, $(tail -1 <<<"$out")"

run_probe 2 turn "turn:127.0.0.1:$PORT" --user only-a-user
run_probe 2 turn "ftp://127.0.0.1"
run_probe 2 frobnicate "stun:127.0.0.1:$PORT"
pass "usage errors: exit 2"
stop_ferry

# The same ferry without loopback peers allowed: CreatePermission gets 403 from the peer policy.
# It logs JSON lines this time; the probe's allocation, left behind, ends at the stop.
sed -i '/allowed_peer_ranges/d' "$WORK/ferry.yaml"
printf 'log:\n  format: json\n' >>"$WORK/ferry.yaml"
start_ferry "$WORK/ferry.yaml"
run_probe 1 turn "turn:127.0.0.1:$PORT" --user ninefingers --password youhavetoberealistic
grep -q "403 Forbidden for peer 127.0.0.1: the server's peer policy refuses" <<<"$out" || fail "refused peer verdict: $out"
pass "refused peer: exit 1, $(tail -1 <<<"$out")"
stop_ferry
python3 - "$WORK/ferry.log" <<'PY' || fail "JSON log: $(cat "$WORK/ferry.log")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]  # every line must parse
assert all({"time", "level", "msg"} <= l.keys() for l in lines), "a line lacks time, level or msg"
ended = [l for l in lines if l["msg"] == "allocation ended"]
assert len(ended) == 1, ended
r = ended[0]
assert r["user"] == "ninefingers" and r["transport"] == "udp" and r["reason"] == "shutdown", r
assert r["to_peer_packets"] == 0 and r["to_client_bytes"] == 0 and r["tcp_relay"] is False, r
assert r["relayed"].startswith("127.0.0.1:") and isinstance(r["duration_s"], (int, float)), r
print(f"ok: log.format json: {len(lines)} lines, each a JSON object; usage record {r}")
PY
