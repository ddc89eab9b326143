#!/usr/bin/env bash
# The admin endpoint under a real Prometheus (Debian's, started here on loopback with a 1 s
# scrape interval and a temporary data directory): during a turnutils_uclient session relaying
# through ferry, Prometheus's HTTP API must report the relayed packets and bytes and the
# allocations the client made, exactly. Then /healthz, /readyz, and per-user labels off.
. "$(dirname "$0")/lib.sh"
command -v prometheus >/dev/null || fail "prometheus is missing (scripts/test.sh installs it)"

PORT=$(free_port)
PEER=$(free_port)
ADMIN=$(free_port)
PROM=$(free_port)
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
    transports: [udp]
turn:
  users:
    - name: ninefingers
      password: youhavetoberealistic
  allowed_peer_ranges: [127.0.0.0/8]
admin:
  address: 127.0.0.1
  port: $ADMIN
YAML
start_ferry "$WORK/ferry.yaml"
turnutils_peer -L 127.0.0.1 -p "$PEER" >"$WORK/peer.log" 2>&1 &
PIDS+=($!)

cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: ferry
    static_configs:
      - targets: ["127.0.0.1:$ADMIN"]
YAML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom-data" \
    --web.listen-address="127.0.0.1:$PROM" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
query() { # PROMQL -> the first result's value, or "none"
    curl -s --max-time 5 "http://127.0.0.1:$PROM/api/v1/query" --data-urlencode "query=$1" |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")'
}
for _ in $(seq 100); do [ "$(query 'up{job="ferry"}' 2>/dev/null)" = 1 ] && break; sleep 0.2; done
[ "$(query 'up{job="ferry"}')" = 1 ] || fail "Prometheus does not scrape ferry: $(tail -5 "$WORK/prometheus.log")"
pass "Prometheus scrapes ferry's /metrics"

# Two clients, 150 messages each of 120 bytes, 20 ms apart: about 3 s of relaying, so that
# scrapes land while the allocations are live.
out=$(timeout 60 turnutils_uclient -p "$PORT" -n 150 -l 120 -m 2 -z 20 -c -r "$PEER" \
      -u ninefingers -w youhavetoberealistic -e 127.0.0.1 127.0.0.1 2>&1) || fail "uclient: $(tail -3 <<<"$out")"
sent=$(sed -n 's/.*tot_send_msgs=\([0-9]*\),.*/\1/p' <<<"$out" | tail -1)
got=$(sed -n 's/.*tot_recv_msgs=\([0-9]*\).*/\1/p' <<<"$out" | tail -1)
[ "$sent" = 300 ] && [ "$got" = 300 ] || fail "uclient: sent $sent, received $got"

# Prometheus's view must come to exactly what the client counted, and to the allocations
# ferry's log recorded (uclient makes more than one per session and does not say how many).
want_to_peer=$sent want_to_client=$got
made=$(grep -c "allocation created" "$WORK/ferry.log")
[ "$made" -ge 2 ] || fail "the log shows $made allocations"
ok=""
for _ in $(seq 50); do
    to_peer=$(query 'ferry_relayed_packets_total{direction="to_peer"}')
    to_client=$(query 'ferry_relayed_packets_total{direction="to_client"}')
    bytes=$(query 'ferry_relayed_bytes_total{direction="to_peer"}')
    created=$(query 'sum(ferry_allocations_created_total)')
    if [ "$to_peer" = "$want_to_peer" ] && [ "$to_client" = "$want_to_client" ] && [ "$bytes" = $((sent * 120)) ] &&
        [ "$created" = "$made" ]; then ok=yes; break; fi
    sleep 0.3
done
[ -n "$ok" ] || fail "Prometheus says to_peer=$to_peer to_client=$to_client bytes=$bytes created=$created; the client sent $sent and received $got; the log shows $made allocations"
pass "Prometheus: $to_peer packets to the peer, $to_client to the client, $bytes bytes, $created allocations, as the client counted"
peak=$(query 'max_over_time(ferry_allocations{transport="udp",family="ipv4"}[5m])')
[ "$peak" = "$made" ] || fail "Prometheus saw at most $peak live allocations during the session, want $made"
pass "Prometheus saw the $made live allocations during the session"
ok200=$(query 'sum(ferry_requests_total{method="allocate",code="200"})')
[ "$ok200" = "$made" ] || fail "Allocate answered 200 $ok200 times; the log shows $made allocations"
pass "requests by method and code: Allocate 200 x $ok200"

# A wrong password is counted by reason; per-user labels are off by default.
timeout 10 python3 "$HERE/ops.py" allocate --port "$PORT" --user ninefingers --password wrong | grep -q "code=401" ||
    fail "a wrong password was not refused"
body=$(curl -s --max-time 5 "http://127.0.0.1:$ADMIN/metrics")
grep -q '^ferry_auth_failures_total{reason="bad_integrity"} 1$' <<<"$body" || fail "bad_integrity not counted: $(grep auth_failures <<<"$body")"
grep -q 'user=' <<<"$body" && fail "per-user labels without admin.per_user_metrics"
grep -q '^process_resident_memory_bytes [1-9]' <<<"$body" || fail "no RSS"
grep -q '^process_open_fds [1-9]' <<<"$body" || fail "no fd count"
pass "auth failures by reason; no per-user labels by default; RSS and fds"

[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/healthz")" = 200 ] || fail "/healthz"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/readyz")" = 200 ] || fail "/readyz"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/nothing")" = 404 ] || fail "/nothing is not 404"
# The admin port is not a TURN port, and the TURN port serves no HTTP.
out=$(timeout 5 curl -s --max-time 2 "http://127.0.0.1:$PORT/metrics" 2>&1 || true)
[[ "$out" != *ferry_* ]] || fail "metrics served on the TURN port"
pass "/healthz 200, /readyz 200, unknown paths 404; nothing on the TURN port"
stop_ferry
