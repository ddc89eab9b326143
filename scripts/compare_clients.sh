#!/usr/bin/env bash
# coturn's own client, turnutils_uclient, against ferry and against coturn 4.6.1 (Debian) with
# the same arguments, over every client transport: UDP, TCP, TLS and DTLS, Send/Data and
# channels, and RFC 6062 TCP relaying (-T). Prints, for each mode and server, what the client
# counted (sent, received, lost), its average round trip and jitter, and the server's CPU time.
#
#   ./scripts/compare_clients.sh                 (after ./scripts/test.sh has built build/release)
#   UCLIENT_ARGS="-n 1000 -m 10 -l 120 -z 5" ./scripts/compare_clients.sh
#
# The client paces itself (-z, milliseconds between messages), so this compares correctness and
# latency, not capacity: scripts/bench.sh measures capacity. Loopback only, bounded by timeouts;
# only processes it started are stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
FERRY=build/release/server/ferry
[ -x "$FERRY" ] || { echo "compare: build ferry first (./scripts/test.sh or ./scripts/run.sh)"; exit 1; }
for tool in turnserver turnutils_uclient turnutils_peer openssl; do
    command -v "$tool" >/dev/null || { echo "compare: $tool is not installed (./scripts/test.sh installs it)"; exit 1; }
done
read -r -a ARGS <<<"${UCLIENT_ARGS:--n 1000 -m 10 -l 120 -z 5}"

WORK=$(mktemp -d)
PIDS=()
SERVER=""
cleanup() {
    for p in $SERVER "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
TICKS=$(getconf CLK_TCK)
free_port() { python3 tests/integration/free_port.py; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj "/CN=compare" \
    -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null

PEER=$(free_port)
turnutils_peer -L 127.0.0.1 -p "$PEER" >"$WORK/peer.log" 2>&1 &
PIDS+=($!)

# Each server: PORT for UDP and TCP, TPORT for TLS, DPORT for DTLS (coturn serves TLS and DTLS
# on one port; ferry keeps DTLS on its own UDP port).
start_ferry() {
    cat >"$WORK/ferry.yaml" <<YAML
threads: auto
listen:
  - address: 127.0.0.1
    port: $PORT
    transports: [udp, tcp]
  - address: 127.0.0.1
    port: $TPORT
    transports: [tls]
  - address: 127.0.0.1
    port: $DPORT
    transports: [dtls]
tls:
  certificate: $WORK/cert.pem
  private_key: $WORK/key.pem
turn:
  realm: compare
  users:
    - name: ninefingers
      password: youhavetoberealistic
  allowed_peer_ranges: [127.0.0.0/8]
log:
  level: warn
admin:
  enabled: false
drain_timeout: 0
YAML
    "$FERRY" --config "$WORK/ferry.yaml" >"$WORK/ferry.log" 2>&1 &
    SERVER=$!
}
start_coturn() {
    DPORT=$TPORT
    turnserver --listening-ip=127.0.0.1 --listening-port="$PORT" --tls-listening-port="$TPORT" \
        --relay-ip=127.0.0.1 --cert="$WORK/cert.pem" --pkey="$WORK/key.pem" --no-cli \
        --lt-cred-mech --user=ninefingers:youhavetoberealistic --realm=compare --allow-loopback-peers \
        --min-port=49152 --max-port=65535 --relay-threads="$(nproc)" --no-stdout-log \
        --log-file=/dev/null --simple-log --pidfile="$WORK/coturn.pid" --userdb="$WORK/coturn.db" \
        >"$WORK/coturn.out" 2>&1 &
    SERVER=$!
}

# The modes: a label, then the uclient flags and which port they go to.
MODES=(
    "UDP, Send/Data|PORT|"
    "UDP, channels|PORT|-c"
    "TCP, Send/Data|PORT|-t"
    "TCP, channels|PORT|-t -c"
    "TLS, Send/Data|TPORT|-S -t"
    "TLS, channels|TPORT|-S -t -c"
    "DTLS, Send/Data|DPORT|-S"
    "DTLS, channels|DPORT|-S -c"
    "RFC 6062 TCP relay over TCP|PORT|-T"
    "RFC 6062 TCP relay over TLS|TPORT|-T -S"
)

printf '%-30s %-7s %9s %9s %7s %10s %10s %9s\n' mode server sent received lost "rtt ms" "jitter ms" "CPU ms"
for server in ferry coturn; do
    PORT=$(free_port)
    TPORT=$(free_port)
    DPORT=$(free_port)
    "start_$server"
    for _ in $(seq 50); do
        timeout 2 turnutils_stunclient -p "$PORT" 127.0.0.1 >/dev/null 2>&1 && break
        sleep 0.1
    done
    sleep 0.3
    for mode in "${MODES[@]}"; do
        IFS='|' read -r label port_var flags <<<"$mode"
        read -r -a extra <<<"$flags"
        peer=(-e 127.0.0.1 -r "$PEER")
        [[ "$flags" == *-T* ]] && peer=(-e 127.0.0.1) # -T: the two clients are each other's peers
        before=$(cpu_ticks "$SERVER")
        out=$(timeout 120 turnutils_uclient "${extra[@]}" -p "${!port_var}" -u ninefingers -w youhavetoberealistic \
            "${ARGS[@]}" "${peer[@]}" 127.0.0.1 2>&1) || true
        after=$(cpu_ticks "$SERVER")
        sent=$(sed -n 's/.*tot_send_msgs=\([0-9]*\).*/\1/p' <<<"$out" | tail -1)
        recv=$(sed -n 's/.*tot_recv_msgs=\([0-9]*\).*/\1/p' <<<"$out" | tail -1)
        lost=$(sed -n 's/.*Total lost packets \([0-9]*\).*/\1/p' <<<"$out" | tail -1)
        rtt=$(sed -n 's/.*Average round trip delay \([0-9.]*\) ms.*/\1/p' <<<"$out" | tail -1)
        jitter=$(sed -n 's/.*Average jitter \([0-9.]*\) ms.*/\1/p' <<<"$out" | tail -1)
        printf '%-30s %-7s %9s %9s %7s %10s %10s %9s\n' "$label" "$server" "${sent:-?}" "${recv:-?}" "${lost:-?}" \
            "${rtt:-?}" "${jitter:-?}" "$(( (after - before) * 1000 / TICKS ))"
    done
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
    SERVER=""
done
