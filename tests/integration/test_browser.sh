#!/usr/bin/env bash
# Headless Chromium (Debian's, driven by playwright-core) opens relay-only RTCPeerConnections
# through ferry with static and with TURN REST credentials, over UDP and over TCP: 200 data-channel messages each way
# in order, a relay/relay selected pair, and no relay candidate for a wrong password.
. "$(dirname "$0")/lib.sh"

BROWSER_DIR="$HERE/../browser"
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is missing (scripts/test.sh installs it)"
[ -d "$BROWSER_DIR/node_modules/playwright-core" ] || fail "playwright-core is missing (scripts/test.sh installs it)"

PORT=$(free_port)
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
    transports: [udp, tcp]
turn:
  realm: ferry.test
  users:
    - name: webrtc
      password: correct-horse
  static_auth_secrets: [browser-secret]
  allowed_peer_ranges: [127.0.0.0/8]
log:
  level: info
YAML
start_ferry "$WORK/ferry.yaml"

run_browser() { # NAME URL ARGS...
    local name=$1 url=$2 out
    shift 2
    out=$(cd "$BROWSER_DIR" && timeout 120 node relay.mjs --url "$url" "$@" 2>&1) ||
        fail "$name: $out"
    echo "$out" | sed "s/^/  [$name] /"
    pass "$name"
}
run_browser "static credentials" "turn:127.0.0.1:$PORT" --user webrtc --password correct-horse
run_browser "REST credentials" "turn:127.0.0.1:$PORT" --rest-secret browser-secret --rest-user alice
run_browser "TURN over TCP" "turn:127.0.0.1:$PORT?transport=tcp" --user webrtc --password correct-horse
grep -q "allocation created: user 'webrtc'.* over tcp" "$WORK/ferry.log" || fail "Chromium made no allocation over TCP"
grep -q "allocation created: user 'webrtc'" "$WORK/ferry.log" || fail "no allocation was made for the browser"
stop_ferry
