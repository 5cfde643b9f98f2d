# SPDX-License-Identifier: Apache-2.0
# Shared helpers for the client integration tests (tests/integration/clients-*.sh):
# the runtime under test, the locally built busybox image, cleanup on exit,
# bounded waits, and starting/stopping private containerd and dockerd
# instances. Source after tests/lib.sh, from the top of the repository.
#
# The runtime under test comes from $RUNTIME (default build/moat). The tests
# are runtime-agnostic: RUNTIME=/usr/sbin/runc proves the test harness.

CLIENTS_CACHE=${CLIENTS_CACHE:-$PWD/build/clients}
CLIENTS_IMAGE=moat-busybox:latest
# Per-command bound: long enough for a VM boot under TCG, short enough that a
# hung runtime cannot stall the suite.
CLIENTS_TIMEOUT=${CLIENTS_TIMEOUT:-90}

# --- cleanup ----------------------------------------------------------------
# Cleanup actions run in reverse order on EXIT, whatever failed.
CLIENTS_CLEANUPS=()
clients_on_exit() { CLIENTS_CLEANUPS+=("$*"); }
clients_run_cleanups() {
    local i
    for ((i = ${#CLIENTS_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${CLIENTS_CLEANUPS[i]}" >/dev/null 2>&1 || true
    done
    CLIENTS_CLEANUPS=()
}
trap clients_run_cleanups EXIT
trap 'exit 130' INT TERM

# keep_logs NAME FILE...: on exit, copy FILEs (logs) to build/test-logs/clients/NAME/
# so a failed run can be read after the temp dirs are gone. Register it
# last so it runs before the daemons are stopped and their dirs removed.
keep_logs() {
    local name=$1 dest
    shift
    dest=$PWD/build/test-logs/clients/$name
    rm -rf "$dest"
    mkdir -p "$dest"
    cp -r "$@" "$dest/" 2>/dev/null
    return 0
}

# umount_under DIR: lazily unmount everything mounted at or below DIR,
# deepest first.
umount_under() {
    local dir=$1
    [ -n "$dir" ] || return 0
    awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts |
        sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
}

# kill_pid PID [GRACE]: TERM, wait up to GRACE seconds (default 10), then KILL.
kill_pid() {
    local pid=$1 grace=${2:-10} i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    sleep 0.2
}

# kill_under DIR: kill processes whose command line names DIR (stand-ins,
# shims, conmon, VMMs left by a failed check). Matches by the unique temp dir.
kill_under() {
    local dir=$1 pids
    [ -n "$dir" ] || return 0
    pids=$(pgrep -f -- "$dir/" 2>/dev/null | grep -vx "$$")
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
    return 0
}

# wait_until SECONDS COMMAND...: poll every 0.2 s until COMMAND succeeds.
wait_until() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# tmo CMD...: run a client command bounded by CLIENTS_TIMEOUT.
tmo() { timeout -k 5 "$CLIENTS_TIMEOUT" "$@"; }

# Diagnostics: DIAG_LOGS lists "name=file" pairs; diag_mark remembers their
# sizes, diag_since prints (as TAP comments) what each gained since the mark,
# so a failing check shows only its own log lines.
DIAG_LOGS=()
declare -A DIAG_OFF=()
diag_mark() {
    local e f
    for e in "${DIAG_LOGS[@]}"; do
        f=${e#*=}
        DIAG_OFF[$f]=$(stat -c %s "$f" 2>/dev/null || echo 0)
    done
}
diag_since() {
    local lines=${1:-30} e f name off
    for e in "${DIAG_LOGS[@]}"; do
        name=${e%%=*} f=${e#*=}
        off=${DIAG_OFF[$f]:-0}
        [ -s "$f" ] || continue
        [ "$(stat -c %s "$f")" -gt "$off" ] || continue
        diag "--- $name ($f), last $lines new lines"
        tail -c +$((off + 1)) "$f" | tail -n "$lines" | cut -c1-400 | sed 's/^/#   /'
    done
}
# expect NAME EXPECTED ACTUAL: expect_eq, plus the new log lines on failure.
expect() {
    expect_eq "$1" "$2" "$3"
    [ "$2" = "$3" ] || diag_since
    diag_mark
}
# pass_if NAME COMMAND...: ok if COMMAND succeeds, else not_ok + new log lines.
pass_if() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name"; diag_since; fi
    diag_mark
}
fail_with_logs() { not_ok "$1"; diag_since; diag_mark; }

# --- the runtime under test ---------------------------------------------------
# clients_runtime: sets RUNTIME to an absolute path; prints a reason and
# returns 1 if it cannot be used (not executable, or a runtime whose `create`
# is not implemented yet).
clients_runtime() {
    RUNTIME=${RUNTIME:-$PWD/build/moat}
    case $RUNTIME in /*) ;; *) RUNTIME=$(command -v "$RUNTIME" 2>/dev/null || echo "$PWD/$RUNTIME") ;; esac
    if [ ! -x "$RUNTIME" ]; then
        echo "runtime $RUNTIME is missing (run make)"
        return 1
    fi
    local out
    out=$("$RUNTIME" create --help 2>&1)
    if [ $? -ne 0 ] || echo "$out" | grep -qi 'not yet supported'; then
        echo "$RUNTIME create --help fails: $(echo "$out" | head -1)"
        return 1
    fi
    RUNTIME_NAME=$(basename "$RUNTIME")
    if [ "$RUNTIME_NAME" = moat ]; then
        local f
        for f in moat-vsock initramfs.cpio.gz vmlinux; do
            if [ ! -e "$(dirname "$RUNTIME")/$f" ] && [ ! -e "/usr/share/moat/$f" ] &&
                [ ! -e "/usr/libexec/moat/$f" ]; then
                echo "$f is missing next to $RUNTIME (run make && make guest)"
                return 1
            fi
        done
    fi
    return 0
}

# clients_runtime_wrapper DIR: a wrapper script that runs $RUNTIME with
# global logging (`--log FILE --log-format json` for moat, --debug when
# MOAT_DEBUG=1) and records every invocation's argv in DIR/runtime-calls.log.
# Prints the wrapper's path. The clients are pointed at the wrapper so a
# failure can be traced to the exact verb and flags.
clients_runtime_wrapper() {
    local dir=$1 w=$1/runtime-wrapper
    local extra=""
    if [ "$RUNTIME_NAME" = moat ]; then
        extra="--log $dir/runtime.log --log-format json"
        [ "${MOAT_DEBUG:-0}" = 1 ] && extra="$extra --debug"
    else
        extra="--log $dir/runtime.log"
    fi
    cat >"$w" <<EOF
#!/bin/sh
# generated by tests/clients/lib.sh
echo "\$(date +%T.%N) \$*" >>"$dir/runtime-calls.log"
exec "$RUNTIME" $extra "\$@"
EOF
    chmod +x "$w"
    echo "$w"
}


# --- the image ------------------------------------------------------------------
# clients_image_archive: builds (once, cached in build/clients) a docker-archive
# tar (manifest.json + config + one layer) of a busybox-static rootfs tagged
# moat-busybox:latest, loadable by `docker load`, `podman load` and
# `ctr image import`. Prints its path.
clients_image_archive() {
    local out=$CLIENTS_CACHE/busybox-image.tar
    local busybox=${BUSYBOX:-/bin/busybox}
    mkdir -p "$CLIENTS_CACHE"
    if [ -s "$out" ] && [ "$out" -nt "$busybox" ] && [ "$out" -nt tests/clients/lib.sh ] &&
        [ "$out" -nt scripts/mkbundle.sh ]; then
        echo "$out"
        return 0
    fi
    (
        set -e
        exec 9>"$CLIENTS_CACHE/.image.lock"
        flock -w 120 9
        [ -s "$out" ] && [ "$out" -nt tests/clients/lib.sh ] && [ "$out" -nt "$busybox" ] &&
            [ "$out" -nt scripts/mkbundle.sh ] && exit 0
        tmp=$(mktemp -d "$CLIENTS_CACHE/.image.XXXXXX")
        trap 'rm -rf "$tmp"' EXIT
        BUSYBOX=$busybox scripts/mkbundle.sh "$tmp/bundle" >/dev/null
        # reproducible layer: fixed order, owners and times
        tar -C "$tmp/bundle/rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
            -cf "$tmp/layer.tar" .
        diff_id=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
        mkdir -p "$tmp/img/$diff_id"
        mv "$tmp/layer.tar" "$tmp/img/$diff_id/layer.tar"
        echo '1.0' >"$tmp/img/$diff_id/VERSION"
        jq -n --arg d "sha256:$diff_id" '{
            architecture: "amd64", os: "linux", created: "1970-01-01T00:00:00Z",
            config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                      Cmd: ["sh"], WorkingDir: "/" },
            rootfs: { type: "layers", diff_ids: [$d] },
            history: [ { created: "1970-01-01T00:00:00Z", created_by: "tests/clients/lib.sh" } ]
        }' | jq -c . >"$tmp/config.json"
        config_id=$(sha256sum "$tmp/config.json" | cut -d' ' -f1)
        mv "$tmp/config.json" "$tmp/img/$config_id.json"
        jq -n -c --arg c "$config_id.json" --arg l "$diff_id/layer.tar" --arg t "$CLIENTS_IMAGE" \
            '[{ Config: $c, RepoTags: [$t], Layers: [$l] }]' >"$tmp/img/manifest.json"
        jq -n -c --arg id "$diff_id" '{ "moat-busybox": { latest: $id } }' >"$tmp/img/repositories"
        tar -C "$tmp/img" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$tmp/image.tar" .
        mv "$tmp/image.tar" "$out"
    ) || return 1
    echo "$out"
}

# clients_dir_image_archive ROOTFS NAME:TAG OUT [ENTRYPOINT-JSON]: writes OUT,
# a docker-archive tar (one reproducible layer holding ROOTFS, a config whose
# Entrypoint is ENTRYPOINT-JSON, e.g. '["/pause"]') that `ctr image import`
# loads as docker.io/library/NAME:TAG. For small purpose-built images such as
# a sandbox (pause) image.
clients_dir_image_archive() {
    local rootfs=$1 ref=$2 out=$3 entry=${4:-null} tmp rc
    tmp=$(mktemp -d "$(dirname "$out")/.dimage.XXXXXX") || return 1
    (
        set -e
        tar -C "$rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
            -cf "$tmp/layer.tar" .
        diff_id=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
        mkdir -p "$tmp/img/$diff_id"
        mv "$tmp/layer.tar" "$tmp/img/$diff_id/layer.tar"
        echo '1.0' >"$tmp/img/$diff_id/VERSION"
        jq -n -c --arg d "sha256:$diff_id" --argjson e "$entry" '{
            architecture: "amd64", os: "linux", created: "1970-01-01T00:00:00Z",
            config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                      Entrypoint: $e, WorkingDir: "/" },
            rootfs: { type: "layers", diff_ids: [$d] },
            history: [ { created: "1970-01-01T00:00:00Z", created_by: "tests/clients/lib.sh" } ]
        }' >"$tmp/config.json"
        config_id=$(sha256sum "$tmp/config.json" | cut -d' ' -f1)
        mv "$tmp/config.json" "$tmp/img/$config_id.json"
        jq -n -c --arg c "$config_id.json" --arg l "$diff_id/layer.tar" --arg t "$ref" \
            '[{ Config: $c, RepoTags: [$t], Layers: [$l] }]' >"$tmp/img/manifest.json"
        tar -C "$tmp/img" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$out" .
    )
    rc=$?
    rm -rf "$tmp"
    return $rc
}

# --- containerd -------------------------------------------------------------------
# start_containerd DIR: a private containerd with root, state, sockets and
# opt dir under DIR, CRI and unused snapshotters disabled, debug log in
# DIR/containerd.log. Sets CTRD_SOCK (CLIENTS_WHY on failure). Registers its
# stop as a cleanup: call it in the main shell, not in $(...).
start_containerd() {
    local dir=$1
    mkdir -p "$dir/root" "$dir/state" "$dir/opt"
    CTRD_SOCK=$dir/containerd.sock
    cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[debug]
  level = "debug"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
EOF
    run_containerd "$dir"
}

# run_containerd DIR [PATH_PREFIX]: starts containerd with DIR/config.toml
# (log appended to DIR/containerd.log), registers its stop as a cleanup,
# waits until it answers on CTRD_SOCK. Sets CTRD_PID (CLIENTS_WHY on
# failure). Also restarts one that was stopped.
run_containerd() {
    local dir=$1 prefix=${2:-}
    PATH="${prefix:+$prefix:}$PATH" containerd --config "$dir/config.toml" >>"$dir/containerd.log" 2>&1 &
    CTRD_PID=$!
    clients_on_exit "stop_containerd '$dir' $CTRD_PID"
    if ! wait_until 30 ctr --address "$CTRD_SOCK" version; then
        CLIENTS_WHY="containerd did not answer on $CTRD_SOCK within 30 s"
        return 1
    fi
    return 0
}

# start_containerd_cri DIR CNI_CONF_DIR SANDBOX_IMAGE [SHIM_DIR]: like
# start_containerd, but with the CRI plugin enabled (it serves on the same
# socket, CTRD_SOCK): runtimes "runc" (io.containerd.runc.v2, cgroupfs, its
# runc root under DIR) and "moat" (io.containerd.moat.v2), the CNI config
# from CNI_CONF_DIR with plugins from /usr/lib/cni, network namespaces under
# DIR/state/io.containerd.grpc.v1.cri/netns, SANDBOX_IMAGE as the pause
# image, the streaming server on a random loopback port, oom_score_adj capped
# at containerd's own. SHIM_DIR (default build/) is put first on containerd's
# PATH, where it looks for containerd-shim-<name>-v2. EXTRA_TOML (5th
# argument): more runtimes, as [plugins."io.containerd.grpc.v1.cri".
# containerd.runtimes.NAME] tables.
start_containerd_cri() {
    local dir=$1 cni=$2 pause=$3 shims=${4:-$PWD/build} extra=${5:-}
    local cri='plugins."io.containerd.grpc.v1.cri"'
    mkdir -p "$dir/root" "$dir/state" "$dir/opt" "$dir/runc"
    CTRD_SOCK=$dir/containerd.sock
    cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[debug]
  level = "debug"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
[$cri]
  sandbox_image = "$pause"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  enable_selinux = false
  # no CAP_SYS_RESOURCE here: the pause container's oom_score_adj of -998
  # would make runc fail ("can't get final child's PID from pipe")
  restrict_oom_score_adj = true
  [$cri.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [$cri.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [$cri.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/runc"
    [$cri.containerd.runtimes.moat]
      runtime_type = "io.containerd.moat.v2"
      pod_annotations = ["io.moat.*"]
      privileged_without_host_devices = true
$extra
  [$cri.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$cni"
    max_conf_num = 1
EOF
    run_containerd "$dir" "$shims"
}

# stop_containerd DIR PID: kill every task and shim, stop containerd, unmount
# and remove DIR.
stop_containerd() {
    local dir=$1 pid=$2 ns t
    if kill -0 "$pid" 2>/dev/null; then
        for ns in $(timeout 10 ctr --address "$dir/containerd.sock" namespaces ls -q 2>/dev/null); do
            for t in $(timeout 10 ctr --address "$dir/containerd.sock" -n "$ns" task ls -q 2>/dev/null); do
                timeout 15 ctr --address "$dir/containerd.sock" -n "$ns" task delete -f "$t"
            done
        done
    fi
    kill_pid "$pid" 10
    # shims are started with -address DIR/containerd.sock
    kill_under "$dir"
    umount_under "$dir"
    rm -rf "$dir"
}

# --- dockerd ---------------------------------------------------------------------
# start_dockerd DIR CONTAINERD_SOCK: dockerd with its own data-root,
# exec-root, pidfile and socket under DIR, --iptables=false --bridge=none,
# the runtime under test registered as "moat" in DIR/daemon.json. Log in
# DIR/dockerd.log. Sets DOCKER_SOCK (CLIENTS_WHY on failure). Call it in the
# main shell, not in $(...).
start_dockerd() {
    local dir=$1 ctrd=$2 rt=$3
    mkdir -p "$dir/data" "$dir/exec"
    DOCKER_SOCK=$dir/docker.sock
    # dockerd 20.10 creates /etc/docker/key.json and /run/docker/plugins
    # whatever its roots are: remove them afterwards if they were not there.
    local p
    for p in /etc/docker/key.json /run/docker; do
        [ -e "$p" ] || clients_on_exit "rm -rf '$p'"
    done
    jq -n --arg p "$rt" '{ runtimes: { moat: { path: $p } }, "storage-driver": "overlay2",
        "log-level": "debug" }' >"$dir/daemon.json"
    dockerd --config-file "$dir/daemon.json" --data-root "$dir/data" --exec-root "$dir/exec" \
        --pidfile "$dir/docker.pid" -H "unix://$DOCKER_SOCK" --containerd "$ctrd" \
        --iptables=false --ip6tables=false --bridge=none --ip-masq=false --userland-proxy=false \
        >"$dir/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    clients_on_exit "stop_dockerd '$dir' $DOCKERD_PID"
    if ! wait_until 60 /usr/bin/docker -H "unix://$DOCKER_SOCK" version; then
        if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            CLIENTS_WHY="dockerd exited: $(grep -E 'level=(fatal|error)|failed to start' "$dir/dockerd.log" | tail -1)"
        else
            CLIENTS_WHY="dockerd did not answer on $DOCKER_SOCK within 60 s"
        fi
        return 1
    fi
    return 0
}

stop_dockerd() {
    local dir=$1 pid=$2 c
    if kill -0 "$pid" 2>/dev/null; then
        for c in $(timeout 10 /usr/bin/docker -H "unix://$dir/docker.sock" ps -aq 2>/dev/null); do
            timeout 20 /usr/bin/docker -H "unix://$dir/docker.sock" rm -f "$c"
        done
    fi
    kill_pid "$pid" 20
    umount_under "$dir"
    rm -rf "$dir"
}
