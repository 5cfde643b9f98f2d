#!/bin/bash
# Podman drives the runtime under test through conmon, as a runc-compatible
# binary: podman --runtime $RUNTIME run ... Needs root and podman.
#   RUNTIME=/usr/sbin/runc bash tests/integration/clients-podman.sh   # harness check
#   bash tests/integration/clients-podman.sh                          # build/moat
# Podman runs with private storage (--root/--runroot/--tmpdir in a temp dir)
# and this machine's flags: --cgroup-manager cgroupfs --events-backend file,
# explicit small --ulimit values (no CAP_SYS_RESOURCE), --network none.
# Set PODMAN_DEBUG=1 for podman --log-level=debug output in the diagnostics.
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh
source tests/clients/lib.sh

if [ "$(id -u)" -ne 0 ]; then
    skip "podman client" "needs root"
    exit 0
fi
if ! command -v podman >/dev/null || ! command -v conmon >/dev/null; then
    skip "podman client" "podman or conmon is not installed (scripts/install-deps.sh)"
    exit 0
fi
if ! why=$(clients_runtime); then
    skip "podman client" "$why"
    exit 0
fi
clients_runtime >/dev/null

D=$(mktemp -d /tmp/moat-podman.XXXXXX)
clients_on_exit "rm -rf '$D'"
clients_on_exit "umount_under '$D'"
clients_on_exit "kill_under '$D'"
mkdir -p "$D/storage" "$D/run" "$D/tmp" "$D/net" "$D/vol" "$D/logs"
RT=$(clients_runtime_wrapper "$D/logs")
diag "runtime: $RUNTIME (podman calls $RT)"

loglevel=warn
[ "${PODMAN_DEBUG:-0}" = 1 ] && loglevel=debug
pm() {
    tmo podman --root "$D/storage" --runroot "$D/run" --tmpdir "$D/tmp" \
        --network-config-dir "$D/net" --storage-driver overlay \
        --runtime "$RT" --cgroup-manager cgroupfs --events-backend file \
        --log-level "$loglevel" "$@" 2>>"$D/logs/podman.log"
}
# Stop and remove every container, then wipe the private storage (overlay
# mounts) even when a check failed.
clients_on_exit "pm rm -af -t 2"
clients_on_exit "pm system reset -f"
clients_on_exit "keep_logs podman '$D/logs'"

RUNFLAGS=(--rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
IMG=$CLIENTS_IMAGE

DIAG_LOGS=("podman=$D/logs/podman.log" "runtime calls=$D/logs/runtime-calls.log" "runtime log=$D/logs/runtime.log")
diag_mark

archive=$(clients_image_archive) || {
    not_ok "podman: build the busybox image archive"
    exit 1
}
if pm load -i "$archive" >/dev/null && pm image exists "$IMG"; then
    ok "podman load of the locally built busybox image"
    diag_mark
else
    fail_with_logs "podman load of the locally built busybox image"
    exit 1
fi

# --- the container's clock: one container runs through the rest of this
# script and is checked again at its end, two minutes or more later -------
# clock_ok NAME: the container's date +%s lies within the host's, +-1 s
clock_ok() {
    local t0 g t1
    t0=$(date +%s)
    g=$(pm exec moat-clock date +%s)
    t1=$(date +%s)
    if [ -n "$g" ] && [ "$g" -ge $((t0 - 1)) ] && [ "$g" -le $((t1 + 1)) ]; then ok "$1"; else
        diag "host [$t0, $t1], container '$g'"
        fail_with_logs "$1"
    fi
}
t_clock=$(date +%s)
pm run -d --name moat-clock --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    -v "$D/vol:/data" "$IMG" sleep 100000 >/dev/null
clock_ok "podman: the container's clock is the host's right after start"
if pm pause moat-clock >/dev/null; then
    sleep 5
    pm unpause moat-clock >/dev/null
    clock_ok "podman: after pause, 5 s, unpause the clock is still the host's"
else
    fail_with_logs "podman pause"
fi
pm exec moat-clock touch /data/clock-mtime
m=$(stat -c %Y "$D/vol/clock-mtime" 2>/dev/null || echo 0)
n=$(date +%s)
pass_if "podman: a file made on a -v volume has a host mtime within 2 s of now" \
    test $((n - m)) -le 2 -a $((m - n)) -le 2
diag_mark

# --- run --rm, one container per flag --------------------------------------
out=$(pm run "${RUNFLAGS[@]}" "$IMG" echo hello-podman)
expect "podman run echo prints its output" "hello-podman" "$out"

pm run "${RUNFLAGS[@]}" "$IMG" sh -c 'exit 7' >/dev/null
expect "podman run returns the container's exit code (7)" 7 "$?"

out=$(printf 'line1\nline2\n' | pm run -i "${RUNFLAGS[@]}" "$IMG" sh -c 'cat; echo eof')
expect "podman run -i relays stdin to the process, then EOF" "line1
line2
eof" "$out"

out=$(pm run "${RUNFLAGS[@]}" -e MOAT_TEST=env-ok "$IMG" sh -c 'echo $MOAT_TEST')
expect "podman run -e sets the environment" "env-ok" "$out"

out=$(pm run "${RUNFLAGS[@]}" --workdir /tmp "$IMG" pwd)
expect "podman run --workdir sets the working directory" "/tmp" "$out"

echo from-host >"$D/vol/in"
out=$(pm run "${RUNFLAGS[@]}" -v "$D/vol:/data" "$IMG" sh -c 'cat /data/in && echo from-container >/data/out')
expect "podman run -v host dir: container reads the host file" "from-host" "$out"
expect "podman run -v host dir: host sees the container's write" "from-container" "$(cat "$D/vol/out" 2>/dev/null)"

out=$(pm run "${RUNFLAGS[@]}" --read-only "$IMG" sh -c 'if touch /rootfs-write 2>/dev/null; then echo writable; else echo read-only; fi')
expect "podman run --read-only makes the rootfs read-only" "read-only" "$out"

out=$(pm run "${RUNFLAGS[@]}" --user 1000:1000 "$IMG" sh -c 'echo $(id -u):$(id -g)')
expect "podman run --user 1000:1000 runs as uid 1000 gid 1000" "1000:1000" "$out"

out=$(pm run "${RUNFLAGS[@]}" --cap-drop ALL "$IMG" sh -c 'sed -n "s/^CapEff:[[:space:]]*//p" /proc/self/status')
expect "podman run --cap-drop ALL leaves no effective capability" "0000000000000000" "$out"

# The limit of the container's own cgroup: cgroup v2 in a moat guest (podman
# on a cgroup v1 host asks for no cgroup namespace, so the guest shows the
# whole hierarchy and the container's cgroup is its /proc/self/cgroup path);
# with runc on this host, the v1 memory controller mounted at the cgroup.
out=$(pm run "${RUNFLAGS[@]}" --memory 64m "$IMG" sh -c '
    p=$(sed -n "s/^0:://p" /proc/self/cgroup)
    for f in /sys/fs/cgroup$p/memory.max /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
        if [ -r "$f" ]; then cat "$f"; break; fi
    done')
expect "podman run --memory 64m sets a 64 MiB memory limit" 67108864 "$out"

# -t needs a terminal on podman's side: script(1) gives it one.
out=$(tmo script -qec "podman --root $D/storage --runroot $D/run --tmpdir $D/tmp \
    --network-config-dir $D/net --storage-driver overlay --runtime $RT --cgroup-manager cgroupfs \
    --events-backend file run --rm -t --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    $IMG sh -c 'test -t 0 && test -t 1 && echo tty-yes; tty'" /dev/null </dev/null | tr -d '\r')
expect "podman run -t: stdin and stdout are a terminal" "tty-yes" "$(echo "$out" | sed -n 1p)"
case $(echo "$out" | sed -n 2p) in
/dev/pts/*) ok "podman run -t: the process has a /dev/pts controlling terminal" ;;
*)
    diag "output: $out"
    fail_with_logs "podman run -t: the process has a /dev/pts controlling terminal"
    ;;
esac
diag_mark

# --- detached container: ps, exec, stop (SIGTERM), rm -------------------------
rm -f "$D/vol/term"
cid=$(pm run -d --name moat-detached --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    -v "$D/vol:/data" "$IMG" sh -c \
    'trap "echo got-sigterm >/data/term; exit 0" TERM; echo started >/data/started; while :; do sleep 0.2; done')
if [ -n "$cid" ] && wait_until 30 test -s "$D/vol/started"; then
    ok "podman run -d starts the container"
else
    fail_with_logs "podman run -d starts the container"
fi
diag_mark
st=$(pm ps --filter name=moat-detached --format '{{.Names}} {{.Status}}')
case $st in
"moat-detached Up"*) ok "podman ps shows the detached container up" ;;
*) diag "podman ps: '$st'"; fail_with_logs "podman ps shows the detached container up" ;;
esac
diag_mark
expect "podman inspect says the detached container is running" running \
    "$(pm inspect --format '{{.State.Status}}' moat-detached)"

out=$(pm exec moat-detached sh -c 'echo exec-ok; cat /data/started')
expect "podman exec runs a process in the running container" "exec-ok
started" "$out"
pm exec moat-detached sh -c 'exit 5'
expect "podman exec returns the process's exit code (5)" 5 "$?"
out=$(pm exec -e X=exec-env --workdir /tmp --user 1000:1000 moat-detached sh -c 'echo $X $(pwd) $(id -u)')
expect "podman exec -e --workdir --user apply to the exec'd process" "exec-env /tmp 1000" "$out"

t0=$(date +%s)
pm stop -t 20 moat-detached >/dev/null
rc=$?
t1=$(date +%s)
expect "podman stop succeeds" 0 "$rc"
diag "podman stop took $((t1 - t0)) s"
pass_if "podman stop ends before its 20 s timeout" test $((t1 - t0)) -lt 20
expect "podman stop: SIGTERM reached the container's process" "got-sigterm" "$(cat "$D/vol/term" 2>/dev/null)"
st=$(pm inspect --format '{{.State.Status}} {{.State.ExitCode}}' moat-detached)
expect "podman inspect after stop: exited with the trap's status 0" "exited 0" "$st"
pm rm moat-detached >/dev/null
expect "podman rm removes the stopped container" 0 "$?"
expect "podman ps -a no longer lists it" "" "$(pm ps -a --filter name=moat-detached --format '{{.Names}}')"

left=$((t_clock + 120 - $(date +%s)))
[ "$left" -gt 0 ] && sleep "$left"
clock_ok "podman: after $(($(date +%s) - t_clock)) s of running the clock is still the host's"
pm rm -f -t 0 moat-clock >/dev/null
diag_mark

# nothing of the runtime left running for the removed containers
left=$(pgrep -f -- "$D/" | grep -vx "$$" | tr '\n' ' ')
expect "no conmon or runtime process left behind" "" "${left% }"
done_testing
exit 0
