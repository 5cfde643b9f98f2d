#!/bin/bash
# What tests/integration/cri.sh and bench/pod.sh share: containerd's CRI
# plugin on a private containerd (root, state, sockets, runc root, netns,
# CNI config and IPAM state in a temp dir), a CNI bridge on a private
# subnet, locally built pause and busybox images (no registry here), and
# the kubelet's calls through tests/cri/cri_client.py. Source it after
# tests/lib.sh and tests/clients/lib.sh, from the repository's root.
# CRI_EXTRA_RUNTIMES: more [...runtimes.NAME] TOML for containerd's config.
# deadline of one CRI call (the client's gRPC deadline; timeout(1) adds 15 s)
CRI_TIMEOUT=${CRI_TIMEOUT:-60}
CRI_SUBNET=${CRI_SUBNET:-10.88.77.0/24}
# where containerd looks first for containerd-shim-<handler>-v2
CRI_SHIM_DIR=${CRI_SHIM_DIR:-$PWD/build}
PY=/usr/bin/python3
CLIENT=$PWD/tests/cri/cri_client.py

# cri_prereq: empty, or why this host cannot run the CRI plugin
cri_prereq() {
    local why=""
    if [ "$(id -u)" -ne 0 ]; then
        why="needs root"
    elif ! command -v containerd >/dev/null || ! command -v ctr >/dev/null; then
        why="containerd is not installed (scripts/install-deps.sh)"
    elif ! "$PY" -c 'import grpc, grpc_tools.protoc, google.protobuf' 2>/dev/null; then
        why="$PY lacks grpc or grpc_tools (apt-get install python3-grpcio python3-grpc-tools)"
    elif ! [ -x /usr/lib/cni/bridge ] || ! [ -x /usr/lib/cni/host-local ] || ! [ -x /usr/lib/cni/loopback ]; then
        why="CNI plugins missing in /usr/lib/cni (apt-get install containernetworking-plugins)"
    elif ! command -v gcc >/dev/null; then
        why="gcc is missing (it builds the pause binary)"
    elif ip route show | grep -q "^${CRI_SUBNET%/*}"; then
        why="$CRI_SUBNET is already routed here (set CRI_SUBNET)"
    fi
    echo "$why"
}

# cri_env_up: the lock, the temp dir D, containerd with CRI and CNI, the
# images (PAUSE, IMG), every cleanup registered. On failure it calls
# cri_env_fail MESSAGE (the caller's) and returns 1. Call it in the main
# shell: it sets the globals below and registers cleanups.
cri_env_up() {
    # One run at a time: the subnet and the bridge's address are per machine.
    mkdir -p /run/lock
    exec 8>/run/lock/moat-cri-test.lock
    if ! flock -w 600 8; then
        cri_env_fail "another user of CRI_SUBNET held /run/lock/moat-cri-test.lock for 10 minutes"
        return 1
    fi

    D=$(mktemp -d /tmp/moat-cri.XXXXXX)
    GEN=$D/gen
    NET=moat-cri-$$
    BR=mcri$$
    BR=${BR:0:15}
    CG=/moat-cri-$$
    KNS=moat-cri-test
    CTR_NS=moat-cri-ctr-$$
    T0=$(date +%s)
    HOST_BOOT=$(cat /proc/sys/kernel/random/boot_id)
    HOST_KREL=$(uname -r)
    mkdir -p "$D/logs" "$D/cni/net.d" "$D/cni/ipam" "$D/pods" "$D/img"

    # Cleanups run in reverse order: pods first, then containerd, then what CNI
    # and runc leave on the host. Ours run in subshells, so that a failing one
    # cannot end the trap before the others have run. The last resort for netns
    # and veths is stop_containerd's unmount of everything under DIR (a veth dies
    # with its netns).
    rm_cgroups() {
        local h
        for h in /sys/fs/cgroup/*/; do
            [ -d "$h${CG#/}" ] && find "$h${CG#/}" -depth -type d -exec rmdir {} + 2>/dev/null
        done
        return 0
    }
    rm_host_dirs() {
        rm -f /var/lib/cni/results/"$NET"-* 2>/dev/null
        local f
        for f in "${HOST_DIRS_NEW[@]}"; do rmdir "$f" 2>/dev/null; done
        return 0
    }
    # Directories of the host's containerd and CNI layout that the shims, ctr
    # and libcni create on first use: removed afterwards if they were not there
    # before and are empty again (others may use them meanwhile).
    HOST_DIRS_NEW=()
    for f in /var/lib/cni /var/lib/cni/results /run/containerd /run/containerd/s /run/containerd/fifo \
        /run/containerd/runc; do
        [ -e "$f" ] || HOST_DIRS_NEW=("$f" "${HOST_DIRS_NEW[@]}")
    done
    clients_on_exit "rm -rf '$D'"
    clients_on_exit "umount_under '$D'"
    clients_on_exit "(rm_cgroups)"
    clients_on_exit "(rm_host_dirs)"
    clients_on_exit "ip link del '$BR'"
    clients_on_exit "kill_under '$D'"


    # --- containerd with CRI, CNI, images ----------------------------------------------
    if ! "$PY" "$CLIENT" compile "$GEN" >"$D/logs/compile.log" 2>&1; then
        cri_env_fail "compile tests/cri/api.proto: $(tail -n 5 "$D/logs/compile.log")"
        return 1
    fi
    jq -n --arg n "$NET" --arg b "$BR" --arg s "$CRI_SUBNET" --arg d "$D/cni/ipam" '{
        cniVersion: "1.0.0", name: $n,
        plugins: [ { type: "bridge", bridge: $b, isGateway: true, ipMasq: false, hairpinMode: true,
                     ipam: { type: "host-local", ranges: [ [ { subnet: $s } ] ], dataDir: $d,
                             routes: [ { dst: "0.0.0.0/0" } ] } } ]
    }' >"$D/cni/net.d/10-$NET.conflist"

    PAUSE=docker.io/library/moat-pause:cri-test
    IMG=docker.io/library/$CLIENTS_IMAGE
    mkdir -p "$D/img/pause"
    if ! gcc -static -Os -Wall -Wextra -Werror -o "$D/img/pause/pause" tests/cri/pause.c 2>"$D/logs/pause-cc.log" ||
        ! clients_dir_image_archive "$D/img/pause" moat-pause:cri-test "$D/img/pause.tar" '["/pause"]'; then
        cri_env_fail "build the pause image: $(tail -n 5 "$D/logs/pause-cc.log")"
        return 1
    fi
    if ! archive=$(clients_image_archive); then
        cri_env_fail "build the busybox image archive"
        return 1
    fi

    DIAG_LOGS=("containerd=$D/c/containerd.log" "cri client=$D/logs/cri.log" "ctr=$D/logs/ctr.log")
    # (fd 8, the lock, is not for containerd and its shims to keep)
    if ! start_containerd_cri "$D/c" "$D/cni/net.d" "$PAUSE" "$CRI_SHIM_DIR" "${CRI_EXTRA_RUNTIMES:-}" 8>&-; then
        cri_env_fail "start a private containerd with the CRI plugin: $CLIENTS_WHY"
        return 1
    fi
    clients_on_exit "keep_logs cri '$D/logs' '$D/c/containerd.log' '$D/c/config.toml' '$D/cni/net.d' '$D/pods'"
    # pods go before containerd stops, so CNI DEL runs and the netns is released
    remove_all_pods() {
        local p
        for p in $(cri pods | jq -r '.items[].id'); do
            cri stopp "$p"
            cri rmp "$p"
        done
    }
    clients_on_exit "(remove_all_pods)"
    c() { tmo ctr --address "$CTRD_SOCK" "$@" 2>>"$D/logs/ctr.log"; }
    if ! c -n k8s.io image import "$D/img/pause.tar" >/dev/null || ! c -n k8s.io image import "$archive" >/dev/null; then
        cri_env_fail "import the images: $(tail -n 2 "$D/logs/ctr.log")"
        return 1
    fi
    return 0
}

# --- the CRI client -----------------------------------------------------------------
cri() {
    timeout -k 5 $((CRI_TIMEOUT + 15)) "$PY" "$CLIENT" --gen "$GEN" --socket "$CTRD_SOCK" \
        --timeout "$CRI_TIMEOUT" "$@" 2>>"$D/logs/cri.log"
}
# xc CID CMD...: ExecSync CMD in CID (timeout XTIMEOUT, default none); sets
# XOUT, XERR (stdout and stderr) and XRC (exit code; 125: the call failed)
XTIMEOUT=0
xc() {
    local cid=$1
    shift
    XOUT=$(timeout -k 5 $((CRI_TIMEOUT + XTIMEOUT + 15)) "$PY" "$CLIENT" --gen "$GEN" \
        --socket "$CTRD_SOCK" --timeout "$CRI_TIMEOUT" exec --timeout "$XTIMEOUT" "$cid" -- "$@" \
        2>"$D/x.err")
    XRC=$?
    XERR=$(cat "$D/x.err")
    [ -s "$D/x.err" ] && sed "s/^/exec $cid: /" "$D/x.err" >>"$D/logs/cri.log"
    return 0
}
# cri_code ARGS...: the gRPC status code name of a call that fails
cri_code() {
    timeout -k 5 $((CRI_TIMEOUT + 15)) "$PY" "$CLIENT" --gen "$GEN" --socket "$CTRD_SOCK" \
        --timeout "$CRI_TIMEOUT" "$@" 2>&1 >/dev/null | tee -a "$D/logs/cri.log" |
        sed -n 's/^cri: [A-Za-z]*: \([A-Z_]*\):.*/\1/p'
}
jqe() { jq -e "$@" >/dev/null; }
cstate() { cri status "$1" | jq -r .status.state; }
is_state() { [ "$(cstate "$1")" = "$2" ]; }
# pod_json NAME HOSTNAME: a PodSandboxConfig like the kubelet's, in $D/pods/NAME.json
# (CRI_PIDNS=POD: the pod shares one PID namespace, as shareProcessNamespace)
pod_json() {
    local name=$1 host=$2
    mkdir -p "$D/pods/$name/logs"
    jq -n --arg n "$name" --arg u "$(cat /proc/sys/kernel/random/uuid)" --arg h "$host" \
        --arg l "$D/pods/$name/logs" --arg cg "$CG/$name" --arg ns "$KNS" --arg pidns "${CRI_PIDNS:-CONTAINER}" '{
        metadata: { name: $n, uid: $u, namespace: $ns, attempt: 0 },
        hostname: $h, log_directory: $l,
        labels: { "io.kubernetes.pod.name": $n, "io.kubernetes.pod.namespace": $ns },
        annotations: { "io.moat.test/pod": $n },
        linux: { cgroup_parent: $cg,
                 security_context: { namespace_options: { network: "POD", pid: $pidns, ipc: "POD" } } }
    }' >"$D/pods/$name.json"
}
# ctr_json POD NAME VOLUME CMD...: a ContainerConfig in $D/pods/POD-NAME.json;
# VOLUME (a host dir, or "") is mounted at /shared
ctr_json() {
    local pod=$1 name=$2 vol=$3
    shift 3
    jq -n --arg n "$name" --arg img "$IMG" --arg vol "$vol" --arg pidns "${CRI_PIDNS:-CONTAINER}" '{
        metadata: { name: $n, attempt: 0 }, image: { image: $img },
        command: $ARGS.positional, working_dir: "/", log_path: ($n + "/0.log"),
        envs: [ { key: "MOAT_CONTAINER", value: $n } ],
        mounts: (if $vol == "" then [] else [ { container_path: "/shared", host_path: $vol } ] end),
        labels: { "io.kubernetes.container.name": $n },
        linux: { security_context: { namespace_options: { network: "POD", pid: $pidns, ipc: "POD" } } }
    }' --args -- "$@" >"$D/pods/$pod-$name.json"
}
# run_ctr POD_NAME POD_ID NAME VOLUME CMD...: CreateContainer + StartContainer;
# prints the container id
run_ctr() {
    local pname=$1 pid=$2 name=$3 vol=$4 cid
    shift 4
    ctr_json "$pname" "$name" "$vol" "$@"
    cid=$(cri create "$pid" "$D/pods/$pname-$name.json" "$D/pods/$pname.json") || return 1
    cri start "$cid" || return 1
    echo "$cid"
}
# record_pod NAME ID PORTS_BEFORE: remembers what pod NAME has on the host
# (IP, netns, sandbox pid, veth, shim socket) for the checks and the teardown
record_pod() {
    local name=$1 p=$2 ports0=$3 st info
    POD[$name]=$p
    st=$(cri pstatus --verbose "$p")
    POD_STATUS=$st
    POD_IP[$name]=$(jq -r .status.network.ip <<<"$st")
    info=$(jq -r '.info.info // "{}"' <<<"$st")
    POD_NETNS[$name]=$(jq -r '.runtimeSpec.linux.namespaces[] | select(.type == "network") | .path' <<<"$info")
    POD_PID[$name]=$(jq -r .pid <<<"$info")
    POD_VETH[$name]=$(comm -13 <(echo "$ports0" | sort) <(bridge_ports | sort) | tr '\n' ' ')
    POD_SOCK[$name]=$(sed -n 's|^unix://||p' "$D/c/state/io.containerd.runtime.v2.task/k8s.io/$p/address" 2>/dev/null)
}
bridge_ports() { ip -o link show master "$BR" 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'; }
ip4_int() {
    local IFS=. a b c d
    read -r a b c d <<<"$1"
    echo $(((a << 24) + (b << 16) + (c << 8) + d))
}
in_subnet() {
    local bits=${CRI_SUBNET#*/} ip
    [[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || return 1
    ip=$(ip4_int "$1")
    [ $((ip >> (32 - bits))) = $(($(ip4_int "${CRI_SUBNET%/*}") >> (32 - bits))) ]
}
# HTTP GET with nc, on the host (host_get) or in a container (xget CID):
# busybox-static's wget crashes here (SIGSEGV), its nc works.
# shellcheck disable=SC2016
GET_SH='printf "GET /%s HTTP/1.0\r\n\r\n" "$3" | nc -w 5 "$1" "$2" | tr -d "\r" | sed "1,/^\$/d"'
host_get() { timeout 10 sh -c "${GET_SH//nc /busybox nc }" get "$@" 2>/dev/null; }
xget() {
    local cid=$1
    shift
    xc "$cid" sh -c "$GET_SH" get "$@"
}
# kernel_model HANDLER: host (containers share the host's kernel), vm (each
# pod has its own kernel) or unknown (recorded, not asserted)
kernel_model() {
    case $1 in
    runc | crun) echo host ;;
    moat) echo vm ;;
    *) echo unknown ;;
    esac
}

