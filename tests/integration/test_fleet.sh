#!/usr/bin/env bash
# A fleet: three ferry instances on 127.0.0.1, 127.0.0.2 and 127.0.0.3 sharing one
# redis-server that this test starts on loopback (keyspace notifications on, as docs/deploy.md
# says to set them). Users are written in coturn's key layout with redis-cli.
#   - a user added to Redis allocates on every instance within a second, without a reload;
#   - a per-user quota of 3 holds across the fleet (3 granted, then 486 on every instance);
#   - an instance killed with SIGKILL: its allocations stop counting within the lease;
#   - a user removed from Redis: its allocations on every instance end within a second; a TURN
#     REST secret likewise;
#   - Redis stopped: relaying (turnutils_uclient, zero loss) and new allocations of known
#     users go on, the outage is logged once; changes made while ferry could not reach Redis
#     arrive when it is back;
#   - a draining instance, and a full one, answer 300 naming the least-loaded live instance,
#     and turnutils_uclient (which follows 300) relays through that one;
#   - Redis over TLS (a certificate made here, checked by its IP address) and over a unix
#     socket, with a password and a database number; a Redis with keyspace notifications off
#     gets them turned on, and a user added then arrives at once.
. "$(dirname "$0")/lib.sh"

command -v redis-server >/dev/null || fail "redis-server is missing (scripts/test.sh installs it)"
PORT=$(free_port)
RPORT=$(free_port)
ADMIN=$(free_port)
PEER=$(free_port)
REALM=fleet.test
LEASE=3
mkdir -p "$WORK/redis"

# redis_start [unix]: redis-server on 127.0.0.1:RPORT (or, with "unix", on a unix socket only:
# ferry, configured with the TCP address, cannot reach it). Its data persists in $WORK/redis.
redis_start() {
    local listen=(--port "$RPORT" --bind 127.0.0.1)
    [ "${1:-}" = unix ] && listen=(--port 0 --unixsocket "$WORK/redis/redis.sock")
    redis-server "${listen[@]}" --dir "$WORK/redis" --dbfilename dump.rdb --save "" --appendonly no \
        --notify-keyspace-events 'K$gx' --daemonize no >>"$WORK/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for _ in $(seq 50); do rcli ${1:+unix} PING 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
    fail "redis-server did not start: $(tail -3 "$WORK/redis.log")"
}
rcli() {
    if [ "${1:-}" = unix ]; then shift; redis-cli -s "$WORK/redis/redis.sock" "$@"
    else redis-cli -p "$RPORT" "$@"; fi
}
redis_stop() { # saves its data first
    rcli ${1:+unix} SHUTDOWN SAVE >/dev/null 2>&1 || true
    wait "$REDIS_PID" 2>/dev/null || true
}

declare -A FPID
write_config() { # I [EXTRA YAML]
    cat >"$WORK/f$1.yaml" <<YAML
threads: 1
listen:
  - address: 127.0.0.$1
    port: $PORT
    transports: [udp, tcp]
turn:
  realm: $REALM
  nonce_secret: one-secret-for-the-whole-fleet
  allowed_peer_ranges: [127.0.0.0/8]
limits:
  allocations_per_user: 3
  ${2:-}
redis:
  address: 127.0.0.1:$RPORT
  instance: ferry-$1
  advertise: ["127.0.0.$1:$PORT"]
  lease: $LEASE
admin:
  address: 127.0.0.$1
  port: $ADMIN
drain_timeout: 60
log:
  level: debug
YAML
}
start_instance() { # I
    "$FERRY_BIN" --config "$WORK/f$1.yaml" >>"$WORK/f$1.log" 2>&1 &
    FPID[$1]=$!
    PIDS+=("${FPID[$1]}")
}
metric() { # I NAME: its value, or nothing
    curl -s --max-time 3 "http://127.0.0.$1:$ADMIN/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
wait_connected() { # I...
    local i
    for i in "$@"; do
        for _ in $(seq 100); do [ "$(metric "$i" ferry_redis_connected)" = 1 ] && break; sleep 0.1; done
        [ "$(metric "$i" ferry_redis_connected)" = 1 ] || fail "ferry-$i is not connected to Redis: $(tail -5 "$WORK/f$i.log")"
    done
}
allocate() { # I USER PASSWORD: prints code=N
    timeout 10 python3 "$HERE/ops.py" allocate --host "127.0.0.$1" --port "$PORT" --user "$2" --password "$3"
}
now_ms() { date +%s%3N; }
# until_ok SECONDS CMD...: runs CMD until it succeeds; prints the milliseconds it took.
until_ok() {
    local limit=$1 start
    shift
    start=$(now_ms)
    while ! "$@" >/dev/null 2>&1; do
        [ $(( $(now_ms) - start )) -gt $((limit * 1000)) ] && return 1
        sleep 0.05
    done
    echo $(( $(now_ms) - start ))
}
user_key() { printf 'turn/realm/%s/user/%s/%s' "$REALM" "$1" "$2"; }
md5_key() { printf '%s' "$1:$REALM:$2" | md5sum | cut -d' ' -f1; }

redis_start
for i in 1 2 3; do write_config "$i"; start_instance "$i"; done
wait_connected 1 2 3
for i in 1 2 3; do
    for _ in $(seq 50); do [ "$(metric "$i" ferry_fleet_instances)" = 2 ] && break; sleep 0.1; done
    [ "$(metric "$i" ferry_fleet_instances)" = 2 ] || fail "ferry-$i knows $(metric "$i" ferry_fleet_instances) other instances, want 2"
done
pass "three instances share one Redis; each knows the other two"

# --- A user added: every instance, within a second (alice as coturn's hex key). ------------
[ "$(allocate 1 alice wonderland)" = code=401 ] || fail "alice allocates before she exists"
# One client polls all three (no process start-up inside the measurement), from before the SET.
timeout 20 python3 "$HERE/ops.py" until-allocated --hosts 127.0.0.1,127.0.0.2,127.0.0.3 --port "$PORT" \
    --user alice --password wonderland --seconds 10 >"$WORK/added.out" 2>&1 &
POLL=$!
until_ok 5 grep -q ready "$WORK/added.out" >/dev/null || fail "the poller did not start: $(cat "$WORK/added.out")"
rcli SET "$(user_key alice key)" "$(md5_key alice wonderland)" >/dev/null
start=$(now_ms)
wait "$POLL" || fail "alice could not allocate everywhere after being added: $(cat "$WORK/added.out")"
last=$(awk '$1 ~ /^127/ { print $2 }' "$WORK/added.out" | sort -n | tail -1)
took=$((last - start))
[ "$took" -lt 1000 ] || fail "a user added to Redis took $took ms to allocate on all three instances: $(cat "$WORK/added.out")"
pass "a user added to Redis (coturn's hex key) allocated on all three instances $took ms after the SET, no reload"

# --- The per-user quota (3) across the fleet: alice holds one allocation on each. -----------
for i in 1 2 3; do
    out=$(allocate "$i" alice wonderland)
    [ "$out" = code=486 ] || fail "a 4th allocation of alice's on ferry-$i: $out, want code=486"
done
pass "per-user quota 3 across the fleet: 3 granted (one per instance), then 486 on every instance"

# --- SIGKILL: the dead instance's count expires within the lease. ---------------------------
kill -KILL "${FPID[3]}"
killed=$(now_ms)
wait "${FPID[3]}" 2>/dev/null || true
[ "$(allocate 1 alice wonderland)" = code=486 ] || fail "ferry-3's allocation stopped counting at once, before its lease ran out"
timeout 20 python3 "$HERE/ops.py" until-allocated --hosts 127.0.0.1 --port "$PORT" --user alice --password wonderland \
    --seconds $((LEASE + 5)) >"$WORK/expired.out" 2>&1 ||
    fail "ferry-3's allocation of alice's still counts $((LEASE + 5)) s after SIGKILL: $(cat "$WORK/expired.out"); $(grep fleet "$WORK/f1.log" | tail -3)"
took=$(( $(awk '$1 ~ /^127/ { print $2 }' "$WORK/expired.out") - killed ))
[ "$took" -le $((LEASE * 1000 + 1000)) ] || fail "ferry-3's count took $took ms to expire (lease ${LEASE}s)"
grep -q "instance 'ferry-3' not heard from within its lease" "$WORK/f1.log" || fail "ferry-1 did not log ferry-3's lease running out"
pass "after SIGKILL of ferry-3 its allocation stopped counting $took ms later (lease ${LEASE} s): alice allocated again"

# --- A user removed: its allocations end on every instance within a second. -----------------
rcli SET "$(user_key bob password)" builder >/dev/null
for i in 1 2; do
    until_ok 2 bash -c "[ \"\$(timeout 10 python3 '$HERE/ops.py' allocate --host 127.0.0.$i --port $PORT --user bob --password builder)\" = code=200 ]" >/dev/null ||
        fail "bob cannot allocate on ferry-$i"
done
rcli DEL "$(user_key bob password)" >/dev/null
start=$(now_ms)
for i in 1 2; do
    until_ok 3 grep -q "user=bob .*reason=revoked" "$WORK/f$i.log" >/dev/null || fail "bob's allocation on ferry-$i did not end after his removal"
done
took=$(( $(now_ms) - start ))
[ "$took" -lt 1000 ] || fail "bob's allocations took $took ms to end"
[ "$(allocate 2 bob builder)" = code=401 ] || fail "bob allocates after his removal"
pass "a user removed from Redis: his allocations on ferry-1 and ferry-2 ended within $took ms (reason=revoked), then 401"

# --- A TURN REST secret in Redis (coturn's turn/realm/<realm>/secret/<id>), then removed. -----
rest_user="$(( $(date +%s) + 3600 )):henry"
rest_password=$(printf '%s' "$rest_user" | openssl dgst -sha1 -hmac 'fleet-rest-secret' -binary | base64)
rcli SET "turn/realm/$REALM/secret/2026-12" fleet-rest-secret >/dev/null
timeout 20 python3 "$HERE/ops.py" until-allocated --hosts 127.0.0.1,127.0.0.2 --port "$PORT" \
    --user "$rest_user" --password "$rest_password" --seconds 5 >"$WORK/rest.out" 2>&1 ||
    fail "a REST credential from a secret in Redis does not allocate: $(cat "$WORK/rest.out")"
rcli DEL "turn/realm/$REALM/secret/2026-12" >/dev/null
for i in 1 2; do
    until_ok 3 grep -q "user=$rest_user .*reason=revoked" "$WORK/f$i.log" >/dev/null ||
        fail "the REST allocation on ferry-$i outlived its secret's removal"
done
[ "$(allocate 1 "$rest_user" "$rest_password")" = code=401 ] || fail "a REST credential allocates after its secret was removed"
pass "a TURN REST secret set in Redis: its credentials allocate on ferry-1 and ferry-2; removed: their allocations end, then 401"

# --- Redis stopped: known users go on; changes made meanwhile arrive when it is back. --------
rcli SET "$(user_key carol password)" singer >/dev/null
rcli SET "$(user_key erin password)" leaving >/dev/null
until_ok 2 bash -c "[ \"\$(timeout 10 python3 '$HERE/ops.py' allocate --host 127.0.0.2 --port $PORT --user erin --password leaving)\" = code=200 ]" >/dev/null ||
    fail "erin cannot allocate"
turnutils_peer -L 127.0.0.1 -p "$PEER" >"$WORK/peer.log" 2>&1 &
PIDS+=($!)
timeout 60 turnutils_uclient -p "$PORT" -n 300 -l 120 -m 1 -c -z 20 -r "$PEER" -u carol -w singer \
    -e 127.0.0.1 127.0.0.1 >"$WORK/uclient.out" 2>&1 &
UCLIENT=$!
PIDS+=("$UCLIENT")
sleep 1
redis_stop
for i in 1 2; do until_ok 3 bash -c "[ \"\$(curl -s http://127.0.0.$i:$ADMIN/metrics | awk '\$1==\"ferry_redis_connected\"{print \$2}')\" = 0 ]" >/dev/null ||
    fail "ferry-$i did not notice Redis stopping"; done
out=$(allocate 2 carol singer)
[ "$out" = code=200 ] || fail "with Redis down, a known user's Allocate on ferry-2: $out"
# While ferry cannot reach it (Redis on a unix socket only): dave added, erin removed.
redis_start unix
rcli unix SET "$(user_key dave password)" diver >/dev/null
rcli unix DEL "$(user_key erin password)" >/dev/null
redis_stop unix
sleep 2 # reconnect attempts meanwhile: the outage is still said once
redis_start
wait_connected 1 2
for i in 1 2; do
    until_ok 5 bash -c "[ \"\$(timeout 10 python3 '$HERE/ops.py' allocate --host 127.0.0.$i --port $PORT --user dave --password diver)\" = code=200 ]" >/dev/null ||
        fail "dave, added while Redis was away, cannot allocate on ferry-$i once it is back"
done
until_ok 3 grep -q "user=erin .*reason=revoked" "$WORK/f2.log" >/dev/null || fail "erin, removed while Redis was away, kept her allocation"
for i in 1 2; do
    n=$(grep -c "redis: connection lost" "$WORK/f$i.log" || true)
    [ "$n" = 1 ] || fail "ferry-$i logged the outage $n times, want once"
    n=$(grep -c "redis: connected again" "$WORK/f$i.log" || true)
    [ "$n" = 1 ] || fail "ferry-$i logged the reconnection $n times, want once"
    [ "$(metric "$i" ferry_redis_outages_total)" = 1 ] || fail "ferry-$i counts $(metric "$i" ferry_redis_outages_total) outages"
done
rc=0
wait "$UCLIENT" || rc=$?
[ "$rc" -eq 0 ] || fail "uclient exited with $rc: $(tail -3 "$WORK/uclient.out")"
grep -q "tot_send_msgs=300, tot_recv_msgs=300" "$WORK/uclient.out" && grep -q "Total lost packets 0 (0.000000%)" "$WORK/uclient.out" ||
    fail "relaying across the Redis outage lost packets: $(grep -E 'tot_|lost' "$WORK/uclient.out" | tail -2)"
pass "Redis stopped: 300 of 300 relayed with 0 lost across it, a known user allocated; logged once, and once back; dave (added meanwhile) allocates, erin (removed meanwhile) was revoked"

# --- Draining and full: 300 names the least-loaded live instance; uclient relays there. -----
start_instance 3
wait_connected 3
for _ in $(seq 50); do [ "$(metric 1 ferry_fleet_instances)" = 2 ] && break; sleep 0.1; done
# ferry-2 holds allocations (carol's, erin's gone, dave's); ferry-3 holds none: it is the least loaded.
timeout 60 python3 "$HERE/ops.py" hold --host 127.0.0.1 --port "$PORT" --user dave --password diver --seconds 40 >"$WORK/hold.out" 2>&1 &
PIDS+=($!)
until_ok 5 grep -q allocated "$WORK/hold.out" >/dev/null || fail "no allocation to keep ferry-1 draining: $(cat "$WORK/hold.out")"
kill -TERM "${FPID[1]}"
until_ok 3 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$ADMIN/readyz)\" = 503 ]" >/dev/null ||
    fail "ferry-1 is not draining"
# Its draining flag reaches the others at once: none of them would send a client back to it.
until_ok 3 bash -c "redis-cli -p $RPORT HGET ferry/instance/ferry-1 load | grep -q '^ferry-1 1 '" >/dev/null ||
    fail "ferry-1 did not publish that it drains: $(rcli HGET ferry/instance/ferry-1 load)"
out=$(timeout 10 python3 "$HERE/ops.py" redirect --host 127.0.0.1 --port "$PORT" --user carol --password singer) ||
    fail "redirect: $out"
[ "$out" = "alternate=127.0.0.3:$PORT mi_ok=True" ] || fail "draining ferry-1 redirected to: $out (want ferry-3, the least loaded)"
uclient_zero_loss "uclient via draining ferry-1" 50 -p "$PORT" -n 50 -l 120 -m 1 -c -z 10 -r "$PEER" -u carol -w singer \
    -e 127.0.0.1 127.0.0.1
grep -q "allocation created: user 'carol'" "$WORK/f3.log" ||
    fail "turnutils_uclient did not allocate on ferry-3: $(tail -3 "$WORK/f3.log")"
pass "draining ferry-1 answered 300 naming ferry-3 (least loaded), signed; turnutils_uclient followed it and relayed 50/50 there"

# ferry-2 full (allocations_total 1, by a reload): 300 to ferry-3, the only one taking clients.
write_config 2 "allocations_total: 1"
kill -HUP "${FPID[2]}"
until_ok 3 grep -q "reload: applied" "$WORK/f2.log" >/dev/null || fail "ferry-2 did not reload"
out=$(timeout 10 python3 "$HERE/ops.py" redirect --host 127.0.0.2 --port "$PORT" --user dave --password diver) ||
    fail "redirect from the full ferry-2: $out"
[ "$out" = "alternate=127.0.0.3:$PORT mi_ok=True" ] || fail "full ferry-2 redirected to: $out (want ferry-3)"
pass "full ferry-2 (allocations_total 1) answered 300 naming ferry-3"

# Leaving: a stopped instance deletes its key and says "bye"; the others forget it at once.
kill -INT "${FPID[2]}"
wait "${FPID[2]}" || true
until_ok 2 grep -q "fleet: instance 'ferry-2' left" "$WORK/f3.log" >/dev/null || fail "ferry-3 did not hear ferry-2 leave"
[ "$(rcli EXISTS ferry/instance/ferry-2)" = 0 ] || fail "the stopped ferry-2 left its key"
[ "$(rcli SISMEMBER ferry/instances ferry-2)" = 0 ] || fail "the stopped ferry-2 is still in ferry/instances"
pass "a stopped instance said goodbye: its key is gone and the others heard it"
kill -INT "${FPID[1]}" "${FPID[3]}" 2>/dev/null || true
wait "${FPID[1]}" "${FPID[3]}" 2>/dev/null || true
# --- The other ways to reach Redis: TLS (verified), a unix socket; AUTH and SELECT. ----------
TPORT=$(free_port)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=redis-test \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/redis-key.pem" -out "$WORK/redis-cert.pem" >/dev/null 2>&1
chmod 644 "$WORK/redis-key.pem"
redis-server --port 0 --tls-port "$TPORT" --bind 127.0.0.1 --tls-cert-file "$WORK/redis-cert.pem" \
    --tls-key-file "$WORK/redis-key.pem" --tls-ca-cert-file "$WORK/redis-cert.pem" --tls-auth-clients no \
    --unixsocket "$WORK/redis/tls-box.sock" --requirepass fleet-password --save "" --appendonly no \
    >"$WORK/redis-tls.log" 2>&1 &
PIDS+=($!)
tcli() { redis-cli -s "$WORK/redis/tls-box.sock" -a fleet-password --no-auth-warning -n 3 "$@"; }
for _ in $(seq 50); do tcli PING 2>/dev/null | grep -q PONG && break; sleep 0.1; done
tcli SET "$(user_key frank password)" fisher >/dev/null
for way in tls unix; do
    i=$([ "$way" = tls ] && echo 4 || echo 5)
    if [ "$way" = tls ]; then
        address="127.0.0.1:$TPORT"
        extra="  tls: true
  tls_ca: $WORK/redis-cert.pem"
    else
        address="unix:$WORK/redis/tls-box.sock"
        extra=""
    fi
    write_config "$i"
    python3 - "$WORK/f$i.yaml" "  address: 127.0.0.1:$RPORT" "  address: $address
  password: fleet-password
  database: 3${extra:+
$extra}" <<'PY'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
assert old in text
open(path, "w").write(text.replace(old, new, 1))
PY
    start_instance "$i"
    wait_connected "$i"
    out=$(allocate "$i" frank fisher)
    [ "$out" = code=200 ] || fail "over $way: frank's Allocate on ferry-$i: $out; $(grep redis "$WORK/f$i.log" | tail -3)"
done
# That Redis started with keyspace notifications off (Redis's default): ferry turned them on,
# so a user added now arrives at once.
flags=$(tcli CONFIG GET notify-keyspace-events | tail -1)
[[ "$flags" == *K* && "$flags" == *g* && "$flags" == *x* ]] || fail "notify-keyspace-events is '$flags' after ferry connected"
grep -q "redis: notify-keyspace-events was '': added 'K\$gx'" "$WORK/f4.log" "$WORK/f5.log" || fail "ferry did not say it turned notifications on"
timeout 20 python3 "$HERE/ops.py" until-allocated --hosts 127.0.0.4,127.0.0.5 --port "$PORT" \
    --user grace --password hopper --seconds 10 >"$WORK/grace.out" 2>&1 &
POLL=$!
until_ok 5 grep -q ready "$WORK/grace.out" >/dev/null || fail "the poller did not start: $(cat "$WORK/grace.out")"
tcli SET "$(user_key grace password)" hopper >/dev/null
start=$(now_ms)
wait "$POLL" || fail "grace could not allocate after being added: $(cat "$WORK/grace.out")"
took=$(( $(awk '$1 ~ /^127/ { print $2 }' "$WORK/grace.out" | sort -n | tail -1) - start ))
[ "$took" -lt 1000 ] || fail "with notifications turned on by ferry, a new user took $took ms"
pass "a Redis with keyspace notifications off: ferry turned on '$flags'; a user added then allocated on both $took ms later"

# A certificate that does not chain to tls_ca is refused: no connection, said once.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=impostor \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/other-key.pem" -out "$WORK/other-cert.pem" >/dev/null 2>&1
write_config 6
python3 - "$WORK/f6.yaml" "  address: 127.0.0.1:$RPORT" "  address: 127.0.0.1:$TPORT
  password: fleet-password
  tls: true
  tls_ca: $WORK/other-cert.pem" <<'PY'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
assert old in text
open(path, "w").write(text.replace(old, new, 1))
PY
start_instance 6
until_ok 5 grep -q "redis: cannot connect (.*TLS" "$WORK/f6.log" >/dev/null ||
    fail "ferry-6 did not refuse Redis's certificate: $(grep redis "$WORK/f6.log" | tail -3)"
sleep 1
[ "$(metric 6 ferry_redis_connected)" = 0 ] || fail "ferry-6 connected to a Redis whose certificate it cannot verify"
[ "$(grep -c 'redis: cannot connect' "$WORK/f6.log")" = 1 ] || fail "ferry-6 logged every failed attempt"
pass "Redis over TLS (certificate checked: one from another CA is refused, said once) and over a unix socket, with AUTH and SELECT: users read, allocations made"

for i in 1 2 3 4 5 6; do
    ! grep -qE "ERROR|AddressSanitizer|runtime error" "$WORK/f$i.log" || fail "ferry-$i: $(grep -E 'ERROR|runtime error' "$WORK/f$i.log" | head -3)"
done
