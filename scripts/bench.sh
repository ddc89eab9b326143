#!/usr/bin/env bash
# ferry against coturn (Debian's 4.6.1) on the same workloads, on this machine, in one run.
# Each round starts one server, runs every workload with tools/ferry-load, stops it, then
# does the same for the other; the order alternates between rounds. Server CPU is read from
# /proc/PID/stat around each workload, RSS and descriptors from /proc while allocations are
# held. It prints each figure's median over the rounds for both servers and the ratio.
#
#   ./scripts/bench.sh            (after ./scripts/test.sh has built build/release; about 8 minutes)
#   BENCH_CALLS=2000 BENCH_CALLS_SECONDS=10: the production-shape workload (ferry-load calls)
#   BENCH_STREAM_CALLS=1000 BENCH_STREAM_SECONDS=6: the same shape over TURN-TCP and TURN-TLS
#   (one connection per allocation), ChannelData of 100 and 1200 bytes
#   BENCH_ROUNDS=3 BENCH_SECONDS=5 ./scripts/bench.sh
#   BENCH_WORKLOADS="calls tcp tls": only those workloads (default: binding allocation relay
#   latency calls tcp tls hold)
#   BENCH_REDIS=1: a third server, ferry in a fleet (redis: configured, users read from a
#   redis-server this script starts on loopback), beside the other two: what Redis costs
#
# Everything runs on loopback, bounded in time; only processes it started are stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-5}
CALLS=${BENCH_CALLS:-2000}                 # allocations of the production-shape workload
CALLS_SECONDS=${BENCH_CALLS_SECONDS:-10}   # its data phase
STREAM_CALLS=${BENCH_STREAM_CALLS:-1000}   # allocations over TCP and over TLS
STREAM_SECONDS=${BENCH_STREAM_SECONDS:-6}
WORKLOADS=" ${BENCH_WORKLOADS:-binding allocation relay latency calls tcp tls hold} "
want() { [[ "$WORKLOADS" == *" $1 "* ]]; }
LOAD=build/release/tools/ferry-load
FERRY=build/release/server/ferry
if [ ! -x "$LOAD" ] || [ ! -x "$FERRY" ]; then
    cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DFERRY_TESTS=OFF >/dev/null
    cmake --build build/release -j2
fi
command -v turnserver >/dev/null || { echo "bench: coturn's turnserver is not installed (./scripts/test.sh installs it)"; exit 1; }

WORK=$(mktemp -d)
SERVER_PID=""
ECHO_PID=""
REDIS_PID=""
cleanup() {
    for p in $SERVER_PID $ECHO_PID $REDIS_PID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
TICKS=$(getconf CLK_TCK)
THREADS=$(nproc)
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
# A throwaway certificate for the TLS rows (both servers use it; clients do not check it).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=bench \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1

# free_port, release_ports (a workload done with a block of echo ports gives it back, or the
# claims pile up), cpu_ticks, rss_kb, fds, field, calls_run.
. scripts/lib/bench.sh
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; } # server round metric value

# With BENCH_REDIS=1, a redis-server of this script's own holds the fleet's user.
SERVERS="ferry coturn"
if [ "${BENCH_REDIS:-0}" = 1 ]; then
    command -v redis-server >/dev/null || { echo "bench: redis-server is not installed (./scripts/test.sh installs it)"; exit 1; }
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --notify-keyspace-events 'K$gx' >"$WORK/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" PING 2>/dev/null | grep -q PONG && break; sleep 0.1; done
    redis-cli -p "$REDIS_PORT" SET turn/realm/bench/user/load/password load >/dev/null
    SERVERS="ferry ferry-redis coturn"
fi

start_server() { # NAME PORT ADMIN_PORT TLS_PORT
    if [ "$1" = ferry ] || [ "$1" = ferry-redis ]; then
        local users="  users:
    - name: load
      password: load" redis=""
        if [ "$1" = ferry-redis ]; then
            users=""
            redis="redis:
  address: 127.0.0.1:$REDIS_PORT
  instance: bench"
        fi
        cat >"$WORK/ferry.yaml" <<YAML
threads: auto
listen:
  - address: 127.0.0.1
    port: $2
    transports: [udp, tcp]
  - address: 127.0.0.1
    port: $4
    transports: [tls]
tls:
  certificate: $WORK/cert.pem
  private_key: $WORK/key.pem
turn:
  realm: bench
$users
  allowed_peer_ranges: [127.0.0.0/8]
limits:
  allocations_per_user: 0
  allocations_total: 0
  max_tcp_connections_per_ip: 20000
  max_tcp_connections: 20000
log:
  level: warn
admin:
  port: $3
drain_timeout: 0
$redis
YAML
        "$FERRY" --config "$WORK/ferry.yaml" >"$WORK/ferry.log" 2>&1 &
    else
        rm -f "$WORK/coturn.db"
        turnserver --listening-ip=127.0.0.1 --listening-port="$2" --tls-listening-port="$4" --relay-ip=127.0.0.1 \
            --cert="$WORK/cert.pem" --pkey="$WORK/key.pem" --no-dtls \
            --no-cli --lt-cred-mech --user=load:load --realm=bench --allow-loopback-peers \
            --min-port=49152 --max-port=65535 --relay-threads="$THREADS" --no-stdout-log \
            --log-file=/dev/null --simple-log --pidfile="$WORK/coturn.pid" --userdb="$WORK/coturn.db" \
            >"$WORK/coturn.out" 2>&1 &
    fi
    SERVER_PID=$!
    for _ in $(seq 50); do
        if "$LOAD" binding --server "127.0.0.1:$2" --sockets 1 --window 1 --seconds 0.2 2>/dev/null |
            grep -q "received=[1-9]"; then
            # In a fleet, the user exists once Redis has been read.
            [ "$1" != ferry-redis ] || curl -s --max-time 2 "http://127.0.0.1:$3/metrics" | grep -q '^ferry_redis_users 1$' ||
                { sleep 0.1; continue; }
            return 0
        fi
        sleep 0.1
    done
    echo "bench: $1 did not start"; exit 1
}

stop_server() {
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

# measure SERVER ROUND METRIC OPS_PER_UNIT ARGS...: runs one ferry-load workload and records
# its rate, loss, latency and the server's CPU microseconds per operation.
measure() {
    local server=$1 round=$2 metric=$3 per=$4
    shift 4
    local before after out
    before=$(cpu_ticks "$SERVER_PID")
    out=$("$LOAD" "$@")
    after=$(cpu_ticks "$SERVER_PID")
    local received rate loss
    received=$(field received "$out")
    rate=$(field rate_per_s "$out")
    loss=$(field loss_pct "$out")
    record "$server" "$round" "$metric rate/s" "$rate"
    record "$server" "$round" "$metric loss %" "$loss"
    if [ "${received:-0}" -gt 0 ]; then
        record "$server" "$round" "$metric server CPU us/op" \
            "$(python3 -c "print(($after - $before) / $TICKS * 1e6 / ($received * $per))")"
    fi
    if [ "$(field p99_us "$out")" != 0 ] && [[ "$metric" == latency* ]]; then
        record "$server" "$round" "$metric p50 us" "$(field p50_us "$out")"
        record "$server" "$round" "$metric p99 us" "$(field p99_us "$out")"
        # Each run's own figures too: the table shows medians, and one stall moves a p99.
        echo "  $server round $round $metric: p50 $(field p50_us "$out") us, p99 $(field p99_us "$out") us" >&2
    fi
    record "$server" "$round" "$metric load-generator CPU s" "$(field load_cpu_s "$out")"
}

# calls SERVER ROUND: the production shape (ferry-load calls): CALLS allocations, each with its
# own echo peer port, each sending 10 ChannelData packets of 100 bytes a second, open loop; the
# server's CPU over the data phase only, and the load tools' own CPU beside it.
calls() {
    calls_run udp "127.0.0.1:$PORT" "$CALLS" 100 "$CALLS_SECONDS" "$SERVER_PID" ||
        { echo "bench: calls on $1 failed: $CALLS_OUT"; exit 1; }
    local out=$CALLS_OUT label="calls $CALLS x 10 pps"
    record "$1" "$2" "$label server CPU us/packet" "$(field server_us_per_packet "$out")"
    record "$1" "$2" "$label loss %" "$(field loss_pct "$out")"
    record "$1" "$2" "$label p50 us" "$(field p50_us "$out")"
    record "$1" "$2" "$label p99 us" "$(field p99_us "$out")"
    record "$1" "$2" "$label load-generator CPU s" "$(field load_cpu_s "$out")"
    record "$1" "$2" "$label echo peer CPU s" "$(field echo_cpu_s "$out")"
}

# stream_calls SERVER ROUND tcp|tls PAYLOAD: the production shape over TURN-TCP or TURN-TLS,
# STREAM_CALLS connections with one allocation each.
stream_calls() {
    local port=$PORT ok=yes
    [ "$3" = tls ] && port=$TLS_PORT
    local label="$3 calls $STREAM_CALLS x 10 pps ${4}B"
    calls_run "$3" "127.0.0.1:$port" "$STREAM_CALLS" "$4" "$STREAM_SECONDS" "$SERVER_PID" || ok=""
    local out=$CALLS_OUT
    # A server that refuses part of the set-up (coturn has answered 437 to a reused client port)
    # is reported, and the run goes on without that row.
    [ -n "$ok" ] || { echo "bench: $label on $1 (round $2) failed: $out" >&2; record "$1" "$2" "$label set-up failures" 1; return 0; }
    record "$1" "$2" "$label server CPU us/packet" "$(field server_us_per_packet "$out")"
    record "$1" "$2" "$label loss %" "$(field loss_pct "$out")"
    record "$1" "$2" "$label p99 us" "$(field p99_us "$out")"
}

hold() { # SERVER ROUND N
    local base out
    base=$(rss_kb "$SERVER_PID")
    "$LOAD" hold --server "127.0.0.1:$PORT" --sockets "$3" --seconds 3 >"$WORK/hold.out" 2>&1 &
    local hold_pid=$!
    for _ in $(seq 300); do grep -q "^ready" "$WORK/hold.out" && break; sleep 0.1; done
    grep -q "^ready" "$WORK/hold.out" || { echo "bench: hold $3 did not get ready: $(cat "$WORK/hold.out")"; exit 1; }
    sleep 1
    local rss fd
    rss=$(rss_kb "$SERVER_PID")
    fd=$(fds "$SERVER_PID")
    if [ "$1" = ferry ]; then
        # The admin endpoint at this size: one scrape's latency, and what it left in RSS.
        local ms after
        ms=$(curl -s -o "$WORK/metrics.txt" -w '%{time_total}' "http://127.0.0.1:$ADMIN_PORT/metrics")
        grep -q '^ferry_allocations{transport="udp",family="ipv4"}' "$WORK/metrics.txt" ||
            { echo "bench: /metrics answered no allocation count"; exit 1; }
        after=$(rss_kb "$SERVER_PID")
        record "$1" "$2" "hold $3: /metrics scrape ms" "$(python3 -c "print(round($ms * 1000, 2))")"
        record "$1" "$2" "hold $3: RSS KiB added by a scrape" "$((after - rss))"
    fi
    wait "$hold_pid"
    record "$1" "$2" "hold $3: RSS KiB" "$rss"
    record "$1" "$2" "hold $3: bytes/allocation" "$(( (rss - base) * 1024 / $3 ))"
    record "$1" "$2" "hold $3: file descriptors" "$fd"
}

run_server() { # NAME ROUND
    PORT=$(free_port)
    ADMIN_PORT=$(free_port)
    TLS_PORT=$(free_port)
    local echo_port
    echo_port=$(free_port)
    "$LOAD" echo --bind "127.0.0.1:$echo_port" --seconds 600 >"$WORK/echo.out" 2>&1 &
    ECHO_PID=$!
    start_server "$1" "$PORT" "$ADMIN_PORT" "$TLS_PORT"
    local s=127.0.0.1:$PORT peer=127.0.0.1:$echo_port
    if want binding; then measure "$1" "$2" "binding" 1 binding --server "$s" --sockets 64 --window 8 --seconds "$SECS"; fi
    if want allocation; then measure "$1" "$2" "allocation" 1 allocate --server "$s" --seconds "$SECS"; fi
    # A relayed round trip is two relayed packets: client->peer and peer->client.
    if want relay; then for payload in 100 1200; do
        measure "$1" "$2" "relay ChannelData ${payload}B" 2 relay --server "$s" --peer "$peer" --sockets 16 --window 8 --payload "$payload" --seconds "$SECS"
        measure "$1" "$2" "relay Send ${payload}B" 2 relay --server "$s" --peer "$peer" --sockets 16 --window 8 --payload "$payload" --send --seconds "$SECS"
    done; fi
    # Light-load latency here is mostly where the scheduler puts four processes on two shared
    # vCPUs, and one host stall can move a p99: three runs per round, each recorded.
    if want latency; then for _ in 1 2 3; do
        measure "$1" "$2" "latency 1000 pps" 2 relay --server "$s" --peer "$peer" --sockets 16 --payload 100 --rate 1000 --seconds "$SECS"
    done; fi
    # The production shape last, so the rows above run as they always have.
    if want calls; then calls "$1" "$2"; fi
    for via in tcp tls; do
        if want "$via"; then for payload in 100 1200; do stream_calls "$1" "$2" "$via" "$payload"; done; fi
    done
    # Memory is measured on a fresh server, so that heap kept from the workloads above (coturn
    # reuses it) does not hide what holding allocations costs.
    stop_server
    if want hold; then
        start_server "$1" "$PORT" "$ADMIN_PORT" "$TLS_PORT"
        hold "$1" "$2" 1000
        hold "$1" "$2" 10000
        stop_server
    fi
    kill "$ECHO_PID"; wait "$ECHO_PID" 2>/dev/null || true; ECHO_PID=""
}

echo "ferry vs coturn $(turnserver --version 2>/dev/null | head -1 || true): $ROUNDS rounds of ${SECS}s workloads, $THREADS cores, $(date -u +%Y-%m-%d)"
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order=$SERVERS; else order=$(tr ' ' '\n' <<<"$SERVERS" | tac | tr '\n' ' '); fi
    for server in $order; do
        echo "round $round: $server" >&2
        run_server "$server" "$round"
    done
done

python3 - "$RESULTS" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(lambda: collections.defaultdict(list))
order = []
for line in open(sys.argv[1]):
    server, rnd, metric, value = line.rstrip("\n").split("\t")
    if metric not in order:
        order.append(metric)
    rows[metric][server].append(float(value))
fleet = any(rows[m]["ferry-redis"] for m in order)
med = lambda m, s: statistics.median(rows[m][s]) if rows[m][s] else float("nan")
head = f"{'figure (median)':44} {'ferry':>12} {'coturn':>12} {'ferry/coturn':>13}"
print(head + (f" {'ferry+redis':>12} {'+redis/ferry':>13}" if fleet else ""))
for metric in order:
    f, c = med(metric, "ferry"), med(metric, "coturn")
    ratio = f / c if c else float("nan")
    line = f"{metric:44} {f:12.2f} {c:12.2f} {ratio:13.2f}"
    if fleet:
        r = med(metric, "ferry-redis")
        line += f" {r:12.2f} {(r / f if f else float('nan')):13.2f}"
    print(line)
PY
