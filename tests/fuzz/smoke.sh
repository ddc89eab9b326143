#!/usr/bin/env bash
# Bounded smoke runs of the fuzz targets, all at once: each for SECONDS, seeded from the checked-in
# corpus, growing its own corpus under the build tree. Fails, naming the target, when a fuzzer
# finds a crash, a leak or a sanitizer report (its artifact is left in ARTIFACTS).
#   smoke.sh FUZZ_BUILD_DIR SECONDS CORPUS_ROOT ARTIFACTS SEED_ROOT TARGET...
set -uo pipefail
dir=$1 seconds=$2 corpus=$3 artifacts=$4 seeds=$5
shift 5
mkdir -p "$artifacts"
declare -A pid
for t in "$@"; do
    mkdir -p "$corpus/$t"
    "$dir/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/$t-" "$corpus/$t" "$seeds/$t" >"$artifacts/$t.log" 2>&1 &
    pid[$t]=$!
done
failed=0
for t in "$@"; do
    if wait "${pid[$t]}"; then
        echo "ok: fuzz_$t: $(grep -E '^stat::number_of_executed_units' "$artifacts/$t.log" | awk '{print $2}') runs in ${seconds} s"
    else
        echo "FAIL: fuzz_$t found a problem:"
        tail -40 "$artifacts/$t.log"
        failed=1
    fi
done
exit "$failed"
