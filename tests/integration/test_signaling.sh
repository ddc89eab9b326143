#!/usr/bin/env bash
# The signaling service with a WebSocket client we did not write (Python's websockets, Debian's
# python3-websockets): two members join a room with a join token and exchange 200 messages
# each way in order; the iceServers of the join answer carry a TURN credential that
# turnutils_uclient then relays with; every misuse gets its defined answer; join tokens that are
# missing, expired, forged or for another room are refused; and 1,000 idle connections are
# accepted, pinged and closed after idle_timeout while TURN keeps relaying.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3 # Debian's, which has python3-websockets
$PY -c 'import websockets' 2>/dev/null || fail "python3-websockets is missing (scripts/test.sh installs it)"

PORT=$(free_port)
SIG=$(free_port)
PEER=$(free_port)
SECRET=join-token-secret-for-tests
TURN_SECRET=rest-secret-for-tests
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
    transports: [udp, tcp]
turn:
  realm: signaling.test
  static_auth_secrets: [$TURN_SECRET]
  allowed_peer_ranges: [127.0.0.0/8]
signaling:
  address: 127.0.0.1
  port: $SIG
  token_secrets: [$SECRET]
  members_per_room: 2
  messages_per_second: 100
  connections_per_ip: 1000
  idle_timeout: 5
log:
  level: info
YAML
start_ferry "$WORK/ferry.yaml"
grep -q "signaling ws://127.0.0.1:$SIG/ws" "$WORK/ferry.log" || fail "no signaling listener in the start line"
turnutils_peer -L 127.0.0.1 -p "$PEER" >"$WORK/peer.log" 2>&1 &
PIDS+=($!)
CLIENT="$PY $HERE/signaling_client.py"
URL="ws://127.0.0.1:$SIG/ws"

out=$(timeout 90 $CLIENT pair "$URL" standup "$SECRET" "$TURN_SECRET") || fail "pair: $out"
grep -q "^ok: " <<<"$out" || fail "pair: $out"
pass "$(grep '^ok: ' <<<"$out" | cut -c5-)"
user=$(sed -n 's/^user=\([^ ]*\) .*/\1/p' <<<"$out")
credential=$(sed -n 's/.* credential=\(.*\)$/\1/p' <<<"$out")

# The credential from the join answer works: turnutils_uclient relays with it.
timeout 60 turnutils_uclient -p "$PORT" -n 50 -m 1 -l 120 -z 5 -u "$user" -w "$credential" -e 127.0.0.1 \
    -r "$PEER" 127.0.0.1 >"$WORK/uclient.out" 2>&1 || fail "turnutils_uclient with the signaling credential: $(tail -3 "$WORK/uclient.out")"
grep -q "Total lost packets 0 (0.000000%)" "$WORK/uclient.out" || fail "relay with the signaling credential lost packets"
pass "turnutils_uclient relayed with the TURN credential from the join answer ($user)"

out=$(timeout 90 $CLIENT abuse "$URL" "$SECRET") || fail "abuse: $out"
pass "$(cut -c5- <<<"$out")"
out=$(timeout 90 $CLIENT tokens "$URL" "$SECRET") || fail "tokens: $out"
pass "$(cut -c5- <<<"$out")"

# Not a WebSocket request: a plain HTTP answer.
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SIG/ws")
[ "$code" = 426 ] || fail "a plain GET of /ws: $code, expected 426"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SIG/elsewhere")
[ "$code" = 404 ] || fail "GET /elsewhere: $code, expected 404"
pass "plain HTTP: 426 at /ws, 404 elsewhere"

# A member that never reads is cut off, as on the TURN streams.
out=$(timeout 120 $CLIENT slow 127.0.0.1 "$SIG" "$SECRET") || fail "slow reader: $out"
grep -q "reads too slowly" "$WORK/ferry.log" || fail "slow reader: ferry did not log the cut"
pass "$(cut -c5- <<<"$out")"

# 1,000 idle connections, and TURN relays meanwhile.
timeout 60 $CLIENT idle 127.0.0.1 "$SIG" 1000 9 >"$WORK/idle.out" 2>&1 &
idle_pid=$!
sleep 2
timeout 60 turnutils_uclient -p "$PORT" -n 100 -m 2 -l 120 -z 5 -u "$user" -w "$credential" -e 127.0.0.1 \
    -r "$PEER" 127.0.0.1 >"$WORK/uclient2.out" 2>&1 || fail "turnutils_uclient beside 1000 idle connections failed"
grep -q "Total lost packets 0 (0.000000%)" "$WORK/uclient2.out" || fail "relay beside 1000 idle connections lost packets"
wait "$idle_pid" || fail "idle client: $(cat "$WORK/idle.out")"
grep -q "^upgraded=1000$" "$WORK/idle.out" || fail "idle: $(cat "$WORK/idle.out")"
grep -q "^closed=1000$" "$WORK/idle.out" || fail "idle connections not closed after idle_timeout: $(cat "$WORK/idle.out")"
pass "1000 idle WebSocket connections accepted and closed after idle_timeout (5 s); TURN relayed 200 of 200 meanwhile"

# Past connections_per_ip: a plain HTTP 503 and the connection closed (the idle ones are gone by now).
out=$(timeout 60 $PY - "$SIG" <<'PYEOF'
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
port = int(sys.argv[1])
held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(1000)]
time.sleep(0.5)
extra = socket.create_connection(("127.0.0.1", port), timeout=5)
print(extra.recv(200).decode(errors="replace").splitlines()[0])
PYEOF
) || fail "connections_per_ip: $out"
[ "$out" = "HTTP/1.1 503 Service Unavailable" ] || fail "connection 1001 from one address got: $out"
pass "connection 1,001 from one address (connections_per_ip 1000): 503 Service Unavailable"
kill -0 "$FERRY_PID" || fail "ferry died"

# wss:// with the configured certificate (a second ferry).
make_cert signaling
SIG2=$(free_port)
PORT2=$(free_port)
cat >"$WORK/ferry2.yaml" <<YAML
threads: 1
listen:
  - address: 127.0.0.1
    port: $PORT2
    transports: [udp, tcp, tls]
tls:
  certificate: $WORK/signaling.crt
  private_key: $WORK/signaling.key
turn:
  static_auth_secrets: [$TURN_SECRET]
signaling:
  address: 127.0.0.1
  port: $SIG2
  tls: true
  token_secrets: [$SECRET]
admin: ~
drain_timeout: 0
YAML
"$FERRY_BIN" --config "$WORK/ferry2.yaml" >"$WORK/ferry2.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q " started: " "$WORK/ferry2.log" && break; sleep 0.1; done
grep -q "signaling wss://127.0.0.1:$SIG2/ws" "$WORK/ferry2.log" || fail "no wss listener: $(cat "$WORK/ferry2.log")"
out=$(timeout 60 $CLIENT wss "wss://127.0.0.1:$SIG2/ws" "$WORK/signaling.crt" "$SECRET") || fail "wss: $out"
grep -q "turns:127.0.0.1:$PORT2?transport=tcp" <<<"$out" || fail "wss: no turns: URL in iceServers: $out"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$WORK/signaling.crt" "https://127.0.0.1:$SIG2/")
[ "$code" = 200 ] || fail "the demo page over https: $code"
pass "$(cut -c5- <<<"$out"); the demo page over https"
