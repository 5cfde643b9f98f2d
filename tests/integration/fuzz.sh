#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Fuzz smoke test (make fuzz-smoke; make check runs it through tests/run.sh):
# each libFuzzer target of tests/fuzz replays its seed corpus and fuzzes for
# FUZZ_SMOKE_SECONDS (default 25) on a copy of it, so a regression that
# makes a checked-in input crash again, or that a short run finds, fails
# here. Needs `make fuzz-bins` (clang); what a run found is left in
# build/fuzz/artifacts/smoke/<target>/ and its log in build/test-logs/.
cd "$(dirname "$0")/../.."
source tests/lib.sh
secs=${FUZZ_SMOKE_SECONDS:-25}
work=$(mktemp -d /tmp/moat-fuzz-smoke.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p build/test-logs
for src in tests/fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    t=${t#fuzz_}
    bin=build/fuzz/bin/fuzz_$t
    if [ ! -x "$bin" ]; then
        not_ok "fuzz_$t is built (make fuzz-bins)"
        continue
    fi
    mkdir -p "$work/$t" "build/fuzz/artifacts/smoke/$t"
    cp -r "tests/fuzz/corpus/$t/." "$work/$t/"
    log=build/test-logs/fuzz-$t.log
    if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="build/fuzz/artifacts/smoke/$t/" "$work/$t" >"$log" 2>&1; then
        ok "fuzz_$t: $(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$') runs in ${secs}s, nothing found"
    else
        not_ok "fuzz_$t found a crash, leak or hang (log: $log)"
        grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -5 | sed 's/^/#   /'
    fi
done
done_testing
