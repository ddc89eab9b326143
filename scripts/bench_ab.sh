#!/usr/bin/env bash
# Two ferry binaries on the same relay workloads, in alternating order, in one run: what a change
# costs per relayed packet, and in memory with 10,000 allocations held. The candidate serves its
# admin endpoint (on by default) and is scraped once a second during every workload, as a busy
# Prometheus would; a baseline without one is not. Prints each figure's median over the rounds
# (with the range) and the ratio candidate/baseline.
#
#   ./scripts/bench_ab.sh BASELINE_FERRY [CANDIDATE_FERRY]    (candidate: build/release/server/ferry)
#   BENCH_ROUNDS=5 BENCH_SECONDS=5 ./scripts/bench_ab.sh /tmp/base/build/release/server/ferry
#   BENCH_AB_WORKLOADS="relay latency calls hold" (the default; any subset): the 16-allocation
#   relay rows, light-load latency (16 allocations, 1,000 packets/s in all, as in bench.sh), the production shape (BENCH_CALLS=2000 allocations at 10 pps for BENCH_CALLS_SECONDS=10,
#   as in bench.sh), the 10,000-allocation hold
#
# The config uses only keys every ferry since the TURN release knows. Everything runs on
# loopback, bounded in time; only processes it started are stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 BASELINE_FERRY [CANDIDATE_FERRY]"; exit 2; }
BASELINE=$1
CANDIDATE=${2:-build/release/server/ferry}
ROUNDS=${BENCH_ROUNDS:-5}
SECS=${BENCH_SECONDS:-5}
WORKLOADS=${BENCH_AB_WORKLOADS:-relay latency calls hold}
CALLS=${BENCH_CALLS:-2000}
CALLS_SECONDS=${BENCH_CALLS_SECONDS:-10}
LOAD=build/release/tools/ferry-load
for b in "$BASELINE" "$CANDIDATE" "$LOAD"; do [ -x "$b" ] || { echo "bench_ab: $b is not built"; exit 1; }; done

WORK=$(mktemp -d)
SERVER_PID=""
ECHO_PID=""
SCRAPE_PID=""
cleanup() {
    for p in $SCRAPE_PID $SERVER_PID $ECHO_PID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
TICKS=$(getconf CLK_TCK)
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
. scripts/lib/bench.sh # free_port, release_ports, cpu_ticks, rss_kb, field, calls_run
# free_port claims its ports for this script's lifetime (tests/integration/free_port.py); a
# workload that is done with a block of echo ports gives it back, or the claims pile up.

PORT=$(free_port)
ECHO_PORT=$(free_port)
cat >"$WORK/ferry.yaml" <<YAML
threads: auto
listen:
  - address: 127.0.0.1
    port: $PORT
    transports: [udp]
turn:
  realm: bench
  users:
    - name: load
      password: load
  allowed_peer_ranges: [127.0.0.0/8]
limits:
  allocations_per_user: 0
  allocations_total: 0
log:
  level: warn
YAML

run() { # NAME BINARY
    "$LOAD" echo --bind "127.0.0.1:$ECHO_PORT" --seconds 300 >"$WORK/echo.out" 2>&1 &
    ECHO_PID=$!
    start "$2"
    # A scrape a second for as long as the server runs (the baseline's admin port, if any, is
    # the same default; curl's failures are ignored).
    (for _ in $(seq 900); do curl -s -o /dev/null --max-time 2 http://127.0.0.1:9641/metrics || true; sleep 1; done) &
    SCRAPE_PID=$!
    local payload mode before after out received
    for payload in $(wants relay && echo 100 1200); do
        for mode in channel send; do
            before=$(cpu_ticks "$SERVER_PID")
            out=$("$LOAD" relay --server "127.0.0.1:$PORT" --peer "127.0.0.1:$ECHO_PORT" --sockets 16 --window 8 \
                --payload "$payload" $([ "$mode" = send ] && echo --send) --seconds "$SECS")
            after=$(cpu_ticks "$SERVER_PID")
            received=$(field received "$out")
            [ "${received:-0}" -gt 0 ] || { echo "bench_ab: $1 relayed nothing: $out"; exit 1; }
            printf '%s\t%s\t%s\n' "$1" "relay $mode ${payload}B CPU us/packet" \
                "$(python3 -c "print(($after - $before) / $TICKS * 1e6 / ($received * 2))")" >>"$RESULTS"
            printf '%s\t%s\t%s\n' "$1" "relay $mode ${payload}B round trips/s" "$(field rate_per_s "$out")" >>"$RESULTS"
        done
    done
    if wants latency; then
        for _ in 1 2 3; do
            out=$("$LOAD" relay --server "127.0.0.1:$PORT" --peer "127.0.0.1:$ECHO_PORT" --sockets 16 --payload 100 \
                --rate 1000 --seconds "$SECS")
            printf '%s\t%s\t%s\n' "$1" "latency 1000 pps p50 us" "$(field p50_us "$out")" >>"$RESULTS"
            printf '%s\t%s\t%s\n' "$1" "latency 1000 pps p99 us" "$(field p99_us "$out")" >>"$RESULTS"
        done
    fi
    if wants calls; then calls "$1"; fi
    kill "$SCRAPE_PID"; wait "$SCRAPE_PID" 2>/dev/null || true; SCRAPE_PID=""
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    kill "$ECHO_PID"; wait "$ECHO_PID" 2>/dev/null || true; ECHO_PID=""
    if wants hold; then hold "$1" "$2" 10000; fi
}

wants() { [[ " $WORKLOADS " == *" $1 "* ]]; }

calls() { # NAME: the production shape, as bench.sh runs it
    calls_run udp "127.0.0.1:$PORT" "$CALLS" 100 "$CALLS_SECONDS" "$SERVER_PID" ||
        { echo "bench_ab: calls failed: $CALLS_OUT"; exit 1; }
    local out=$CALLS_OUT label="calls $CALLS x 10 pps"
    printf '%s\t%s\t%s\n' "$1" "$label CPU us/packet" "$(field server_us_per_packet "$out")" >>"$RESULTS"
    printf '%s\t%s\t%s\n' "$1" "$label loss %" "$(field loss_pct "$out")" >>"$RESULTS"
    printf '%s\t%s\t%s\n' "$1" "$label p50 us" "$(field p50_us "$out")" >>"$RESULTS"
    printf '%s\t%s\t%s\n' "$1" "$label p99 us" "$(field p99_us "$out")" >>"$RESULTS"
}

start() { # BINARY
    "$1" --config "$WORK/ferry.yaml" >"$WORK/ferry.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 50); do
        "$LOAD" binding --server "127.0.0.1:$PORT" --sockets 1 --window 1 --seconds 0.2 2>/dev/null |
            grep -q "received=[1-9]" && return 0
        sleep 0.1
    done
    echo "bench_ab: $1 did not start"; exit 1
}

# hold NAME BINARY N: a fresh server holding N allocations: its RSS, and for a server with an
# admin endpoint, one scrape's latency and the RSS after it.
hold() {
    start "$2"
    local base rss ms after
    base=$(rss_kb "$SERVER_PID")
    "$LOAD" hold --server "127.0.0.1:$PORT" --sockets "$3" --seconds 3 >"$WORK/hold.out" 2>&1 &
    local hold_pid=$!
    for _ in $(seq 300); do grep -q "^ready" "$WORK/hold.out" && break; sleep 0.1; done
    grep -q "^ready" "$WORK/hold.out" || { echo "bench_ab: hold did not get ready: $(cat "$WORK/hold.out")"; exit 1; }
    sleep 1
    rss=$(rss_kb "$SERVER_PID")
    printf '%s\t%s\t%s\n' "$1" "hold $3: RSS KiB" "$rss" >>"$RESULTS"
    printf '%s\t%s\t%s\n' "$1" "hold $3: bytes/allocation" "$(( (rss - base) * 1024 / $3 ))" >>"$RESULTS"
    if ms=$(curl -sf -o "$WORK/metrics.txt" -w '%{time_total}' http://127.0.0.1:9641/metrics); then
        grep -q "^ferry_allocations{transport=\"udp\",family=\"ipv4\"} $3\$" "$WORK/metrics.txt" ||
            { echo "bench_ab: /metrics does not count $3 allocations"; exit 1; }
        after=$(rss_kb "$SERVER_PID")
        printf '%s\t%s\t%s\n' "$1" "hold $3: /metrics scrape ms" "$(python3 -c "print($ms * 1000)")" >>"$RESULTS"
        printf '%s\t%s\t%s\n' "$1" "hold $3: RSS KiB after a scrape" "$after" >>"$RESULTS"
    fi
    wait "$hold_pid"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

echo "bench_ab: baseline $BASELINE, candidate $CANDIDATE: $ROUNDS rounds of ${SECS}s workloads, $(date -u +%Y-%m-%d)"
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order="baseline candidate"; else order="candidate baseline"; fi
    for who in $order; do
        echo "round $round: $who" >&2
        if [ "$who" = baseline ]; then run baseline "$BASELINE"; else run candidate "$CANDIDATE"; fi
    done
done

python3 - "$RESULTS" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(lambda: collections.defaultdict(list))
order = []
for line in open(sys.argv[1]):
    who, metric, value = line.rstrip("\n").split("\t")
    if metric not in order:
        order.append(metric)
    rows[metric][who].append(float(value))
print(f"{'figure (median; min-max)':40} {'baseline':>26} {'candidate':>26} {'cand/base':>10}")
for metric in order:
    b, c = rows[metric]["baseline"], rows[metric]["candidate"]
    num = lambda x: f"{x:.0f}" if abs(x) >= 1000 else f"{x:.2f}"
    fmt = lambda v: f"{num(statistics.median(v))} ({num(min(v))}-{num(max(v))})" if v else "-"
    ratio = f"{statistics.median(c) / statistics.median(b):10.2f}" if b and c and statistics.median(b) else f"{'-':>10}"
    print(f"{metric:40} {fmt(b):>26} {fmt(c):>26} {ratio}")
PY
