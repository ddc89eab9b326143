#!/usr/bin/env bash
# Chaos on the ASan build, seeded and bounded: the review's races and the stream and batch
# paths under hostile and broken clients, while well-behaved clients relay.
#   - 300 connections send their first byte right at the handshake deadline of a [tcp, tls]
#     port, three rounds (a use-after-free in the first-byte check);
#   - TCP and TLS clients: good ones relay ChannelData split at random points (every payload
#     must reach the peer byte-exact), bad ones send garbage and broken frames, pause around
#     the handshake and idle deadlines and close at random moments; meanwhile coturn's
#     uclient relays over DTLS with zero loss while garbage datagrams hit the DTLS port;
#   - UDP clients whose ChannelData, Refresh(0) and a new Allocate share one receive batch:
#     no datagram may leave from another allocation's relayed address.
# ferry must answer throughout and stop cleanly (an ASan report aborts it: exit 134).
. "$(dirname "$0")/lib.sh"

SEED=${FERRY_CHAOS_SEED:-$RANDOM}
echo "seed $SEED (FERRY_CHAOS_SEED=$SEED repeats this run)"
make_cert ferry
PORT=$(free_port)
TPORT=$(free_port)
DPORT=$(free_port)
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
  - address: 127.0.0.1
    port: $TPORT
    transports: [tcp, tls]
  - address: 127.0.0.1
    port: $DPORT
    transports: [dtls]
tls:
  certificate: $WORK/ferry.crt
  private_key: $WORK/ferry.key
limits:
  tls_handshake_timeout: 1
  tcp_idle_timeout: 2
turn:
  users:
    - name: ninefingers
      password: youhavetoberealistic
  allowed_peer_ranges: [127.0.0.0/8]
YAML
start_ferry "$WORK/ferry.yaml"
CHAOS=(python3 "$HERE/chaos.py")
CRED=(--user ninefingers --password youhavetoberealistic)

out=$(timeout 60 "${CHAOS[@]}" firstbyte --port "$TPORT" --count 300 --rounds 3 --deadline 1 --seed "$SEED") ||
    fail "first bytes at the deadline: $out"
probe binding --host 127.0.0.1 --port "$PORT" --tcp >/dev/null || fail "no answer after the first-byte rounds"
pass "first byte at the handshake deadline: $out, still serving"

PEER=$(free_port)
turnutils_peer -L 127.0.0.1 -p "$PEER" >"$WORK/peer.log" 2>&1 &
PIDS+=($!)
timeout 60 "${CHAOS[@]}" dtls-noise --port "$DPORT" --seconds 12 --seed "$SEED" >"$WORK/noise.out" 2>&1 &
NOISE=$!
PIDS+=("$NOISE")
(sleep 2; timeout 60 turnutils_uclient -S -c -p "$DPORT" -n 100 -m 2 -l 120 -z 5 -u ninefingers \
    -w youhavetoberealistic -e 127.0.0.1 -r "$PEER" 127.0.0.1 >"$WORK/dtls.out" 2>&1) &
DTLS=$!
out=$(timeout 120 "${CHAOS[@]}" streams --port "$PORT" --tls-port "$TPORT" "${CRED[@]}" --seconds 10 --seed "$SEED") ||
    fail "stream chaos: $out"
pass "stream chaos over TCP and TLS: $out (byte-exact)"
wait "$DTLS" || fail "uclient over DTLS failed during the chaos: $(tail -3 "$WORK/dtls.out")"
grep -q "tot_send_msgs=200, tot_recv_msgs=200" "$WORK/dtls.out" && grep -q "Total lost packets 0 (0.000000%)" "$WORK/dtls.out" ||
    fail "DTLS relay during the chaos: $(grep -E 'tot_|lost' "$WORK/dtls.out" | tail -2)"
wait "$NOISE" || true
pass "DTLS relay with zero loss beside $(cat "$WORK/noise.out") garbage datagrams"

out=$(timeout 120 "${CHAOS[@]}" udp --port "$PORT" "${CRED[@]}" --rounds 40 --seed "$SEED") || fail "UDP batch chaos: $out"
pass "UDP: ChannelData, Refresh(0) and Allocate in one batch: $out"

probe binding --host 127.0.0.1 --port "$PORT" >/dev/null || fail "no answer after the chaos"
stop_ferry
pass "ferry stopped cleanly after the chaos (no sanitizer report)"
