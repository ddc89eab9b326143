#!/usr/bin/env bash
# Binding over UDP and TCP, IPv4 and IPv6, asked by clients we did not write: coturn's
# turnutils_stunclient, Debian's stun (RFC 3489), and an independent Python probe for TCP
# (no packaged client speaks STUN over TCP). Each mapped address is checked against what the
# client's own socket or the server's log says.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
V6=""
have_ipv6 && V6=yes
{
    echo "threads: 2"
    echo "listen:"
    echo "  - address: 127.0.0.1"
    echo "    port: $PORT"
    [ -n "$V6" ] && { echo "  - address: \"::1\""; echo "    port: $PORT"; }
    echo "log:"
    echo "  level: debug"
} >"$WORK/ferry.yaml"
start_ferry "$WORK/ferry.yaml"

# coturn's client prints the reflexive address; the server logged the source it saw.
check_stunclient() { # host
    local out mapped
    out=$(timeout 10 turnutils_stunclient -p "$PORT" "$1") || fail "turnutils_stunclient $1 failed"
    mapped=$(echo "$out" | sed -n 's/.*UDP reflexive addr: \(.*\)$/\1/p' | head -1)
    [ -n "$mapped" ] || fail "turnutils_stunclient $1 printed no reflexive address: $out"
    local want=$mapped
    [[ "$1" == *:* ]] && want="[${mapped%:*}]:${mapped##*:}"
    grep -qF "binding udp from $want " "$WORK/ferry.log" ||
        fail "turnutils_stunclient saw $mapped but the server logged no request from $want"
    pass "turnutils_stunclient over UDP to $1: reflexive $mapped"
}
check_stunclient 127.0.0.1
[ -n "$V6" ] && check_stunclient ::1

# Debian's stun client is RFC 3489 (no magic cookie): it gets MAPPED-ADDRESS. Pin its port.
# Its own verdict is the assertion: ok=1 and exit status 0 only when it accepted every
# attribute of the answer (it rejects a SERVER whose length is not a multiple of 4).
SRC=$(free_port)
rc=0
out=$(timeout 20 stun "127.0.0.1:$PORT" 1 -v -p "$SRC" 2>&1) || rc=$?
grep -q "ok=1" <<<"$out" && [ "$rc" -eq 0 ] || fail "stun client rejected the answer (exit $rc): $out"
echo "$out" | grep -q "MappedAddress = 127.0.0.1:$SRC" ||
    fail "stun client did not report 127.0.0.1:$SRC: $out"
pass "stun (RFC 3489) over UDP: ok=1, exit 0, MappedAddress 127.0.0.1:$SRC"

# TCP, and UDP with FINGERPRINT, from the independent probe.
out=$(probe binding --host 127.0.0.1 --port "$PORT" --tcp) || fail "TCP binding over IPv4: $out"
pass "TCP IPv4: $out"
out=$(probe binding --host 127.0.0.1 --port "$PORT" --fingerprint) || fail "UDP binding with FINGERPRINT: $out"
[[ "$out" == *"fingerprint_ok=True"* ]] || fail "response FINGERPRINT missing or wrong: $out"
[[ "$out" == *"origin=127.0.0.1:$PORT"* ]] || fail "RESPONSE-ORIGIN wrong: $out"
pass "UDP IPv4 with FINGERPRINT: $out"
if [ -n "$V6" ]; then
    out=$(probe binding --host ::1 --port "$PORT" --tcp) || fail "TCP binding over IPv6: $out"
    pass "TCP IPv6: $out"
fi
stop_ferry

# A wildcard listener answers from the address each request reached (IP_PKTINFO), so a client
# that wrote to 127.0.0.2 hears back from 127.0.0.2, and RESPONSE-ORIGIN says so.
PORT=$(free_port)
printf 'threads: 2\nlisten:\n  - address: 0.0.0.0\n    port: %s\n' "$PORT" >"$WORK/wild.yaml"
start_ferry "$WORK/wild.yaml"
for host in 127.0.0.1 127.0.0.2; do
    out=$(probe binding --host "$host" --port "$PORT") || fail "wildcard UDP via $host: $out"
    [[ "$out" == *"origin=$host:$PORT"* ]] || fail "wildcard UDP via $host: wrong origin: $out"
    out=$(probe binding --host "$host" --port "$PORT" --tcp) || fail "wildcard TCP via $host: $out"
    [[ "$out" == *"origin=$host:$PORT"* ]] || fail "wildcard TCP via $host: wrong origin: $out"
done
pass "wildcard listener answers from the address each request reached"
stop_ferry
