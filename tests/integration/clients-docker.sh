#!/bin/bash
# Docker 20.10 (Debian docker.io) drives the runtime under test: it is
# registered as runtime "moat" in daemon.json, and dockerd runs it through
# containerd-shim-runc-v2 as a runc-compatible binary. The test starts its
# own containerd and dockerd (own data-root, exec-root, pidfile and socket,
# --iptables=false --bridge=none) and stops them at the end. Debian's
# /usr/bin/docker client is used (it matches dockerd 20.10).
#   RUNTIME=/usr/sbin/runc bash tests/integration/clients-docker.sh   # harness check
#   bash tests/integration/clients-docker.sh                          # build/moat
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh
source tests/clients/lib.sh

DOCKER=/usr/bin/docker
if [ "$(id -u)" -ne 0 ]; then
    skip "docker client" "needs root"
    exit 0
fi
if ! command -v dockerd >/dev/null || [ ! -x "$DOCKER" ] || ! command -v containerd >/dev/null; then
    skip "docker client" "docker.io (dockerd, /usr/bin/docker) or containerd is not installed (scripts/install-deps.sh)"
    exit 0
fi
if ! why=$(clients_runtime); then
    skip "docker client" "$why"
    exit 0
fi
clients_runtime >/dev/null

D=$(mktemp -d /tmp/moat-docker.XXXXXX)
clients_on_exit "rm -rf '$D'"
clients_on_exit "umount_under '$D'"
clients_on_exit "kill_under '$D'"
mkdir -p "$D/logs"
RT=$(clients_runtime_wrapper "$D/logs")
diag "runtime: $RUNTIME (registered as \"moat\" -> $RT)"
DIAG_LOGS=("dockerd=$D/d/dockerd.log" "containerd=$D/c/containerd.log"
    "runtime calls=$D/logs/runtime-calls.log" "runtime log=$D/logs/runtime.log" "docker=$D/logs/docker.log")

if ! start_containerd "$D/c"; then
    diag "$CLIENTS_WHY"
    diag_since
    skip "docker client" "containerd for dockerd did not start: $CLIENTS_WHY"
    exit 0
fi
if ! start_dockerd "$D/d" "$CTRD_SOCK" "$RT"; then
    # dockerd cannot run here: skip with the exact reason from its log
    diag_since
    skip "docker client" "$CLIENTS_WHY"
    exit 0
fi
ok "start a private dockerd with the runtime registered in daemon.json"
clients_on_exit "keep_logs docker '$D/logs' '$D/c/containerd.log' '$D/d/dockerd.log' '$D/d/daemon.json'"
diag_mark

dk() { tmo "$DOCKER" -H "unix://$DOCKER_SOCK" "$@" 2>>"$D/logs/docker.log"; }

rts=$(dk info --format '{{range $k, $v := .Runtimes}}{{$k}} {{end}}')
case " $rts " in
*" moat "*) ok "docker info lists the moat runtime" ;;
*) diag "runtimes: $rts"; fail_with_logs "docker info lists the moat runtime" ;;
esac
diag_mark

archive=$(clients_image_archive) || {
    not_ok "docker: build the busybox image archive"
    exit 1
}
dk load -i "$archive" >/dev/null
if dk image inspect "$CLIENTS_IMAGE" >/dev/null; then
    ok "docker load of the locally built busybox image"
    diag_mark
else
    fail_with_logs "docker load of the locally built busybox image"
    exit 1
fi

RUNFLAGS=(--runtime=moat --network none)
out=$(dk run --rm "${RUNFLAGS[@]}" "$CLIENTS_IMAGE" echo hello-docker)
expect "docker run --runtime=moat echo prints its output" "hello-docker" "$out"

dk run --rm "${RUNFLAGS[@]}" "$CLIENTS_IMAGE" sh -c 'exit 7' >/dev/null
expect "docker run --runtime=moat returns the container's exit code (7)" 7 "$?"

out=$(printf 'line1\nline2\n' | dk run -i --rm "${RUNFLAGS[@]}" "$CLIENTS_IMAGE" sh -c 'cat; echo eof')
expect "docker run -i relays stdin to the process, then EOF" "line1
line2
eof" "$out"

out=$(dk run --rm "${RUNFLAGS[@]}" -e MOAT_TEST=env-ok "$CLIENTS_IMAGE" sh -c 'echo $MOAT_TEST')
expect "docker run --runtime=moat -e sets the environment" "env-ok" "$out"

# detached: ps, exec, stop
mkdir -p "$D/vol"
dk run -d --name moat-bg "${RUNFLAGS[@]}" -v "$D/vol:/data" "$CLIENTS_IMAGE" sh -c \
    'trap "echo got-sigterm >/data/term; exit 0" TERM; echo started >/data/started; while :; do sleep 0.2; done' \
    >/dev/null
if wait_until 30 test -s "$D/vol/started"; then
    ok "docker run -d --runtime=moat starts the container"
else
    fail_with_logs "docker run -d --runtime=moat starts the container"
fi
diag_mark
expect "docker inspect shows it running with runtime moat" "running moat" \
    "$(dk inspect --format '{{.State.Status}} {{.HostConfig.Runtime}}' moat-bg)"

out=$(dk exec moat-bg sh -c 'echo exec-ok; cat /data/started')
expect "docker exec runs a process in the running container" "exec-ok
started" "$out"
dk exec moat-bg sh -c 'exit 5'
expect "docker exec returns the process's exit code (5)" 5 "$?"

# docker top: containerd's shim takes the pids from the runtime's
# `ps --format json` and dockerd keeps the lines of the host's `ps -ef`
# with those pids. moat answers with the stand-ins' host pids (the init's
# is State.Pid, then one per running exec), so nothing unrelated shows.
top_pids() { dk top moat-bg | awk 'NR > 1 {print $2}' | sort -n | tr '\n' ' ' | sed 's/ $//'; }
standin=$(dk inspect --format '{{.State.Pid}}' moat-bg)
expect "docker top lists the init's stand-in (State.Pid) and nothing else" "$standin" "$(top_pids)"
dk exec -d moat-bg sleep 1000
two_pids() { [ "$(top_pids | wc -w)" -eq 2 ]; }
wait_until 10 two_pids
top=$(dk top moat-bg)
expect "docker top after docker exec -d: the init's stand-in and the exec's (moat exec)" \
    "$standin 1" "$(awk 'NR > 1 {print $2}' <<<"$top" | grep -x "$standin") $(awk 'NR > 1' <<<"$top" | grep -c ' exec ')"

t0=$(date +%s)
dk stop -t 20 moat-bg >/dev/null
expect "docker stop succeeds" 0 "$?"
t1=$(date +%s)
diag "docker stop took $((t1 - t0)) s"
pass_if "docker stop ends before its 20 s timeout" test $((t1 - t0)) -lt 20
expect "docker stop: SIGTERM reached the container's process" "got-sigterm" "$(cat "$D/vol/term" 2>/dev/null)"
expect "docker inspect after stop: exited with the trap's status 0" "exited 0" \
    "$(dk inspect --format '{{.State.Status}} {{.State.ExitCode}}' moat-bg)"
dk rm moat-bg >/dev/null
expect "docker rm removes the stopped container" 0 "$?"
expect "docker ps -a lists no container" "" "$(dk ps -aq)"
done_testing
exit 0
