#!/usr/bin/env bash
# Headless Chromium (Debian's, driven by playwright-core) opens relay-only RTCPeerConnections
# through ferry with static and with TURN REST credentials: 200 data-channel messages each way
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
    transports: [udp]
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

run_browser() { # NAME ARGS...
    local name=$1 out
    shift
    out=$(cd "$BROWSER_DIR" && timeout 120 node relay.mjs --url "turn:127.0.0.1:$PORT" "$@" 2>&1) ||
        fail "$name: $out"
    echo "$out" | sed "s/^/  [$name] /"
    pass "$name"
}
run_browser "static credentials" --user webrtc --password correct-horse
run_browser "REST credentials" --rest-secret browser-secret --rest-user alice
grep -q "allocation created: user 'webrtc'" "$WORK/ferry.log" || fail "no allocation was made for the browser"
stop_ferry
