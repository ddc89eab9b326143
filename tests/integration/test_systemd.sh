#!/usr/bin/env bash
# systemd: conf/ferry.service passes `systemd-analyze verify` without a word, and ferry speaks
# the service protocol to a NOTIFY_SOCKET this test owns: READY=1 once serving, WATCHDOG=1 at
# half the WATCHDOG_USEC interval, RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on
# SIGTERM, and STATUS= lines along the way. Without NOTIFY_SOCKET ferry runs as before (every
# other test).
. "$(dirname "$0")/lib.sh"
UNIT="$HERE/../../conf/ferry.service"

# The unit as shipped, with its two paths pointed at this build so that verify can check them.
sed -e "s|/usr/local/bin/ferry|$(readlink -f "$FERRY_BIN")|g" -e "s|/etc/ferry/ferry.yaml|$HERE/../../conf/ferry.yaml|g" \
    "$UNIT" >"$WORK/ferry.service"
out=$(systemd-analyze verify "$WORK/ferry.service" 2>&1) || fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify has remarks: $out"
for key in "Type=notify" "WatchdogSec=" "ExecReload=" "User=ferry" "AmbientCapabilities=CAP_NET_BIND_SERVICE" \
           "CapabilityBoundingSet=CAP_NET_BIND_SERVICE" "NoNewPrivileges=yes" "ProtectSystem=strict" \
           "RestrictAddressFamilies=" "SystemCallFilter=@system-service" "LimitNOFILE="; do
    grep -q "^$key" "$UNIT" || fail "the unit lacks $key"
done
pass "systemd-analyze verify conf/ferry.service: clean; Type=notify, watchdog, reload, non-root, hardened"

PORT=$(free_port)
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
turn:
  users: [{name: ninefingers, password: youhavetoberealistic}]
YAML
python3 "$HERE/ops.py" notify --socket "$WORK/notify.sock" --seconds 8 >"$WORK/notify.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q listening "$WORK/notify.out" && break; sleep 0.1; done
NOTIFY_SOCKET="$WORK/notify.sock" WATCHDOG_USEC=400000 start_ferry "$WORK/ferry.yaml"
sleep 2
kill -HUP "$FERRY_PID"
sleep 1.5
stop_ferry
sleep 0.3
lines=$(cat "$WORK/notify.out")
grep -q "READY=1|STATUS=0 allocations" <<<"$lines" || fail "no READY=1 with STATUS: $lines"
python3 - "$WORK/notify.out" <<'PY' || fail "watchdog pings not at half of 400 ms: $lines"
import sys
times = [float(l.split(" ")[0]) for l in open(sys.argv[1]) if "WATCHDOG=1" in l]
gaps = [b - a for a, b in zip(times, times[1:])]
# 200 ms apart, give or take a busy machine; at least 5 of them in the 2 s before the reload.
sys.exit(0 if len(times) >= 5 and all(0.1 <= g <= 0.4 for g in gaps[:5]) else 1)
PY
reload=$(grep -n "RELOADING=1|MONOTONIC_USEC=" <<<"$lines" | head -1 | cut -d: -f1)
[ -n "$reload" ] || fail "no RELOADING=1 with MONOTONIC_USEC: $lines"
tail -n +"$reload" <<<"$lines" | sed -n 2p | grep -q " READY=1|STATUS=" || fail "no READY=1 right after RELOADING=1: $lines"
grep -q "STOPPING=1" <<<"$lines" || fail "no STOPPING=1: $lines"
pass "NOTIFY_SOCKET: READY=1, WATCHDOG=1 every ~200 ms, RELOADING=1 then READY=1, STOPPING=1"
