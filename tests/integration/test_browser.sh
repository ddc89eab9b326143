#!/usr/bin/env bash
# Headless Chromium (Debian's, driven by playwright-core) opens relay-only RTCPeerConnections
# through ferry with static and with TURN REST credentials, over UDP, TCP and TLS (turns:, with
# a certificate made here and trusted through the NSS database of a throwaway $HOME; with an
# empty one Chromium must refuse the server): 200 data-channel messages each way
# in order, a relay/relay selected pair, and no relay candidate for a wrong password.
. "$(dirname "$0")/lib.sh"

BROWSER_DIR="$HERE/../browser"
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is missing (scripts/test.sh installs it)"
[ -d "$BROWSER_DIR/node_modules/playwright-core" ] || fail "playwright-core is missing (scripts/test.sh installs it)"

command -v certutil >/dev/null || fail "certutil is missing (scripts/test.sh installs libnss3-tools)"
make_cert server
TRUSTED_HOME="$WORK/trusted-home"
mkdir -p "$TRUSTED_HOME/.pki/nssdb" "$WORK/untrusted-home"
certutil -N -d "sql:$TRUSTED_HOME/.pki/nssdb" --empty-password
certutil -A -d "sql:$TRUSTED_HOME/.pki/nssdb" -n ferry-test -t "CT,C,C" -i "$WORK/server.crt"

PORT=$(free_port)
TPORT=$(free_port)
cat >"$WORK/ferry.yaml" <<YAML
threads: 2
listen:
  - address: 127.0.0.1
    port: $PORT
    transports: [udp, tcp]
  - address: 127.0.0.1
    port: $TPORT
    transports: [tls]
tls:
  certificate: $WORK/server.crt
  private_key: $WORK/server.key
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

run_browser() { # NAME URL ARGS...   (HOME picks Chromium's NSS trust store)
    local name=$1 url=$2 out
    shift 2
    out=$(cd "$BROWSER_DIR" && HOME="${BROWSER_HOME:-$TRUSTED_HOME}" timeout 120 node relay.mjs --url "$url" "$@" 2>&1) ||
        fail "$name: $out"
    echo "$out" | sed "s/^/  [$name] /"
    pass "$name"
}
run_browser "static credentials" "turn:127.0.0.1:$PORT" --user webrtc --password correct-horse
run_browser "REST credentials" "turn:127.0.0.1:$PORT" --rest-secret browser-secret --rest-user alice
run_browser "TURN over TCP" "turn:127.0.0.1:$PORT?transport=tcp" --user webrtc --password correct-horse
grep -q "allocation created: user 'webrtc'.* over tcp" "$WORK/ferry.log" || fail "Chromium made no allocation over TCP"
run_browser "TURN over TLS (turns:)" "turns:127.0.0.1:$TPORT?transport=tcp" --user webrtc --password correct-horse
grep -q "allocation created: user 'webrtc'.* over tls" "$WORK/ferry.log" || fail "Chromium made no allocation over TLS"
BROWSER_HOME="$WORK/untrusted-home" run_browser "turns: with an untrusted certificate is refused" \
    "turns:127.0.0.1:$TPORT?transport=tcp" --user webrtc --password correct-horse --expect-no-relay
grep -q "allocation created: user 'webrtc'" "$WORK/ferry.log" || fail "no allocation was made for the browser"
stop_ferry
