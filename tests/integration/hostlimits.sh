#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Host-side limits of a sandbox (docs/limits.md, "Host-side limits"): the
# host cgroup of a container given 256 MiB and 1 CPU has a memory limit
# (guest RAM + the VMM's measured overhead), a CPU quota and a pids limit;
# a guest spinning on its vCPU takes no more of the host than its quota
# (measured with the cgroup's CPU usage), also after `moat update` lowers
# it; a guest that allocates all its RAM is OOM-killed inside the guest,
# never the VMM on the host; delete removes the cgroup.
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
ROOT=$(mktemp -d /tmp/moat-hl.XXXXXX)
WORK=$(mktemp -d /tmp/moat-hl-work.XXXXXX)
CG=moat-hl-$$
trap 'pkill -KILL -f "$ROOT/" 2>/dev/null; grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
      for d in /sys/fs/cgroup/*/$CG-* /sys/fs/cgroup/$CG-*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
      rm -rf "$ROOT" "$WORK"' EXIT

for f in "$MOAT" build/moat-vsock build/initramfs.cpio.gz build/vmlinux; do
    if [ ! -e "$f" ]; then
        skip "host limits" "$f is missing (run make && make guest)"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    skip "host limits" "needs root"
    exit 0
fi
export MOAT_BOOT_TIMEOUT=${MOAT_BOOT_TIMEOUT:-120}
moat() { "$MOAT" --root "$ROOT" "$@"; }

# cgfile PATH FILE...: the first existing FILE of cgroup PATH in any
# hierarchy (v1: /sys/fs/cgroup/<controller>/PATH, v2: /sys/fs/cgroup/PATH)
cgfile() {
    local path=$1 f d
    shift
    for f in "$@"; do
        for d in /sys/fs/cgroup/*"$path" /sys/fs/cgroup"$path"; do
            [ -f "$d/$f" ] && { echo "$d/$f"; return 0; }
        done
    done
    return 1
}
v2=false
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && v2=true
if ! grep -qw memory /proc/cgroups || ! grep -qw pids /proc/cgroups; then
    skip "host limits" "the host has no memory or pids cgroup controller"
    exit 0
fi

# cpu_usec PATH: the cgroup's CPU time so far, in microseconds
cpu_usec() {
    local f
    if f=$(cgfile "$1" cpuacct.usage); then echo $(($(cat "$f") / 1000)); return; fi
    f=$(cgfile "$1" cpu.stat) && awk '$1 == "usage_usec" { print $2 }' "$f"
}
# cpus_used PATH SECONDS: CPUs the cgroup used over SECONDS, as a decimal
cpus_used() {
    local a b t0 t1
    a=$(cpu_usec "$1")
    t0=$(date +%s%N)
    sleep "$2"
    b=$(cpu_usec "$1")
    t1=$(date +%s%N)
    awk -v a="$a" -v b="$b" -v t="$(((t1 - t0) / 1000))" 'BEGIN { printf "%.3f", (b - a) / t }'
}
# oom_kills PATH: OOM kills the host did in the cgroup
oom_kills() {
    local f
    if f=$(cgfile "$1" memory.events) && $v2; then awk '$1 == "oom_kill" { print $2 }' "$f"; return; fi
    f=$(cgfile "$1" memory.oom_control) && awk '$1 == "oom_kill" { print $2 }' "$f"
}
vmm_alive() { pgrep -f "$ROOT/$1/" | xargs -r ps -o comm= -p | grep -qE 'qemu|moat-vmm'; }
backend=qemu
hw=$(grep -owE 'vmx|svm' /proc/cpuinfo | head -1)
[ -n "$hw" ] && [ -r /dev/kvm ] && backend=moat-vmm
[ -n "${MOAT_HYPERVISOR:-}" ] && backend=$MOAT_HYPERVISOR
if [ "$backend" = moat-vmm ]; then overhead=96; else overhead=256; fi
# the hog: doubles a string until the guest's OOM killer stops it
HOG='awk "BEGIN { s = \"x\"; while (1) s = s s }"; echo "hog status $?"'

# --- 1. 256 MiB and 1 CPU --------------------------------------------------
bundle "$WORK/a" '.process.args = ["sleep", "600"]
  | .linux.resources.memory.limit = 268435456
  | .linux.resources.cpu = {"quota": 100000, "period": 100000}
  | .linux.cgroupsPath = $cg' --arg cg "/$CG-a"
if ! moat create -b "$WORK/a" a >"$WORK/a.log" 2>&1 || ! moat start a >>"$WORK/a.log" 2>&1; then
    not_ok "256 MiB / 1 CPU container starts"
    diag "$(cat "$WORK/a.log")"
else
    ok "256 MiB / 1 CPU container starts"
fi
guest=$((256 + 192))
if $v2; then lim=$(cat "$(cgfile "/$CG-a" memory.max)" 2>/dev/null); else
    lim=$(cat "$(cgfile "/$CG-a" memory.limit_in_bytes)" 2>/dev/null); fi
expect_eq "memory limit: guest RAM $guest MiB + $backend overhead $overhead MiB" $(((guest + overhead) << 20)) "${lim:-none}"
if $v2; then quota=$(cat "$(cgfile "/$CG-a" cpu.max)" 2>/dev/null); else
    quota="$(cat "$(cgfile "/$CG-a" cpu.cfs_quota_us)" 2>/dev/null) $(cat "$(cgfile "/$CG-a" cpu.cfs_period_us)" 2>/dev/null)"; fi
expect_eq "CPU quota: 1 CPU (100000 per 100000 us)" "100000 100000" "$quota"
expect_eq "pids limit: 256 + 1 vCPU" 257 "$(cat "$(cgfile "/$CG-a" pids.max)" 2>/dev/null)"
vmm=$(pgrep -f "$ROOT/a/" | xargs -r ps -o pid=,comm= -p | awk '/qemu|moat-vmm/ { print $1 }' | head -1)
if [ -n "$vmm" ] && grep -qx "$vmm" "$(cgfile "/$CG-a" cgroup.procs)"; then ok "the VMM is in the limited cgroup"; else
    not_ok "the VMM is in the limited cgroup"; fi
# every thread of the VMM (vCPUs too) is under the quota
if [ -n "$vmm" ] && f=$(cgfile "/$CG-a" cpu.cfs_quota_us cpu.max) && d=$(dirname "$f") &&
    [ -z "$(comm -23 <(ls /proc/"$vmm"/task | sort) <(sort "$d/tasks" 2>/dev/null || sort "$d/cgroup.threads"))" ]; then
    ok "every thread of the VMM is in the cpu cgroup"
else
    not_ok "every thread of the VMM is in the cpu cgroup"
fi

# a guest spinning on its vCPU: at most its quota of the host
moat exec -d a timeout 30 sh -c 'while :; do :; done' >/dev/null 2>&1
sleep 2
used=$(cpus_used "/$CG-a" 5)
diag "spinning with a 1 CPU quota: $used CPUs of the host"
if awk -v u="$used" 'BEGIN { exit !(u <= 1.10) }'; then ok "spinning guest takes at most 1 CPU ($used)"; else
    not_ok "spinning guest takes at most 1 CPU ($used)"; fi
# moat update lowers the quota on the host too
if moat update --cpu-quota 50000 --cpu-period 100000 a 2>"$WORK/upd.err"; then
    if $v2; then q=$(cat "$(cgfile "/$CG-a" cpu.max)"); else q=$(cat "$(cgfile "/$CG-a" cpu.cfs_quota_us)"); fi
    expect_eq "moat update sets the host quota" "$($v2 && echo "50000 100000" || echo 50000)" "$q"
    sleep 1
    used=$(cpus_used "/$CG-a" 5)
    diag "spinning with a 0.5 CPU quota: $used CPUs of the host ($(grep -h nr_throttled "$(dirname "$(cgfile "/$CG-a" cpu.stat)")/cpu.stat" 2>/dev/null))"
    if awk -v u="$used" 'BEGIN { exit !(u <= 0.60) }'; then ok "spinning guest takes at most 0.5 CPU after update ($used)"
    else not_ok "spinning guest takes at most 0.5 CPU after update ($used)"; fi
else
    not_ok "moat update sets the host quota"
    diag "$(cat "$WORK/upd.err")"
    not_ok "spinning guest takes at most 0.5 CPU after update"
fi
moat update --cpu-quota 100000 a >/dev/null 2>&1

# the container at its memory limit: killed in the guest, VMM untouched
out=$(moat exec a sh -c "$HOG" 2>&1)
if grep -q "hog status 137" <<<"$out"; then ok "a container past 256 MiB is OOM-killed in the guest"; else
    not_ok "a container past 256 MiB is OOM-killed in the guest"; diag "$out"; fi
if vmm_alive a && [ "$(moat exec a echo alive 2>&1)" = alive ]; then ok "the VMM and the container live on"; else
    not_ok "the VMM and the container live on"; fi
expect_eq "no OOM kill on the host" 0 "$(oom_kills "/$CG-a")"
moat kill a KILL >/dev/null 2>&1
wait_for 30 sh -c "$MOAT --root $ROOT state a 2>/dev/null | grep -q '\"stopped\"'"
moat delete -f a >/dev/null 2>&1
left=$(ls -d /sys/fs/cgroup/*/"$CG-a" /sys/fs/cgroup/"$CG-a" 2>/dev/null)
expect_eq "delete removes the host cgroup" "" "$left"

# --- 2. no limits: the guest fills all of its RAM --------------------------
# (512 MiB guest; the guest's own OOM killer stops the hog once the guest
# is out of memory: the host limit leaves the VMM's margin above that)
bundle "$WORK/b" '.process.args = ["sh", "-c", $hog] | .linux.cgroupsPath = $cg' --arg cg "/$CG-b" --arg hog "$HOG; free -m; sleep 2"
moat run -b "$WORK/b" b >"$WORK/b.out" 2>&1 &
runpid=$!
peak=0 lim= kills=0
for ((i = 0; i < 240; i++)); do
    if f=$(cgfile "/$CG-b" memory.max_usage_in_bytes memory.peak); then
        peak=$(cat "$f" 2>/dev/null || echo "$peak")
        [ -z "$lim" ] && lim=$(cat "$(cgfile "/$CG-b" memory.limit_in_bytes memory.max)")
        k=$(oom_kills "/$CG-b" 2>/dev/null) && [ -n "$k" ] && kills=$k
    fi
    kill -0 $runpid 2>/dev/null || break
    sleep 0.5
done
wait $runpid
out=$(cat "$WORK/b.out")
expect_eq "unlimited container: memory limit 512 MiB guest + $overhead MiB" $(((512 + overhead) << 20)) "${lim:-none}"
if grep -q "hog status 137" <<<"$out"; then ok "a guest out of RAM kills its hog inside the guest"; else
    not_ok "a guest out of RAM kills its hog inside the guest"; diag "$out"; fi
diag "peak host memory of the sandbox: $((peak >> 20)) MiB of a $((${lim:-0} >> 20)) MiB limit"
if [ "$peak" -gt $((400 << 20)) ] && [ "$peak" -lt "${lim:-0}" ]; then
    ok "the guest used its RAM and stayed below the host limit"
else
    not_ok "the guest used its RAM and stayed below the host limit"
fi
if grep -q "^Mem:" <<<"$out"; then ok "the VMM survived to the container's end"; else not_ok "the VMM survived to the container's end"; fi
expect_eq "no OOM kill on the host (guest out of RAM)" 0 "$kills"
left=$(ls -d /sys/fs/cgroup/*/"$CG-b" /sys/fs/cgroup/"$CG-b" 2>/dev/null)
expect_eq "run removes the host cgroup" "" "$left"

done_testing
