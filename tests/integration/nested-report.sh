#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# How tests/integration/nested.sh reports the nested bed's inner tests, fed
# made-up results (MOAT_NESTED_RESULTS) instead of booting L1: inner
# results come back prefixed with the inner script's name, and an inner
# test that never reports, stops short of its plan, prints no plan, exits
# nonzero or skips everything is a failure. Seconds; needs no VM.
cd "$(dirname "$0")/../.."
source tests/lib.sh
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

# inner NAME RC TAP: a made-up inner test's results
inner() {
    printf '%b' "$3" >"$W/r/$1.tap"
    echo "$2" >"$W/r/$1.rc"
    echo 7 >"$W/r/$1.secs"
}
mkdir "$W/r"
echo 0 >"$W/r/bed.rc"
touch "$W/r/finished"
inner l1 0 'ok 1 - kvm_amd is loaded\n1..1\n'
inner good 0 'ok 1 - first\n# a diagnostic\nok 2 - second # SKIP not here\nnot ok 3 # SKIP cmocka style\nstray stderr\n1..3\n'
inner bad 1 '1..3\nok 1 - fine\nnot ok 2 - broken\nok 3 - fine too\n'
inner short 0 'ok 1 - one\n1..3\n'
inner noplan 124 'ok 1 - one\nok 2 - two\n'
inner allskip 0 '1..0 # SKIP no kvm here\n'
inner skips 0 'ok 1 - a # SKIP no svm\nok 2 - b # SKIP no svm\n1..2\n'
inner died 139 'ok 1 - one\n1..1\n'
out=$(MOAT_NESTED_RESULTS=$W/r MOAT_NESTED_TESTS="good.sh bad.sh short.sh noplan.sh allskip.sh skips.sh died.sh never.sh" \
    bash tests/integration/nested.sh 2>&1)
has() { grep -qE "$1" <<<"$out"; }
check "inner results keep their order and names" has '^ok 4 - good: first$'
check "inner skips stay skips" has '^ok 5 - good: second # SKIP not here$'
check "cmocka's skipped 'not ok' stays a skip" has '^not ok 6 - good: # SKIP cmocka style$'
check "inner diagnostics and stray lines become comments" has '^# good\| stray stderr$'
check "a complete inner test is one more pass" has '^ok [0-9]+ - good: complete \(3 results, exit status 0\)$'
check "an inner failure is a failure" has '^not ok [0-9]+ - bad: broken$'
check "a plan first is fine, the exit status counts" has '^not ok [0-9]+ - bad: exited with status 1$'
check "fewer results than the plan fail" has '^not ok [0-9]+ - short: planned 3 results and printed 1$'
check "no plan fails, and says it timed out" has '^not ok [0-9]+ - noplan: printed no plan: it stopped before its end, after 2 results \(timed out\)$'
check "a whole-file skip inside L1 fails" has '^not ok [0-9]+ - allskip: skipped everything inside L1: no kvm here$'
check "all checks skipped inside L1 fails" has '^not ok [0-9]+ - skips: skipped everything inside L1: no svm$'
check "a crash after a full plan fails" has '^not ok [0-9]+ - died: exited with status 139$'
check "an inner test that never reports fails" has '^not ok [0-9]+ - never: never reported'
n=$(grep -cE '^(not )?ok\b' <<<"$out")
expect_eq "one plan, for every result" "1..$n" "$(grep -E '^1\.\.' <<<"$out")"
rm "$W/r/finished"
out=$(MOAT_NESTED_RESULTS=$W/r MOAT_NESTED_TESTS="good.sh" bash tests/integration/nested.sh 2>&1)
check "an L1 that stopped early fails" has '^not ok [0-9]+ - L1 got through its list$'
echo "L1 idle with no result for 300s (last: nested-inner: good)" >"$W/r/stall.log"
out=$(MOAT_NESTED_RESULTS=$W/r MOAT_NESTED_TESTS="good.sh" bash tests/integration/nested.sh 2>&1)
check "a stall an NMI ended is reported, not failed" has '^ok [0-9]+ - L1 kept making progress \(after a stall an NMI ended\)$'
touch "$W/r/stalled"
out=$(MOAT_NESTED_RESULTS=$W/r MOAT_NESTED_TESTS="good.sh" bash tests/integration/nested.sh 2>&1)
check "an L1 the watchdog stopped fails, and says why" has '^# watchdog: L1 idle with no result for 300s'
check "... as a failure" has '^not ok [0-9]+ - L1 kept making progress$'
rm "$W/r/stalled" "$W/r/stall.log"
echo 1 >"$W/r/bed.rc"
out=$(MOAT_NESTED_RESULTS=$W/r MOAT_NESTED_TESTS="good.sh" bash tests/integration/nested.sh 2>&1)
check "a bed that failed fails" has '^not ok 1 - L1 booted and powered off$'
echo 2 >"$W/r/bed.rc"
echo "QEMU TCG here lacks SVM" >"$W/r/skip"
out=$(MOAT_NESTED_RESULTS=$W/r bash tests/integration/nested.sh 2>&1)
expect_eq "a host that cannot run the bed skips and says why" \
    "$(printf 'ok 1 - nested test bed # SKIP QEMU TCG here lacks SVM\n1..1')" "$out"
done_testing
