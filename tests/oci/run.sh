#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# moat's OCI runtime conformance suite.
#
# usage: tests/oci/run.sh RUNTIME [--root DIR] [--filter REGEX] [--list]
#
# Drives RUNTIME (any runc-compatible binary: create/start/state/kill/delete)
# through checks derived from the OCI runtime specification (runtime.md,
# config.md, config-linux.md, features.md) and prints TAP: one line per check,
# "ok N - name", "not ok N - name" (followed by "#" diagnostics) or
# "ok N - name # SKIP reason", and the plan "1..N" at the end.
#
# Every check writes its own config.json from the same base (base_config
# below, never "RUNTIME spec") and edits it with jq, so all runtimes get
# identical configs. Results are observed from inside the container: the
# container process writes to its stdout (which the runtime connects to the
# stdout of "RUNTIME create", a file here) or into a host directory
# bind-mounted into the container. Nothing assumes that the container's
# processes are visible on the host (a VM-based runtime's are not).
#
# Needs root, jq, busybox-static, iproute2, util-linux; python3 for the
# console-socket receiver (terminal checks are skipped without it).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
usage() { echo "usage: $0 RUNTIME [--root DIR] [--filter REGEX] [--list]" >&2; exit 2; }

[ $# -ge 1 ] || usage
RT=$1
shift
ROOT=""
FILTER=""
LIST_ONLY=0
while [ $# -gt 0 ]; do
        case $1 in
        --root) ROOT=$2; shift 2 ;;
        --filter) FILTER=$2; shift 2 ;;
        --list) LIST_ONLY=1; shift ;;
        *) usage ;;
        esac
done

T_OP=${OCI_OP_TIMEOUT:-30}       # bound for every runtime invocation (s)
T_WAIT=${OCI_WAIT_TIMEOUT:-15}   # bound for waiting on a container state (s)

# ---------------------------------------------------------------- check list
# Every check is a function check_<name>; this list fixes the order.
CHECKS=(
        # runtime.md: state, lifecycle, operations, errors
        state_created state_running state_stopped state_annotations
        create_does_not_run_process create_duplicate_id create_no_config_error
        create_bad_rootfs_error create_error_leaves_nothing unknown_properties_ignored
        config_changes_after_create_ignored no_process_error
        start_running_error start_stopped_error
        kill_signal kill_created kill_stopped_error
        delete_created_error delete_running_error delete_force delete_stopped_reuse_id
        state_unknown_error
        # features.md
        features_json features_versions_accepted
        # config.md: process
        process_args process_env process_cwd process_user process_additional_gids
        process_umask process_rlimits rlimits_duplicate_error rlimits_unknown_error
        nnp_true nnp_false capabilities capabilities_ambient
        oom_score_adj oom_score_adj_unset terminal console_size
        hostname domainname root_readonly root_writable
        # config.md: mounts
        mount_tmpfs_options mount_bind_ro mount_bind_rw mount_bind_file mount_order
        mount_proc mount_sysfs_ro
        # config-linux.md: namespaces
        ns_pid ns_net ns_ipc ns_uts ns_mount ns_cgroup ns_user ns_inherit_net
        ns_join_net_path ns_join_wrong_type_error ns_duplicate_error
        # config-linux.md: devices
        devices_default devices_console devices_node devices_cgroup_deny
        # config-linux.md: cgroups
        cg_path_host cg_memory cg_memory_enforced cg_pids cg_pids_enforced cg_cpu
        cg_unified_unknown_error
        # config-linux.md: sysctl, masked/readonly paths, seccomp
        sysctl sysctl_unknown_error masked_paths readonly_paths
        seccomp_errno_default seccomp_errnoret seccomp_kill
        # config.md: hooks
        hooks_order_and_timing hooks_state_stdin hooks_namespaces hooks_args_env
        hook_prestart_fail hook_createRuntime_fail hook_createContainer_fail
        hook_startContainer_fail hook_poststart_fail hook_poststop_fail_ignored
        hook_timeout hook_fail_runs_poststop
)

if [ "$LIST_ONLY" = 1 ]; then
        printf '%s\n' "${CHECKS[@]}"
        exit 0
fi

if [ "$(id -u)" != 0 ]; then
        echo "1..0 # SKIP the OCI suite needs root"
        exit 0
fi
for tool in jq timeout ip unshare; do
        command -v $tool >/dev/null || { echo "Bail out! $tool not found"; exit 1; }
done
BUSYBOX=$(command -v busybox) || { echo "Bail out! busybox (busybox-static) not found"; exit 1; }
if [ -x "$RT" ]; then
        RT=$(readlink -f "$RT")
elif command -v "$RT" >/dev/null; then
        RT=$(command -v "$RT")
else
        echo "Bail out! runtime $RT not found"
        exit 1
fi

# ---------------------------------------------------------------- workspace
WORK=$(mktemp -d /tmp/oci-suite.XXXXXX)
chmod 755 "$WORK"               # user-namespaced containers traverse it
SUITE=${WORK##*.}
[ -n "$ROOT" ] || ROOT=$WORK/state
mkdir -p "$ROOT"
ROOT=$(readlink -f "$ROOT")
: >"$WORK/cids"
: >"$WORK/netns"
: >"$WORK/pids"
HOST_NETNS=$(readlink /proc/self/ns/net)
RT_CMD=("$RT")

# Kill only what this run started: containers by id, helper processes by pid.
cleanup_check() {
        local cid pid
        while read -r cid; do
                [ -n "$cid" ] || continue
                timeout -k 2 10 "${RT_CMD[@]}" --root "$ROOT" delete --force "$cid" >/dev/null 2>&1
                if timeout -k 2 5 "${RT_CMD[@]}" --root "$ROOT" state "$cid" >/dev/null 2>&1; then
                        timeout -k 2 10 "${RT_CMD[@]}" --root "$ROOT" kill "$cid" 9 >/dev/null 2>&1
                        sleep 0.2
                        timeout -k 2 10 "${RT_CMD[@]}" --root "$ROOT" delete --force "$cid" >/dev/null 2>&1
                fi
        done <"$WORK/cids"
        : >"$WORK/cids"
        while read -r pid; do
                [ -n "$pid" ] && kill "$pid" 2>/dev/null
        done <"$WORK/pids"
        : >"$WORK/pids"
        # any mount a runtime left below the work dir
        local m
        for m in $(awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
                umount -l "$m" 2>/dev/null
        done
}

cleanup_all() {
        cleanup_check
        local ns d
        while read -r ns; do
                [ -n "$ns" ] && ip netns delete "$ns" 2>/dev/null
        done <"$WORK/netns"
        # cgroups named after this run (the runtimes should have removed them)
        for d in /sys/fs/cgroup/*/oci-$SUITE-* /sys/fs/cgroup/oci-$SUITE-*; do
                [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
        done
        rm -rf "$WORK"
        [ -z "${ROOT_CREATED:-}" ] || rmdir "$ROOT" 2>/dev/null
}
trap cleanup_all EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- rootfs
# One busybox rootfs per run; each bundle gets a copy (cp -a is cheap).
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS"/{bin,etc,tmp,proc,sys,dev,root,var,mnt,hooks,share}
cp "$BUSYBOX" "$ROOTFS/bin/busybox"
for applet in $("$BUSYBOX" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$ROOTFS/bin/$applet"
done
chmod 1777 "$ROOTFS/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$ROOTFS/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOTFS/etc/group"
# startContainer hook: runs in the container namespace, path resolves there.
cat >"$ROOTFS/bin/oci-hook" <<'EOF'
#!/bin/sh
# oci-hook TYPE: log a hook invocation into /hooks (host bind mount)
cat >"/hooks/$1.json"
printf '%s\t%s\t%s\t%s\n' "$1" "$(readlink /proc/self/ns/net)" "$*" "$HOOKVAR" >>/hooks/log
exit "${HOOK_EXIT:-0}"
EOF
chmod 755 "$ROOTFS/bin/oci-hook"

# Host-side hook: runs in the runtime namespace (or the container's, for
# createContainer, before pivot_root); logs into the bundle's hooks dir.
HOOK=$WORK/hook.sh
cat >"$HOOK" <<'EOF'
#!/bin/bash
# hook.sh DIR TYPE [ARGS...]: log one hook invocation into DIR
dir=$1
type=$2
cat >"$dir/$type.json"
printf '%s\t%s\t%s\t%s\n' "$type" "$(readlink /proc/self/ns/net)" "$*" "${HOOKVAR:-}" >>"$dir/log"
[ -z "${HOOK_SLEEP:-}" ] || exec sleep "$HOOK_SLEEP"
exit "${HOOK_EXIT:-0}"
EOF
chmod 755 "$HOOK"

# ---------------------------------------------------------------- helpers
N=0          # check number
B=""         # current bundle dir
C=""         # current config.json
CID=""       # current container id
WHY=""       # failure / skip reason

# rt ARGS...: the runtime with this run's --root, bounded by a timeout
rt() { timeout -k 5 "$T_OP" "${RT_CMD[@]}" --root "$ROOT" "$@"; }

# base_config: the config every check starts from (modelled on runc spec's
# default, rootful): no terminal, standard mounts, new pid/net/ipc/uts/mount/
# cgroup namespaces, the usual masked and read-only paths, a default
# capability set, and a per-container cgroupsPath named after this run.
base_config() {
        jq -n --arg cg "/oci-$SUITE-$1" '{
  ociVersion: "1.0.2",
  process: {
    terminal: false,
    user: {uid: 0, gid: 0},
    args: ["/bin/sh", "-c", "true"],
    env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
    cwd: "/",
    capabilities: {
      bounding: $caps, effective: $caps, permitted: $caps
    },
    rlimits: [{type: "RLIMIT_NOFILE", hard: 1024, soft: 1024}],
    noNewPrivileges: true
  },
  root: {path: "rootfs", readonly: false},
  hostname: "oci",
  mounts: [
    {destination: "/proc", type: "proc", source: "proc"},
    {destination: "/dev", type: "tmpfs", source: "tmpfs",
     options: ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {destination: "/dev/pts", type: "devpts", source: "devpts",
     options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {destination: "/dev/shm", type: "tmpfs", source: "shm",
     options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {destination: "/dev/mqueue", type: "mqueue", source: "mqueue",
     options: ["nosuid", "noexec", "nodev"]},
    {destination: "/sys", type: "sysfs", source: "sysfs",
     options: ["nosuid", "noexec", "nodev", "ro"]},
    {destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup",
     options: ["nosuid", "noexec", "nodev", "relatime", "ro"]}
  ],
  linux: {
    cgroupsPath: $cg,
    resources: {devices: [{allow: false, access: "rwm"}]},
    namespaces: [{type: "pid"}, {type: "network"}, {type: "ipc"}, {type: "uts"},
                 {type: "mount"}, {type: "cgroup"}],
    maskedPaths: ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                  "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                  "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}' --argjson caps '["CAP_CHOWN","CAP_DAC_OVERRIDE","CAP_FSETID","CAP_FOWNER","CAP_MKNOD",
  "CAP_NET_RAW","CAP_SETGID","CAP_SETUID","CAP_SETFCAP","CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE","CAP_SYS_CHROOT","CAP_KILL","CAP_AUDIT_WRITE"]'
}

# new_bundle: fresh bundle (rootfs copy + base config) for the current check;
# sets B, C, CID. A second call in the same check makes another bundle.
BN=0
new_bundle() {
        BN=$((BN + 1))
        B=$WORK/b$BN
        mkdir -p "$B/hooks" "$B/share"
        chmod 777 "$B/hooks" "$B/share"
        cp -a "$ROOTFS" "$B/rootfs"
        C=$B/config.json
        CID=oci-$SUITE-$BN
        base_config "$BN" >"$C"
}

# cfg JQ-EXPR [JQ-ARGS...]: edit the current config in place
cfg() {
        local expr=$1
        shift
        jq "$@" "$expr" "$C" >"$C.tmp" || { echo "# jq failed: $expr" >&2; return 1; }
        mv "$C.tmp" "$C"
}
# script SH-TEXT: make the container process "/bin/sh -c SH-TEXT"
script() { cfg '.process.args = ["/bin/sh", "-c", $s]' --arg s "$1"; }
# share_mount [OPTIONS-JSON]: bind the bundle's share dir at /share
share_mount() {
        cfg '.mounts += [{destination: "/share", type: "bind", source: $s, options: $o}]' \
                --arg s "$B/share" --argjson o "${1:-[\"rbind\",\"rw\"]}"
}

# create [ID] [EXTRA-ARGS...]: create from the current bundle; the
# container's stdout/stderr are $B/out and $B/err (runtime's own too).
create() {
        local id=${1:-$CID}
        [ $# -gt 0 ] && shift
        echo "$id" >>"$WORK/cids"
        rt create --bundle "$B" "$@" "$id" </dev/null >>"$B/out" 2>>"$B/err"
}
# shellcheck disable=SC2120
start() { rt start "${1:-$CID}" </dev/null >>"$B/rt.out" 2>>"$B/rt.err"; }
state() { rt state "${1:-$CID}" 2>>"$B/rt.err"; }
# shellcheck disable=SC2120
status() { state "$@" | jq -r .status 2>/dev/null; }
kill_c() { rt kill "$CID" "$1" </dev/null >>"$B/rt.out" 2>>"$B/rt.err"; }
delete() { rt delete "$@" </dev/null >>"$B/rt.out" 2>>"$B/rt.err"; }

# wait_status STATUS [SECONDS]: poll until the container reaches STATUS
wait_status() {
        local want=$1 secs=${2:-$T_WAIT} i s
        for ((i = 0; i < secs * 20; i++)); do
                s=$(status)
                [ "$s" = "$want" ] && return 0
                sleep 0.05
        done
        WHY="container did not reach '$want' within ${secs}s (status '$s')"
        return 1
}
# wait_file FILE PATTERN [SECONDS]: poll until FILE contains PATTERN
wait_file() {
        local f=$1 pat=$2 secs=${3:-$T_WAIT} i
        for ((i = 0; i < secs * 20; i++)); do
                grep -q -- "$pat" "$f" 2>/dev/null && return 0
                sleep 0.05
        done
        WHY="'$pat' did not show up in $(basename "$f") within ${secs}s"
        return 1
}

# run_c: create, start, wait for stopped, delete; output in $B/out
run_c() {
        create || { WHY="create failed: $(tail -c 400 "$B/err")"; return 1; }
        start || { WHY="start failed: $(tail -c 400 "$B/rt.err")"; return 1; }
        wait_status stopped || return 1
        delete "$CID" || { WHY="delete failed: $(tail -c 400 "$B/rt.err")"; return 1; }
        return 0
}
out() { cat "$B/out" 2>/dev/null; }
# outval KEY: value of the "KEY=value" line the container printed
outval() { sed -n "s/^$1=//p" "$B/out" | head -n1; }

# expect NAME-OF-THING EXPECTED ACTUAL
expect() {
        [ "$2" = "$3" ] && return 0
        WHY="$1: expected '$2', got '$3'"
        return 1
}
# exists ID: does the runtime know container ID?
exists() { rt state "$1" >/dev/null 2>&1; }
skip() { WHY=$1; return 2; }

# ------------------------------------------------------------- crun quirk
# crun (1.8) refuses cgroup "hybrid" mode (v1 hierarchies plus a cgroup2 mount
# at /sys/fs/cgroup/unified) while any controller is attached to the cgroup2
# mount. Instead of changing the host, probe the runtime and, if it says so,
# run it in a private mount namespace without the /sys/fs/cgroup/unified
# mount: it then sees plain cgroup v1. The host is left untouched.
probe_runtime() {
        new_bundle
        create && start && wait_status stopped 5 && delete "$CID"
        local rc=$?
        if [ $rc != 0 ] && grep -q 'hybrid mode' "$B/err" "$B/rt.err" 2>/dev/null &&
                [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
                RT_CMD=(unshare -m --propagation private -- /bin/sh -c
                        'umount /sys/fs/cgroup/unified && exec "$0" "$@"' "$RT")
                echo "# note: $RT refuses cgroup hybrid mode; running it in a private mount namespace without /sys/fs/cgroup/unified"
                cleanup_check
                new_bundle
                create && start && wait_status stopped 5 && delete "$CID"
                rc=$?
        fi
        if [ $rc = 0 ]; then
                BASELINE=1
        else
                echo "# note: the base container does not run: $(cat "$B/err" "$B/rt.err" 2>/dev/null | tail -c 300 | tr '\n' ' ')"
        fi
        cleanup_check
}
BASELINE=0
# need_baseline: error-case checks prove nothing if the runtime cannot run
# the base container at all (every create would "fail as expected").
need_baseline() {
        [ "$BASELINE" = 1 ] && return 0
        WHY="the runtime cannot run the base container, so this error check proves nothing"
        return 1
}

# ================================================================ checks
# Each check returns 0 (pass), 1 (fail, reason in WHY) or 2 (skip, WHY).

# runtime.md "State", "Query State": after create the state has ociVersion,
# id, status "created", pid (REQUIRED when created) and the absolute bundle.
check_state_created() {
        new_bundle
        cfg '.process.args = ["/bin/sleep", "30"]'
        create || { WHY="create failed: $(tail -c 300 "$B/err")"; return 1; }
        local s
        s=$(state) || { WHY="state failed"; return 1; }
        echo "$s" | jq -e . >/dev/null || { WHY="state is not JSON: $s"; return 1; }
        expect id "$CID" "$(jq -r .id <<<"$s")" || return 1
        expect status created "$(jq -r .status <<<"$s")" || return 1
        expect bundle "$B" "$(jq -r .bundle <<<"$s")" || return 1
        jq -e '.ociVersion | type == "string" and test("^[0-9]+\\.[0-9]+\\.[0-9]+")' <<<"$s" >/dev/null ||
                { WHY="ociVersion missing or not SemVer: $s"; return 1; }
        jq -e '.pid | type == "number" and . > 0' <<<"$s" >/dev/null || { WHY="pid missing: $s"; return 1; }
        kill -0 "$(jq -r .pid <<<"$s")" 2>/dev/null || { WHY="state.pid is not a live process on the host"; return 1; }
}

# runtime.md "State", "Start": after start the status is "running" and pid
# is still set.
check_state_running() {
        new_bundle
        cfg '.process.args = ["/bin/sleep", "30"]'
        create && start || { WHY="create/start failed: $(cat "$B/err" "$B/rt.err" 2>/dev/null | tail -c 300)"; return 1; }
        local s
        s=$(state) || { WHY="state failed"; return 1; }
        expect status running "$(jq -r .status <<<"$s")" || return 1
        jq -e '.pid | type == "number" and . > 0' <<<"$s" >/dev/null || { WHY="pid missing: $s"; return 1; }
}

# runtime.md "State", "Lifecycle" step 10: once the process exits the status
# is "stopped"; the process ran (its output arrived).
check_state_stopped() {
        new_bundle
        script 'echo hello-from-container'
        create && start || { WHY="create/start failed"; return 1; }
        wait_status stopped || return 1
        expect output hello-from-container "$(out)"
}

# runtime.md "State": annotations of the config are in the state.
check_state_annotations() {
        new_bundle
        cfg '.annotations = {"org.example.key": "value-1", "other": "x y"}'
        create || { WHY="create failed"; return 1; }
        local a
        a=$(state | jq -c '.annotations')
        expect annotations '{"org.example.key":"value-1","other":"x y"}' "$(jq -cS . <<<"$a")"
}

# runtime.md "Lifecycle" step 2, "Create": process.args MUST NOT run until start.
check_create_does_not_run_process() {
        new_bundle
        share_mount
        script 'echo ran > /share/marker'
        create || { WHY="create failed"; return 1; }
        sleep 1
        [ ! -e "$B/share/marker" ] || { WHY="user program ran before start"; return 1; }
        start || { WHY="start failed"; return 1; }
        wait_status stopped || return 1
        [ -e "$B/share/marker" ] || { WHY="user program did not run after start"; return 1; }
}

# runtime.md "Create": an id that is not unique MUST generate an error and no
# new container is created (the first one is left alone).
check_create_duplicate_id() {
        new_bundle
        cfg '.process.args = ["/bin/sleep", "30"]'
        create || { WHY="first create failed"; return 1; }
        local first=$CID
        new_bundle
        if create "$first"; then WHY="second create with the same id succeeded"; return 1; fi
        CID=$first
        expect "status of the first container" created "$(status)" || return 1
        expect "bundle of the first container" "$WORK/b$((BN - 1))" "$(state | jq -r .bundle)"
}

# runtime.md "Create": create MUST fail without a usable bundle (no config.json).
check_create_no_config_error() {
        need_baseline || return 1
        new_bundle
        rm -f "$C"
        if create; then WHY="create succeeded without config.json"; return 1; fi
        ! exists "$CID" || { WHY="a container exists after the failed create"; return 1; }
}

# config.md "Root": a directory MUST exist at root.path; if the runtime cannot
# apply a property it MUST generate an error (runtime.md "Create").
check_create_bad_rootfs_error() {
        need_baseline || return 1
        new_bundle
        cfg '.root.path = "does-not-exist"'
        if create; then WHY="create succeeded with a missing root.path"; return 1; fi
        ! exists "$CID" || { WHY="a container exists after the failed create"; return 1; }
}

# runtime.md "Errors": an error MUST leave the environment as if the
# operation were never attempted: no container, no cgroup, no mounts left,
# and the id is free again.
check_create_error_leaves_nothing() {
        new_bundle
        cfg '.mounts += [{destination: "/mnt/x", type: "bind", source: "/nonexistent/oci-suite", options: ["rbind"]}]'
        if create; then WHY="create succeeded with a missing bind source"; return 1; fi
        ! exists "$CID" || { WHY="a container exists after the failed create"; return 1; }
        local d
        for d in /sys/fs/cgroup/*/oci-$SUITE-$BN /sys/fs/cgroup/oci-$SUITE-$BN; do
                [ ! -d "$d" ] || { WHY="cgroup $d left behind"; return 1; }
        done
        if grep -q -- "$B/" /proc/self/mountinfo; then WHY="mount below the bundle left behind"; return 1; fi
        local bad=$CID
        cfg 'del(.mounts[-1])'
        create "$bad" || { WHY="the id could not be reused after the failed create: $(tail -c 300 "$B/err")"; return 1; }
}

# config.md "Extensibility": runtimes MUST ignore unknown properties.
check_unknown_properties_ignored() {
        new_bundle
        cfg '.["org.example.unknown"] = {a: 1} | .process["x-unknown"] = true | .linux["x-unknown"] = [1, 2]'
        script 'echo fine'
        run_c || return 1
        expect output fine "$(out)"
}

# runtime.md "Lifecycle" step 2 / "Create": changes to config.json after
# create MUST NOT affect the container.
check_config_changes_after_create_ignored() {
        new_bundle
        script 'echo original'
        create || { WHY="create failed"; return 1; }
        script 'echo modified'
        start || { WHY="start failed"; return 1; }
        wait_status stopped || return 1
        expect output original "$(out)"
}

# runtime.md "Start": start MUST generate an error if process was not set
# (a runtime may already refuse the create).
check_no_process_error() {
        need_baseline || return 1
        new_bundle
        cfg 'del(.process)'
        if create; then
                if start; then WHY="create and start succeeded without process"; return 1; fi
        fi
        return 0
}

# runtime.md "Start": starting a container that is not created (running)
# MUST generate an error and have no effect.
check_start_running_error() {
        new_bundle
        cfg '.process.args = ["/bin/sleep", "30"]'
        create && start || { WHY="create/start failed"; return 1; }
        if start; then WHY="second start succeeded"; return 1; fi
        expect status running "$(status)"
}

# runtime.md "Start": starting a stopped container MUST generate an error and
# must not run the program again.
check_start_stopped_error() {
        new_bundle
        script 'echo run'
        create && start || { WHY="create/start failed"; return 1; }
        wait_status stopped || return 1
        if start; then WHY="start of a stopped container succeeded"; return 1; fi
        sleep 0.3
        expect status stopped "$(status)" || return 1
        expect output run "$(out)"
}

# runtime.md "Kill": the signal MUST be sent to the container process.
check_kill_signal() {
        new_bundle
        script 'trap "echo got-usr1; exit 0" USR1; echo ready; while :; do sleep 0.1; done'
        create && start || { WHY="create/start failed"; return 1; }
        wait_file "$B/out" ready || return 1
        kill_c 10 || { WHY="kill failed: $(tail -c 300 "$B/rt.err")"; return 1; }
        wait_status stopped || return 1
        expect output "$(printf 'ready\ngot-usr1')" "$(out)"
}

# runtime.md "Kill": a created container may be signalled; SIGKILL stops it
# (and its program never runs).
check_kill_created() {
        new_bundle
        script 'echo ran'
        create || { WHY="create failed"; return 1; }
        kill_c 9 || { WHY="kill of a created container failed: $(tail -c 300 "$B/rt.err")"; return 1; }
        wait_status stopped || return 1
        expect output "" "$(out)"
}

# runtime.md "Kill": signalling a container that is neither created nor
# running MUST generate an error.
check_kill_stopped_error() {
        new_bundle
        create && start || { WHY="create/start failed"; return 1; }
        wait_status stopped || return 1
        if kill_c 15; then WHY="kill of a stopped container succeeded"; return 1; fi
        expect status stopped "$(status)"
}

# runtime.md "Delete": deleting a container that is not stopped (created)
# MUST generate an error and have no effect.
check_delete_created_error() {
        new_bundle
        create || { WHY="create failed"; return 1; }
        if delete "$CID"; then WHY="delete of a created container succeeded"; return 1; fi
        expect status created "$(status)"
}

# runtime.md "Delete": deleting a running container MUST generate an error
# and have no effect.
check_delete_running_error() {
        new_bundle
        cfg '.process.args = ["/bin/sleep", "30"]'
        create && start || { WHY="create/start failed"; return 1; }
        if delete "$CID"; then WHY="delete of a running container succeeded"; return 1; fi
        expect status running "$(status)"
}

# runc CLI convention used by every caller (docker, podman, containerd):
# delete --force kills and deletes a running container and its resources.
check_delete_force() {
        new_bundle
        cfg '.process.args = ["/bin/sleep", "30"]'
        create && start || { WHY="create/start failed"; return 1; }
        delete --force "$CID" || { WHY="delete --force failed: $(tail -c 300 "$B/rt.err")"; return 1; }
        ! exists "$CID" || { WHY="container still exists after delete --force"; return 1; }
        local d
        for d in /sys/fs/cgroup/*/oci-$SUITE-$BN /sys/fs/cgroup/oci-$SUITE-$BN; do
                [ ! -d "$d" ] || { WHY="cgroup $d left behind"; return 1; }
        done
}

# runtime.md "Delete": delete of a stopped container removes it (state then
# errors; resources gone) and the id MAY be reused.
check_delete_stopped_reuse_id() {
        new_bundle
        script 'echo one'
        run_c || return 1
        ! exists "$CID" || { WHY="container still exists after delete"; return 1; }
        if grep -q -- "$B/" /proc/self/mountinfo; then WHY="mount below the bundle left behind"; return 1; fi
        script 'echo two'
        : >"$B/out"
        run_c || { WHY="reusing the id failed: $WHY"; return 1; }
        expect output two "$(out)"
}

# runtime.md "Query State": querying a container that does not exist MUST
# generate an error.
check_state_unknown_error() {
        need_baseline || return 1
        new_bundle
        if rt state "oci-$SUITE-nonexistent" >/dev/null 2>&1; then WHY="state of an unknown id succeeded"; return 1; fi
}

# features.md: "features" prints a JSON document with ociVersionMin <=
# ociVersionMax (the operation is optional: skip when absent).
check_features_json() {
        local f
        f=$(rt features 2>/dev/null) || { skip "runtime has no 'features' operation"; return; }
        jq -e '(.ociVersionMin | type == "string") and (.ociVersionMax | type == "string")' <<<"$f" >/dev/null ||
                { WHY="features lacks ociVersionMin/ociVersionMax"; return 1; }
        local lo hi
        lo=$(jq -r .ociVersionMin <<<"$f")
        hi=$(jq -r .ociVersionMax <<<"$f")
        [ "$(printf '%s\n%s\n' "${lo%%-*}" "${hi%%-*}" | sort -V | head -n1)" = "${lo%%-*}" ] ||
                { WHY="ociVersionMin $lo > ociVersionMax $hi"; return 1; }
        if jq -e '.hooks' <<<"$f" >/dev/null; then
                jq -e '.hooks | type == "array"' <<<"$f" >/dev/null || { WHY="features.hooks not an array"; return 1; }
        fi
        if jq -e '.mountOptions' <<<"$f" >/dev/null; then
                jq -e '.mountOptions | type == "array"' <<<"$f" >/dev/null || { WHY="features.mountOptions not an array"; return 1; }
        fi
}

# features.md: the runtime MUST accept ociVersionMin and ociVersionMax as the
# config's ociVersion.
check_features_versions_accepted() {
        local f v
        f=$(rt features 2>/dev/null) || { skip "runtime has no 'features' operation"; return; }
        for v in "$(jq -r .ociVersionMin <<<"$f")" "$(jq -r .ociVersionMax <<<"$f")"; do
                new_bundle
                cfg '.ociVersion = $v' --arg v "$v"
                script 'echo ok'
                run_c || { WHY="ociVersion $v: $WHY"; return 1; }
                expect "output with ociVersion $v" ok "$(out)" || return 1
        done
}

# config.md "Process": args are passed verbatim (argv).
check_process_args() {
        new_bundle
        cfg '.process.args = ["/bin/sh", "-c", "for a in \"$0\" \"$@\"; do echo \"[$a]\"; done", "zero", "a b", "", "*"]'
        run_c || return 1
        expect argv "$(printf '[zero]\n[a b]\n[]\n[*]')" "$(out)"
}

# config.md "Process": env is the process environment.
check_process_env() {
        new_bundle
        cfg '.process.env += ["OCI_A=1", "OCI_B=with space", "OCI_EMPTY="]'
        script 'env | grep ^OCI_ | sort'
        run_c || return 1
        expect environment "$(printf 'OCI_A=1\nOCI_B=with space\nOCI_EMPTY=')" "$(out)"
}

# config.md "Process": cwd is the working directory.
check_process_cwd() {
        new_bundle
        mkdir -p "$B/rootfs/var/work dir"
        cfg '.process.cwd = "/var/work dir"'
        script 'pwd'
        run_c || return 1
        expect cwd "/var/work dir" "$(out)"
}

# config.md "User": uid and gid of the process.
check_process_user() {
        new_bundle
        cfg '.process.user = {uid: 1234, gid: 4321}'
        script 'echo "uid=$(id -u) gid=$(id -g)"'
        run_c || return 1
        expect ids "uid=1234 gid=4321" "$(out)"
}

# config.md "User": additionalGids are the supplementary groups.
check_process_additional_gids() {
        new_bundle
        cfg '.process.user = {uid: 1000, gid: 1000, additionalGids: [7, 1001, 3000]}'
        script 'sed -n "s/^Groups:[[:space:]]*//p" /proc/self/status'
        run_c || return 1
        local g w
        g=" $(out | tr ' \t' '\n\n' | grep . | sort -n | tr '\n' ' ')"
        for w in 7 1001 3000; do
                case $g in *" $w "*) ;; *) WHY="supplementary groups: expected 7 1001 3000, got '$g'"; return 1 ;; esac
        done
}

# config.md "User": umask of the process.
check_process_umask() {
        new_bundle
        cfg '.process.user.umask = 23'      # 0027
        script 'umask; touch /tmp/f; stat -c %a /tmp/f'
        run_c || return 1
        expect "umask and file mode" "$(printf '0027\n640')" "$(out)"
}

# config.md "Process" rlimits: getrlimit MUST match the configured soft
# (rlim_cur) and hard (rlim_max) values.
check_process_rlimits() {
        new_bundle
        cfg '.process.rlimits = [{type: "RLIMIT_NOFILE", soft: 512, hard: 768}, {type: "RLIMIT_CORE", soft: 4096, hard: 8192}, {type: "RLIMIT_NPROC", soft: 300, hard: 400}]'
        script 'echo "nofile=$(ulimit -Sn)/$(ulimit -Hn)"; grep -E "^Max (core file size|processes) " /proc/self/limits | awk "{print \$(NF-2) \"/\" \$(NF-1)}"'
        run_c || return 1
        expect rlimits "$(printf 'nofile=512/768\n4096/8192\n300/400')" "$(out)"
}

# config.md "Process": duplicated rlimits entries MUST generate an error.
check_rlimits_duplicate_error() {
        need_baseline || return 1
        new_bundle
        cfg '.process.rlimits = [{type: "RLIMIT_NOFILE", soft: 512, hard: 512}, {type: "RLIMIT_NOFILE", soft: 256, hard: 256}]'
        script 'echo ran'
        if create && start; then WHY="duplicated rlimit type accepted"; return 1; fi
        return 0
}

# config.md "Process": rlimit types that cannot be mapped MUST generate an error.
check_rlimits_unknown_error() {
        need_baseline || return 1
        new_bundle
        cfg '.process.rlimits = [{type: "RLIMIT_NOT_A_LIMIT", soft: 1, hard: 1}]'
        script 'echo ran'
        if create && start; then WHY="unknown rlimit type accepted"; return 1; fi
        return 0
}

# config.md "Process": noNewPrivileges true sets no_new_privs.
check_nnp_true() {
        new_bundle
        cfg '.process.noNewPrivileges = true'
        script 'sed -n "s/^NoNewPrivs:[[:space:]]*//p" /proc/self/status'
        run_c || return 1
        expect NoNewPrivs 1 "$(out)"
}

# config.md "Process": without noNewPrivileges the flag is not set (the
# suite itself runs without it).
check_nnp_false() {
        [ "$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' /proc/self/status)" = 0 ] ||
                { skip "the suite itself runs with no_new_privs"; return; }
        new_bundle
        cfg '.process.noNewPrivileges = false'
        script 'sed -n "s/^NoNewPrivs:[[:space:]]*//p" /proc/self/status'
        run_c || return 1
        expect NoNewPrivs 0 "$(out)"
}

# config.md "Process" capabilities: each set is what the config lists.
check_capabilities() {
        new_bundle
        cfg '.process.capabilities = {bounding: ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
                                      effective: ["CAP_CHOWN", "CAP_KILL"],
                                      permitted: ["CAP_CHOWN", "CAP_KILL"],
                                      inheritable: ["CAP_KILL"]}'
        script 'grep -E "^Cap(Inh|Prm|Eff|Bnd|Amb):" /proc/self/status | tr -d "\t"'
        run_c || return 1
        # CHOWN = bit 0, KILL = bit 5, NET_RAW = bit 13
        expect capabilities "$(printf 'CapInh:0000000000000020\nCapPrm:0000000000000021\nCapEff:0000000000000021\nCapBnd:0000000000002021\nCapAmb:0000000000000000')" "$(out)"
}

# config.md "Process" capabilities: ambient capabilities reach a non-root
# process (and act: it can bind a port below 1024).
check_capabilities_ambient() {
        new_bundle
        local c='["CAP_NET_BIND_SERVICE"]'
        cfg '.process.user = {uid: 1000, gid: 1000} | .process.capabilities = {bounding: $c, effective: $c, permitted: $c, inheritable: $c, ambient: $c}' --argjson c "$c"
        script 'grep -E "^Cap(Eff|Amb):" /proc/self/status | tr -d "\t"'
        run_c || return 1
        expect capabilities "$(printf 'CapEff:0000000000000400\nCapAmb:0000000000000400')" "$(out)"
}

# config.md "Process": oomScoreAdj set -> oom_score_adj is that value.
check_oom_score_adj() {
        new_bundle
        cfg '.process.oomScoreAdj = 123'
        script 'cat /proc/self/oom_score_adj'
        run_c || return 1
        expect oom_score_adj 123 "$(out)"
}

# config.md "Process": oomScoreAdj unset -> the runtime MUST NOT change it
# (the container keeps the value of whoever called the runtime).
check_oom_score_adj_unset() {
        new_bundle
        local mine
        mine=$(cat /proc/self/oom_score_adj)
        script 'cat /proc/self/oom_score_adj'
        run_c || return 1
        expect oom_score_adj "$mine" "$(out)"
}

# console_run: create/start a terminal container with a console socket;
# the terminal's output ends up in $B/tty.
console_run() {
        command -v python3 >/dev/null || { skip "python3 not available for the console-socket receiver"; return; }
        local sock=$B/console.sock
        python3 "$HERE/console-recv.py" "$sock" "$B/tty" "$T_WAIT" &
        echo $! >>"$WORK/pids"
        wait_file "$B/tty.ready" ready 10 || return 1
        create "$CID" --console-socket "$sock" || { WHY="create failed: $(tail -c 300 "$B/err")"; return 1; }
        start || { WHY="start failed"; return 1; }
        wait_status stopped || return 1
        wait_file "$B/tty.status" . 10 || return 1
}

# config.md "Process": terminal true attaches a pseudoterminal to the
# process (received through the console socket); stdio is that terminal and
# /dev/console is its bind mount (config-linux.md "Default Devices").
check_terminal() {
        new_bundle
        cfg '.process.terminal = true'
        script '[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo TTY-OK; tty; [ -c /dev/console ] && echo CONSOLE-OK'
        console_run
        local rc=$?
        [ $rc = 0 ] || return $rc
        local t
        t=$(tr -d '\r' <"$B/tty")
        case $t in
        *TTY-OK*/dev/pts/*CONSOLE-OK*) return 0 ;;
        esac
        WHY="terminal output: '$t'"
        return 1
}

# config.md "Process": consoleSize sets the terminal size (height x width).
check_console_size() {
        new_bundle
        cfg '.process.terminal = true | .process.consoleSize = {height: 31, width: 97}'
        script 'stty size'
        console_run
        local rc=$?
        [ $rc = 0 ] || return $rc
        expect "stty size" "31 97" "$(tr -d '\r' <"$B/tty" | head -n1)"
}

# config.md "Hostname": hostname in the container's UTS namespace.
check_hostname() {
        new_bundle
        cfg '.hostname = "oci-suite-host"'
        script 'hostname'
        run_c || return 1
        expect hostname oci-suite-host "$(out)"
}

# config.md "Domainname": domainname in the container's UTS namespace.
check_domainname() {
        new_bundle
        cfg '.domainname = "oci.example"'
        script 'cat /proc/sys/kernel/domainname'
        run_c || return 1
        expect domainname oci.example "$(out)"
}

# config.md "Root": readonly true -> the root filesystem MUST be read-only.
check_root_readonly() {
        new_bundle
        cfg '.root.readonly = true'
        script 'touch /rootfile 2>/dev/null && echo writable || echo readonly'
        run_c || return 1
        expect "root filesystem" readonly "$(out)"
}

# config.md "Root": readonly false (default) -> writable, and the write lands
# in root.path.
check_root_writable() {
        new_bundle
        script 'echo data > /rootfile && echo writable'
        run_c || return 1
        expect "root filesystem" writable "$(out)" || return 1
        expect "file in root.path" data "$(cat "$B/rootfs/rootfile" 2>/dev/null)"
}

# config.md "Mounts": a tmpfs with options (nosuid, nodev, noexec, size, mode).
check_mount_tmpfs_options() {
        new_bundle
        cfg '.mounts += [{destination: "/mnt/t", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "noexec", "size=1m", "mode=1770"]}]'
        script 'grep " /mnt/t " /proc/self/mounts; stat -c "mode=%a" /mnt/t'
        run_c || return 1
        local line
        line=$(out | grep ' /mnt/t ')
        [ -n "$line" ] || { WHY="/mnt/t not mounted: $(out)"; return 1; }
        local o
        for o in tmpfs nosuid nodev noexec size=1024k mode=1770; do
                case " $line " in *[\ ,]${o}[\ ,]*) ;; *) WHY="option $o missing: $line"; return 1 ;; esac
        done
        expect mode 1770 "$(outval mode)"
}

# config.md "Mounts": bind mount with ro: readable, not writable.
check_mount_bind_ro() {
        new_bundle
        echo host-data >"$B/share/file"
        share_mount '["rbind", "ro"]'
        script 'cat /share/file; echo x > /share/new 2>/dev/null && echo writable || echo readonly'
        run_c || return 1
        expect output "$(printf 'host-data\nreadonly')" "$(out)" || return 1
        [ ! -e "$B/share/new" ] || { WHY="file written through a ro bind mount"; return 1; }
}

# config.md "Mounts": rw bind mount: writes reach the host directory.
check_mount_bind_rw() {
        new_bundle
        share_mount '["rbind", "rw"]'
        script 'echo from-container > /share/new && echo done'
        run_c || return 1
        expect output "done" "$(out)" || return 1
        expect "host file" from-container "$(cat "$B/share/new" 2>/dev/null)"
}

# config.md "Mounts": bind mount of a single file onto a path that does not
# exist in the rootfs.
check_mount_bind_file() {
        new_bundle
        echo file-content >"$WORK/host-file-$BN"
        cfg '.mounts += [{destination: "/etc/oci-file", type: "bind", source: $s, options: ["bind", "ro"]}]' --arg s "$WORK/host-file-$BN"
        script 'cat /etc/oci-file'
        run_c || return 1
        expect output file-content "$(out)"
}

# config.md "Mounts": the runtime MUST mount entries in the listed order
# (a bind mount below a tmpfs listed before it is visible).
check_mount_order() {
        new_bundle
        echo inner >"$B/share/file"
        cfg '.mounts += [{destination: "/mnt/outer", type: "tmpfs", source: "tmpfs", options: ["size=1m"]},
                         {destination: "/mnt/outer/inner", type: "bind", source: $s, options: ["rbind", "ro"]}]' --arg s "$B/share"
        script 'cat /mnt/outer/inner/file; awk "\$2 ~ /^\/mnt\/outer/ {print \$2}" /proc/self/mounts'
        run_c || return 1
        expect output "$(printf 'inner\n/mnt/outer\n/mnt/outer/inner')" "$(out)"
}

# config.md "Mounts" (type proc): /proc is a procfs of the container's pid
# namespace.
check_mount_proc() {
        new_bundle
        script 'awk "\$2 == \"/proc\" {print \$3}" /proc/self/mounts; ls /proc | grep -E "^[0-9]+$" | sort -n | head -n1'
        run_c || return 1
        expect output "$(printf 'proc\n1')" "$(out)"
}

# config.md "Mounts" (type sysfs, option ro): /sys is a read-only sysfs.
check_mount_sysfs_ro() {
        new_bundle
        script 'awk "\$2 == \"/sys\" {print \$3, substr(\$4, 1, 2)}" /proc/self/mounts'
        run_c || return 1
        expect "/sys mount" "sysfs ro" "$(out)"
}

# config-linux.md "Namespaces" pid: the process is pid 1 of a new namespace.
check_ns_pid() {
        new_bundle
        script 'echo $$; ps -o pid= 2>/dev/null | wc -l'
        run_c || return 1
        expect "pid in container" 1 "$(out | head -n1)"
}

# config-linux.md "Namespaces" network: a new network namespace has only lo.
check_ns_net() {
        new_bundle
        script 'ls /sys/class/net'
        run_c || return 1
        expect interfaces lo "$(out)"
}

# config-linux.md "Namespaces" ipc: SysV IPC objects of the host are not
# visible.
check_ns_ipc() {
        command -v ipcmk >/dev/null || { skip "ipcmk (util-linux) not found"; return; }
        new_bundle
        local id key
        id=$(ipcmk -M 4096 2>/dev/null | grep -o '[0-9]\+$') || { skip "ipcmk failed"; return; }
        key=$(ipcs -m | awk -v id="$id" '$2 == id {print $1}')
        script 'ipcs -m | grep -c "^0x" || true'
        run_c
        local rc=$?
        ipcrm -m "$id" 2>/dev/null
        [ $rc = 0 ] || return 1
        expect "shared memory segments visible (host has $key)" 0 "$(out)"
}

# config-linux.md "Namespaces" uts: hostname changes stay in the container.
check_ns_uts() {
        new_bundle
        local before
        before=$(hostname)
        cfg '.hostname = "oci-uts-test"'
        cfg '.process.capabilities.bounding += ["CAP_SYS_ADMIN"] | .process.capabilities.effective += ["CAP_SYS_ADMIN"] | .process.capabilities.permitted += ["CAP_SYS_ADMIN"]'
        script 'hostname oci-changed && hostname'
        run_c || return 1
        expect "hostname inside" oci-changed "$(out)" || return 1
        expect "host hostname" "$before" "$(hostname)"
}

# config-linux.md "Namespaces" mount: the container's mounts are not
# visible in the runtime's mount namespace.
check_ns_mount() {
        new_bundle
        cfg '.mounts += [{destination: "/mnt/t", type: "tmpfs", source: "oci-suite-tmpfs", options: ["size=1m"]}]'
        cfg '.process.args = ["/bin/sleep", "30"]'
        create && start || { WHY="create/start failed"; return 1; }
        if grep -q -e "$B/rootfs" -e oci-suite-tmpfs /proc/self/mountinfo; then
                WHY="container mounts visible on the host"
                return 1
        fi
}

# config-linux.md "Namespaces" cgroup: the container's cgroup is the root of
# its cgroup namespace.
check_ns_cgroup() {
        new_bundle
        script 'cat /proc/self/cgroup'
        run_c || return 1
        local bad
        bad=$(out | awk -F: '$3 != "/"')
        [ -n "$(out)" ] || { WHY="no /proc/self/cgroup output"; return 1; }
        [ -z "$bad" ] || { WHY="cgroup paths not namespaced: $bad"; return 1; }
}

# config-linux.md "Namespaces" user + "User namespace mappings": uid/gid maps
# are applied; files created by container root belong to the mapped host id.
check_ns_user() {
        new_bundle
        cfg '.linux.namespaces += [{type: "user"}]
             | .linux.uidMappings = [{containerID: 0, hostID: 100000, size: 65536}]
             | .linux.gidMappings = [{containerID: 0, hostID: 100000, size: 65536}]'
        share_mount
        script 'cat /proc/self/uid_map /proc/self/gid_map | tr -s " \t" " " | sed "s/^ //"; id -u; touch /share/owned'
        run_c || return 1
        expect maps "$(printf '0 100000 65536\n0 100000 65536\n0')" "$(out)" || return 1
        expect "host owner of a file created by container root" "100000:100000" "$(stat -c %u:%g "$B/share/owned" 2>/dev/null)"
}

# config-linux.md "Namespaces": a type not listed MUST be inherited from the
# runtime (network: the host's interfaces are visible).
check_ns_inherit_net() {
        new_bundle
        cfg '.linux.namespaces |= map(select(.type != "network"))'
        script 'ls /sys/class/net | sort'
        run_c || return 1
        expect interfaces "$(ls /sys/class/net | sort)" "$(out)"
}

# config-linux.md "Namespaces" path: the process MUST be placed in the
# namespace at path (a network namespace made with "ip netns add").
check_ns_join_net_path() {
        local ns=oci-$SUITE-$BN
        ip netns add "$ns" 2>/dev/null || { skip "ip netns add failed"; return; }
        echo "$ns" >>"$WORK/netns"
        ip -n "$ns" link add ocij0 type veth peer name ocij1 2>/dev/null ||
                { skip "cannot create a veth pair in the namespace"; return; }
        new_bundle
        cfg '.linux.namespaces |= map(if .type == "network" then .path = $p else . end)' --arg p "/run/netns/$ns"
        script 'ls /sys/class/net | sort | tr "\n" " "'
        run_c || return 1
        expect interfaces "lo ocij0 ocij1 " "$(out)"
}

# config-linux.md "Namespaces": a path not associated with a namespace of
# the given type MUST generate an error.
check_ns_join_wrong_type_error() {
        need_baseline || return 1
        local ns=oci-$SUITE-w$BN
        ip netns add "$ns" 2>/dev/null || { skip "ip netns add failed"; return; }
        echo "$ns" >>"$WORK/netns"
        new_bundle
        cfg '.linux.namespaces |= map(if .type == "ipc" then .path = $p else . end)' --arg p "/run/netns/$ns"
        script 'echo ran'
        if create && start; then WHY="a network namespace was accepted as the ipc namespace"; return 1; fi
        return 0
}

# config-linux.md "Namespaces": duplicated namespace types MUST generate an error.
check_ns_duplicate_error() {
        need_baseline || return 1
        new_bundle
        cfg '.linux.namespaces += [{type: "pid"}]'
        script 'echo ran'
        if create && start; then WHY="duplicated namespace type accepted"; return 1; fi
        return 0
}

# config-linux.md "Default Devices": null, zero, full, random, urandom, tty
# and ptmx MUST be supplied (character devices with the standard numbers).
check_devices_default() {
        new_bundle
        script 'for d in null zero full random urandom tty; do stat -L -c "$d %F %t:%T" /dev/$d; done; [ -e /dev/ptmx ] && echo ptmx; head -c 4 /dev/zero | od -An -tx1 | tr -d " "; echo x > /dev/null && echo null-ok'
        run_c || return 1
        expect devices "$(printf 'null character special file 1:3\nzero character special file 1:5\nfull character special file 1:7\nrandom character special file 1:8\nurandom character special file 1:9\ntty character special file 5:0\nptmx\n00000000\nnull-ok')" "$(out)"
}

# config-linux.md "Default Devices": /dev/console only with a terminal...
# without one, /dev/console must not be a usable host console.
check_devices_console() {
        new_bundle
        script '[ -e /dev/console ] && stat -L -c "%t:%T" /dev/console; echo end'
        run_c || return 1
        case $(out) in
        *"5:1"*) WHY="/dev/console is the host console without a terminal"; return 1 ;;
        esac
}

# config-linux.md "Devices": a device listed in linux.devices MUST be
# available with its type, numbers, fileMode (decimal) and uid/gid, and
# usable when linux.resources.devices allows it (10:229 is /dev/fuse,
# which is not among the default devices runtimes allow on their own).
check_devices_node() {
        [ -c /dev/fuse ] || { skip "host has no /dev/fuse"; return; }
        new_bundle
        cfg '.linux.devices = [{path: "/dev/oci-fuse", type: "c", major: 10, minor: 229, fileMode: 416, uid: 7, gid: 8}]
             | .linux.resources.devices += [{allow: true, type: "c", major: 10, minor: 229, access: "rwm"}]'
        script 'stat -c "%F %t:%T %a %u:%g" /dev/oci-fuse; exec 3<>/dev/oci-fuse && echo open-ok'
        run_c || return 1
        expect device "$(printf 'character special file a:e5 640 7:8\nopen-ok')" "$(out)"
}

# config-linux.md "Allowed Device Cgroup": a device node present in the
# container but denied by linux.resources.devices cannot be opened.
check_devices_cgroup_deny() {
        new_bundle
        [ -c /dev/fuse ] || { skip "host has no /dev/fuse"; return; }
        cfg '.linux.devices = [{path: "/dev/oci-fuse", type: "c", major: 10, minor: 229, fileMode: 438, uid: 0, gid: 0}]
             | .linux.resources.devices = [{allow: false, access: "rwm"}, {allow: false, type: "c", major: 10, minor: 229, access: "rwm"}]'
        script '(exec 3<>/dev/oci-fuse) 2>/dev/null && echo opened || echo denied'
        run_c || return 1
        expect "open of a denied device" denied "$(out)"
}

# cg_read FILE-V1 FILE-V2: shell snippet printing the value of a cgroup file
# of the container, seen from inside (/sys/fs/cgroup; v1 or v2 layout).
cg_read_script() {
        echo "if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo \"v2 \$(cat /sys/fs/cgroup/$2)\"; else echo \"v1 \$(cat /sys/fs/cgroup/$1)\"; fi"
}

# config-linux.md "Control groups" cgroupsPath: an absolute path is relative
# to the cgroups mount point; the runtime's container process (state.pid)
# is in it.
check_cg_path_host() {
        new_bundle
        cfg '.process.args = ["/bin/sleep", "30"] | .linux.resources.pids = {limit: 100}'
        create || { WHY="create failed"; return 1; }
        local pid dir
        pid=$(state | jq -r .pid)
        if [ -d /sys/fs/cgroup/pids ]; then
                dir=/sys/fs/cgroup/pids/oci-$SUITE-$BN
        else
                dir=/sys/fs/cgroup/oci-$SUITE-$BN
        fi
        [ -d "$dir" ] || { WHY="$dir does not exist"; return 1; }
        grep -qx "$pid" "$dir/cgroup.procs" || { WHY="state.pid $pid not in $dir/cgroup.procs"; return 1; }
}

# config-linux.md "Memory": limit, seen from inside.
check_cg_memory() {
        new_bundle
        cfg '.linux.resources.memory = {limit: 67108864}'
        script "$(cg_read_script memory/memory.limit_in_bytes memory.max)"
        run_c || return 1
        case $(out) in
        "v1 67108864" | "v2 67108864") return 0 ;;
        esac
        WHY="memory limit seen inside: '$(out)'"
        return 1
}

# config-linux.md "Memory": the limit is enforced (a 96 MiB allocation under
# a 32 MiB limit fails or is OOM-killed).
check_cg_memory_enforced() {
        new_bundle
        cfg '.linux.resources.memory = {limit: 33554432, swap: 33554432}'
        script 'dd if=/dev/zero of=/dev/null bs=96M count=1 2>/dev/null && echo allocated || echo failed-$?'
        run_c || return 1
        case $(out) in
        failed-*) return 0 ;;
        esac
        WHY="96 MiB allocation under a 32 MiB limit: '$(out)'"
        return 1
}

# config-linux.md "PIDs": limit, seen from inside.
check_cg_pids() {
        new_bundle
        cfg '.linux.resources.pids = {limit: 42}'
        script "$(cg_read_script pids/pids.max pids.max)"
        run_c || return 1
        case $(out) in
        "v1 42" | "v2 42") return 0 ;;
        esac
        WHY="pids limit seen inside: '$(out)'"
        return 1
}

# config-linux.md "PIDs": the limit is enforced (forks beyond it fail).
check_cg_pids_enforced() {
        new_bundle
        cfg '.linux.resources.pids = {limit: 6}'
        # a child shell forks 10 sleeps (it dies at the first failed fork);
        # then count the processes without forking.
        script 'sh -c "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done" 2>/dev/null; n=0; for p in /proc/[0-9]*; do n=$((n + 1)); done; echo $n'
        run_c || return 1
        local n
        n=$(out | tail -n1)
        [ -n "$n" ] && [ "$n" -le 7 ] || { WHY="processes alive under a pids limit of 6: '$n'"; return 1; }
}

# config-linux.md "CPU": quota/period and shares, seen from inside.
check_cg_cpu() {
        new_bundle
        cfg '.linux.resources.cpu = {quota: 50000, period: 100000, shares: 512}'
        script 'if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo "v2 $(cat /sys/fs/cgroup/cpu.max)"; else d=/sys/fs/cgroup/cpu; [ -d $d ] || d=/sys/fs/cgroup/cpu,cpuacct; echo "v1 $(cat $d/cpu.cfs_quota_us) $(cat $d/cpu.cfs_period_us) $(cat $d/cpu.shares)"; fi'
        run_c || return 1
        case $(out) in
        "v1 50000 100000 512" | "v2 50000 100000") return 0 ;;
        esac
        WHY="cpu settings seen inside: '$(out)'"
        return 1
}

# config-linux.md "Unified": a key for a controller that is not present (or
# cgroup v2 not in use) MUST generate an error.
check_cg_unified_unknown_error() {
        need_baseline || return 1
        new_bundle
        cfg '.linux.resources.unified = {"ocinonexistent.max": "1"}'
        script 'echo ran'
        if create && start; then WHY="unified key for a nonexistent controller accepted"; return 1; fi
        return 0
}

# config-linux.md "Sysctl": namespaced kernel parameters are set in the
# container (net.* in its network namespace, kernel.shm* in its ipc
# namespace) and the host's values are unchanged.
check_sysctl() {
        new_bundle
        local host_fwd host_rmid
        host_fwd=$(cat /proc/sys/net/ipv4/ip_forward)
        host_rmid=$(cat /proc/sys/kernel/shm_rmid_forced)
        local fwd=$((1 - host_fwd)) rmid=$((1 - host_rmid))
        cfg '.linux.sysctl = {"net.ipv4.ip_forward": $f, "kernel.shm_rmid_forced": $r}' --arg f "$fwd" --arg r "$rmid"
        script 'echo "$(cat /proc/sys/net/ipv4/ip_forward) $(cat /proc/sys/kernel/shm_rmid_forced)"'
        run_c || return 1
        expect "sysctls inside" "$fwd $rmid" "$(out)" || return 1
        expect "host sysctls" "$host_fwd $host_rmid" "$(cat /proc/sys/net/ipv4/ip_forward) $(cat /proc/sys/kernel/shm_rmid_forced)"
}

# config-linux.md "Sysctl" + runtime.md "Create": a parameter that cannot be
# applied MUST generate an error.
check_sysctl_unknown_error() {
        need_baseline || return 1
        new_bundle
        cfg '.linux.sysctl = {"net.ipv4.oci_suite_nonexistent": "1"}'
        script 'echo ran'
        if create && start; then WHY="nonexistent sysctl accepted"; return 1; fi
        return 0
}

# config-linux.md "Masked Paths": masked paths cannot be read (files read
# empty, directories list empty).
check_masked_paths() {
        new_bundle
        mkdir -p "$B/rootfs/etc/secret-dir"
        echo secret >"$B/rootfs/etc/secret-dir/f"
        echo secret >"$B/rootfs/etc/secret-file"
        cfg '.linux.maskedPaths += ["/etc/secret-dir", "/etc/secret-file", "/proc/kcore"]'
        script 'echo "file=[$(cat /etc/secret-file 2>&1)]"; echo "dir=[$(ls /etc/secret-dir 2>&1)]"; echo "kcore=[$(head -c 16 /proc/kcore 2>/dev/null | wc -c)]"'
        run_c || return 1
        expect "masked paths" "$(printf 'file=[]\ndir=[]\nkcore=[0]')" "$(out)"
}

# config-linux.md "Readonly Paths": read-only paths cannot be written (other
# paths still can).
check_readonly_paths() {
        new_bundle
        mkdir -p "$B/rootfs/etc/ro-dir" "$B/rootfs/etc/rw-dir"
        cfg '.linux.readonlyPaths += ["/etc/ro-dir"]'
        script 'touch /etc/ro-dir/x 2>/dev/null && echo ro-dir-writable || echo ro-dir-readonly; touch /etc/rw-dir/x && echo rw-dir-writable; echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo proc-sys-writable || echo proc-sys-readonly'
        run_c || return 1
        expect output "$(printf 'ro-dir-readonly\nrw-dir-writable\nproc-sys-readonly')" "$(out)"
}

seccomp_cfg() {
        cfg '.linux.seccomp = {defaultAction: "SCMP_ACT_ALLOW",
                               architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                               syscalls: [$rule]}' --argjson rule "$1"
}

# config-linux.md "Seccomp": SCMP_ACT_ERRNO without errnoRet returns EPERM.
check_seccomp_errno_default() {
        new_bundle
        seccomp_cfg '{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}'
        script 'mkdir /tmp/d 2>&1; echo "rc=$?"; touch /tmp/f && echo touch-ok'
        run_c || return 1
        case $(out) in
        *"Operation not permitted"*rc=1*touch-ok*) return 0 ;;
        esac
        WHY="output: $(out)"
        return 1
}

# config-linux.md "Seccomp": errnoRet is the errno returned.
check_seccomp_errnoret() {
        new_bundle
        seccomp_cfg '{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30}'
        script 'mkdir /tmp/d 2>&1; echo "rc=$?"'
        run_c || return 1
        case $(out) in
        *"Read-only file system"*rc=1*) return 0 ;;
        esac
        WHY="expected EROFS (30), output: $(out)"
        return 1
}

# config-linux.md "Seccomp": SCMP_ACT_KILL kills the calling thread (SIGSYS).
check_seccomp_kill() {
        new_bundle
        seccomp_cfg '{"names": ["sync"], "action": "SCMP_ACT_KILL"}'
        script 'echo before; /bin/sync; echo "rc=$?"'
        run_c || return 1
        expect output "$(printf 'before\nrc=159')" "$(out)"
}

# hooks_cfg [EXTRA-ENV-JSON-PER-TYPE]: one hook of every type, each logging
# "TYPE<TAB>netns<TAB>args<TAB>HOOKVAR" into $B/hooks/log and its stdin into
# $B/hooks/TYPE.json. startContainer runs /bin/oci-hook inside the container,
# which writes to /hooks (a bind mount of $B/hooks).
hooks_cfg() {
        cfg '.mounts += [{destination: "/hooks", type: "bind", source: $d, options: ["rbind", "rw"]}]
             | .hooks = {
                 prestart: [{path: $h, args: ["hook.sh", $d, "prestart"], env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}],
                 createRuntime: [{path: $h, args: ["hook.sh", $d, "createRuntime"], env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}],
                 createContainer: [{path: $h, args: ["hook.sh", $d, "createContainer"], env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}],
                 startContainer: [{path: "/bin/oci-hook", args: ["oci-hook", "startContainer"], env: ["PATH=/bin"]}],
                 poststart: [{path: $h, args: ["hook.sh", $d, "poststart"], env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}],
                 poststop: [{path: $h, args: ["hook.sh", $d, "poststop"], env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}]
               }' --arg h "$HOOK" --arg d "$B/hooks"
}
hook_types() { cut -f1 "$B/hooks/log" 2>/dev/null | tr '\n' ' '; }

# config.md "POSIX-platform Hooks", runtime.md "Lifecycle": hooks run in the
# listed order; prestart/createRuntime/createContainer during create,
# startContainer/poststart during start (before it returns), poststop during
# delete (before it returns).
check_hooks_order_and_timing() {
        new_bundle
        hooks_cfg
        cfg '.process.args = ["/bin/sleep", "30"]'
        create || { WHY="create failed: $(tail -c 300 "$B/err")"; return 1; }
        expect "hooks after create" "prestart createRuntime createContainer " "$(hook_types)" || return 1
        start || { WHY="start failed: $(tail -c 300 "$B/rt.err")"; return 1; }
        expect "hooks after start" "prestart createRuntime createContainer startContainer poststart " "$(hook_types)" || return 1
        kill_c 9 || { WHY="kill failed"; return 1; }
        wait_status stopped || return 1
        expect "hooks before delete" "prestart createRuntime createContainer startContainer poststart " "$(hook_types)" || return 1
        delete "$CID" || { WHY="delete failed"; return 1; }
        expect "hooks after delete" "prestart createRuntime createContainer startContainer poststart poststop " "$(hook_types)"
}

# config.md "POSIX-platform Hooks": the state MUST be passed on stdin (id,
# bundle, ociVersion; pid while the container process exists; poststop sees
# it stopped).
check_hooks_state_stdin() {
        new_bundle
        hooks_cfg
        script 'true'
        run_c || return 1
        local t s
        for t in prestart createRuntime createContainer startContainer poststart poststop; do
                s=$(cat "$B/hooks/$t.json" 2>/dev/null)
                jq -e --arg id "$CID" --arg b "$B" '.id == $id and .bundle == $b and (.ociVersion | type == "string") and (.status | type == "string")' \
                        <<<"$s" >/dev/null 2>&1 || { WHY="$t hook stdin: '$s'"; return 1; }
                case $t in
                poststop)
                        expect "status passed to poststop" stopped "$(jq -r .status <<<"$s")" || return 1 ;;
                *)
                        jq -e '.pid | type == "number" and . > 0' <<<"$s" >/dev/null ||
                                { WHY="$t hook state has no pid: $s"; return 1; } ;;
                esac
        done
}

# config.md "POSIX-platform Hooks": prestart, createRuntime, poststart and
# poststop run in the runtime namespace; createContainer and startContainer
# in the container namespace (observed through the network namespace).
check_hooks_namespaces() {
        new_bundle
        hooks_cfg
        script 'true'
        run_c || return 1
        local t ns
        for t in prestart createRuntime createContainer startContainer poststart poststop; do
                ns=$(awk -F'\t' -v t="$t" '$1 == t {print $2}' "$B/hooks/log")
                [ -n "$ns" ] || { WHY="$t hook did not run"; return 1; }
                case $t in
                createContainer | startContainer)
                        [ "$ns" != "$HOST_NETNS" ] || { WHY="$t hook ran in the runtime's network namespace"; return 1; } ;;
                *)
                        [ "$ns" = "$HOST_NETNS" ] || { WHY="$t hook ran outside the runtime's network namespace ($ns)"; return 1; } ;;
                esac
        done
}

# config.md "POSIX-platform Hooks": args (argv, args[0] included) and env
# are passed as given.
check_hooks_args_env() {
        new_bundle
        cfg '.hooks = {createRuntime: [{path: $h, args: ["hook.sh", $d, "createRuntime", "arg one", "arg2"], env: ["HOOKVAR=hook value", "PATH=/usr/bin:/bin"]}]}' \
                --arg h "$HOOK" --arg d "$B/hooks"
        create || { WHY="create failed"; return 1; }
        expect "hook argv/env" "$(printf 'createRuntime\t%s\t%s\thook value' "$HOST_NETNS" "$B/hooks createRuntime arg one arg2")" "$(cat "$B/hooks/log" 2>/dev/null)"
}

# hook_fail_create TYPE: a failing hook of TYPE (run during create) makes
# create fail and leaves no container (runtime.md "Lifecycle" 3-5).
hook_fail_create() {
        new_bundle
        cfg '.hooks = {($t): [{path: $h, args: ["hook.sh", $d, $t], env: ["HOOK_EXIT=3", "PATH=/usr/bin:/bin"]}]}' \
                --arg t "$1" --arg h "$HOOK" --arg d "$B/hooks"
        share_mount
        script 'echo ran > /share/ran'
        if create && start; then WHY="create and start succeeded despite a failing $1 hook"; return 1; fi
        expect "hooks run" "$1 " "$(hook_types)" || return 1
        sleep 0.3
        [ ! -e "$B/share/ran" ] || { WHY="the user program ran despite a failing $1 hook"; return 1; }
        local s
        s=$(status)
        [ -z "$s" ] || [ "$s" = stopped ] || { WHY="container is '$s' after a failing $1 hook"; return 1; }
}
# runtime.md "Lifecycle" step 3: a failing prestart hook is an error.
check_hook_prestart_fail() { hook_fail_create prestart; }
# runtime.md "Lifecycle" step 4: a failing createRuntime hook is an error.
check_hook_createRuntime_fail() { hook_fail_create createRuntime; }
# runtime.md "Lifecycle" step 5: a failing createContainer hook is an error.
check_hook_createContainer_fail() { hook_fail_create createContainer; }

# runtime.md "Lifecycle" step 7: a failing startContainer hook makes start
# fail, the user program does not run and the container is stopped.
check_hook_startContainer_fail() {
        new_bundle
        share_mount
        cfg '.mounts += [{destination: "/hooks", type: "bind", source: $d, options: ["rbind", "rw"]}]
             | .hooks = {startContainer: [{path: "/bin/oci-hook", args: ["oci-hook", "startContainer"], env: ["HOOK_EXIT=3", "PATH=/bin"]}]}' \
                --arg d "$B/hooks"
        script 'echo ran > /share/ran'
        create || { WHY="create failed"; return 1; }
        if start; then WHY="start succeeded despite a failing startContainer hook"; return 1; fi
        expect "hooks run" "startContainer " "$(hook_types)" || return 1
        sleep 0.3
        [ ! -e "$B/share/ran" ] || { WHY="the user program ran despite a failing startContainer hook"; return 1; }
        local s
        s=$(status)
        [ -z "$s" ] || [ "$s" = stopped ] || { WHY="container is '$s' after a failing startContainer hook"; return 1; }
}

# runtime.md "Lifecycle" step 9: a failing poststart hook MUST generate an
# error and stop the container.
check_hook_poststart_fail() {
        new_bundle
        cfg '.hooks = {poststart: [{path: $h, args: ["hook.sh", $d, "poststart"], env: ["HOOK_EXIT=3", "PATH=/usr/bin:/bin"]}]}' \
                --arg h "$HOOK" --arg d "$B/hooks"
        cfg '.process.args = ["/bin/sleep", "30"]'
        create || { WHY="create failed"; return 1; }
        if start; then WHY="start succeeded despite a failing poststart hook"; return 1; fi
        local i s
        for ((i = 0; i < 40; i++)); do
                s=$(status)
                [ -z "$s" ] || [ "$s" = stopped ] && return 0
                sleep 0.05
        done
        WHY="container is '$s' after a failing poststart hook"
        return 1
}

# runtime.md "Lifecycle" step 13: a failing poststop hook only logs a
# warning: delete succeeds and the remaining poststop hooks run.
check_hook_poststop_fail_ignored() {
        new_bundle
        cfg '.hooks = {poststop: [{path: $h, args: ["hook.sh", $d, "poststop1"], env: ["HOOK_EXIT=3", "PATH=/usr/bin:/bin"]},
                                  {path: $h, args: ["hook.sh", $d, "poststop2"], env: ["PATH=/usr/bin:/bin"]}]}' \
                --arg h "$HOOK" --arg d "$B/hooks"
        run_c || return 1
        expect "poststop hooks run" "poststop1 poststop2 " "$(hook_types)" || return 1
        ! exists "$CID" || { WHY="container still exists after delete"; return 1; }
}

# config.md "POSIX-platform Hooks" timeout: a hook running longer than its
# timeout is aborted, which fails the operation.
check_hook_timeout() {
        need_baseline || return 1
        new_bundle
        cfg '.hooks = {createRuntime: [{path: $h, args: ["hook.sh", $d, "createRuntime"], env: ["HOOK_SLEEP=20", "PATH=/usr/bin:/bin"], timeout: 1}]}' \
                --arg h "$HOOK" --arg d "$B/hooks"
        local t0=$SECONDS
        if create; then WHY="create succeeded although the hook exceeded its timeout"; return 1; fi
        [ $((SECONDS - t0)) -lt 15 ] || { WHY="create took $((SECONDS - t0))s with a 1s hook timeout"; return 1; }
}

# runtime.md "Lifecycle" step 3 -> 12 -> 13: after a failing prestart hook
# the lifecycle continues at step 12, so the poststop hooks are invoked.
check_hook_fail_runs_poststop() {
        new_bundle
        cfg '.hooks = {prestart: [{path: $h, args: ["hook.sh", $d, "prestart"], env: ["HOOK_EXIT=3", "PATH=/usr/bin:/bin"]}],
                       poststop: [{path: $h, args: ["hook.sh", $d, "poststop"], env: ["PATH=/usr/bin:/bin"]}]}' \
                --arg h "$HOOK" --arg d "$B/hooks"
        if create; then WHY="create succeeded despite a failing prestart hook"; return 1; fi
        # some runtimes finish the failed create lazily on delete
        exists "$CID" && delete --force "$CID"
        expect "hooks run" "prestart poststop " "$(hook_types)"
}

# ================================================================ driver
PASS=0
FAIL=0
SKIPPED=0
echo "# runtime: $RT"
"$RT" --version 2>/dev/null | head -n1 | sed 's/^/# version: /'
probe_runtime
for name in "${CHECKS[@]}"; do
        if [ -n "$FILTER" ] && ! [[ $name =~ $FILTER ]]; then
                continue
        fi
        N=$((N + 1))
        WHY=""
        "check_$name" </dev/null
        rc=$?
        case $rc in
        0) echo "ok $N - $name"; PASS=$((PASS + 1)) ;;
        2) echo "ok $N - $name # SKIP $WHY"; SKIPPED=$((SKIPPED + 1)) ;;
        *)
                echo "not ok $N - $name"
                FAIL=$((FAIL + 1))
                printf '%s\n' "$WHY" | head -c 2000 | sed 's/^/#   /'
                ;;
        esac
        cleanup_check
done
echo "1..$N"
echo "# $PASS passed, $FAIL failed, $SKIPPED skipped"
