# Shared by the integration tests: start the real ferry binary on free loopback ports, stop it
# by PID on exit, and fail with the server's log tail. Sourced, not run.
set -euo pipefail

: "${FERRY_BIN:?FERRY_BIN must name the ferry binary}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d)
PIDS=()

NETNS="" # network namespaces a test made, deleted on exit
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        [ -n "$p" ] || continue
        kill "$p" 2>/dev/null || true
        kill -INT "$p" 2>/dev/null || true # a draining ferry stops at once on SIGINT
        wait "$p" 2>/dev/null || true
    done
    for p in $NETNS; do ip netns del "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    if [ -f "$WORK/ferry.log" ]; then
        echo "--- ferry log (last 30 lines) ---" >&2
        tail -30 "$WORK/ferry.log" >&2
    fi
    exit 1
}
pass() { echo "ok: $*"; }

# free_port [N]: a port P such that P..P+N-1 are free for UDP and TCP on 127.0.0.1 and ::1,
# claimed for this test ($$, the script's PID even inside $(...)) so no parallel test gets it.
free_port() { python3 "$HERE/free_port.py" "${1:-1}" "$$"; }

have_ipv6() { python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; }

# start_ferry CONFIG: runs ferry in the background and waits for its start-up line. A config
# that does not mention them gets the admin endpoint off (tests run in parallel; the default
# port is one) and drain_timeout 0 (stop_ferry's SIGTERM then stops at once).
start_ferry() {
    grep -q '^admin:' "$1" || printf '\nadmin:\n  enabled: false\n' >>"$1"
    grep -q '^drain_timeout:' "$1" || printf '\ndrain_timeout: 0\n' >>"$1"
    "$FERRY_BIN" --config "$1" >"$WORK/ferry.log" 2>&1 &
    FERRY_PID=$!
    PIDS+=("$FERRY_PID")
    local i
    for i in $(seq 100); do
        grep -q " started: " "$WORK/ferry.log" && return 0
        kill -0 "$FERRY_PID" 2>/dev/null || fail "ferry exited during start-up"
        sleep 0.1
    done
    fail "ferry did not start within 10 s"
}

# stop_ferry: SIGTERM, and the exit code must be 0.
stop_ferry() {
    kill -TERM "$FERRY_PID"
    local rc=0
    wait "$FERRY_PID" || rc=$?
    # Forget only ferry: the cleanup trap must still stop the test's other processes (peers).
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$FERRY_PID" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    [ "$rc" -eq 0 ] || fail "ferry exited with $rc after SIGTERM"
    grep -q "stopped:" "$WORK/ferry.log" || fail "no 'stopped' line after SIGTERM"
}

probe() { timeout 10 python3 "$HERE/stun_probe.py" "$@"; }

# uclient_zero_loss LABEL COUNT ARGS...: runs turnutils_uclient ARGS (bounded by timeout) and
# fails unless COUNT messages went out, COUNT came back and none was lost.
uclient_zero_loss() {
    local label=$1 count=$2 out
    shift 2
    out=$(timeout 60 turnutils_uclient "$@" 2>&1) || fail "$label: turnutils_uclient failed: $(tail -3 <<<"$out")"
    grep -q "tot_send_msgs=$count, tot_recv_msgs=$count" <<<"$out" && grep -q "Total lost packets 0 (0.000000%)" <<<"$out" ||
        fail "$label: $(grep -E 'tot_|lost' <<<"$out" | tail -2)"
    pass "$label: $count sent, $count received, 0 lost"
}

# make_cert NAME: a self-signed P-256 certificate for 127.0.0.1 in $WORK/NAME.crt and NAME.key.
make_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -keyout "$WORK/$1.key" -out "$WORK/$1.crt" -subj "/CN=$1" \
        -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null || fail "openssl could not make a certificate"
}
