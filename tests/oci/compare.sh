#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Run the OCI conformance suite (tests/oci/run.sh) against several runtimes
# in one go and print their results side by side.
#
# usage: tests/oci/compare.sh [NAME=BINARY ...]
#   default runtimes: moat=build/moat (if it has a "create" command, else it
#   is reported as not available), runc=/usr/sbin/runc, crun=/usr/bin/crun.
# env:  OCI_LOGDIR  where the TAP logs go (default build/oci)
#       OCI_FILTER  only run checks matching this regex
#
# Exit status: 0, or 1 if moat is available and passes fewer checks than runc.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
LOGDIR=${OCI_LOGDIR:-$TOP/build/oci}
mkdir -p "$LOGDIR"

if [ $# -gt 0 ]; then
        SPECS=("$@")
else
        SPECS=("moat=$TOP/build/moat" "runc=/usr/sbin/runc" "crun=/usr/bin/crun")
fi

NAMES=()
declare -A BIN STATE PASS FAIL SKIP
for spec in "${SPECS[@]}"; do
        name=${spec%%=*}
        bin=${spec#*=}
        NAMES+=("$name")
        BIN[$name]=$bin
        if [ ! -x "$bin" ]; then
                STATE[$name]="not available ($bin not found)"
        elif ! "$bin" create --help >/dev/null 2>&1; then
                STATE[$name]="not available ($bin has no 'create' command)"
        else
                STATE[$name]=ok
        fi
done

filter=()
[ -z "${OCI_FILTER:-}" ] || filter=(--filter "$OCI_FILTER")

for name in "${NAMES[@]}"; do
        [ "${STATE[$name]}" = ok ] || continue
        echo "== $name (${BIN[$name]})"
        # a whole run is bounded too (every runtime call inside is as well)
        timeout -k 10 1800 "$HERE/run.sh" "${BIN[$name]}" "${filter[@]}" >"$LOGDIR/$name.tap" 2>"$LOGDIR/$name.stderr"
        PASS[$name]=$(grep -c '^ok [0-9]* - [^#]*$' "$LOGDIR/$name.tap")
        SKIP[$name]=$(grep -c '^ok [0-9]* - .*# SKIP' "$LOGDIR/$name.tap")
        FAIL[$name]=$(grep -c '^not ok ' "$LOGDIR/$name.tap")
        grep -q '^1\.\.[0-9]' "$LOGDIR/$name.tap" || echo "   (incomplete run: see $LOGDIR/$name.tap and $name.stderr)"
done

echo
printf '%-8s %6s %6s %6s\n' runtime pass fail skip
for name in "${NAMES[@]}"; do
        if [ "${STATE[$name]}" = ok ]; then
                printf '%-8s %6s %6s %6s\n' "$name" "${PASS[$name]}" "${FAIL[$name]}" "${SKIP[$name]}"
        else
                printf '%-8s %s\n' "$name" "${STATE[$name]}"
        fi
done

echo
printf '%-36s %s\n' "check" "failed in (skipped in)"
any=0
for check in $("$HERE/run.sh" x --list); do
        failed="" skipped=""
        for name in "${NAMES[@]}"; do
                [ "${STATE[$name]}" = ok ] || continue
                if grep -q "^not ok [0-9]* - $check\$" "$LOGDIR/$name.tap"; then
                        failed+="$name "
                elif grep -q "^ok [0-9]* - $check # SKIP" "$LOGDIR/$name.tap"; then
                        skipped+="$name "
                fi
        done
        [ -n "$failed$skipped" ] || continue
        any=1
        printf '%-36s %s%s\n' "$check" "$failed" "${skipped:+(skipped: ${skipped% })}"
done
[ $any = 1 ] || echo "(every runtime passed every check)"
echo
echo "TAP logs with failure reasons: $LOGDIR/<runtime>.tap"

if [ "${STATE[moat]:-}" = ok ] && [ "${STATE[runc]:-}" = ok ] && [ "${PASS[moat]}" -lt "${PASS[runc]}" ]; then
        echo "FAIL: moat passes ${PASS[moat]} checks, fewer than runc's ${PASS[runc]}"
        exit 1
fi
exit 0
