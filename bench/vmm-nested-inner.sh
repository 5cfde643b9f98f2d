#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Runs inside the nested test bed's L1 (bench/vmm.sh --nested starts it),
# where /dev/kvm is kvm_amd on an emulated SVM: moat-vmm against QEMU
# (-accel kvm -M microvm, moat's qemu backend) with the same lean kernel
# and initramfs, side by side:
#   - launch to the agent's first answer (moat's own measure: "guest ...
#     answered N ms after launch"), median of RUNS
#   - `moat run` of `true`, end to end, median of RUNS
#   - the VMM's RSS and PSS with an idle container
# Prints TAP (the bed counts it) with the figures as diagnostics.
set -u
cd "$(dirname "$0")/.."
source tests/lib.sh
RUNS=${MOAT_BENCH_RUNS:-3}
ROOT=$(mktemp -d /tmp/moat-bench.XXXXXX)
W=$(mktemp -d /tmp/moat-bench-work.XXXXXX)
trap 'pkill -KILL -f "$ROOT/" 2>/dev/null; rm -rf "$ROOT" "$W"' EXIT
export MOAT_BOOT_TIMEOUT=${MOAT_BOOT_TIMEOUT:-120}
bundle "$W/b" '.process.args = ["true"]'
bundle "$W/idle" '.process.args = ["sleep", "1000"]'
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "?" }'; }
kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$2/smaps_rollup" 2>/dev/null; }

declare -A ANSWER RUN RSS PSS
for hv in moat-vmm qemu; do
    : >"$W/answer" >"$W/run"
    for i in $(seq "$RUNS"); do
        t0=$(date +%s%N)
        MOAT_HYPERVISOR=$hv build/moat --root "$ROOT" --debug run -b "$W/b" "r$hv$i" </dev/null >/dev/null 2>"$W/err"
        rc=$?
        t1=$(date +%s%N)
        [ "$rc" -eq 0 ] || diag "$hv run $i: rc $rc: $(tail -2 "$W/err")"
        sed -n 's/.*answered \([0-9]*\) ms after launch.*/\1/p' "$W/err" | head -1 >>"$W/answer"
        echo $(((t1 - t0) / 1000000)) >>"$W/run"
    done
    ANSWER[$hv]=$(median <"$W/answer")
    RUN[$hv]=$(median <"$W/run")
    MOAT_HYPERVISOR=$hv build/moat --root "$ROOT" create -b "$W/idle" "i$hv" </dev/null >/dev/null 2>"$W/err" &&
        build/moat --root "$ROOT" start "i$hv"
    sleep 3
    vmm=$(jq -r '.vmmPid // 0' "$ROOT/i$hv/state.json" 2>/dev/null)
    RSS[$hv]=$(kib Rss "$vmm")
    PSS[$hv]=$(kib Pss "$vmm")
    build/moat --root "$ROOT" delete -f "i$hv" >/dev/null 2>&1
    if [ -n "${ANSWER[$hv]}" ] && [ "${ANSWER[$hv]}" != "?" ] && [ -n "${RSS[$hv]}" ]; then
        ok "$hv: measured"
    else
        not_ok "$hv: measured"
        diag "$(tail -3 "$W/err")"
    fi
done
diag "figures (median of $RUNS; moat-vmm and QEMU -accel kvm -M microvm, same kernel and initramfs, in the L1):"
diag "$(printf '%-10s %16s %18s %12s %12s' backend 'agent answer ms' 'moat run true ms' 'VMM RSS KiB' 'VMM PSS KiB')"
for hv in moat-vmm qemu; do
    diag "$(printf '%-10s %16s %18s %12s %12s' "$hv" "${ANSWER[$hv]}" "${RUN[$hv]}" "${RSS[$hv]}" "${PSS[$hv]}")"
done
a=${ANSWER[moat-vmm]} b=${ANSWER[qemu]} r=${RSS[moat-vmm]} q=${RSS[qemu]}
if [[ $a =~ ^[0-9]+$ && $b =~ ^[0-9]+$ && $b -gt 0 && $r =~ ^[0-9]+$ && $q =~ ^[0-9]+$ && $q -gt 0 ]]; then
    diag "ratios: agent answer moat-vmm/qemu $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')x (goal <= 0.7), RSS moat-vmm/qemu $(awk -v a="$r" -v b="$q" 'BEGIN { printf "%.3f", a / b }')x (goal <= 0.1)"
fi
done_testing
