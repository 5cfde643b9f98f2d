# SPDX-License-Identifier: Apache-2.0
# TAP helpers for moat's shell tests. Source this; call plan-free
# ok/not_ok/skip; tests/run.sh counts the lines.
T_N=0
ok() { T_N=$((T_N + 1)); echo "ok $T_N - $*"; }
not_ok() { T_N=$((T_N + 1)); echo "not ok $T_N - $*"; }
skip() { T_N=$((T_N + 1)); local name=$1; shift; echo "ok $T_N - $name # SKIP $*"; }
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
