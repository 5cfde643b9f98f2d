#!/bin/bash
# What the CLI benchmarks share (source it after setting `work`, a temp dir):
# each runtime under its own --root in $work, and crun's workaround here.
# crun 1.8 refuses this host's cgroup hybrid layout; it then runs in a
# private mount namespace without /sys/fs/cgroup/unified, as the OCI suite
# does (tests/oci/README.md).
MOAT=${MOAT:-$PWD/build/moat}
rt_moat() { "$MOAT" --root "$work/moat" "$@"; }
rt_runc() { runc --root "$work/runc" "$@"; }
CRUN_WRAP=0
rt_crun() {
    if [ $CRUN_WRAP = 1 ]; then
        unshare -m --propagation private -- sh -c 'umount /sys/fs/cgroup/unified && exec crun "$@"' crun --root "$work/crun" "$@"
    else
        crun --root "$work/crun" "$@"
    fi
}
# crun_probe BUNDLE: one run of crun on BUNDLE; sets CRUN_WRAP where it
# refuses the cgroup layout
crun_probe() {
    if ! rt_crun run -b "$1" bench-probe </dev/null >"$work/crun.out" 2>&1; then
        grep -q 'hybrid mode' "$work/crun.out" && CRUN_WRAP=1
    fi
    rt_crun delete --force bench-probe >/dev/null 2>&1
}
