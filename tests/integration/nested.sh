#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# moat-vmm's Linux-guest tests on a host without VMX/SVM: the nested test
# bed (tests/nested/bed.sh) boots a Debian kernel under QEMU TCG with an
# emulated AMD SVM (L1), and runs there, under moat-vmm with the lean guest
# kernel as L2:
#   vmm.sh            the probe guests and linux-guest
#   run-moat-vmm.sh   run.sh's container checks
#   clock-moat-vmm.sh clock.sh's
#   lifecycle.sh      with MOAT_LIFECYCLE_CYCLES=$MOAT_NESTED_CYCLES (3)
# MOAT_NESTED_TESTS replaces that list (script names in tests/integration).
# Every inner result is reported here as "NAME: its name"; an inner test
# that never reports, reports fewer results than its plan, exits nonzero,
# or skips everything is a failure. A host that cannot run L1 (QEMU without
# SVM under TCG, no apt access to the kernel package, not root) skips.
# Takes ~15 min on 2 cores; `make check-nested` runs it alone.
# MOAT_NESTED=0 skips it; MOAT_NESTED=1 runs it even where the host has
# VMX/SVM itself (there the moat-vmm tests run natively, and it skips).
cd "$(dirname "$0")/../.."
source tests/lib.sh
if [ -z "${MOAT_NESTED_RESULTS:-}" ]; then
    if [ "${MOAT_NESTED:-}" = 0 ]; then
        skip "nested test bed" "MOAT_NESTED=0"
        exit 0
    fi
    if [ "${MOAT_NESTED:-}" != 1 ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
        skip "nested test bed" "host has VMX/SVM: run-moat-vmm.sh and vmm.sh run natively (MOAT_NESTED=1 runs the bed anyway)"
        exit 0
    fi
fi
R=build/nested/results
mkdir -p build/nested
tests=${MOAT_NESTED_TESTS:-vmm.sh run-moat-vmm.sh clock-moat-vmm.sh lifecycle.sh}
# slow L2 boots: ~5-10 s to the agent, 2x that on a busy host
export MOAT_NESTED_ENV="MOAT_BOOT_TIMEOUT=60 MOAT_TEST_SILENT_TIMEOUT=30 MOAT_LIFECYCLE_CYCLES=${MOAT_NESTED_CYCLES:-3} ${MOAT_NESTED_ENV:-}"
args=()
for t in $tests; do args+=("${t%.sh}=tests/integration/$t"); done

t0=$SECONDS
if [ -n "${MOAT_NESTED_RESULTS:-}" ]; then
    # report a finished bed's results again (and tests/integration/nested-report.sh
    # feeds made-up ones): no L1 is booted
    R=$MOAT_NESTED_RESULTS
    rc=$(cat "$R/bed.rc" 2>/dev/null || echo 0)
else
    tests/nested/bed.sh "$R" "${args[@]}" 2>build/nested/bed.err
    rc=$?
    echo $rc >"$R/bed.rc"
    sed 's/^/# bed: /' build/nested/bed.err
fi
if [ "$rc" -eq 2 ]; then
    skip "nested test bed" "$(cat "$R/skip")"
    exit 0
fi
if [ "$rc" -eq 0 ]; then ok "L1 booted and powered off"; else not_ok "L1 booted and powered off"; fi

# report NAME: NAME.tap's results as ours, then whether it was complete
report() {
    local name=$1 f=$R/$1.tap line n=0 skips=0 plans=0 plan= desc reason=
    if [ ! -f "$f" ]; then
        not_ok "$name: never reported (L1 did not get to it)"
        return
    fi
    while IFS= read -r line; do
        if [[ $line =~ ^(not\ )?ok($|[[:space:]]+)([0-9]+)?[[:space:]]*(-[[:space:]]*)?(.*)$ ]]; then
            local failed=${BASH_REMATCH[1]}
            desc=${BASH_REMATCH[5]}
            n=$((n + 1))
            if [[ $desc =~ \#[[:space:]]*SKIP ]]; then
                skips=$((skips + 1))
                [ -n "$reason" ] || reason=${desc#*SKIP}
            fi
            if [ -n "$failed" ]; then
                not_ok "$name: $desc"
            else
                ok "$name: $desc"
            fi
        elif [[ $line =~ ^1\.\.([0-9]+)(.*)$ ]]; then
            plans=$((plans + 1))
            plan=${BASH_REMATCH[1]}
            desc=${BASH_REMATCH[2]}
            [[ $desc == *SKIP* ]] && [ -z "$reason" ] && reason=${desc#*SKIP}
        else
            echo "# $name| $line"
        fi
    done <"$f"
    local rc secs
    rc=$(cat "$R/$name.rc" 2>/dev/null || echo none)
    secs=$(cat "$R/$name.secs" 2>/dev/null || echo '?')
    diag "$name: $n results in ${secs}s, exit status $rc"
    if [ "$plans" -eq 0 ]; then
        not_ok "$name: printed no plan: it stopped before its end, after $n results$([ "$rc" = 124 ] && echo ' (timed out)')"
    elif [ "$plans" -gt 1 ]; then
        not_ok "$name: printed $plans plans"
    elif [ "$plan" -ne "$n" ]; then
        not_ok "$name: planned $plan results and printed $n"
    elif [ "$rc" != 0 ]; then
        not_ok "$name: exited with status $rc"
    elif [ "$skips" -eq "$n" ]; then
        # inside the bed there is hardware virtualization: nothing may skip it all
        not_ok "$name: skipped everything inside L1:$reason"
    else
        ok "$name: complete ($plan results, exit status 0)"
    fi
}

report l1
for t in $tests; do report "${t%.sh}"; done
if [ -f "$R/stalled" ]; then
    not_ok "L1 kept making progress"
    sed 's/^/# watchdog: /' "$R/stall.log"
elif [ -f "$R/stall.log" ]; then
    # an NMI got it going again: the results above count, the stall is news
    ok "L1 kept making progress (after a stall an NMI ended)"
    sed 's/^/# watchdog: /' "$R/stall.log"
else
    ok "L1 kept making progress"
fi
if [ -f "$R/finished" ]; then
    ok "L1 got through its list"
else
    not_ok "L1 got through its list"
    tail -20 "$R/console.log" 2>/dev/null | sed 's/^/# console: /'
fi
diag "L1 ran $(cat "$R/qemu.secs" 2>/dev/null || echo '?')s; the bed took $((SECONDS - t0))s in all"
done_testing
