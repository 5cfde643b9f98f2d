#!/bin/bash
# Start latency and idle memory: moat from a cold boot and from a VM
# template, against crun and runc, on one busybox bundle.
#   bench/start.sh [RUNS] [SIZES]
# Prints, side by side:
#   run_true  `RUNTIME run ID` of `true`, end to end, median of RUNS (>= 5)
#             runs; for moat cold (MOAT_TEMPLATE=off) and from a template
#             (MOAT_TEMPLATE=on), which `moat check` must call ready or
#             "not built yet" (the first run builds it, outside the timing)
#   pss       host PSS (smaps_rollup) summed over every process of N idle
#             sandboxes (VMM, moat-vsock, stand-in) for N in SIZES
#             (default "1 5 10"), cold and from a template
# A column is "n/a" with the reason where a path cannot run here (on
# Debian 12's QEMU 7.2 templates cannot be restored: see docs/limits.md).
# Figures under QEMU TCG say how moat's paths compare on this machine;
# with KVM a cold boot is several times faster, and a restore's share of
# the time (loading the state file) is the same order of magnitude.
set -u
cd "$(dirname "$0")/.."
runs=${1:-5}
sizes=${2:-1 5 10}
[ "$runs" -ge 5 ] || runs=5
work=$(mktemp -d /tmp/moat-bench-start.XXXXXX)
export MOAT_HYPERVISOR=${MOAT_HYPERVISOR:-qemu}
cleanup() {
    local r id
    for r in moat crun runc; do
        for id in $(ls "$work/$r" 2>/dev/null); do rt_$r delete --force "$id" >/dev/null 2>&1; done
    done
    rm -rf "$work"
}
trap cleanup EXIT

scripts/mkbundle.sh "$work/true" >/dev/null
jq '.process.args = ["true"] | .process.terminal = false' "$work/true/config.json" >"$work/c" &&
    mv "$work/c" "$work/true/config.json"
scripts/mkbundle.sh "$work/idle" >/dev/null
jq '.process.args = ["sh", "-c", "while :; do sleep 100; done"] | .process.terminal = false' \
    "$work/idle/config.json" >"$work/c" && mv "$work/c" "$work/idle/config.json"

source bench/lib.sh

# median_ms N COMMAND...: median wall time of N runs (output dropped)
median_ms() {
    local count=$1 i t0
    shift
    for ((i = 0; i < count; i++)); do
        t0=$(date +%s%N)
        "$@" </dev/null >/dev/null 2>&1 || return 1
        echo $((($(date +%s%N) - t0) / 1000000))
    done | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# pss_kb ID...: PSS of every process of these moat sandboxes (state.json
# names the stand-in, the VMM and moat-vsock)
pss_kb() {
    local id pid sum=0 kb
    for id in "$@"; do
        for pid in $(jq -r '.pid, .vmmPid, .vsockdPid' "$work/moat/$id/state.json" 2>/dev/null | sort -u); do
            [ "$pid" -gt 0 ] 2>/dev/null || continue
            kb=$(awk '/^Pss:/ { print $2 }' /proc/$pid/smaps_rollup 2>/dev/null)
            sum=$((sum + ${kb:-0}))
        done
    done
    echo $sum
}

# idle_pss N: start N idle sandboxes, wait until they are running, print
# their summed PSS in MiB, remove them
idle_pss() {
    local n=$1 i ids=()
    for ((i = 0; i < n; i++)); do
        rt_moat run -d -b "$work/idle" "idle-$i" </dev/null >/dev/null 2>"$work/idle.err" || {
            echo "fail($(tail -c 120 "$work/idle.err" | tr '\n' ' '))"
            return
        }
        ids+=("idle-$i")
    done
    sleep 2 # let them settle (guest page cache, QEMU's lazy allocations)
    echo "$(($(pss_kb "${ids[@]}") / 1024))"
    for i in "${ids[@]}"; do rt_moat delete --force "$i" >/dev/null 2>&1; done
}

status=$(MOAT_TEMPLATE=on "$MOAT" check 2>/dev/null | sed -n 's/^vm template: *//p')
case $status in
ready* | "not built yet"*) tpl=yes ;;
*) tpl=no ;;
esac

echo "# bench/start.sh: median of $runs runs, $(nproc) cores, $("$MOAT" env | sed -n 's/^MOAT_HYPERVISOR=//p') backend"
echo "# vm template: $status"
printf '%-16s %10s\n' runtime run_true_ms
cold=$(MOAT_TEMPLATE=off median_ms "$runs" rt_moat run -b "$work/true" bench-run) || cold=fail
printf '%-16s %10s\n' "moat cold" "$cold"
if [ $tpl = yes ]; then
    MOAT_TEMPLATE=on rt_moat run -b "$work/true" bench-warm </dev/null >/dev/null 2>&1 # builds it
    warm=$(MOAT_TEMPLATE=on median_ms "$runs" rt_moat run -b "$work/true" bench-run) || warm=fail
    printf '%-16s %10s\n' "moat template" "$warm"
else
    printf '%-16s %10s   (%s)\n' "moat template" n/a "templates unavailable here"
fi
for r in crun runc; do
    command -v $r >/dev/null || { printf '%-16s %10s\n' $r "not installed"; continue; }
    [ $r = crun ] && crun_probe "$work/true"
    t=$(median_ms "$runs" rt_$r run -b "$work/true" bench-run) || t=fail
    rt_$r delete --force bench-run >/dev/null 2>&1
    printf '%-16s %10s\n' $r "$t"
done

printf '\n%-16s' "idle sandboxes"
for n in $sizes; do printf ' %10s' "pss_mib_$n"; done
echo
printf '%-16s' "moat cold"
for n in $sizes; do printf ' %10s' "$(MOAT_TEMPLATE=off idle_pss "$n")"; done
echo
printf '%-16s' "moat template"
for n in $sizes; do
    if [ $tpl = yes ]; then printf ' %10s' "$(MOAT_TEMPLATE=on idle_pss "$n")"; else printf ' %10s' n/a; fi
done
echo
