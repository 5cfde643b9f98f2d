#!/bin/bash
# CLI benchmark: moat vs crun vs runc on the same busybox bundle.
#   bench/cli.sh [RUNS] [N]
# For each runtime prints, in milliseconds (mean of RUNS / N runs):
#   run_true   `RUNTIME run ID` of `true`, end to end (create, start, wait,
#              delete; for moat that includes booting and powering off the VM)
#   state      `RUNTIME state ID` on a running container
#   list       `RUNTIME list` with that one container (if the runtime has it)
#   kill       `RUNTIME kill ID USR1` on a running container (ignored by it)
# crun 1.8 refuses this host's cgroup hybrid layout; it then runs in a
# private mount namespace without /sys/fs/cgroup/unified, as the OCI suite
# does (tests/oci/README.md).
set -u
cd "$(dirname "$0")/.."
runs=${1:-3}
n=${2:-20}
work=$(mktemp -d /tmp/moat-bench-cli.XXXXXX)
trap 'for r in moat crun runc; do for id in bench-run bench-idle; do rt_$r delete --force $id >/dev/null 2>&1; done; done 2>/dev/null; rm -rf "$work"' EXIT

scripts/mkbundle.sh "$work/true" >/dev/null
jq '.process.args = ["true"] | .process.terminal = false' "$work/true/config.json" >"$work/c" && mv "$work/c" "$work/true/config.json"
scripts/mkbundle.sh "$work/idle" >/dev/null
jq '.process.args = ["sh", "-c", "trap \"\" USR1; while :; do sleep 1; done"] | .process.terminal = false' \
    "$work/idle/config.json" >"$work/c" && mv "$work/c" "$work/idle/config.json"

source bench/lib.sh

ms() { echo $(($(date +%s%N) / 1000000)); }

# mean_ms N COMMAND...: mean wall time of N runs of COMMAND (output dropped)
mean_ms() {
    local count=$1 i t0 sum=0
    shift
    for ((i = 0; i < count; i++)); do
        t0=$(date +%s%N)
        "$@" </dev/null >/dev/null 2>&1 || return 1
        sum=$((sum + $(date +%s%N) - t0))
    done
    echo $((sum / count / 1000000))
}

printf '%-6s %10s %8s %8s %8s\n' runtime run_true state list kill
for r in moat crun runc; do
    case $r in
    moat) [ -x "$MOAT" ] || { echo "moat   not built"; continue; } ;;
    *) command -v $r >/dev/null || { echo "$r not installed"; continue; } ;;
    esac
    [ $r = crun ] && crun_probe "$work/true"
    run_true=$(mean_ms "$runs" rt_$r run -b "$work/true" bench-run) || run_true=fail
    rt_$r delete --force bench-run >/dev/null 2>&1
    if ! rt_$r run -d -b "$work/idle" bench-idle </dev/null >/dev/null 2>"$work/$r.err"; then
        printf '%-6s %10s %8s %8s %8s   (%s)\n' $r "$run_true" - - - "$(tail -c 200 "$work/$r.err" | tr '\n' ' ')"
        continue
    fi
    state=$(mean_ms "$n" rt_$r state bench-idle) || state=fail
    if rt_$r list >/dev/null 2>&1; then list=$(mean_ms "$n" rt_$r list) || list=fail; else list=n/a; fi
    kill=$(mean_ms "$n" rt_$r kill bench-idle USR1) || kill=fail
    rt_$r kill bench-idle KILL >/dev/null 2>&1
    sleep 0.5
    rt_$r delete --force bench-idle >/dev/null 2>&1
    printf '%-6s %10s %8s %8s %8s\n' $r "$run_true" "$state" "$list" "$kill"
done
