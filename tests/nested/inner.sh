#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Runs inside the nested test bed's L1 (tests/nested/init switch_roots into
# the host's root and starts it from the repository's top):
#
#   bash tests/nested/inner.sh RESULTS
#
# RESULTS is the host's results dir (9p, writable). The host left in it:
#   tests     one inner test per line: "NAME TIMEOUT SCRIPT" (SCRIPT
#             relative to the repository)
#   env       VAR=VALUE lines exported to the inner tests
#   cgroups   the host's cgroup mounts, "TYPE MOUNTPOINT OPTIONS" lines,
#             mounted the same way here
# It writes, per test, NAME.tap (stdout and stderr), NAME.rc, NAME.secs;
# first l1.tap, this L1's own checks; at the end "finished".
set -u
R=$1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
say() { echo "nested-inner: $*" >/dev/console; }

# cgroups as the host has them: v1 hierarchies beside cgroup2 (or cgroup2
# alone), so lifecycle.sh finds its paths where it finds them on the host
cgroup_mounts() {
    local type mp opts
    while read -r type mp opts; do
        mkdir -p "$mp" 2>/dev/null
        case $type in
        tmpfs) mount -t tmpfs -o mode=755 cgroup "$mp" ;;
        # a named hierarchy without controllers (name=systemd) needs "none"
        cgroup) mount -t cgroup -o "$([[ $opts == name=* ]] && echo none,)$opts" cgroup "$mp" ;;
        cgroup2) mount -t cgroup2 cgroup2 "$mp" ;;
        esac || echo "mount -t $type -o $opts $mp failed"
    done <"$R/cgroups"
}
cg_err=$(cgroup_mounts 2>&1)
ip link set lo up 2>/dev/null
hostname nested-l1 2>/dev/null
while IFS= read -r kv; do [ -n "$kv" ] && export "$kv"; done <"$R/env"

# --- L1's own checks ---------------------------------------------------------
(
    source tests/lib.sh
    check "L1 CPU has svm" grep -qw svm /proc/cpuinfo
    check "L1 CPU has npt (nested paging)" grep -qw npt /proc/cpuinfo
    check "kvm_amd is loaded" grep -q '^kvm_amd ' /proc/modules
    check "/dev/kvm is there" test -c /dev/kvm
    check "/dev/net/tun is there" test -c /dev/net/tun
    if [ -z "$cg_err" ]; then ok "cgroup hierarchies mounted as on the host"; else not_ok "cgroup hierarchies mounted as on the host"; diag "$cg_err"; fi
    out=$(build/moat check 2>&1)
    echo "$out" | sed 's/^/# moat check: /'
    if grep -qE '^hardware virtualization: +yes \(svm\)' <<<"$out"; then
        ok "moat check: hardware virtualization present (svm)"
    else
        not_ok "moat check: hardware virtualization present (svm)"
    fi
    if grep -qE '^auto picks: +moat-vmm' <<<"$out"; then ok "moat check: auto picks moat-vmm"; else not_ok "moat check: auto picks moat-vmm"; fi
    if grep -q '^verdict: OK, containers run here with hypervisor moat-vmm' <<<"$out"; then
        ok "moat check: verdict OK with moat-vmm"
    else
        not_ok "moat check: verdict OK with moat-vmm"
    fi
    diag "L1 kernel $(uname -r), $(nproc) CPU(s), $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
    diag "L1 up $(cut -d' ' -f1 /proc/uptime) s when its checks ran"
    done_testing
) >"$R/l1.tap" 2>&1
echo $? >"$R/l1.rc"

# --- the inner tests, one after the other --------------------------------------
while read -r name secs script; do
    [ -n "$name" ] || continue
    say "$name ($script, at most ${secs}s)"
    t0=$SECONDS
    # MOAT_HYPERVISOR is unset: what does not choose (lifecycle.sh) gets auto's pick
    timeout -k 10 "$secs" bash "$script" >"$R/$name.tap" 2>&1 </dev/null
    rc=$?
    echo $rc >"$R/$name.rc"
    echo $((SECONDS - t0)) >"$R/$name.secs"
    say "$name: rc=$rc in $((SECONDS - t0))s"
done <"$R/tests"
touch "$R/finished"
