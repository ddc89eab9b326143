#!/usr/bin/env bash
# SIGHUP re-reads the YAML and applies it at once while a relay runs: a user added, a password
# changed and a limit tightened take effect for new requests and the relay loses nothing;
# removing the user of a relaying allocation ends it within a second; a broken file is refused
# with one line naming file and line, and the running configuration keeps serving; a listener
# change is logged as needing a restart.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
PEER=$(free_port)
ADMIN=$(free_port)
write_config() { # USERS-YAML ALLOCATIONS-PER-USER [PORT]
    cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: ${3:-$PORT}
    transports: [udp, tcp]
turn:
  users:
$1
  allowed_peer_ranges: [127.0.0.0/8]
limits:
  allocations_per_user: $2
admin:
  port: $ADMIN
drain_timeout: 0
YAML
}
users_before='    - {name: ninefingers, password: youhavetoberealistic}
    - {name: bob, password: builder}'
users_after='    - {name: ninefingers, password: youhavetoberealistic}
    - {name: bob, password: rebuilt}
    - {name: carol, password: singer}'
write_config "$users_before" 10
start_ferry "$WORK/ferry.yaml"
turnutils_peer -L 127.0.0.1 -p "$PEER" >"$WORK/peer.log" 2>&1 &
PIDS+=($!)
alloc() { timeout 10 python3 "$HERE/ops.py" allocate --port "$PORT" --user "$1" --password "$2"; }
metric() { curl -s --max-time 3 "http://127.0.0.1:$ADMIN/metrics" | sed -n "s/^$1 //p"; }
reloaded() { # N: waits until N reloads were applied or refused
    for _ in $(seq 50); do
        [ $(( $(metric 'ferry_config_reloads_total{result="applied"}') + $(metric 'ferry_config_reloads_total{result="refused"}') )) -ge "$1" ] && return 0
        sleep 0.1
    done
    fail "reload $1 not seen"
}

[ "$(alloc carol singer)" = "code=401" ] || fail "carol exists before the reload"
[ "$(alloc bob builder)" = "code=200" ] || fail "bob cannot allocate before the reload"

# A relay runs across the reload: 250 messages 20 ms apart over UDP.
timeout 60 turnutils_uclient -p "$PORT" -n 250 -l 120 -m 1 -c -z 20 -r "$PEER" \
    -u ninefingers -w youhavetoberealistic -e 127.0.0.1 127.0.0.1 >"$WORK/uclient.out" 2>&1 &
UCLIENT=$!
PIDS+=("$UCLIENT")
sleep 1.5
write_config "$users_after" 1
kill -HUP "$FERRY_PID"
reloaded 1
[ "$(alloc carol singer)" = "code=200" ] || fail "the added user cannot allocate"
[ "$(alloc bob builder)" = "code=401" ] || fail "bob's old password still works"
[ "$(alloc bob rebuilt)" = "code=486" ] || fail "bob's new password, over the tightened limit of 1 (he holds one): want 486, got $(alloc bob rebuilt)"
[ "$(alloc carol singer)" = "code=486" ] || fail "the tightened allocations_per_user did not apply to carol's second allocation"
pass "after SIGHUP: user added (200), password changed (old 401), allocations_per_user 10 -> 1 (486)"
rc=0
wait "$UCLIENT" || rc=$?
grep -q "tot_send_msgs=250, tot_recv_msgs=250" "$WORK/uclient.out" && grep -q "Total lost packets 0 (0.000000%)" "$WORK/uclient.out" ||
    fail "the relay across the reload lost packets: $(grep -E 'tot_|lost' "$WORK/uclient.out" | tail -2)"
pass "the relay running across the reload: 250 sent, 250 received, 0 lost"

# Revocation: remove the user of a live, relaying allocation.
timeout 60 turnutils_uclient -p "$PORT" -n 2000 -l 120 -m 1 -c -z 20 -r "$PEER" \
    -u ninefingers -w youhavetoberealistic -e 127.0.0.1 127.0.0.1 >"$WORK/uclient2.out" 2>&1 &
PIDS+=($!)
before=$(grep -c "allocation created: user 'ninefingers'" "$WORK/ferry.log")
for _ in $(seq 100); do [ "$(grep -c "allocation created: user 'ninefingers'" "$WORK/ferry.log")" -gt "$before" ] && break; sleep 0.05; done
sleep 1
live=$(metric 'ferry_allocations{transport="udp",family="ipv4"}')
write_config '    - {name: bob, password: rebuilt}
    - {name: carol, password: singer}' 1
kill -HUP "$FERRY_PID"
reloaded 2
sleep 1
revoked=$(grep -c "user=ninefingers .*reason=revoked" "$WORK/ferry.log" || true)
[ "$revoked" -ge 1 ] || fail "no allocation of the removed user was revoked"
python3 - "$WORK/ferry.log" <<'PY' || fail "revocation took longer than a second"
import re, sys, datetime
t = lambda line: datetime.datetime.fromisoformat(line.split(" ")[0].rstrip("Z"))
lines = open(sys.argv[1]).read().splitlines()
applied = [t(l) for l in lines if "reload: applied" in l][-1]
ended = [t(l) for l in lines if "reason=revoked" in l]
sys.exit(0 if ended and max(ended) - applied <= datetime.timedelta(seconds=1) else 1)
PY
left=$(metric 'ferry_allocations{transport="udp",family="ipv4"}')
[ "$left" -eq $((live - revoked)) ] || fail "allocations: $live before, $revoked revoked, $left left"
[ "$(metric ferry_allocations_revoked_total)" = "$revoked" ] || fail "revocations not counted"
pass "removing the relaying user ended its $revoked allocation(s) within a second ($live live before, $left after)"

# A broken file is refused, naming file and line; the running configuration keeps serving.
cp "$WORK/ferry.yaml" "$WORK/good.yaml"
sed -i 's/allocations_per_user: 1/allocations_per_user: lots/' "$WORK/ferry.yaml"
kill -HUP "$FERRY_PID"
reloaded 3
grep -qE "reload refused, the running configuration stays: .*ferry.yaml:[0-9]+: " "$WORK/ferry.log" ||
    fail "no refusal naming file and line: $(grep reload "$WORK/ferry.log" | tail -2)"
[ "$(metric 'ferry_config_reloads_total{result="refused"}')" = 1 ] || fail "the refusal was not counted"
[ "$(alloc bob rebuilt)" = "code=486" ] || fail "after a refused reload, the running limits changed"
[ "$(alloc carol singer)" = "code=486" ] && [ "$(alloc bob builder)" = "code=401" ] || fail "after a refused reload, the running users changed"
pass "a broken file is refused with file and line; the running configuration serves on"

# What only a restart can change is said, never silently dropped.
write_config '    - {name: bob, password: rebuilt}' 1 $((PORT + 1))
kill -HUP "$FERRY_PID"
reloaded 4
grep -q "reload: 'listen' changed; it takes effect after a restart" "$WORK/ferry.log" || fail "a listener change was not logged"
probe binding --host 127.0.0.1 --port "$PORT" >/dev/null || fail "the running listener stopped"
pass "a listener change is logged as needing a restart; the running listener serves on"
stop_ferry
