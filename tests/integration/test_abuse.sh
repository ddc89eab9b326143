#!/usr/bin/env bash
# The abuse controls against real clients, each limit exceeded by one client while another,
# within it, loses nothing (loopback addresses 127.0.0.x stand in for separate clients;
# exempt_sources is emptied so that loopback is limited like any address):
#   - limits.unauthenticated_rate: a flood of unauthenticated Allocates from one address gets
#     no more answers than its budget, while turnutils_uclient at another address relays all;
#   - limits.allocations_per_ip: the fourth allocation from one address gets 486, another
#     address still allocates;
#   - limits.allocation_bytes_per_second: turnutils_uclient sending far above the cap loses
#     packets (counted as bandwidth drops), one below it loses none; the same for
#     limits.relay_bytes_per_second, the total.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
PEER=$(free_port)
ADMIN=$(free_port)
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 0.0.0.0
    port: $PORT
    transports: [udp]
turn:
  realm: abuse.test
  users:
    - name: ninefingers
      password: youhavetoberealistic
  allowed_peer_ranges: [127.0.0.0/8]
limits:
  unauthenticated_rate: 2
  unauthenticated_burst: 10
  allocations_per_ip: 3
  allocation_bytes_per_second: 50000
  exempt_sources: []
admin:
  address: 127.0.0.1
  port: $ADMIN
log:
  level: info
YAML
start_ferry "$WORK/ferry.yaml"
turnutils_peer -L 127.0.0.1 -p "$PEER" >"$WORK/peer.log" 2>&1 &
PIDS+=($!)
sleep 0.3
OPS="python3 $HERE/ops.py"
metric() { curl -fs "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

# uclient NAME ARGS...: one turnutils_uclient run (1 client) to turnutils_peer; prints its loss line.
uclient() {
    timeout 60 turnutils_uclient -p "$PORT" -m 1 -u ninefingers -w youhavetoberealistic -e 127.0.0.1 \
        -r "$PEER" "$@" 127.0.0.1 >"$WORK/uclient.out" 2>&1 || fail "turnutils_uclient $* failed: $(tail -3 "$WORK/uclient.out")"
    grep -E "Total lost packets" "$WORK/uclient.out" | tail -1
}

# 1. The unauthenticated-answer limit. 200 unanswerable Allocates from 127.0.0.3: the budget is
# 10 at once and 2 a second, for the address, whichever worker thread its ports reach.
out=$(timeout 20 $OPS flood --host 127.0.0.1 --port "$PORT" --source 127.0.0.3 --count 200)
answered=${out#answered=}
[ "$answered" -ge 8 ] && [ "$answered" -le 14 ] || fail "flood: $out answers to 200 unauthenticated requests, expected 10-14"
limited=$(metric 'ferry_dropped_total{reason="unauthenticated_rate"}')
[ "${limited:-0}" -ge 180 ] || fail "flood: ${limited:-none} unanswered in the metrics"
# Another port of the same address (maybe another worker thread) shares the spent budget.
out=$(timeout 20 $OPS flood --host 127.0.0.1 --port "$PORT" --source 127.0.0.3 --count 20)
[ "${out#answered=}" -le 4 ] || fail "a new port of the flooding address was answered afresh: $out"
pass "200 unauthenticated Allocates from one address: $answered answered, $limited left unanswered; a new port got ${out#answered=}"
# A client at another address, meanwhile, is served as ever.
line=$(uclient -n 100 -l 120 -z 5)
grep -q "Total lost packets 0 (0.000000%)" <<<"$line" || fail "the client beside the flood lost packets: $line"
out=$(timeout 20 $OPS allocate --host 127.0.0.1 --port "$PORT" --source 127.0.0.3 --user ninefingers --password youhavetoberealistic)
[ "$out" = "code=200" ] || fail "the flooder's budget did not refill: $out"
pass "turnutils_uclient beside the flood relayed 200 of 200; the flooding address, quiet since, allocates again"

# 2. Allocations per address: three held from 127.0.0.4, the fourth refused with 486.
for i in 1 2 3; do
    $OPS hold --host 127.0.0.1 --port "$PORT" --source 127.0.0.4 --user ninefingers --password youhavetoberealistic \
        --seconds 30 >"$WORK/hold$i.out" 2>&1 &
    PIDS+=($!)
done
for _ in $(seq 50); do
    [ "$(cat "$WORK"/hold*.out | grep -c allocated)" -eq 3 ] && break
    sleep 0.1
done
[ "$(cat "$WORK"/hold*.out | grep -c allocated)" -eq 3 ] || fail "three holds from 127.0.0.4 did not all allocate: $(cat "$WORK"/hold*.out)"
out=$(timeout 20 $OPS allocate --host 127.0.0.1 --port "$PORT" --source 127.0.0.4 --user ninefingers --password youhavetoberealistic)
[ "$out" = "code=486" ] || fail "the fourth allocation from one address: $out, expected 486"
out=$(timeout 20 $OPS allocate --host 127.0.0.1 --port "$PORT" --source 127.0.0.5 --user ninefingers --password youhavetoberealistic)
[ "$out" = "code=200" ] || fail "another address, same user: $out, expected 200"
[ "$(metric 'ferry_dropped_total{reason="quota_ip"}')" = 1 ] || fail "quota_ip not counted"
grep -q "its address holds 3 allocations already" "$WORK/ferry.log" || fail "the per-address refusal was not logged"
pass "allocations_per_ip 3: the fourth from 127.0.0.4 got 486, 127.0.0.5 allocated"

# 3. Bandwidth: 50,000 bytes a second per allocation and direction. turnutils_uclient leaves
# allocations behind at 127.0.0.1, so the per-address limit is lifted first, by a reload.
sed -i 's/allocations_per_ip: 3/allocations_per_ip: 0/' "$WORK/ferry.yaml"
kill -HUP "$FERRY_PID"
for _ in $(seq 50); do
    [ "$(metric 'ferry_config_reloads_total{result="applied"}')" = 1 ] && break
    sleep 0.1
done
[ "$(metric 'ferry_config_reloads_total{result="applied"}')" = 1 ] || fail "the reload was not applied"
line=$(uclient -n 100 -l 300 -z 20)
grep -q "Total lost packets 0 (0.000000%)" <<<"$line" || fail "a client under the bandwidth cap lost packets: $line"
pass "15 kB/s each way under a 50 kB/s cap: $line"
before=$(metric 'ferry_dropped_total{reason="bandwidth"}')
line=$(uclient -n 300 -l 1000 -z 2)
lost=$(sed -n 's/.*Total lost packets \([0-9]*\).*/\1/p' <<<"$line")
sent=$(sed -n 's/.*tot_send_msgs=\([0-9]*\),.*/\1/p' "$WORK/uclient.out" | tail -1)
[ "${lost:-0}" -ge 100 ] || fail "a client at 500 kB/s lost only ${lost:-0} of ${sent:-?} under a 50 kB/s cap: $line"
after=$(metric 'ferry_dropped_total{reason="bandwidth"}')
[ $((after - before)) -ge 100 ] || fail "bandwidth drops counted: $before -> $after"
grep -q "over the bandwidth cap dropped" "$WORK/ferry.log" || fail "bandwidth drops were not logged"
pass "500 kB/s against a 50 kB/s cap: $lost of $sent lost, $((after - before)) counted as bandwidth drops"

# 4. The total relay cap: per-allocation caps off, 100 kB/s for everything (50 kB/s per worker
# thread), applied by a reload. Under it nothing is lost; far above it, drops.
sed -i 's/allocation_bytes_per_second: 50000/allocation_bytes_per_second: 0\n  relay_bytes_per_second: 100000/' "$WORK/ferry.yaml"
kill -HUP "$FERRY_PID"
for _ in $(seq 50); do
    [ "$(metric 'ferry_config_reloads_total{result="applied"}')" = 2 ] && break
    sleep 0.1
done
[ "$(metric 'ferry_config_reloads_total{result="applied"}')" = 2 ] || fail "the second reload was not applied"
line=$(uclient -n 40 -l 300 -z 20)
grep -q "Total lost packets 0 (0.000000%)" <<<"$line" || fail "a client under the total cap lost packets: $line"
before=$(metric 'ferry_dropped_total{reason="bandwidth"}')
line=$(uclient -n 300 -l 1000 -z 2)
lost=$(sed -n 's/.*Total lost packets \([0-9]*\).*/\1/p' <<<"$line")
after=$(metric 'ferry_dropped_total{reason="bandwidth"}')
[ "${lost:-0}" -ge 100 ] && [ $((after - before)) -ge 100 ] ||
    fail "500 kB/s under a 100 kB/s total cap: lost ${lost:-0}, drops counted $before -> $after"
pass "relay_bytes_per_second 100 kB/s: 15 kB/s loses nothing; 500 kB/s loses $lost, $((after - before)) counted"
