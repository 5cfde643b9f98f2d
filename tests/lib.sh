# SPDX-License-Identifier: Apache-2.0
# TAP helpers for moat's shell tests (tests/integration/*.sh). Source this
# from the top of the repository, report every check with ok, not_ok or
# skip (or check, expect_eq), and END EVERY SCRIPT WITH done_testing:
#
#     source tests/lib.sh
#     check "moat is built" test -x build/moat
#     ...
#     done_testing
#
# done_testing prints the plan "1..N", N being the results reported so far.
# tests/run.sh fails a script whose output has no plan, or a number of
# results other than its plan: a script that stops before its end (an exit
# in the middle, a crash, set -e) cannot drop its remaining checks silently.
#
# To stop early on purpose, say why with skip, then exit:
#
#     if [ "$(id -u)" -ne 0 ]; then skip "moat run" "needs root"; exit 0; fi
#
# An exit right after a skip prints the plan itself (the skip stands for
# what does not run). Any other exit before done_testing prints none, so
# run.sh counts one more failure: after a not_ok too, as the checks that
# exit drops are not passes. A script that ends with `exec` of another
# test script leaves the plan to that script.
T_N=0
T_LAST=        # ok, not_ok or skip: the last result reported
T_PLANNED=     # set once the plan is printed
T_PID=$BASHPID # the script's own shell (not a subshell)
ok() { T_N=$((T_N + 1)); T_LAST=ok; echo "ok $T_N - $*"; }
not_ok() { T_N=$((T_N + 1)); T_LAST=not_ok; echo "not ok $T_N - $*"; }
skip() { T_N=$((T_N + 1)); T_LAST=skip; local name=$1; shift; echo "ok $T_N - $name # SKIP $*"; }
# done_testing: the plan, once, at the end of the script
done_testing() {
    [ -n "$T_PLANNED" ] && return 0
    T_PLANNED=1
    echo "1..$T_N"
}
# exit [STATUS]: after a skip, the script stops on purpose: print the plan
exit() {
    local rc=$?
    if [ "$BASHPID" = "$T_PID" ] && [ "$T_LAST" = skip ]; then
        done_testing
    fi
    builtin exit "${1:-$rc}"
}
# check NAME COMMAND...: ok if the command succeeds
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1"; echo "#   expected: '$2'"; echo "#   actual:   '$3'"; fi
}
diag() { echo "# $*"; }
# bundle DIR JQ-FILTER [JQ-ARGS...]: a busybox bundle (scripts/mkbundle.sh,
# run from the repository's root), its config edited by jq
bundle() {
    local dir=$1 filter=$2
    shift 2
    scripts/mkbundle.sh "$dir" >/dev/null
    jq "$@" "$filter" "$dir/config.json" >"$dir/config.tmp" && mv "$dir/config.tmp" "$dir/config.json"
}
# wait_for SECONDS COMMAND...: poll every 50 ms until COMMAND succeeds
wait_for() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 20; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}
