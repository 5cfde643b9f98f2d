#!/bin/bash
# Soak: N create/start/delete cycles of one busybox container, counting
# before and after what a cycle could leak on the host.
#   bench/soak.sh [CYCLES]        (default 1000; MOAT=path/to/moat)
# Each cycle: moat create (boots the VM), moat start, moat delete --force.
# Counted before the first cycle and after the last, and every 100 cycles:
#   fds        open fds of every process that point under the soak's --root
#              and work directory, and the system's allocated file handles
#              (/proc/sys/fs/file-nr, which other programs move too)
#   mounts     mounts under --root or the work directory
#   processes  processes whose command line names the soak's --root
#   taps       moat taps in the sandboxes' network namespace (a named one
#              here, so that its taps can be seen)
#   cgroups    the sandboxes' host cgroups (moat/<id>@... in every hierarchy)
#   statedirs  directories under --root
# Prints one line per checkpoint and a closing line: cycles, seconds,
# seconds per cycle, failures, and the leaks (after minus before). Exits 1
# if anything leaked or a cycle failed.
set -u
cd "$(dirname "$0")/.."
cycles=${1:-1000}
MOAT=${MOAT:-$PWD/build/moat}
export MOAT_BOOT_TIMEOUT=${MOAT_BOOT_TIMEOUT:-120}
root=$(mktemp -d /tmp/moat-soak.XXXXXX)
work=$(mktemp -d /tmp/moat-soak-work.XXXXXX)
ns=msoak$$
cleanup() {
    "$MOAT" --root "$root" delete --force soak >/dev/null 2>&1
    ip netns del "$ns" 2>/dev/null
    rm -rf "$root" "$work"
}
trap cleanup EXIT
if [ "$(id -u)" -ne 0 ]; then
    echo "soak: needs root" >&2
    exit 2
fi
ip netns add "$ns" || exit 2
scripts/mkbundle.sh "$work/b" >/dev/null
jq --arg ns "/var/run/netns/$ns" '.process.args = ["sleep", "1000"] | .linux.resources.memory.limit = 67108864
    | .linux.namespaces |= map(if .type == "network" then .path = $ns else . end)' \
    "$work/b/config.json" >"$work/c" && mv "$work/c" "$work/b/config.json"

counts() {
    local fds sysfds mounts procs taps cgroups dirs
    fds=$(find /proc/[0-9]*/fd -maxdepth 1 \( -lname "$root/*" -o -lname "$work/*" \) 2>/dev/null | wc -l)
    sysfds=$(cut -f1 /proc/sys/fs/file-nr)
    mounts=$(grep -c -e " $root/" -e " $work/" /proc/self/mountinfo)
    procs=$(pgrep -fc "$root/")
    taps=$(ip -n "$ns" -o link show 2>/dev/null | awk -F': ' '{print $2}' | grep -c '^moat')
    cgroups=$(ls -d /sys/fs/cgroup/*/moat/soak@* 2>/dev/null | wc -l)
    dirs=$(find "$root" -mindepth 1 -maxdepth 1 | wc -l)
    echo "fds=$fds mounts=$mounts processes=$procs taps=$taps cgroups=$cgroups statedirs=$dirs system-fds=$sysfds"
}

before=$(counts)
echo "before: $before"
fail=0
t0=$(date +%s)
for ((i = 1; i <= cycles; i++)); do
    if ! timeout -k 10 300 "$MOAT" --root "$root" create -b "$work/b" soak </dev/null >"$work/out" 2>&1 ||
        ! timeout -k 10 60 "$MOAT" --root "$root" start soak >>"$work/out" 2>&1; then
        fail=$((fail + 1))
        echo "cycle $i failed: $(head -c 300 "$work/out" | tr '\n' ' ')"
    fi
    if ! timeout -k 10 60 "$MOAT" --root "$root" delete --force soak >>"$work/out" 2>&1; then
        fail=$((fail + 1))
        echo "cycle $i: delete failed: $(tail -c 300 "$work/out" | tr '\n' ' ')"
    fi
    if [ $((i % 100)) = 0 ]; then
        echo "after $i cycles ($(($(date +%s) - t0)) s): $(counts)"
    fi
done
t1=$(date +%s)
# the last VM's processes may take a moment to go
for _ in $(seq 50); do [ "$(pgrep -fc "$root/")" = 0 ] && break; sleep 0.1; done
after=$(counts)
echo "after: $after"
leaks=""
for k in fds mounts processes taps cgroups statedirs; do
    b=$(echo " $before" | grep -oE " $k=[0-9]+" | cut -d= -f2)
    a=$(echo " $after" | grep -oE " $k=[0-9]+" | cut -d= -f2)
    [ "$a" != "$b" ] && leaks="$leaks $k:$((a - b))"
done
secs=$((t1 - t0))
echo "cycles=$cycles seconds=$secs per-cycle=$(awk -v s=$secs -v c="$cycles" 'BEGIN {printf "%.2f", s / c}') failures=$fail leaks=${leaks:-0}"
[ -z "$leaks" ] && [ $fail = 0 ]
