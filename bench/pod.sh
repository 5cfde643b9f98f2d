#!/bin/bash
# Kubernetes pod benchmark, through containerd's CRI plugin as the kubelet
# drives it (tests/cri/cri_client.py, the environment of
# tests/integration/cri.sh: a private containerd, a CNI bridge, local pause
# and busybox images), for three runtime handlers in one run:
#   runc       containerd's runc shim with runc: the reference
#   moat       containerd-shim-moat-v2: one microVM per pod
#   moat-runc  containerd's runc shim with moat as its runc binary: one
#              microVM per container (what Kubernetes had before the shim)
# For each, RUNS times (default 3): RunPodSandbox, then two containers
# (CreateContainer + StartContainer each), then the host PSS of everything
# the pod runs on the host (the shim and its descendants: VMMs, moat-vsock,
# stand-ins, pause and container processes), then the pod is removed.
# Prints medians in milliseconds and MiB:
#   pod       RunPodSandbox
#   c1, c2    the first and second container, created and started
#   total     RunPodSandbox to the second container running
#   vms       VMM processes the pod runs
#   pss       host PSS of the running two-container pod
#   bench/pod.sh [RUNS]
set -u
cd "$(dirname "$0")/.."
source tests/lib.sh
source tests/clients/lib.sh
source tests/cri/lib.sh
runs=${1:-3}
trap clients_run_cleanups EXIT

why=$(cri_prereq)
if [ -n "$why" ]; then
    echo "bench/pod.sh: cannot run: $why" >&2
    exit 1
fi
for b in build/moat build/containerd-shim-moat-v2; do
    [ -x "$b" ] || {
        echo "bench/pod.sh: $b is not built (make all guest)" >&2
        exit 1
    }
done
MOAT_RUNC_ROOT=/run/moat-bench-pod.$$
clients_on_exit "rm -rf '$MOAT_RUNC_ROOT'"
cri_runtimes='plugins."io.containerd.grpc.v1.cri".containerd.runtimes'
CRI_EXTRA_RUNTIMES="    [$cri_runtimes.moat-runc]
      runtime_type = \"io.containerd.runc.v2\"
      [$cri_runtimes.moat-runc.options]
        BinaryName = \"$PWD/build/moat\"
        Root = \"$MOAT_RUNC_ROOT\"
        SystemdCgroup = false"
cri_env_fail() {
    echo "bench/pod.sh: $1" >&2
    exit 1
}
cri_env_up

ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }
# descendants PID...: the pids and all their descendants
descendants() {
    local all=" $* " added=1 pid ppid
    while [ $added = 1 ]; do
        added=0
        while read -r pid ppid; do
            if [[ $all == *" $ppid "* ]] && [[ $all != *" $pid "* ]]; then
                all="$all$pid "
                added=1
            fi
        done < <(ps -e -o pid=,ppid=)
    done
    echo "$all"
}
pss_kib() {
    local sum=0 pid v
    for pid in "$@"; do
        v=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null)
        sum=$((sum + ${v:-0}))
    done
    echo $sum
}

declare -A R_POD R_C1 R_C2 R_TOTAL R_VMS R_PSS
HANDLERS="runc moat moat-runc"
for h in $HANDLERS; do
    for i in $(seq 1 "$runs"); do
        n=b$i
        pod_json "$h-$n" "$h-pod-$n"
        t0=$(ms)
        if ! p=$(cri runp "$D/pods/$h-$n.json" --handler "$h"); then
            echo "bench/pod.sh: $h: RunPodSandbox failed: $(tail -n 1 "$D/logs/cri.log")" >&2
            continue
        fi
        t1=$(ms)
        c1=$(run_ctr "$h-$n" "$p" c1 "" sh -c 'trap "exit 0" TERM; sleep 3600 & wait') || c1=""
        t2=$(ms)
        c2=$(run_ctr "$h-$n" "$p" c2 "" sh -c 'trap "exit 0" TERM; sleep 3600 & wait') || c2=""
        t3=$(ms)
        if [ -z "$c1" ] || [ -z "$c2" ]; then
            echo "bench/pod.sh: $h: a container did not start: $(tail -n 1 "$D/logs/cri.log")" >&2
        else
            shim=$(pgrep -f -- "-id $p( |$)" | tr '\n' ' ')
            pids=$(descendants $shim)
            vms=0
            for pid in $pids; do
                case $(readlink "/proc/$pid/exe" 2>/dev/null) in
                *qemu-system* | */moat-vmm) vms=$((vms + 1)) ;;
                esac
            done
            R_POD[$h]+="$((t1 - t0)) "
            R_C1[$h]+="$((t2 - t1)) "
            R_C2[$h]+="$((t3 - t2)) "
            R_TOTAL[$h]+="$((t3 - t0)) "
            R_VMS[$h]+="$vms "
            R_PSS[$h]+="$(($(pss_kib $pids) / 1024)) "
        fi
        cri stopp "$p" >/dev/null
        cri rmp "$p" >/dev/null
    done
done

echo "pods through containerd's CRI plugin: $runs runs per handler, medians (ms, MiB); $(nproc) CPUs"
printf '%-10s %8s %8s %8s %9s %4s %8s\n' handler pod c1 c2 total vms pss
for h in $HANDLERS; do
    printf '%-10s %8s %8s %8s %9s %4s %8s\n' "$h" \
        "$(tr ' ' '\n' <<<"${R_POD[$h]:-}" | grep . | median)" \
        "$(tr ' ' '\n' <<<"${R_C1[$h]:-}" | grep . | median)" \
        "$(tr ' ' '\n' <<<"${R_C2[$h]:-}" | grep . | median)" \
        "$(tr ' ' '\n' <<<"${R_TOTAL[$h]:-}" | grep . | median)" \
        "$(tr ' ' '\n' <<<"${R_VMS[$h]:-}" | grep . | median)" \
        "$(tr ' ' '\n' <<<"${R_PSS[$h]:-}" | grep . | median)"
done
echo "c2: the second container of a running pod (moat: no VM boot; moat-runc: a VM of its own)"
echo "pss: the pod's host processes (shim and descendants); the guest's RAM counts as far as it is touched"
