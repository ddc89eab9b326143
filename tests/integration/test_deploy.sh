#!/usr/bin/env bash
# The deployment files, as far as this machine can run them (no container engine, no cluster):
#   - deploy/rootfs.sh, the Dockerfile's final stage, builds a root holding only the binaries and
#     the libraries ldd names; ferry runs from it under chroot as user 65532 (the image's user)
#     and answers a Binding and an Allocate; the tree holds no shell;
#   - the Dockerfile installs exactly scripts/lib/deps.sh's build packages;
#   - deploy/kubernetes/ferry.yaml, with the environment the DaemonSet gives it, passes
#     ferry --check-config; kubectl kustomize renders the manifests (when kubectl is installed).
. "$(dirname "$0")/lib.sh"

ROOT_DIR="$HERE/../.."
RELEASE_BIN="$ROOT_DIR/build/release/server/ferry"
[ -x "$RELEASE_BIN" ] || fail "no Release build at $RELEASE_BIN (scripts/test.sh builds it)"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: chroot needs root"; exit 77; }

# --- The image's root: only the binary and its libraries. ---------------------------------
sh "$ROOT_DIR/deploy/rootfs.sh" "$WORK/root" "$RELEASE_BIN"
[ ! -e "$WORK/root/bin/sh" ] && [ ! -e "$WORK/root/usr/bin/sh" ] || fail "the root holds a shell"
files=$(cd "$WORK/root" && find . -type f | sort)
others=$(grep -vE '^\./usr/local/bin/ferry$|^\./(usr/)?lib(64|/x86_64-linux-gnu|/aarch64-linux-gnu)?/[^/]+\.so[.0-9]*$' <<<"$files" || true)
[ -z "$others" ] || fail "the root holds more than ferry and its libraries: $others"
PORT=$(free_port)
cat >"$WORK/root/etc/ferry/ferry.yaml" <<YAML
threads: 1
listen:
  - address: 127.0.0.1
    port: $PORT
    transports: [udp]
turn:
  users:
    - name: ninefingers
      password: youhavetoberealistic
admin:
  enabled: false
drain_timeout: 0
YAML
chroot --userspec=65532:65532 "$WORK/root" /usr/local/bin/ferry --version >"$WORK/version.out" 2>&1 ||
    fail "ferry does not run from its root: $(cat "$WORK/version.out")"
chroot --userspec=65532:65532 "$WORK/root" /usr/local/bin/ferry --config /etc/ferry/ferry.yaml >"$WORK/ferry.log" 2>&1 &
FERRY_PID=$!
PIDS+=("$FERRY_PID")
for _ in $(seq 50); do grep -q " started: " "$WORK/ferry.log" && break; sleep 0.1; done
grep -q " started: " "$WORK/ferry.log" || fail "ferry did not start from its root"
out=$(probe binding --port "$PORT" 2>&1) || fail "Binding to the chrooted ferry: $out"
out=$(timeout 10 python3 "$HERE/ops.py" allocate --port "$PORT" --user ninefingers --password youhavetoberealistic)
[ "$out" = code=200 ] || fail "Allocate from the chrooted ferry: $out"
pass "ferry runs from a root of $(wc -l <<<"$files") files (itself and the libraries ldd names) as user 65532: Binding and Allocate answered"

# --- The Dockerfile installs what deps.sh calls the build packages. -------------------------
. "$ROOT_DIR/scripts/lib/deps.sh"
docker_packages=$(sed -n '/apt-get install/,/rm -rf/p' "$ROOT_DIR/deploy/Dockerfile" | tr ' \\' '\n\n' |
    grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vE '^(apt-get|install|rm|rf|DEBIAN_FRONTEND.*)$' | sort -u)
want=$(printf '%s\n' "${BUILD_PACKAGES[@]}" | sort -u)
[ "$docker_packages" = "$want" ] || fail "deploy/Dockerfile installs $(echo $docker_packages), deps.sh builds with $(echo $want)"
pass "deploy/Dockerfile installs exactly the build packages of scripts/lib/deps.sh"

# --- The Kubernetes configuration, with the environment the DaemonSet gives it. -------------
out=$(NODE_IP=192.0.2.10 NODE_NAME=node-1 REDIS_PASSWORD=secret FERRY_NONCE_SECRET=a-long-shared-nonce-secret \
      "$FERRY_BIN" --check-config "$ROOT_DIR/deploy/kubernetes/ferry.yaml" 2>&1) ||
    fail "deploy/kubernetes/ferry.yaml: $out"
out=$("$FERRY_BIN" --check-config "$ROOT_DIR/deploy/kubernetes/ferry.yaml" 2>&1) &&
    fail "deploy/kubernetes/ferry.yaml passed without its environment"
grep -q "is not set" <<<"$out" || fail "without NODE_IP: $out"
pass "deploy/kubernetes/ferry.yaml is valid with the DaemonSet's environment, and names what is missing without it"
if command -v kubectl >/dev/null; then
    out=$(timeout 60 kubectl kustomize "$ROOT_DIR/deploy/kubernetes" 2>&1) || fail "kubectl kustomize: $out"
    grep -q "kind: DaemonSet" <<<"$out" && grep -q "name: ferry-config-" <<<"$out" || fail "kustomize rendered: $out"
    pass "kubectl kustomize renders the manifests (the DaemonSet mounts the generated ferry-config)"
else
    echo "note: kubectl is not installed; the manifests were not rendered"
fi
