# Helpers the benchmark scripts share (bench.sh, bench_ab.sh, soak.sh); sourced from the
# repository's root, after WORK (a scratch directory) is set. Loopback only.

LOAD=${LOAD:-build/release/tools/ferry-load}

# free_port [N]: N free consecutive ports, claimed for this script's lifetime
# (tests/integration/free_port.py); release_ports FIRST N gives a block back.
free_port() { python3 tests/integration/free_port.py "${1:-1}"; }
release_ports() { local p; for p in $(seq "$1" $(($1 + $2 - 1))); do rm -f "/tmp/ferry-test-ports/$p"; done; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system, in clock ticks
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; } # KEY TEXT: a key=value figure of ferry-load's

# calls_run TRANSPORT SERVER N PAYLOAD SECONDS SERVER_PID: the production shape (ferry-load
# calls): N allocations over TRANSPORT (udp, tcp, tls) to SERVER (IP:PORT), each with its own
# echo peer port, 10 packets of PAYLOAD bytes a second each, open loop, the server's CPU over
# the data phase. Sets CALLS_OUT to ferry-load's output; returns its exit status.
calls_run() {
    local first echo_pid rc=0
    first=$(free_port "$3")
    "$LOAD" echo --bind "127.0.0.1:$first" --ports "$3" --seconds 120 >"$WORK/echo-calls.out" 2>&1 &
    echo_pid=$!
    for _ in $(seq 50); do grep -q "^echo ready" "$WORK/echo-calls.out" && break; sleep 0.1; done
    CALLS_OUT=$("$LOAD" calls --transport "$1" --server "$2" --peer "127.0.0.1:$first" --sockets "$3" --rate 10 \
        --payload "$4" --seconds "$5" --setup-rate 500 --server-pid "$6" --echo-pid "$echo_pid" 2>&1) || rc=$?
    kill "$echo_pid"
    wait "$echo_pid" 2>/dev/null || true
    release_ports "$first" "$3"
    return "$rc"
}
