#!/usr/bin/env bash
# ferry's demo page, served by the signaling listener, opened by two headless Chromium browsers
# (Debian's, driven by playwright-core, fake camera and microphone) in one room with relayed
# paths only: both show a connected call over relay/relay, exchange a chat message each way
# through the data channel, and play each other's video; the page's own caption names the path.
. "$(dirname "$0")/lib.sh"
BROWSER_DIR="$HERE/../browser"
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is missing (scripts/test.sh installs it)"
[ -d "$BROWSER_DIR/node_modules/playwright-core" ] || fail "playwright-core is missing (scripts/test.sh installs it)"

PORT=$(free_port)
SIG=$(free_port)
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
    transports: [udp, tcp]
turn:
  realm: demo.test
  static_auth_secrets: [demo-rest-secret]
  allowed_peer_ranges: [127.0.0.0/8]
signaling:
  address: 127.0.0.1
  port: $SIG
log:
  level: info
YAML
start_ferry "$WORK/ferry.yaml"

page=$(curl -s "http://127.0.0.1:$SIG/")
grep -q "<title>ferry call</title>" <<<"$page" || fail "GET / did not serve the demo page"
grep -qiE "<script[^>]+src=|<link[^>]+href=|https?://" <<<"$page" && fail "the demo page loads something from elsewhere"
pass "GET / serves the demo page, which loads nothing from elsewhere"

out=$(cd "$BROWSER_DIR" && timeout 120 node demo.mjs --page "http://127.0.0.1:$SIG/" --room demo-room \
    --screenshot "${FERRY_DEMO_SCREENSHOT:-$WORK/demo.png}" 2>&1) || fail "demo: $out"
echo "$out" | sed 's/^/  [demo] /'
grep -q "^FAIL" <<<"$out" && fail "demo: $out"
[ "$(grep -c "allocation created: user '[0-9]*:[0-9a-f]*'" "$WORK/ferry.log")" -ge 2 ] ||
    fail "the pages did not allocate with the credentials of their join answers"
pass "two browsers on the demo page: a call over relay/relay, chat both ways, video both ways"
