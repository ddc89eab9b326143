#!/usr/bin/env bash
# TURN over DTLS 1.2 with coturn's turnutils_uclient -S (UDP, IPv4 and IPv6): zero loss over Send/Data and
# channels; DTLS 1.2 accepted, DTLS 1.0 refused, ALPN stun.turn; 1,000 ClientHellos that never
# return the cookie each get a HelloVerifyRequest and leave no session behind while Binding
# over UDP is answered; an idle session is closed; SIGHUP gives new sessions a new certificate.
. "$(dirname "$0")/lib.sh"

make_cert ferry-a
make_cert ferry-b
cp "$WORK/ferry-a.crt" "$WORK/cert.pem"
cp "$WORK/ferry-a.key" "$WORK/key.pem"

PORT=$(free_port)
DPORT=$(free_port)
PEER=$(free_port)
V6=
have_ipv6 && V6=yes
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
    transports: [udp]
  - address: 127.0.0.1
    port: $DPORT
    transports: [dtls]
$([ -n "$V6" ] && printf '  - address: "::1"\n    port: %s\n    transports: [dtls]\n' "$DPORT")
tls:
  certificate: $WORK/cert.pem
  private_key: $WORK/key.pem
turn:
  users:
    - name: ninefingers
      password: youhavetoberealistic
  allowed_peer_ranges: [127.0.0.0/8, "::1"]
limits:
  tls_handshake_timeout: 2
  tcp_idle_timeout: 3
log:
  level: debug
YAML
start_ferry "$WORK/ferry.yaml"
grep -q "dtls 127.0.0.1:$DPORT" "$WORK/ferry.log" || fail "no DTLS listener in the start-up line"
PEER_ARGS=(-L 127.0.0.1)
[ -n "$V6" ] && PEER_ARGS+=(-L ::1)
turnutils_peer "${PEER_ARGS[@]}" -p "$PEER" >"$WORK/peer.log" 2>&1 &
PIDS+=($!)
sleep 0.3

CLIENT=(-u ninefingers -w youhavetoberealistic -r "$PEER" -l 120 -m 2 -n 100 -z 5 -p "$DPORT")
uclient_zero_loss "turnutils_uclient over DTLS, Send/Data" 200 -S "${CLIENT[@]}" -e 127.0.0.1 127.0.0.1
uclient_zero_loss "turnutils_uclient over DTLS, channels" 200 -S -c "${CLIENT[@]}" -e 127.0.0.1 127.0.0.1
[ -z "$V6" ] || uclient_zero_loss "turnutils_uclient over DTLS on ::1, channels" 200 -S -c "${CLIENT[@]}" -e ::1 ::1
grep -q "over dtls, relay" "$WORK/ferry.log" || fail "no allocation was made over DTLS"

s_client() { echo | timeout 10 openssl s_client -connect "127.0.0.1:$DPORT" "$@" 2>&1 || true; }
out=$(s_client -dtls1_2); grep -q "Protocol  : DTLSv1.2" <<<"$out" || fail "DTLS 1.2 refused: $(tail -5 <<<"$out")"
out=$(s_client -dtls1); grep -q "Cipher is (NONE)" <<<"$out" || fail "DTLS 1.0 accepted"
out=$(s_client -dtls -alpn stun.turn); grep -q "ALPN protocol: stun.turn" <<<"$out" || fail "ALPN stun.turn not selected"
grep -q "subject=CN = ferry-a" <<<"$out" || fail "not the configured certificate"
pass "DTLS 1.2 accepted, DTLS 1.0 refused, ALPN stun.turn"

# Hellos that never come back with the cookie: answered, and nothing kept.
sessions_before=$(grep -c "session with .* established" "$WORK/ferry.log" || true)
out=$(probe dtls-hellos --port "$DPORT" --count 1000) || fail "hello flood: $out"
[ "$out" = "sent=1000 verify_requests=1000" ] || fail "not every ClientHello got a HelloVerifyRequest: $out"
out=$(probe binding --port "$PORT") || fail "no Binding answer after the hello flood: $out"
sessions_after=$(grep -c "session with .* established" "$WORK/ferry.log" || true)
[ "$sessions_before" = "$sessions_after" ] || fail "cookie-less hellos made sessions ($sessions_before -> $sessions_after)"
! grep -q "session with .* ended: handshake not finished" "$WORK/ferry.log" || fail "a cookie-less hello left a session to time out"
pass "1000 cookie-less ClientHellos: 1000 HelloVerifyRequests, no session, Binding still answered"

# A session without an allocation is closed after tcp_idle_timeout (3 s) with close_notify.
start=$(date +%s%3N)
out=$(timeout 12 openssl s_client -dtls1_2 -ign_eof -connect "127.0.0.1:$DPORT" 2>&1 </dev/null || true)
elapsed=$(($(date +%s%3N) - start))
grep -q "Protocol  : DTLSv1.2" <<<"$out" || fail "idle probe did not connect"
grep -q "^closed" <<<"$out" || fail "the idle session's client saw no close_notify"
((elapsed > 2500 && elapsed < 7000)) || fail "idle session not closed near 3 s (${elapsed} ms)"
grep -q "ended: idle" "$WORK/ferry.log" || fail "no idle close logged"
pass "an idle DTLS session was closed after $elapsed ms"

cp "$WORK/ferry-b.crt" "$WORK/cert.pem"
cp "$WORK/ferry-b.key" "$WORK/key.pem"
kill -HUP "$FERRY_PID"
sleep 0.5
out=$(s_client -dtls1_2); grep -q "subject=CN = ferry-b" <<<"$out" || fail "a new DTLS session did not get the reloaded certificate"
pass "SIGHUP: new DTLS sessions get the new certificate"
stop_ferry
