#!/usr/bin/env bash
# RFC 6062 TCP allocations: coturn's turnutils_uclient -T (two clients whose TCP allocations
# connect to each other: Connect on one side, ConnectionAttempt on the other, ConnectionBind
# on both) over TCP, TLS and TCP on ::1 with zero loss; then every rule step by step with the independent
# Python client (stun_probe.py tcprelay): 400 over UDP, 403 without a permission or for a
# denied range, 446, 447, ConnectionBind's 400s, 200 kB echoed through a spliced connection,
# a peer from an address without permission closed at once, and everything closed with the
# control connection.
. "$(dirname "$0")/lib.sh"

make_cert ferry
PORT=$(free_port)
TPORT=$(free_port)
V6=
have_ipv6 && V6=yes
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
$([ -n "$V6" ] && printf '  - address: "::1"\n    port: %s\n' "$PORT")
  - address: 127.0.0.1
    port: $TPORT
    transports: [tls]
tls:
  certificate: $WORK/ferry.crt
  private_key: $WORK/ferry.key
turn:
  users:
    - name: ninefingers
      password: youhavetoberealistic
  allowed_peer_ranges: [127.0.0.0/8, "::1"]
  denied_peer_ranges: [127.0.0.3/32]
YAML
start_ferry "$WORK/ferry.yaml"

CLIENT=(-u ninefingers -w youhavetoberealistic -n 100 -m 2 -l 120 -z 5)
uclient_zero_loss "turnutils_uclient -T over tcp" 200 -T -p "$PORT" "${CLIENT[@]}" -e 127.0.0.1 127.0.0.1
uclient_zero_loss "turnutils_uclient -T over tls" 200 -T -S -p "$TPORT" "${CLIENT[@]}" -e 127.0.0.1 127.0.0.1
# -x: the client asks for an IPv6 relayed address (without it, it wants IPv4 and rejects any other).
[ -z "$V6" ] || uclient_zero_loss "turnutils_uclient -T on ::1" 200 -T -x -p "$PORT" "${CLIENT[@]}" -e ::1 ::1
grep -q "over tls, TCP relay" "$WORK/ferry.log" || fail "no TCP allocation over TLS was logged"
grep -q "tcp relay connection .* closed: 12000 bytes to the peer, 12000 bytes from it" "$WORK/ferry.log" ||
    fail "no peer connection carried the uclient's 12000 bytes each way"

out=$(timeout 60 python3 "$HERE/stun_probe.py" tcprelay --port "$PORT" --user ninefingers \
    --password youhavetoberealistic --denied 127.0.0.3) || fail "tcprelay probe: $out"
expected="udp-allocate 400
tcp-allocate 200
connect-without-permission 403
create-permission 200
connect-denied-range 403
connect 200
connect-again 446
connect-refused 447
bind-unknown-id 400
connection-bind 200
echo ok
bind-twice 400
connection-attempt 0x1c
attempt-bind 200
peer-both-ways ok
stranger-closed True
data-closed-with-allocation True"
[ "$out" = "$expected" ] || fail "RFC 6062 steps differ:
$(diff <(echo "$expected") <(echo "$out"))"
pass "RFC 6062 step by step: 400 over UDP, 403 (permission, policy), 446, 447, ConnectionBind 400s, 200 kB echoed, ConnectionAttempt, stranger refused, all closed with the control connection"

# Back-pressure without polling: 10 splices whose peers never read, paused, cost the server
# almost nothing while they wait. A 1 ms poll per paused reader woke a worker 1000 times a
# second; waiting for the partner's writer, the workers sleep (their 1 s sweeps aside).
out=$(timeout 90 python3 "$HERE/stun_probe.py" stalledsplices --port "$PORT" --user ninefingers \
    --password youhavetoberealistic --count 10 --pid "$FERRY_PID") || fail "stalled splices: $out"
wakeups=${out#*wakeups=}
[ "$wakeups" -le 100 ] || fail "10 paused splices woke the server $wakeups times in 3 s ($out)"
pass "10 paused splices: $out in 3 s"
stop_ferry
