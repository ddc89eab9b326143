#!/bin/sh
# rootfs.sh OUT BINARY...: the smallest root file system that runs BINARY...: the binaries in
# OUT/usr/local/bin, every shared library they load (as ldd lists them, the dynamic loader
# among them) at its own path, and an empty /tmp. Nothing else: no shell, no package manager.
# The Dockerfile's final stage is this tree; tests/integration/test_deploy.sh runs ferry in it
# with chroot as an unprivileged user.
set -eu
out=$1
shift
mkdir -p "$out/usr/local/bin" "$out/tmp" "$out/etc/ferry"
chmod 1777 "$out/tmp"
for bin in "$@"; do
    cp "$bin" "$out/usr/local/bin/"
    # "libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)"
    ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do
        [ -e "$out$lib" ] && continue
        mkdir -p "$out$(dirname "$lib")"
        cp -L "$lib" "$out$lib"
    done
done
