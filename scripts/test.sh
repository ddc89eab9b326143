#!/usr/bin/env bash
# Builds everything and runs every test; the last thing it prints is CTest's summary.
#   build/fuzz     clang, libFuzzer + ASan/UBSan: the fuzz targets
#   build/test     gcc -O1, ASan + UBSan, warnings as errors: unit and integration tests, and the
#                  fuzz targets' bounded smoke run (all at once, FERRY_FUZZ_SECONDS, default 30)
#   build/release  gcc, Release: the binary run.sh, the benchmarks and one robustness test use
# Installs missing packages first. Needs no standard input.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
ensure_node
# playwright-core drives Debian's Chromium; it never downloads a browser of its own.
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error </dev/null)
fi
JOBS=2

cmake -S . -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFERRY_FUZZ=ON >/dev/null
cmake --build build/fuzz -j"$JOBS"

# -O1 -g1 (line tables): ASan reports keep file and line, and the Asio-heavy files compile in
# half the time of -O2 -g (tcp_listener.cpp: 59 s to 29 s), which keeps CI well inside its 15 minutes.
cmake -S . -B build/test -G Ninja -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DFERRY_SANITIZE=ON -DFERRY_WERROR=ON -DFERRY_FUZZ_DIR="$PWD/build/fuzz" \
    -DFERRY_FUZZ_SECONDS="${FERRY_FUZZ_SECONDS:-30}" >/dev/null
cmake --build build/test -j"$JOBS"

# Before the tests: the descriptor-exhaustion test runs the Release binary (the sanitizers need
# descriptors of their own).
cmake -S . -B build/release -G Ninja -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Release \
    -DFERRY_TESTS=OFF >/dev/null
cmake --build build/release -j"$JOBS"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
exec ctest --test-dir build/test --output-on-failure -j"$JOBS"
