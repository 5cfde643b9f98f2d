#!/bin/bash
# Runs moat's tests and prints one closing line: "N passed, M failed, K skipped".
#   tests/run.sh unit|integration|all
# Every test program speaks TAP (cmocka through CMOCKA_MESSAGE_OUTPUT=TAP,
# shell tests through tests/lib.sh). Output of each goes to build/test-logs/.
set -u
cd "$(dirname "$0")/.."
what=${1:-all}
logs=build/test-logs
mkdir -p "$logs"
pass=0 fail=0 skipped=0
failed_names=()

count() { # name logfile rc
    local name=$1 log=$2 rc=$3 p f s
    p=$(grep -cE '^ok [0-9]+' "$log" | head -1)
    s=$(grep -cE '^ok [0-9]+.*# SKIP' "$log" | head -1)
    f=$(grep -cE '^not ok [0-9]+' "$log" | head -1)
    p=$((p - s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        # the program died without reporting a failure: count it as one
        f=1
        echo "not ok - $name exited with status $rc" >>"$log"
    fi
    pass=$((pass + p)); fail=$((fail + f)); skipped=$((skipped + s))
    [ "$f" -gt 0 ] && failed_names+=("$name")
    printf '%-40s %3d passed, %d failed, %d skipped\n' "$name" "$p" "$f" "$s"
    grep -E '^not ok|# SKIP' "$log" | sed 's/^/    /'
}

run_one() { # name command...
    local name=$1; shift
    local log=$logs/$name.log
    mkdir -p "$(dirname "$log")"
    "$@" >"$log" 2>&1 </dev/null
    count "$name" "$log" $?
}

if [ "$what" = unit ] || [ "$what" = all ]; then
    export CMOCKA_MESSAGE_OUTPUT=TAP
    for t in build/tests/test_*; do
        [ -x "$t" ] || continue
        run_one "unit/$(basename "$t")" "$t"
    done
    for t in build/asan/tests/test_*; do
        [ -x "$t" ] || continue
        ASAN_OPTIONS=detect_leaks=1 run_one "asan/$(basename "$t")" "$t"
    done
fi
if [ "$what" = integration ] || [ "$what" = all ]; then
    for t in tests/integration/*.sh; do
        [ -f "$t" ] || continue
        run_one "integration/$(basename "$t" .sh)" bash "$t"
    done
fi
if [ ${#failed_names[@]} -gt 0 ]; then
    echo "failed: ${failed_names[*]} (logs in $logs/)"
fi
echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
