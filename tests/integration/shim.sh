#!/bin/bash
# containerd-shim-moat-v2 under a real containerd: `ctr run --runtime
# io.containerd.moat.v2` finds the shim on containerd's PATH, runs its
# `start`, dials the address it prints, and calls the task service. Tasks
# are not built yet: the check is that containerd gets the shim's clear
# "not yet supported" error from Create, and that the shim then goes
# without a trace (no process, no socket, no bundle).
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

out=$(c run --rm --runtime io.containerd.moat.v2 "$REF" shimtest true 2>&1)
rc=$?
echo "$out" >>"$D/logs/ctr.log"
diag "ctr: $out"
check "ctr run --runtime io.containerd.moat.v2 fails while tasks are not built" test "$rc" -ne 0
case $out in
*"not yet supported by containerd-shim-moat-v2"*) ok "containerd reports the shim's own error" ;;
*) not_ok "containerd reports the shim's own error"; diag_since ;;
esac
wait_until 10 sh -c "! pgrep -f '[c]ontainerd-shim-moat-v2.*-id shimtest' >/dev/null"
check "no shim process is left" sh -c "! pgrep -f '[c]ontainerd-shim-moat-v2.*-id shimtest' >/dev/null"
sock=$(printf '%s' "$CTRD_SOCK/$NS/shimtest" | sha256sum | cut -d' ' -f1)
check "no shim socket is left" test ! -e "/run/containerd/s/$sock"
check "no task bundle is left" test ! -e "$D/c/state/io.containerd.runtime.v2.task/$NS/shimtest"
c containers rm shimtest >/dev/null 2>&1
done_testing
