#!/bin/bash
# Runs moat's tests and prints one closing line: "N passed, M failed, K skipped".
#   tests/run.sh unit|integration|all
#   tests/run.sh tests/integration/X.sh    one integration script alone
# Every test program speaks TAP (cmocka through CMOCKA_MESSAGE_OUTPUT=TAP,
# shell tests through tests/lib.sh). Output of each goes to build/test-logs/.
#
# A program's results count only if they are complete: its output must hold
# exactly one plan ("1..N", first or last, as cmocka and tests/lib.sh's
# done_testing print it) and N results. No plan, or another number of
# results, is one more failure: the program stopped before its end and
# what it did not run is not lost silently. "1..0 # SKIP reason" (nothing
# to run here) counts as one skip. A result with a "# SKIP" directive is a
# skip, whether "ok" or "not ok" (cmocka prints "not ok N # SKIP").
#
# unit: every tests/unit/test_X.c must have been built twice, as
# build/tests/test_X (make unit-bins) and build/asan/tests/test_X (make
# unit-asan); a missing binary is a failure.
set -u
cd "$(dirname "$0")/.."
what=${1:-all}
logs=build/test-logs
mkdir -p "$logs"
pass=0 fail=0 skipped=0
failed_names=()

# report NAME PASSED FAILED SKIPPED LOG: adds to the totals and prints the line
report() {
    local name=$1 p=$2 f=$3 s=$4 log=$5
    pass=$((pass + p)); fail=$((fail + f)); skipped=$((skipped + s))
    [ "$f" -gt 0 ] && failed_names+=("$name")
    printf '%-40s %3d passed, %d failed, %d skipped\n' "$name" "$p" "$f" "$s"
    grep -E '^not ok|# SKIP' "$log" | sed 's/^/    /'
}

count() { # name logfile rc
    local name=$1 log=$2 rc=$3 p f s n plans plan=
    n=$(grep -cE '^(not )?ok\b' "$log")
    s=$(grep -cE '^(not )?ok\b[^#]*# *SKIP' "$log")
    f=$(grep -E '^not ok\b' "$log" | grep -cvE '^not ok\b[^#]*# *SKIP')
    p=$((n - s - f))
    plans=$(grep -cE '^1\.\.[0-9]+' "$log")
    [ "$plans" -eq 1 ] && plan=$(grep -oE '^1\.\.[0-9]+' "$log" | cut -c4-)
    local bad=
    if [ "$plans" -eq 1 ] && [ "$plan" -eq 0 ] && [ "$n" -eq 0 ]; then
        s=1 # nothing to run here: one skip, with its reason
    elif [ "$plans" -eq 0 ]; then
        bad="printed no plan: it stopped before its end, after $n results"
    elif [ "$plans" -gt 1 ]; then
        bad="printed $plans plans"
    elif [ "$plan" -ne "$n" ]; then
        bad="planned $plan results and printed $n"
    fi
    if [ -n "$bad" ]; then
        # one failure more, unless it failed already (the line says why)
        [ "$f" -eq 0 ] && f=1
        echo "not ok - $name $bad" >>"$log"
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        # the program died without reporting a failure: count it as one
        f=1
        echo "not ok - $name exited with status $rc" >>"$log"
    fi
    report "$name" "$p" "$f" "$s" "$log"
}

run_one() { # name command...
    local name=$1; shift
    local log=$logs/$name.log
    mkdir -p "$(dirname "$log")"
    "$@" >"$log" 2>&1 </dev/null
    count "$name" "$log" $?
}

# missing NAME HOW: a test program that should exist and does not
missing() {
    local log=$logs/$1.log
    mkdir -p "$(dirname "$log")"
    echo "not ok - $1 is not built ($2)" >"$log"
    report "$1" 0 1 0 "$log"
}

if [ "$what" = unit ] || [ "$what" = all ]; then
    export CMOCKA_MESSAGE_OUTPUT=TAP
    for src in tests/unit/test_*.c; do
        [ -f "$src" ] || continue
        t=$(basename "$src" .c)
        if [ -x "build/tests/$t" ]; then
            run_one "unit/$t" "build/tests/$t"
        else
            missing "unit/$t" "make unit-bins"
        fi
    done
    for src in tests/unit/test_*.c; do
        [ -f "$src" ] || continue
        t=$(basename "$src" .c)
        if [ -x "build/asan/tests/$t" ]; then
            ASAN_OPTIONS=detect_leaks=1 run_one "asan/$t" "build/asan/tests/$t"
        else
            missing "asan/$t" "make unit-asan"
        fi
    done
fi
if [ "$what" = integration ] || [ "$what" = all ]; then
    for t in tests/integration/*.sh; do
        [ -f "$t" ] || continue
        run_one "integration/$(basename "$t" .sh)" bash "$t"
    done
fi
if [[ $what == *.sh ]]; then
    if [ -f "$what" ]; then
        run_one "integration/$(basename "$what" .sh)" bash "$what"
    else
        missing "integration/$(basename "$what" .sh)" "no such script: $what"
    fi
fi
if [ ${#failed_names[@]} -gt 0 ]; then
    echo "failed: ${failed_names[*]} (logs in $logs/)"
fi
echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
