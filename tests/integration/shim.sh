#!/bin/bash
# containerd-shim-moat-v2 under a real containerd, beyond what
# tests/integration/cri.sh's ctr group checks (stdio, exec, pause/resume,
# metrics, kill, delete): a terminal, a signal's exit status, the pod
# grouping of `start`, a pod's app container refused until pods are built,
# the shim killed under a running task, and nothing left.
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh
source tests/clients/lib.sh

SHIM=$PWD/build/containerd-shim-moat-v2
if [ "$(id -u)" -ne 0 ]; then
    skip "containerd shim" "needs root"
    exit 0
fi
if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null; then
    skip "containerd shim" "containerd is not installed (scripts/install-deps.sh)"
    exit 0
fi
if [ ! -x "$SHIM" ]; then
    not_ok "containerd shim: $SHIM is built"
    exit 1
fi

D=$(mktemp -d /tmp/moat-shim.XXXXXX)
clients_on_exit "rm -rf '$D'"
clients_on_exit "umount_under '$D'"
clients_on_exit "kill_under '$D'"
mkdir -p "$D/logs"
DIAG_LOGS=("containerd=$D/c/containerd.log" "ctr=$D/logs/ctr.log")
NS=moat-shim-$$
# containerd looks the shim up on its own PATH
export PATH=$PWD/build:$PATH
if ! start_containerd "$D/c"; then
    not_ok "start a private containerd"
    diag "$CLIENTS_WHY"
    exit 1
fi
ok "start a private containerd"
diag_mark
c() { tmo ctr --address "$CTRD_SOCK" -n "$NS" "$@"; }
archive=$(clients_image_archive) || {
    not_ok "build the busybox image archive"
    exit 1
}
REF=docker.io/library/$CLIENTS_IMAGE
if c images import "$archive" >>"$D/logs/ctr.log" 2>&1; then ok "ctr images import"; else
    not_ok "ctr images import"
    diag_since
    exit 1
fi

RT=(--runtime io.containerd.moat.v2)
# --- a terminal: ctr run -t needs one on its side (script gives it one)
out=$(tmo script -qec "ctr --address $CTRD_SOCK -n $NS run --rm -t ${RT[*]} $REF shim-tty sh -c 'test -t 0 && test -t 1 && echo tty-yes; stty size'" /dev/null </dev/null | tr -d '\r')
case $(echo "$out" | sed -n 1p) in
*tty-yes) ok "ctr run -t: the process has a terminal" ;;
*) not_ok "ctr run -t: the process has a terminal"; diag "output: $out" ;;
esac
case $(echo "$out" | sed -n 2p) in
[0-9]*" "[0-9]*) ok "ctr run -t: the terminal has a window size ($(echo "$out" | sed -n 2p))" ;;
*) not_ok "ctr run -t: the terminal has a window size"; diag "output: $out" ;;
esac

# --- a signal's exit status: 128 + n (the container's init ignores signals
# it sends itself, as PID 1; the kill comes from outside)
(wait_until 60 sh -c "ctr --address $CTRD_SOCK -n $NS task ls 2>/dev/null | grep -q 'shim-sig.*RUNNING'" &&
    c task kill -s SIGKILL shim-sig) &
killer=$!
c run --rm "${RT[@]}" "$REF" shim-sig sleep 1000 </dev/null >/dev/null 2>&1
expect_eq "ctr run: a process killed by SIGKILL exits 137" 137 "$?"
wait "$killer"

# --- a pod's app container is refused, clearly, until pods are built
mkdir -p "$D/podb/rootfs"
jq -n '{ociVersion: "1.0.2", annotations: {"io.kubernetes.cri.container-type": "container",
    "io.kubernetes.cri.sandbox-id": "somepod"}, process: {args: ["true"], cwd: "/"}, root: {path: "rootfs"}}' \
    >"$D/podb/config.json"
out=$(cd "$D/podb" && tmo containerd-shim-moat-v2 -namespace "$NS" -address "$CTRD_SOCK" -id podapp start 2>&1)
diag "start: $out"
case $out in
unix:///run/containerd/s/*) ok "start for a pod's container prints the pod's address" ;;
*) not_ok "start for a pod's container prints the pod's address" ;;
esac
pod_sock=$(printf '%s' "$CTRD_SOCK/$NS/somepod" | sha256sum | cut -d' ' -f1)
expect_eq "... grouped by io.kubernetes.cri.sandbox-id" "unix:///run/containerd/s/$pod_sock" "$out"
# the daemon goes once told to shut down with no task: containerd would
# send Create (refused) then Shutdown; pkill is enough to clean here
pkill -f "[c]ontainerd-shim-moat-v2 -namespace $NS -id podapp"
wait_until 10 test ! -e "/run/containerd/s/$pod_sock"
rm -f "/run/containerd/s/$pod_sock"

# --- the shim killed under a running task: containerd runs delete, and the
# VM and everything of the task go
c run -d "${RT[@]}" "$REF" shim-killed sleep 1000 >/dev/null 2>>"$D/logs/ctr.log"
wait_until 60 sh -c "ctr --address $CTRD_SOCK -n $NS task ls 2>/dev/null | grep -q 'shim-killed.*RUNNING'"
vmm=$(jq -r '.vmmPid // empty' "/run/moat-shim/$NS/shim-killed/state.json" 2>/dev/null)
check "a detached task runs in a VM (vmm pid ${vmm:-none})" test -n "$vmm"
pkill -KILL -f "[c]ontainerd-shim-moat-v2 -namespace $NS -id shim-killed"
gone() { ! kill -0 "$vmm" 2>/dev/null && [ ! -e "/run/moat-shim/$NS/shim-killed" ]; }
if [ -n "$vmm" ] && wait_until 30 gone; then ok "shim killed: containerd's delete removed the VM and the state"; else
    not_ok "shim killed: containerd's delete removed the VM and the state"
    diag_since
fi
c task delete shim-killed >/dev/null 2>&1
c containers rm shim-killed >/dev/null 2>&1
check "shim killed: the container can be removed" sh -c "! ctr --address $CTRD_SOCK -n $NS containers ls -q | grep -qx shim-killed"

# --- the VMM killed under a running task: the task reports exited, and
# delete leaves nothing
c run -d "${RT[@]}" "$REF" shim-vmm sleep 1000 >/dev/null 2>>"$D/logs/ctr.log"
wait_until 60 sh -c "ctr --address $CTRD_SOCK -n $NS task ls 2>/dev/null | grep -q 'shim-vmm.*RUNNING'"
vmm=$(jq -r '.vmmPid // empty' "/run/moat-shim/$NS/shim-vmm/state.json" 2>/dev/null)
[ -n "$vmm" ] && kill -KILL "$vmm"
task_status() { ctr --address "$CTRD_SOCK" -n "$NS" task ls 2>/dev/null | awk -v t="$1" '$1 == t { print $3 }'; }
if [ -n "$vmm" ] && wait_until 30 sh -c "[ \"\$(ctr --address $CTRD_SOCK -n $NS task ls 2>/dev/null | awk '\$1 == \"shim-vmm\" { print \$3 }')\" = STOPPED ]"; then
    ok "VMM killed: the task is reported stopped"
else
    not_ok "VMM killed: the task is reported stopped"
    diag "status: $(task_status shim-vmm)"
fi
c task delete shim-vmm >/dev/null 2>>"$D/logs/ctr.log"
expect_eq "VMM killed: ctr task delete succeeds" 0 $?
c containers rm shim-vmm >/dev/null 2>&1
check "VMM killed: no moat state is left" test ! -e "/run/moat-shim/$NS/shim-vmm"

# --- containerd restarted under a running task: it finds the shim again
# through the bundle's address file, and the task keeps working
c run -d "${RT[@]}" "$REF" shim-restart sh -c 'while :; do sleep 1; done' >/dev/null 2>>"$D/logs/ctr.log"
wait_until 60 sh -c "ctr --address $CTRD_SOCK -n $NS task ls 2>/dev/null | grep -q 'shim-restart.*RUNNING'"
kill -TERM "$CTRD_PID"
wait_until 30 sh -c "! kill -0 $CTRD_PID 2>/dev/null"
run_containerd "$D/c" >/dev/null 2>&1
expect_eq "containerd restarted: the task is still running" RUNNING "$(task_status shim-restart)"
out=$(c task exec --exec-id after-restart shim-restart echo still-here </dev/null 2>>"$D/logs/ctr.log")
expect_eq "containerd restarted: ctr task exec works" still-here "$out"
c task kill -s SIGKILL shim-restart 2>>"$D/logs/ctr.log"
wait_until 30 sh -c "[ \"\$(ctr --address $CTRD_SOCK -n $NS task ls 2>/dev/null | awk '\$1 == \"shim-restart\" { print \$3 }')\" = STOPPED ]"
c task delete shim-restart >/dev/null 2>>"$D/logs/ctr.log"
expect_eq "containerd restarted: kill and delete work" 0 $?
c containers rm shim-restart >/dev/null 2>&1

sleep 1
check "no shim process is left" sh -c "! pgrep -f '[c]ontainerd-shim-moat-v2 -namespace $NS' >/dev/null"
check "no moat state is left" sh -c "[ -z \"\$(ls -A /run/moat-shim/$NS 2>/dev/null)\" ]"
check "no VM is left" sh -c "! pgrep -f '[q]emu-system.*/run/moat-shim/$NS/' >/dev/null"
done_testing
