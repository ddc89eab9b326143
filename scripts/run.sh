#!/usr/bin/env bash
# Builds ferry (Release) and runs it in the foreground on conf/ferry.yaml, or on the file given
# with --config. Installs missing build packages first. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

ensure_packages "${BUILD_PACKAGES[@]}"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DFERRY_TESTS=OFF >/dev/null
cmake --build build/release -j2 --target ferry

if [ $# -eq 0 ]; then set -- --config conf/ferry.yaml; fi
exec build/release/server/ferry "$@"
