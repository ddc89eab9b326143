#!/usr/bin/env bash
# A soak: N minutes of churn on one Release ferry, then a verdict on its memory and descriptors.
# A benchmark-style script, not part of CI.
#
#   ./scripts/soak.sh [--minutes N]     (default 10; after ./scripts/test.sh has built build/release)
#
# Side by side, each in a loop until the time is up, every run bounded, so that every kind of
# load has run within the first minute (the verdict's baseline):
#   - ferry-load calls over UDP, TCP and TLS in turn: allocations set up, channels bound, ChannelData
#     relayed to echo peers, allocations released (allocations, permissions and channels churn);
#   - ferry-load allocate: Allocate and Refresh 0 as fast as they are answered;
#   - coturn's turnutils_uclient over TCP and TLS, with and without channels (not over DTLS in
#     the loop: it leaves its DTLS allocations to expire, 13 minutes later, so their number
#     would climb through a 10-minute soak);
#   - abuse (tools in scripts/lib/soak_abuse.py): garbage datagrams, truncated STUN and ChannelData,
#     TCP and TLS connections dropped mid-message, DTLS handshakes abandoned halfway and
#     sessions dropped without a close.
# Every 10 s it prints ferry's RSS, open descriptors, live allocations, relayed packets so far and
# errors (ferry's warn/error log lines and load runs that failed). When the load stops it waits
# (at most 120 s) for the allocations to end and counts descriptors again. An allocation still
# alive then (a client that left without deleting it: RFC 8656 keeps it to its lifetime's end)
# holds one relay socket, so those are counted apart.
# Verdict: after the first minute RSS grows less than 5 % (the last minute's peak against the
# second minute's: ferry returns free heap pages, so RSS follows the load's phases), and the
# descriptors come back to the count before the load plus one per allocation still alive.
# Exit 0 when both hold, else 1. --minutes is at least 3.
set -euo pipefail
# All of it in one function, read whole before it runs: bash reads a script as it goes, and an
# edit to this file during a 10-minute soak would otherwise change what the rest of it runs.
main() {
cd "$(dirname "$0")/.."
MINUTES=10
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) MINUTES=${2:?--minutes wants a number}; shift 2 ;;
    *) echo "usage: $0 [--minutes N]"; exit 2 ;;
    esac
done
[[ "$MINUTES" =~ ^[0-9]+$ ]] && [ "$MINUTES" -ge 3 ] && [ "$MINUTES" -le 600 ] ||
    { echo "soak: --minutes must be 3..600"; exit 2; }
LOAD=build/release/tools/ferry-load
FERRY=build/release/server/ferry
if [ ! -x "$LOAD" ] || [ ! -x "$FERRY" ]; then
    cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DFERRY_TESTS=OFF >/dev/null
    cmake --build build/release -j2
fi
command -v turnutils_uclient >/dev/null || { echo "soak: turnutils_uclient is missing (./scripts/test.sh installs coturn)"; exit 1; }

WORK=$(mktemp -d)
PIDS=()
FERRY_PID=""
cleanup() {
    local p
    for p in "${PIDS[@]}" $FERRY_PID; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}" $FERRY_PID; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
. scripts/lib/bench.sh # free_port, rss_kb, fds
PORT=$(free_port)      # UDP and TCP
TPORT=$(free_port)     # TLS and DTLS
ADMIN=$(free_port)
ECHO=$(free_port 400)  # 400 echo peer ports
UPEER=$(free_port)     # turnutils_peer
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=soak \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1
cat >"$WORK/ferry.yaml" <<YAML
threads: auto
listen:
  - address: 127.0.0.1
    port: $PORT
    transports: [udp, tcp]
  - address: 127.0.0.1
    port: $TPORT
    transports: [tls, dtls]
tls:
  certificate: $WORK/cert.pem
  private_key: $WORK/key.pem
turn:
  realm: soak
  users:
    - name: soak
      password: soak
  allowed_peer_ranges: [127.0.0.0/8]
limits:
  allocations_per_user: 0
  max_tcp_connections_per_ip: 20000
log:
  level: warn
admin:
  port: $ADMIN
drain_timeout: 0
YAML
"$FERRY" --config "$WORK/ferry.yaml" >"$WORK/ferry.log" 2>&1 &
FERRY_PID=$!
for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null || { echo "soak: ferry did not start"; cat "$WORK/ferry.log"; exit 1; }

SECONDS_TOTAL=$((MINUTES * 60))
START=$(date +%s)
END=$((START + SECONDS_TOTAL))
"$LOAD" echo --bind "127.0.0.1:$ECHO" --ports 400 --seconds $((SECONDS_TOTAL + 60)) >"$WORK/echo.log" 2>&1 &
PIDS+=($!)
turnutils_peer -L 127.0.0.1 -p "$UPEER" >"$WORK/upeer.log" 2>&1 &
PIDS+=($!)
sleep 0.5

metric() { # the sum of a metric's samples
    curl -fs "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {printf "%d", s}'
}
BASE_FDS=$(fds "$FERRY_PID")
BASE_RSS=$(rss_kb "$FERRY_PID")
LOG_START=$(wc -l <"$WORK/ferry.log") # start-up warnings (the descriptor limit) are not errors
log_errors() { tail -n +$((LOG_START + 1)) "$WORK/ferry.log" | grep -cE ' (warn|error) ' || true; }
: >"$WORK/failures"
left() { [ "$(date +%s)" -lt "$END" ]; }
failed() { echo "$1" >>"$WORK/failures"; }

# The load loops. Each run is bounded; a loop starts no run once the time is up.
(
    i=0
    while left; do
        via=$(case $((i % 3)) in 0) echo tls ;; 1) echo tcp ;; 2) echo udp ;; esac)
        [ "$via" = udp ] && n=300 || n=150
        [ "$via" = tls ] && server="127.0.0.1:$TPORT" || server="127.0.0.1:$PORT"
        timeout 120 "$LOAD" calls --server "$server" --peer "127.0.0.1:$ECHO" --sockets "$n" --rate 20 \
            --seconds 10 --setup-rate 200 --transport "$via" --user soak --password soak \
            >>"$WORK/calls.log" 2>&1 || failed "calls over $via"
        i=$((i + 1))
    done
) &
PIDS+=($!)
(
    while left; do
        timeout 60 "$LOAD" allocate --server "127.0.0.1:$PORT" --user soak --password soak --seconds 15 \
            >>"$WORK/allocate.log" 2>&1 || failed "allocate"
    done
) &
PIDS+=($!)
(
    i=0
    while left; do
        case $((i % 4)) in
        0) args=(-t -p "$PORT") ;;                # TCP
        1) args=(-t -c -S -p "$TPORT") ;;         # TLS, channels
        2) args=(-t -c -p "$PORT") ;;             # TCP, channels
        3) args=(-t -S -p "$TPORT") ;;            # TLS
        esac
        timeout 60 turnutils_uclient "${args[@]}" -n 50 -m 4 -l 200 -z 10 -u soak -w soak -e 127.0.0.1 \
            -r "$UPEER" 127.0.0.1 >>"$WORK/uclient.log" 2>&1 || failed "turnutils_uclient ${args[*]}"
        i=$((i + 1))
    done
) &
PIDS+=($!)
python3 scripts/lib/soak_abuse.py --udp "127.0.0.1:$PORT" --tcp "127.0.0.1:$PORT" --tls "127.0.0.1:$TPORT" \
    --dtls "127.0.0.1:$TPORT" --until "$END" >"$WORK/abuse.log" 2>&1 &
PIDS+=($!)

printf '%8s %10s %6s %12s %16s %7s\n' elapsed_s rss_kb fds allocations relayed_packets errors
ROWS="$WORK/rows"
: >"$ROWS"
sample() {
    local t rss nfd allocs relayed errors
    t=$(($(date +%s) - START))
    kill -0 "$FERRY_PID" 2>/dev/null || { echo "soak: ferry died"; tail -20 "$WORK/ferry.log"; exit 1; }
    rss=$(rss_kb "$FERRY_PID")
    nfd=$(fds "$FERRY_PID")
    allocs=$(metric ferry_allocations)
    relayed=$(metric ferry_relayed_packets_total)
    errors=$(($(log_errors) + $(wc -l <"$WORK/failures")))
    printf '%8s %10s %6s %12s %16s %7s\n' "$t" "$rss" "$nfd" "$allocs" "$relayed" "$errors"
    echo "$t $rss $nfd $allocs $relayed $errors" >>"$ROWS"
}
printf '%8s %10s %6s %12s %16s %7s\n' 0 "$BASE_RSS" "$BASE_FDS" 0 0 0
while left; do
    sleep 10
    sample
done

# The load stops: every loop ends its current run.
echo "soak: load stopping; waiting for the load tools and the allocations to end"
for p in "${PIDS[@]:2}"; do wait "$p" 2>/dev/null || true; done
for _ in $(seq 120); do
    [ "$(metric ferry_allocations)" -eq 0 ] && break
    sleep 1
done
sleep 2
sample
AFTER_FDS=$(fds "$FERRY_PID")
LEFT=$(metric ferry_allocations)

# Verdict. ferry gives free heap pages back every 30 s, so RSS follows the load's phases (TLS
# rounds hold far more than UDP ones): what would show a leak is the peaks climbing. So the last
# minute's peak is compared with the second minute's (the first is warm-up); the table shows
# every minute's.
echo
echo "per minute: peak and lowest RSS (kB), peak descriptors, peak allocations, relayed packets at its end"
awk '$1 < '"$SECONDS_TOTAL"' {m = int($1 / 60); if (!(m in hi) || $2 > hi[m]) hi[m] = $2; if (!(m in lo) || $2 < lo[m]) lo[m] = $2;
     if ($3 > fd[m]) fd[m] = $3; if ($4 > al[m]) al[m] = $4; rel[m] = $5; if (m > last) last = m}
     END {printf "%6s %10s %10s %6s %11s %16s\n", "minute", "rss_peak", "rss_low", "fds", "allocations", "relayed_packets";
          for (i = 0; i <= last; i++) if (i in hi) printf "%6d %10d %10d %6d %11d %16d\n", i + 1, hi[i], lo[i], fd[i], al[i], rel[i]}' "$ROWS"
FIRST_RSS=$(awk '$1 >= 60 && $1 < 120 && $2 > m {m = $2} END {print m + 0}' "$ROWS")
LAST_RSS=$(awk '$1 >= '"$((SECONDS_TOTAL - 60))"' && $1 < '"$SECONDS_TOTAL"' && $2 > m {m = $2} END {print m + 0}' "$ROWS")
MAX_RSS=$(awk '$1 >= 120 && $1 < '"$SECONDS_TOTAL"' && $2 > m {m = $2} END {print m + 0}' "$ROWS")
[ "$LAST_RSS" -gt 0 ] || LAST_RSS=$FIRST_RSS
GROWTH=$(python3 -c "print(f'{100 * ($LAST_RSS - $FIRST_RSS) / $FIRST_RSS:.1f}')")
echo
echo "RSS peak in minute 2 ${FIRST_RSS} kB, in the last minute ${LAST_RSS} kB: ${GROWTH} %" \
    "(the highest minute after the second: ${MAX_RSS} kB, when the TLS rounds of several loads coincide)"
echo "descriptors: ${BASE_FDS} before the load, ${AFTER_FDS} after it, with ${LEFT} allocations alive (a relay socket each)"
echo "relayed packets: $(metric ferry_relayed_packets_total); malformed input dropped: $(metric 'ferry_dropped_total{reason="malformed"}')"
echo "load runs that failed: $(wc -l <"$WORK/failures") ($(sort "$WORK/failures" | uniq -c | tr '\n' ';'))"
echo "ferry warn/error lines: $(log_errors)"
tail -1 "$WORK/abuse.log"
ok=1
python3 -c "import sys; sys.exit(0 if $LAST_RSS < 1.05 * $FIRST_RSS else 1)" || ok=0
[ "$AFTER_FDS" -le $((BASE_FDS + LEFT)) ] || ok=0
if [ "$ok" = 1 ]; then
    echo "verdict: PASS (RSS grew ${GROWTH} % from the second minute's peak to the last minute's, under 5 %; descriptors back to ${AFTER_FDS} = ${BASE_FDS} + ${LEFT} live allocations)"
else
    echo "verdict: FAIL (RSS grew ${GROWTH} % from the second minute's peak to the last minute's, limit 5 %; descriptors ${AFTER_FDS}, baseline ${BASE_FDS} + ${LEFT} live allocations)"
    exit 1
fi
}
main "$@"
