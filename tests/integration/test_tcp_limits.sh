#!/usr/bin/env bash
# Stream limits with real connections: 1,000 idle TCP connections (half of them holding a
# partial frame) are all closed by the idle timeout while UDP and TCP Binding requests keep
# being answered; a TURN-over-TCP client that stops reading while its peer floods it is cut
# off once its queue passes limits.tcp_buffer_bytes, instead of growing the server's memory.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
turn:
  users:
    - name: reader
      password: slow
  allowed_peer_ranges: [127.0.0.0/8]
limits:
  tcp_idle_timeout: 2
  max_tcp_connections_per_ip: 2000
  tcp_buffer_bytes: 100000
YAML
start_ferry "$WORK/ferry.yaml"

probe idle --port "$PORT" --count 500 --bytes 0 >"$WORK/idle0.out" &
IDLE0=$!
probe idle --port "$PORT" --count 500 --bytes 10 >"$WORK/idle1.out" &
IDLE1=$!
sleep 1
for i in 1 2 3; do
    probe binding --port "$PORT" >/dev/null || fail "UDP binding while 1000 connections sit idle"
    probe binding --port "$PORT" --tcp >/dev/null || fail "TCP binding while 1000 connections sit idle"
done
wait "$IDLE0" || fail "idle probe failed: $(cat "$WORK/idle0.out")"
wait "$IDLE1" || fail "idle probe failed: $(cat "$WORK/idle1.out")"
for f in idle0 idle1; do
    out=$(cat "$WORK/$f.out")
    [[ "$out" == closed=500\ of=500* ]] || fail "idle connections not all closed: $out"
done
pass "1000 idle TCP connections (500 with a partial frame) closed by the 2 s idle timeout: $(cat "$WORK/idle1.out"); Binding answered meanwhile"

out=$(timeout 60 python3 "$HERE/stun_probe.py" slowreader --port "$PORT" --user reader --password slow) ||
    fail "slow-reader probe failed: $out"
[[ "$out" == closed* ]] || fail "a client that does not read was not cut off: $out"
grep -q "reads too slowly" "$WORK/ferry.log" || fail "no log line for the slow reader"
pass "a TURN/TCP client that stops reading is cut off ($out)"
probe binding --port "$PORT" --tcp >/dev/null || fail "TCP binding after the slow reader"
stop_ferry
