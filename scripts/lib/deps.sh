# Installs missing Debian packages, quietly and without prompts; sourced by run.sh and test.sh.
# Uses sudo only when not root. Never starts a daemon: packages such as coturn would start
# their service on install, so a policy-rc.d that refuses service starts is in place for the
# duration of the install (when the host has none of its own).

BUILD_PACKAGES=(g++ cmake ninja-build pkg-config libasio-dev libssl-dev libyaml-cpp-dev libfmt-dev libsystemd-dev nlohmann-json3-dev libhiredis-dev)
TEST_PACKAGES=(doctest-dev clang libclang-rt-14-dev coturn stun-client python3 python3-websockets iproute2 nftables chromium libnss3-tools openssl prometheus curl redis-server redis-tools)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_packages PKG...: installs those not yet installed.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "Installing: ${missing[*]}"
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        made_policy=yes
    fi
    local rc=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null || rc=$?
    [ $rc -eq 0 ] && { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" </dev/null >/dev/null || rc=$?; }
    [ -n "$made_policy" ] && as_root rm -f "$policy"
    return $rc
}

# ensure_node: Node.js and npm (Debian's, unless the machine has a node already).
ensure_node() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && return 0
    ensure_packages nodejs npm
}
