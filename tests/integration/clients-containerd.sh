#!/bin/bash
# containerd drives the runtime under test as a runc-compatible binary:
# ctr run --runtime io.containerd.runc.v2 --runc-binary $RUNTIME, so
# containerd-shim-runc-v2 calls it exactly as it calls runc. A private
# containerd (root, state, sockets in a temp dir) is started and stopped here.
#   RUNTIME=/usr/sbin/runc bash tests/integration/clients-containerd.sh   # harness check
#   bash tests/integration/clients-containerd.sh                          # build/moat
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh
source tests/clients/lib.sh

if [ "$(id -u)" -ne 0 ]; then
    skip "containerd client" "needs root"
    exit 0
fi
if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null ||
    ! command -v containerd-shim-runc-v2 >/dev/null; then
    skip "containerd client" "containerd is not installed (scripts/install-deps.sh)"
    exit 0
fi
if ! why=$(clients_runtime); then
    skip "containerd client" "$why"
    exit 0
fi
clients_runtime >/dev/null

D=$(mktemp -d /tmp/moat-ctrd.XXXXXX)
clients_on_exit "rm -rf '$D'"
clients_on_exit "umount_under '$D'"
clients_on_exit "kill_under '$D'"
mkdir -p "$D/logs"
RT=$(clients_runtime_wrapper "$D/logs")
diag "runtime: $RUNTIME (the shim calls $RT)"
DIAG_LOGS=("containerd=$D/c/containerd.log" "runtime calls=$D/logs/runtime-calls.log"
    "runtime log=$D/logs/runtime.log" "ctr=$D/logs/ctr.log")

NS=moat-test-$$
# the shim gives the runtime --root /run/containerd/runc/<namespace>
clients_on_exit "rm -rf '/run/containerd/runc/$NS'"
if ! start_containerd "$D/c"; then
    not_ok "start a private containerd"
    diag "$CLIENTS_WHY"
    diag_since
    exit 1
fi
ok "start a private containerd"
clients_on_exit "keep_logs containerd '$D/logs' '$D/c/containerd.log' '$D/c/config.toml'"
diag_mark

# ctr run forwards its stdin to the task but never closes the task's stdin on
# EOF (ctr 1.6), so no stdin check here; foreground runs get /dev/null.
c() { tmo ctr --address "$CTRD_SOCK" -n "$NS" "$@" 2>>"$D/logs/ctr.log"; }
REF=docker.io/library/$CLIENTS_IMAGE
RUNFLAGS=(--runtime io.containerd.runc.v2 --runc-binary "$RT" --net-host=false)

archive=$(clients_image_archive) || {
    not_ok "containerd: build the busybox image archive"
    exit 1
}
c image import "$archive" >/dev/null
if c image ls -q | grep -qx "$REF"; then
    ok "ctr image import of the locally built busybox image"
    diag_mark
else
    diag "images: $(c image ls -q | tr '\n' ' ')"
    fail_with_logs "ctr image import of the locally built busybox image"
    exit 1
fi

# --- ctr run (foreground, --rm) ---------------------------------------------
out=$(c run --rm "${RUNFLAGS[@]}" "$REF" moat-echo echo hello-containerd </dev/null)
expect "ctr run echo prints its output" "hello-containerd" "$out"

c run --rm "${RUNFLAGS[@]}" "$REF" moat-exit sh -c 'exit 7' </dev/null >/dev/null
expect "ctr run returns the container's exit code (7)" 7 "$?"

out=$(c run --rm "${RUNFLAGS[@]}" --env MOAT_TEST=env-ok "$REF" moat-env sh -c 'echo $MOAT_TEST' </dev/null)
expect "ctr run --env sets the environment" "env-ok" "$out"

# --- detached task: exec, kill --------------------------------------------------
mkdir -p "$D/vol"
c run -d "${RUNFLAGS[@]}" --mount "type=bind,src=$D/vol,dst=/data,options=rbind:rw" "$REF" moat-bg \
    sh -c 'trap "echo got-sigterm >/data/term; exit 0" TERM; echo started >/data/started; while :; do sleep 0.2; done' \
    >/dev/null
if wait_until 30 test -s "$D/vol/started"; then
    ok "ctr run -d starts the task"
else
    fail_with_logs "ctr run -d starts the task"
fi
diag_mark
st=$(c task ls | awk '$1 == "moat-bg" { print $3 }')
expect "ctr task ls shows the task RUNNING" RUNNING "$st"

out=$(c task exec --exec-id e1 moat-bg sh -c 'echo exec-ok; cat /data/started' </dev/null)
expect "ctr task exec runs a process in the running task" "exec-ok
started" "$out"
c task exec --exec-id e2 moat-bg sh -c 'exit 5' </dev/null
expect "ctr task exec returns the process's exit code (5)" 5 "$?"

c task kill -s SIGTERM moat-bg
expect "ctr task kill -s SIGTERM succeeds" 0 "$?"
pass_if "ctr task kill: SIGTERM reached the process" wait_until 20 grep -qx got-sigterm "$D/vol/term"
stopped() { [ "$(c task ls | awk '$1 == "moat-bg" { print $3 }')" = STOPPED ]; }
pass_if "ctr task ls shows the task STOPPED after the kill" wait_until 20 stopped
c task delete moat-bg >/dev/null
expect "ctr task delete removes the stopped task" 0 "$?"
c container delete moat-bg
expect "ctr container delete removes the container" 0 "$?"

# SIGKILL of a task that ignores SIGTERM
c run -d "${RUNFLAGS[@]}" "$REF" moat-kill sh -c 'trap "" TERM; while :; do sleep 0.2; done' >/dev/null
running() { [ "$(c task ls | awk '$1 == "moat-kill" { print $3 }')" = RUNNING ]; }
wait_until 30 running
c task kill -s SIGKILL moat-kill
code=""
for _ in $(seq 100); do
    code=$(c task ls | awk '$1 == "moat-kill" && $3 == "STOPPED" { print "stopped" }')
    [ -n "$code" ] && break
    sleep 0.2
done
expect "ctr task kill -s SIGKILL stops a task that ignores SIGTERM" stopped "$code"
# ctr 1.6 only warns about the exit code of a deleted task
out=$(tmo ctr --address "$CTRD_SOCK" -n "$NS" task delete moat-kill 2>&1)
expect "ctr task delete reports exit code 137 for the SIGKILLed task" 137 \
    "$(echo "$out" | sed -n 's/.*exit with non-zero exit code \([0-9]*\).*/\1/p')"
c container delete moat-kill

expect "no container left in the namespace" "" "$(c container ls -q)"
left=$(pgrep -f -- "containerd-shim-runc-v2 .*-address $D/" | tr '\n' ' ')
expect "no shim left behind" "" "${left% }"
done_testing
exit 0
