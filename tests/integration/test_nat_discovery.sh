#!/usr/bin/env bash
# RFC 5780 NAT behaviour discovery on loopback: 127.0.0.1 and 127.0.0.2 are the two addresses.
# coturn's turnutils_natdiscovery runs the mapping and filtering tests; on loopback there is no
# NAT, so both must come out endpoint-independent, with the right addresses on the way.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port 2)
ALT=$((PORT + 1))
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
    transports: [udp]
nat_discovery:
  alternate_address: 127.0.0.2
  alternate_port: $ALT
log:
  level: debug
YAML
start_ferry "$WORK/ferry.yaml"

out=$(timeout 20 turnutils_natdiscovery -m -f -p "$PORT" 127.0.0.1) || fail "natdiscovery failed: $out"
for want in "Response origin: : 127.0.0.1:$PORT" "Other addr: : 127.0.0.2:$ALT" \
    "Response origin: : 127.0.0.2:$PORT" "Other addr: : 127.0.0.1:$ALT" \
    "Response origin: : 127.0.0.2:$ALT" "NAT with Endpoint Independent Mapping!" \
    "NAT with Endpoint Independent Filtering!"; do
    grep -qF "$want" <<<"$out" || fail "natdiscovery output lacks '$want': $out"
done
mapped=$(sed -n 's/.*UDP reflexive addr: \(127\.0\.0\.1:[0-9]*\)$/\1/p' <<<"$out" | head -1)
[ -n "$mapped" ] || fail "natdiscovery printed no reflexive address"
pass "natdiscovery -m -f: endpoint-independent mapping and filtering, reflexive $mapped"

out=$(timeout 20 turnutils_natdiscovery -f -P -p "$PORT" 127.0.0.1) || fail "natdiscovery -P failed: $out"
grep -qF "NAT with Endpoint Independent Filtering!" <<<"$out" || fail "natdiscovery -P: $out"
pass "natdiscovery with 1500-byte PADDING"

# The RFC 3489 client reads CHANGED-ADDRESS and runs its change-request tests.
SRC=$(free_port)
out=$(timeout 20 stun "127.0.0.1:$PORT" -v -p "$SRC" 2>&1) || true
grep -qF "ChangedAddress = 127.0.0.2:$ALT" <<<"$out" || fail "stun client saw no CHANGED-ADDRESS: $out"
grep -qF "MappedAddress = 127.0.0.1:$SRC" <<<"$out" || fail "stun client mapped address wrong: $out"
grep -q "test II = 1" <<<"$out" || fail "stun client's change-IP-and-port test got no answer: $out"
pass "stun (RFC 3489): CHANGED-ADDRESS 127.0.0.2:$ALT, change-request answered"
stop_ferry
