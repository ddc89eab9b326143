#!/usr/bin/env bash
# TURN over TLS (turns:) with coturn's turnutils_uclient -S, certificates made here with
# openssl: zero loss over Send/Data and channels, also with several messages queued per write
# (each leaves in its own TLS record); TLS 1.2 and 1.3 accepted, TLS 1.1 refused;
# ALPN "stun.turn" (RFC 7443); a silent client cut off at the handshake deadline; and SIGHUP
# swapping the certificate for new connections while an established session goes on, or
# keeping the old one when the new files are broken.
. "$(dirname "$0")/lib.sh"

make_cert ferry-a
make_cert ferry-b
cp "$WORK/ferry-a.crt" "$WORK/cert.pem"
cp "$WORK/ferry-a.key" "$WORK/key.pem"

PORT=$(free_port)
TPORT=$(free_port)
MPORT=$(free_port)
PEER=$(free_port)
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
  - address: 127.0.0.1
    port: $TPORT
    transports: [tls]
  - address: 127.0.0.1
    port: $MPORT
    transports: [tcp, tls]
tls:
  certificate: $WORK/cert.pem
  private_key: $WORK/key.pem
turn:
  users:
    - name: ninefingers
      password: youhavetoberealistic
  allowed_peer_ranges: [127.0.0.0/8]
limits:
  tls_handshake_timeout: 2
YAML
start_ferry "$WORK/ferry.yaml"
grep -q "tls 127.0.0.1:$TPORT" "$WORK/ferry.log" || fail "no TLS listener in the start-up line"
turnutils_peer -L 127.0.0.1 -p "$PEER" >"$WORK/peer.log" 2>&1 &
PIDS+=($!)
sleep 0.3

uclient_tls() { # ARGS...: prints the uclient output
    timeout 60 turnutils_uclient -S -t -p "$TPORT" -u ninefingers -w youhavetoberealistic -e 127.0.0.1 -r "$PEER" \
        -l 120 -m 2 "$@" 127.0.0.1 2>&1
}
for mode in "" "-c"; do
    out=$(uclient_tls $mode -n 100 -z 5) || fail "uclient over TLS $mode: $(tail -3 <<<"$out")"
    grep -q "tot_send_msgs=200, tot_recv_msgs=200" <<<"$out" && grep -q "Total lost packets 0 (0.000000%)" <<<"$out" ||
        fail "TLS ${mode:-Send/Data}: $(grep -E 'tot_|lost' <<<"$out" | tail -2)"
    label=Send/Data
    [ -n "$mode" ] && label=channels
    pass "turnutils_uclient over TLS, $label: 200 sent, 200 received, 0 lost"
done
grep -q "over tls" "$WORK/ferry.log" || fail "no allocation was made over TLS"
# Kernel TLS: ferry asks OpenSSL for it and says once which it got. Without the kernel's tls module
# (as on the machines this was written on) the relaying above ran on the user-space fallback.
[ "$(grep -c "TURN over TLS: kernel TLS in use\|TURN over TLS: records are built in user space" "$WORK/ferry.log")" = 1 ] ||
    fail "ferry did not say once whether kernel TLS is in use"
if [ ! -e /proc/net/tls_stat ]; then
    grep -q "TURN over TLS: records are built in user space" "$WORK/ferry.log" || fail "no tls module, yet kernel TLS claimed"
fi
# Ten clients sending every millisecond: ferry has several messages queued per write, and each
# must still leave in its own TLS record (turnutils_uclient takes one SSL_read as one message;
# when ferry joined them, it lost a third here).
out=$(uclient_tls -m 10 -n 100 -z 1) || fail "uclient burst over TLS: $(tail -3 <<<"$out")"
grep -q "tot_send_msgs=1000, tot_recv_msgs=1000" <<<"$out" && grep -q "Total lost packets 0 (0.000000%)" <<<"$out" ||
    fail "TLS burst: $(grep -E 'tot_|lost' <<<"$out" | tail -2)"
pass "turnutils_uclient over TLS, 10 clients sending every ms: 1000 sent, 1000 received, 0 lost"

# Output is captured before grep reads it: grep -q on a pipe would end the pipe early.
s_client() { echo | timeout 10 openssl s_client -connect "127.0.0.1:$TPORT" "$@" 2>&1 || true; }
out=$(s_client -tls1_2); grep -q "Protocol  : TLSv1.2" <<<"$out" || fail "TLS 1.2 refused"
out=$(s_client -tls1_3); grep -q "TLSv1.3" <<<"$out" || fail "TLS 1.3 refused"
out=$(s_client -tls1_1); grep -q "Cipher is (NONE)" <<<"$out" || fail "TLS 1.1 accepted"
out=$(s_client -alpn stun.turn); grep -q "ALPN protocol: stun.turn" <<<"$out" || fail "ALPN stun.turn not selected"
pass "TLS 1.2 and 1.3 accepted, TLS 1.1 refused, ALPN stun.turn"

out=$(probe idle --port "$TPORT" --count 1 --bytes 0) || fail "handshake probe: $out"
[[ "$out" =~ closed=1\ of=1\ seconds=(1\.[5-9]|2\.[0-9]|3\.[0-9]) ]] || fail "a client that never says hello was not cut off at 2 s: $out"
pass "silent client cut off at the 2 s handshake deadline ($out)"

# One port for both: the first byte tells TLS from plain TCP.
grep -q "tcp+tls 127.0.0.1:$MPORT" "$WORK/ferry.log" || fail "no tcp+tls listener in the start-up line"
out=$(probe binding --tcp --port "$MPORT") || fail "plain STUN over TCP on the shared port: $out"
out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$MPORT" -tls1_3 2>&1 || true); grep -q "TLSv1.3" <<<"$out" || fail "TLS on the shared port refused"
for mode in "-t" "-S -t"; do
    uclient_zero_loss "turnutils_uclient $mode on the shared port" 200 $mode -p "$MPORT" -u ninefingers \
        -w youhavetoberealistic -e 127.0.0.1 -r "$PEER" -l 120 -m 2 -n 100 -z 5 127.0.0.1
done
pass "one port serves plain TCP and TLS: Binding, s_client, and uclient -t and -S -t"
out=$(probe idle --port "$MPORT" --count 1 --bytes 0) || fail "silent client on the shared port: $out"
[[ "$out" =~ closed=1\ of=1\ seconds=(1\.[5-9]|2\.[0-9]|3\.[0-9]) ]] || fail "a silent client on the shared port was not cut off at 2 s: $out"
pass "a client that sends nothing on the shared port is cut off at the 2 s deadline"

# SIGHUP during a live session: new connections see ferry-b, the session is not dropped.
uclient_tls -c -n 150 -z 20 >"$WORK/long.out" 2>&1 &
LONG=$!
sleep 1.5
cp "$WORK/ferry-b.crt" "$WORK/cert.pem"
cp "$WORK/ferry-b.key" "$WORK/key.pem"
kill -HUP "$FERRY_PID"
sleep 0.5
grep -q "reload: TLS certificate loaded" "$WORK/ferry.log" || fail "no reload logged"
out=$(s_client); grep -q "subject=CN = ferry-b" <<<"$out" || fail "a new connection did not get the reloaded certificate"
wait "$LONG" || true
grep -q "tot_send_msgs=300, tot_recv_msgs=300" "$WORK/long.out" && grep -q "Total lost packets 0 (0.000000%)" "$WORK/long.out" ||
    fail "the session open across SIGHUP was disturbed: $(grep -E 'tot_|lost' "$WORK/long.out" | tail -2)"
pass "SIGHUP: new connections get the new certificate; a session open across it lost nothing"

echo "not a key" >"$WORK/key.pem"
kill -HUP "$FERRY_PID"
sleep 0.5
grep -q "reload: TLS certificate not loaded, keeping the old one" "$WORK/ferry.log" || fail "a broken reload was not reported"
out=$(s_client); grep -q "subject=CN = ferry-b" <<<"$out" || fail "a broken reload did not keep the old certificate"
pass "a broken certificate on SIGHUP is refused and the old one kept"
stop_ferry
