#!/bin/bash
# Kubernetes' view of a runtime: containerd's CRI plugin driven the way the
# kubelet drives it (tests/cri/cri_client.py: RunPodSandbox with a runtime
# handler, CreateContainer, StartContainer, ExecSync, ContainerStatus,
# StopContainer, StopPodSandbox, RemovePodSandbox, the list calls, the CRI
# log files), once per runtime handler in CRI_HANDLERS (default "runc moat").
# "runc" (io.containerd.runc.v2) is the reference that proves the test;
# "moat" (io.containerd.moat.v2) is containerd-shim-moat-v2, one microVM per
# pod. A handler whose shim binary is missing gets one skip line per check
# group. A private containerd (root, state, sockets, runc root, netns, CNI
# config and IPAM state in a temp dir), a CNI bridge on a private subnet,
# and locally built pause and busybox images (no registry here).
#   bash tests/integration/cri.sh                       # runc and moat
#   CRI_HANDLERS=runc bash tests/integration/cri.sh
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh
source tests/clients/lib.sh

CRI_HANDLERS=${CRI_HANDLERS:-"runc moat"}
source tests/cri/lib.sh

GROUPS_=("pod: one kernel, 127.0.0.1, shared volume, pod IP"
    "exec, exit codes, stop, logs, lists and stats"
    "two pods"
    "teardown: nothing left"
    "faults: shim killed, VMM killed, containerd restarted"
    "shared PID namespace"
    "pod create/remove cycles"
    "ctr run")

# --- prerequisites --------------------------------------------------------------
why=$(cri_prereq)
if [ -n "$why" ]; then
    skip "cri" "$why"
    exit 0
fi

cri_env_fail() {
    not_ok "cri: $1"
    diag_since
    exit 1
}
cri_env_up

ok "cri: start a private containerd with the CRI plugin"
diag_mark

ver=$(cri version)
expect "cri: Version answers runtime.v1 (containerd)" "containerd v1" \
    "$(echo "$ver" | jq -r '.runtime_name + " " + .runtime_api_version')"

imgs=$(cri images | jq -r '.images[].repo_tags[]' | sort | tr '\n' ' ')
expect "cri: ListImages shows the imported pause and busybox images" "$IMG $PAUSE " "$imgs"
expect "cri: ImageStatus finds the busybox image" "$IMG" "$(cri image-status "$IMG" | jq -r '.image.repo_tags[0]')"
if [ "$imgs" != "$IMG $PAUSE " ]; then
    exit 1
fi

# --- the checks, per handler -----------------------------------------------------------

# group_pod H: pod "a" with two containers sharing a volume
group_pod() {
    local h=$1 p ip ports0 shim
    local a=$h-a
    pod_json "$a" "$h-pod-a"
    mkdir -p "$D/vol-$a"
    ports0=$(bridge_ports)
    if ! p=$(cri runp "$D/pods/$a.json" --handler "$h"); then
        fail_with_logs "$h: RunPodSandbox with runtime_handler $h"
        return 1
    fi
    ok "$h: RunPodSandbox with runtime_handler $h"
    diag_mark
    record_pod "$a" "$p" "$ports0"
    expect "$h: PodSandboxStatus: SANDBOX_READY, handler $h" "SANDBOX_READY $h" \
        "$(jq -r '.status.state + " " + .status.runtime_handler' <<<"$POD_STATUS")"
    ip=${POD_IP[$a]}
    pass_if "$h: the pod has an IP in $CRI_SUBNET ($ip)" in_subnet "$ip"
    diag "pod $a: id ${p:0:12} ip $ip netns ${POD_NETNS[$a]} pid ${POD_PID[$a]}"
    pass_if "$h: the pod's veth is on bridge $BR (${POD_VETH[$a]% })" test -n "${POD_VETH[$a]}"
    pass_if "$h: the pod's network namespace is under containerd's state dir" \
        test -e "${POD_NETNS[$a]}" -a "${POD_NETNS[$a]#$D/c/state/io.containerd.grpc.v1.cri/netns/}" != "${POD_NETNS[$a]}"
    pass_if "$h: the shim's socket (from the bundle's address file) exists" test -S "${POD_SOCK[$a]}"
    shim=$(pgrep -f -- "containerd-shim-$h-v2 .*-id $p" | tr '\n' ' ')
    pass_if "$h: the pod runs under containerd-shim-$h-v2 (pid ${shim% })" test -n "$shim"

    # c1 serves HTTP on 8080 and exits 0 on SIGTERM; c2 ignores SIGTERM
    local c1 c2
    c1=$(run_ctr "$a" "$p" c1 "$D/vol-$a" sh -c \
        'mkdir -p /tmp/www && echo hello-from-c1 >/tmp/www/index.html && httpd -p 8080 -h /tmp/www &&
         echo c1 started; trap "echo c1 got TERM; exit 0" TERM; sleep 3600 & wait')
    c2=$(run_ctr "$a" "$p" c2 "$D/vol-$a" sh -c 'echo c2 started; trap "" TERM; while :; do sleep 1; done')
    CIDS[$a]="$c1 $c2"
    C1=$c1 C2=$c2
    if [ -z "$c1" ] || [ -z "$c2" ]; then
        fail_with_logs "$h: CreateContainer + StartContainer of two containers in the pod"
        return 1
    fi
    ok "$h: CreateContainer + StartContainer of two containers in the pod"
    diag_mark
    expect "$h: ContainerStatus: both CONTAINER_RUNNING" "CONTAINER_RUNNING CONTAINER_RUNNING" \
        "$(cstate "$c1") $(cstate "$c2")"
    local cgs
    cgs=$(find "/sys/fs/cgroup/memory/${CG#/}/$a" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l)
    pass_if "$h: the pod's cgroups are under its cgroup_parent $CG/$a (memory: $cgs)" test "$cgs" -ge 1
    local shimcg
    shimcg=$(for s in $(pgrep -f -- "containerd-shim-$h-v2 .*-id $p"); do
        awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3 }' "/proc/$s/cgroup"
    done | sort -u | tr '\n' ' ')
    if [ "$(kernel_model "$h")" = vm ]; then
        pass_if "$h: the pod's shim runs under its cgroup_parent ($shimcg)" grep -qw -- "${CG}/$a/moat-shim-$p" <<<"$shimcg"
    else
        diag "$h: the shim's memory cgroup: $shimcg"
    fi

    # one kernel
    local b1 b2 k1 k2
    xc "$c1" cat /proc/sys/kernel/random/boot_id
    b1=$XOUT
    xc "$c2" cat /proc/sys/kernel/random/boot_id
    b2=$XOUT
    pass_if "$h: both containers read a boot_id" test -n "$b1" -a -n "$b2"
    expect "$h: both containers of the pod share one kernel (boot_id)" "$b1" "$b2"
    xc "$c1" uname -r
    k1=$XOUT
    xc "$c2" uname -r
    k2=$XOUT
    expect "$h: both containers of the pod share one kernel (uname -r)" "$k1" "$k2"
    POD_BOOT[$a]=$b1
    diag "$h: pod kernel $k1, boot_id $b1 (host: $HOST_KREL, $HOST_BOOT)"
    case $(kernel_model "$h") in
    host)
        expect "$h: the pod's kernel is the host's (boot_id)" "$HOST_BOOT" "$b1"
        expect "$h: the pod's kernel is the host's (uname -r)" "$HOST_KREL" "$k1"
        ;;
    vm)
        pass_if "$h: the pod's kernel is not the host's (boot_id differs)" test -n "$b1" -a "$b1" != "$HOST_BOOT"
        ;;
    esac
    xc "$c2" hostname
    expect "$h: the pod's hostname is the one in PodSandboxConfig" "$h-pod-a" "$XOUT"

    # 127.0.0.1 between the containers; lo is up (the CRI plugin's own loopback network)
    xc "$c2" ip -o -4 addr show lo
    pass_if "$h: lo is up with 127.0.0.1 in the pod" grep -q 'inet 127.0.0.1/8' <<<"$XOUT"
    get_local() {
        xget "$C2" 127.0.0.1 8080 index.html
        [ "$XOUT" = hello-from-c1 ]
    }
    pass_if "$h: c2 reaches c1's httpd on 127.0.0.1:8080" wait_for 20 get_local

    # the shared volume, both ways, and the host's view of it
    xc "$c1" sh -c 'echo written-by-c1 >/shared/from-c1'
    xc "$c2" cat /shared/from-c1
    expect "$h: shared volume: c2 reads what c1 wrote" written-by-c1 "$XOUT"
    xc "$c2" sh -c 'echo written-by-c2 >/shared/from-c2'
    xc "$c1" cat /shared/from-c2
    expect "$h: shared volume: c1 reads what c2 wrote" written-by-c2 "$XOUT"
    expect "$h: shared volume: the host dir holds both files" "written-by-c1 written-by-c2" \
        "$(cat "$D/vol-$a/from-c1" "$D/vol-$a/from-c2" 2>&1 | tr '\n' ' ' | sed 's/ $//')"

    # the pod IP, from inside and from the host through the bridge
    xc "$c2" ip -o -4 addr show eth0
    pass_if "$h: eth0 in the pod has the pod IP $ip" grep -q "inet $ip/" <<<"$XOUT"
    xget "$c2" "$ip" 8080 index.html
    expect "$h: c2 reaches c1 on the pod IP $ip:8080" hello-from-c1 "$XOUT"
    pass_if "$h: the host routes the pod IP through bridge $BR" grep -q "dev $BR" <<<"$(ip route get "$ip")"
    expect "$h: the host reaches the pod IP $ip:8080 through the bridge" hello-from-c1 \
        "$(host_get "$ip" 8080 index.html)"
    return 0
}

# group_exec H: ExecSync, exits, stop, CRI logs, the list calls (pod "a")
group_exec() {
    local h=$1 p t0 t1 st st5 lp out left cg code
    local a=$h-a
    p=${POD[$a]:-}
    if [ -z "$p" ] || [ -z "${C1:-}" ]; then
        not_ok "$h: exec group: pod $a did not start (see above)"
        return 1
    fi
    xc "$C1" sh -c 'echo to-out; echo to-err >&2; exit 3'
    expect "$h: ExecSync: stdout" to-out "$XOUT"
    expect "$h: ExecSync: stderr" to-err "$XERR"
    expect "$h: ExecSync: exit code 3" 3 "$XRC"
    xc "$C1" true
    expect "$h: ExecSync: exit code 0, no output" "0::" "$XRC:$XOUT:$XERR"
    xc "$C1" sh -c 'head -c 300000 /dev/zero | tr "\0" x'
    expect "$h: ExecSync: 300000 bytes of stdout arrive whole" 300000 "${#XOUT}"
    XTIMEOUT=2
    t0=$(date +%s.%N)
    xc "$C1" sleep 30
    t1=$(date +%s.%N)
    XTIMEOUT=0
    expect "$h: ExecSync with timeout 2 s fails with DEADLINE_EXCEEDED" DEADLINE_EXCEEDED \
        "$(sed -n 's/^cri: ExecSync: \([A-Z_]*\):.*/\1/p' <<<"$XERR")"
    pass_if "$h: ExecSync with timeout 2 s returns within 2-12 s ($(printf %.1f "$(echo "$t1 - $t0" | bc)") s)" \
        test "$(echo "$t1 - $t0 >= 2 && $t1 - $t0 < 12" | bc)" = 1
    xc "$C1" ps -o pid,args
    pass_if "$h: the timed-out exec process was killed" test "$XRC" = 0 -a -n "$XOUT" -a \
        "$(grep -c 'sleep 30' <<<"$XOUT")" = 0

    # containers that exit: 3 with output, 0, and one that cannot start
    local c3 c4 c5
    c3=$(run_ctr "$a" "$p" c3 "" sh -c \
        'echo line-one; echo to-stderr >&2; echo line-two; printf "%20000s\n" "" | tr " " y; printf no-newline; exit 3')
    c4=$(run_ctr "$a" "$p" c4 "" true)
    # a missing executable: StartContainer fails, the container is EXITED
    ctr_json "$a" c5 "" /does-not-exist
    c5=$(cri create "$p" "$D/pods/$a-c5.json" "$D/pods/$a.json")
    CIDS[$a]="${CIDS[$a]} $c3 $c4 $c5"
    code=$(cri_code start "$c5")
    pass_if "$h: StartContainer of a missing executable fails (${code:-no error})" test -n "$code"
    exited_all() { is_state "$c3" CONTAINER_EXITED && is_state "$c4" CONTAINER_EXITED && is_state "$c5" CONTAINER_EXITED; }
    pass_if "$h: three short-lived containers reach CONTAINER_EXITED" wait_until 30 exited_all
    st=$(cri status "$c3")
    expect "$h: ContainerStatus: exit 3, reason Error" "3 Error" "$(echo "$st" | jq -r '"\(.status.exit_code) \(.status.reason)"')"
    # (not started_at <= finished_at: containerd 1.6 may record the exit of a
    # quick container before StartContainer records its start)
    if jqe '.status | (.started_at | tonumber) > 0 and (.created_at | tonumber) > 0 and
        (.created_at | tonumber) <= (.finished_at | tonumber)' <<<"$st"; then
        ok "$h: ContainerStatus: created_at, started_at, finished_at set, created <= finished"
    else
        fail_with_logs "$h: ContainerStatus: created_at, started_at, finished_at set, created <= finished"
        diag "status: $(jq -c '.status | del(.mounts)' <<<"$st")"
    fi
    expect "$h: ContainerStatus: exit 0, reason Completed" "0 Completed" \
        "$(cri status "$c4" | jq -r '"\(.status.exit_code) \(.status.reason)"')"
    st5=$(cri status "$c5")
    expect "$h: ContainerStatus of the failed start: exit 128, reason StartError" "128 StartError" \
        "$(jq -r '"\(.status.exit_code) \(.status.reason)"' <<<"$st5")"
    pass_if "$h: ContainerStatus of the failed start: the message names the executable" \
        grep -q does-not-exist <<<"$(jq -r .status.message <<<"$st5")"
    expect "$h: a container exiting does not stop the pod (SANDBOX_READY, c1 and c2 running)" \
        "SANDBOX_READY CONTAINER_RUNNING CONTAINER_RUNNING" \
        "$(cri pstatus "$p" | jq -r .status.state) $(cstate "$C1") $(cstate "$C2")"
    xc "$C2" echo still-here
    expect "$h: ExecSync still works in the pod after the exits" still-here "$XOUT"

    # RemoveContainer, as the kubelet does for dead containers
    cri rm "$c4"
    expect "$h: RemoveContainer c4: ContainerStatus answers NOT_FOUND" NOT_FOUND "$(cri_code status "$c4")"
    left=""
    [ -e "$D/c/state/io.containerd.runtime.v2.task/k8s.io/$c4" ] && left="$left bundle"
    grep -q -- "$c4" /proc/mounts && left="$left mount"
    for cg in /sys/fs/cgroup/*/"${CG#/}/$a/$c4"; do [ -d "$cg" ] && left="$left cgroup:$cg"; done
    expect "$h: RemoveContainer c4: no bundle, mount or cgroup left" "" "${left# }"

    # CRI log files
    lp=$D/pods/$a/logs/c3/0.log
    expect "$h: ContainerStatus: log_path is LOG_DIRECTORY/c3/0.log" "$lp" "$(echo "$st" | jq -r .status.log_path)"
    out=$("$PY" "$CLIENT" logs "$lp" 2>&1)
    expect "$h: CRI log: every line is '<RFC3339Nano> stdout|stderr F|P <msg>'" "[]" "$(jq -c .bad <<<"$out" 2>&1)"
    expect "$h: CRI log: stdout lines in order" "line-one line-two y20000" \
        "$(jq -r '.lines.stdout | map(if test("^y+$") then "y\(length)" else . end) | join(" ")' <<<"$out")"
    expect "$h: CRI log: the stderr line" "to-stderr" "$(jq -r '.lines.stderr | join(" ")' <<<"$out")"
    expect "$h: CRI log: the 20000-byte line is split into P + F entries" "P F" \
        "$(jq -r '[.entries[] | select(.msg | test("^y+$")) | .tag] | join(" ")' <<<"$out")"
    expect "$h: CRI log: output without a final newline ends in a P entry" "no-newline" \
        "$(jq -r '.tail.stdout' <<<"$out")"
    pass_if "$h: CRI log: timestamps are of this run" \
        jqe --argjson t0 "$T0" --argjson now "$(date +%s)" \
        '.entries | length > 0 and all(.epoch >= $t0 - 5 and .epoch <= $now + 5)' <<<"$out"
    out=$("$PY" "$CLIENT" logs "$D/pods/$a/logs/c1/0.log" 2>&1)
    expect "$h: CRI log of c1: 'c1 started'" "c1 started" "$(jq -r '.lines.stdout | join(" ")' <<<"$out")"

    # the list calls
    expect "$h: ListPodSandbox: the pod, READY, handler $h" "SANDBOX_READY $h $a" \
        "$(cri pods | jq -r --arg p "$p" '.items[] | select(.id == $p) | "\(.state) \(.runtime_handler) \(.metadata.name)"')"
    expect "$h: ListContainers (pod filter): the four containers left" "c1 c2 c3 c5" \
        "$(cri ps --pod "$p" | jq -r '[.containers[].metadata.name] | sort | join(" ")')"
    out=$(cri stats --pod "$p")
    if jqe --arg c1 "$C1" --arg c2 "$C2" '[.stats[] | select(.attributes.id == $c1 or .attributes.id == $c2)
        | select((.memory.working_set_bytes.value | tonumber) > 0 and (.cpu.timestamp | tonumber) > 0)]
        | length == 2' <<<"$out"; then
        ok "$h: ListContainerStats: memory and CPU for the running c1 and c2"
    else
        fail_with_logs "$h: ListContainerStats: memory and CPU for the running c1 and c2"
        diag "stats: $(jq -c . <<<"$out" | cut -c1-600)"
    fi

    # StopContainer: c1 exits 0 on SIGTERM; c2 ignores it and is killed after the grace period
    t0=$(date +%s.%N)
    cri stop --grace 10 "$C1"
    t1=$(date +%s.%N)
    expect "$h: StopContainer: c1 handled SIGTERM (exit 0, reason Completed)" "CONTAINER_EXITED 0 Completed" \
        "$(cri status "$C1" | jq -r '"\(.status.state) \(.status.exit_code) \(.status.reason)"')"
    pass_if "$h: StopContainer: c1 stopped before its grace period ran out" \
        test "$(echo "$t1 - $t0 < 8" | bc)" = 1
    wait_for 5 grep -q 'c1 got TERM' "$D/pods/$a/logs/c1/0.log"
    pass_if "$h: CRI log of c1: 'c1 got TERM'" grep -q ' stdout F c1 got TERM$' "$D/pods/$a/logs/c1/0.log"
    t0=$(date +%s.%N)
    cri stop --grace 2 "$C2"
    t1=$(date +%s.%N)
    expect "$h: StopContainer: c2 ignored SIGTERM and was killed (137)" "CONTAINER_EXITED 137" \
        "$(cri status "$C2" | jq -r '"\(.status.state) \(.status.exit_code)"')"
    pass_if "$h: StopContainer: c2's SIGKILL came after the 2 s grace period" \
        test "$(echo "$t1 - $t0 >= 2 && $t1 - $t0 < 15" | bc)" = 1
    expect "$h: the pod is still SANDBOX_READY with every container stopped" SANDBOX_READY \
        "$(cri pstatus "$p" | jq -r .status.state)"
    return 0
}

# group_two_pods H: pods "b" and "c": two kernels (moat) or one (runc), and
# pod-to-pod traffic over the bridge
group_two_pods() {
    local h=$1 n p cid ipb bb bc ports0
    for n in b c; do
        pod_json "$h-$n" "$h-pod-$n"
        ports0=$(bridge_ports)
        if ! p=$(cri runp "$D/pods/$h-$n.json" --handler "$h"); then
            fail_with_logs "$h: two pods: RunPodSandbox $h-$n"
            return 1
        fi
        record_pod "$h-$n" "$p" "$ports0"
        if ! cid=$(run_ctr "$h-$n" "$p" srv "" sh -c \
            'mkdir -p /tmp/www && cat /proc/sys/kernel/random/boot_id >/tmp/www/boot_id &&
             httpd -p 8080 -h /tmp/www && trap "exit 0" TERM; sleep 3600 & wait'); then
            fail_with_logs "$h: two pods: a container in pod $h-$n"
            return 1
        fi
        CIDS[$h-$n]=$cid
        xc "$cid" cat /proc/sys/kernel/random/boot_id
        POD_BOOT[$h-$n]=$XOUT
    done
    ok "$h: two pods each run a container"
    diag_mark
    bb=${POD_BOOT[$h-b]} bc=${POD_BOOT[$h-c]}
    diag "$h: boot_id pod b $bb, pod c $bc, pod a ${POD_BOOT[$h-a]:-?}, host $HOST_BOOT"
    case $(kernel_model "$h") in
    host)
        pass_if "$h: two pods share the host kernel (same boot_id as the host)" \
            test -n "$bb" -a "$bb" = "$bc" -a "$bb" = "$HOST_BOOT"
        ;;
    vm)
        pass_if "$h: two pods are two kernels (boot_id differs, and from the host's)" \
            test -n "$bb" -a -n "$bc" -a "$bb" != "$bc" -a "$bb" != "$HOST_BOOT" -a "$bc" != "$HOST_BOOT"
        ;;
    *) diag "$h: kernel model unknown, boot_ids recorded only" ;;
    esac
    ipb=${POD_IP[$h-b]}
    two_ips() { in_subnet "$ipb" && in_subnet "${POD_IP[$h-c]}" && [ "$ipb" != "${POD_IP[$h-c]}" ]; }
    pass_if "$h: the two pods have different IPs in $CRI_SUBNET ($ipb, ${POD_IP[$h-c]})" two_ips
    xget "${CIDS[$h-c]}" "$ipb" 8080 boot_id
    expect "$h: pod c reaches pod b's IP over the bridge" "$bb" "$XOUT"
    return 0
}

# pod_left H N ID: what is left on the host of pod H-N (id ID) and its
# containers (CIDS[H-N]) once it was removed, as " kind:what" words
pod_left() {
    local h=$1 n=$2 p=$3 id left cg cgs
    left=""
    cri pods | jq -e --arg p "$p" 'any(.items[]; .id == $p)' >/dev/null && left="$left ListPodSandbox"
    [ "$(cri ps --pod "$p" | jq '.containers | length')" = 0 ] || left="$left ListContainers"
    if pgrep -f -- "containerd-shim-$h-v2 .*-id $p" >/dev/null; then
        left="$left shim:$(pgrep -f -- "containerd-shim-$h-v2 .*-id $p" | tr '\n' , | sed 's/,$//')"
    fi
    [ -n "${POD_PID[$h-$n]:-}" ] && [ "${POD_PID[$h-$n]}" != null ] &&
        kill -0 "${POD_PID[$h-$n]}" 2>/dev/null && left="$left sandbox-pid:${POD_PID[$h-$n]}"
    for id in $p ${CIDS[$h-$n]:-}; do
        grep -q -- "$id" /proc/mounts && left="$left mount:${id:0:12}"
        [ -e "$D/c/state/io.containerd.runtime.v2.task/k8s.io/$id" ] && left="$left bundle:${id:0:12}"
        compgen -G "/var/lib/cni/results/*$id*" >/dev/null && left="$left cni-cache:${id:0:12}"
    done
    [ -n "${POD_SOCK[$h-$n]:-}" ] && [ -e "${POD_SOCK[$h-$n]}" ] && left="$left shim-socket:${POD_SOCK[$h-$n]}"
    [ -n "${POD_NETNS[$h-$n]:-}" ] && [ -e "${POD_NETNS[$h-$n]}" ] && left="$left netns:${POD_NETNS[$h-$n]}"
    grep -q " ${POD_NETNS[$h-$n]:-/nonexistent} " /proc/mounts && left="$left netns-mount"
    for id in ${POD_VETH[$h-$n]:-}; do
        ip link show "$id" >/dev/null 2>&1 && left="$left veth:$id"
    done
    [ -e "$D/cni/ipam/$NET/${POD_IP[$h-$n]:-none}" ] && left="$left ipam:${POD_IP[$h-$n]}"
    # any process naming the pod or a container (a VMM, moat-vsock, a
    # stand-in, a shim) and moat's state of them
    for id in $p ${CIDS[$h-$n]:-}; do
        pgrep -f -- "$id" >/dev/null && left="$left process:${id:0:12}($(for q in $(pgrep -f -- "$id"); do
            printf '%s[%s] ' "$q" "$(tr '\0' ' ' <"/proc/$q/cmdline" 2>/dev/null | sed "s/$p/POD/g; s/$id/ID/g" | cut -c1-90)"
        done))"
        [ -e "/run/moat-shim/k8s.io/$id" ] && left="$left moat-state:${id:0:12}"
    done
    cgs=""
    for cg in /sys/fs/cgroup/*/"${CG#/}/$h-$n"; do
        [ -d "$cg" ] && [ -n "$(find "$cg" -mindepth 1 -type d)" ] && cgs="$cgs,${cg#/sys/fs/cgroup/}"
    done
    [ -n "$cgs" ] && left="$left cgroups-under:${cgs#,}($(find /sys/fs/cgroup/*/"${CG#/}/$h-$n" -mindepth 1 -type d -printf '%f\n' | sort -u | cut -c1-12 | tr '\n' ' ' | sed 's/ $//'))"
    echo "$left"
}

# new_pod H N: RunPodSandbox of pod H-N, recorded; prints nothing, sets P
new_pod() {
    local h=$1 n=$2 ports0
    pod_json "$h-$n" "$h-pod-$n"
    ports0=$(bridge_ports)
    P=$(cri runp "$D/pods/$h-$n.json" --handler "$h") || return 1
    record_pod "$h-$n" "$P" "$ports0"
}
# rm_pod H N [WAIT]: StopPodSandbox + RemovePodSandbox of pod H-N; prints
# what is left (after up to WAIT seconds for it to go: after a fault,
# containerd cleans up behind a dead shim while the CRI calls return)
rm_pod() {
    local h=$1 n=$2 p=${POD[$1-$2]} wait=${3:-0} left i
    cri stopp "$p" && cri rmp "$p" || echo "RemovePodSandbox-failed"
    for ((i = 0; ; i++)); do
        left=$(pod_left "$h" "$n" "$p")
        [ -z "${left# }" ] || [ "$i" -ge "$((wait * 2))" ] && break
        sleep 0.5
    done
    echo "$left"
}
SLEEPER='trap "exit 0" TERM; sleep 3600 & wait'

# group_faults H: the shim killed mid-pod, the VMM killed (VM handlers),
# containerd restarted under a running pod
group_faults() {
    local h=$1 n c1 c2 shim vmm left st
    # the shim killed with SIGKILL: containerd runs its delete for each
    # task, the pod's containers exit, the pod can be removed, nothing left
    n=f1
    if ! new_pod "$h" $n || ! c1=$(run_ctr "$h-$n" "$P" app1 "" sh -c "$SLEEPER") ||
        ! c2=$(run_ctr "$h-$n" "$P" app2 "" sh -c "$SLEEPER"); then
        fail_with_logs "$h: shim killed: a pod with two containers"
    else
        CIDS[$h-$n]="$c1 $c2"
        shim=$(pgrep -f -- "containerd-shim-$h-v2 .*-id $P" | tr '\n' ' ')
        diag "$h: killing shim $shim of pod $h-$n"
        [ -n "$shim" ] && kill -KILL $shim
        both_exited() { is_state "$c1" CONTAINER_EXITED && is_state "$c2" CONTAINER_EXITED; }
        pass_if "$h: shim killed mid-pod: both containers report CONTAINER_EXITED" wait_until 60 both_exited
        left=$(rm_pod "$h" $n 30)
        if [ "$h" = runc ] && [[ $left == *" shim-socket:"* ]]; then
            # containerd 1.6's runc shim leaves its socket when it is
            # killed (its delete does not remove it); moat's removes it
            diag "runc: the killed shim's socket is left (containerd 1.6's runc shim); removed"
            rm -f "${POD_SOCK[$h-$n]}"
            left=${left/ shim-socket:${POD_SOCK[$h-$n]}/}
        fi
        expect "$h: shim killed mid-pod: the pod is removed and nothing is left" "" "${left# }"
    fi
    # the VMM killed: the pod's containers report exited, nothing leaks
    n=f2
    if [ "$(kernel_model "$h")" != vm ]; then
        skip "$h: VMM killed" "$h runs no VMM"
    elif ! new_pod "$h" $n || ! c1=$(run_ctr "$h-$n" "$P" app1 "" sh -c "$SLEEPER"); then
        fail_with_logs "$h: VMM killed: a pod with a container"
    else
        CIDS[$h-$n]=$c1
        vmm=$(jq -r '.vmmPid // empty' "/run/moat-shim/k8s.io/$P/state.json" 2>/dev/null)
        diag "$h: killing VMM $vmm of pod $h-$n"
        [ -n "$vmm" ] && kill -KILL "$vmm"
        pass_if "$h: VMM killed: the pod's container reports CONTAINER_EXITED" wait_until 60 is_state "$c1" CONTAINER_EXITED
        notready() { [ "$(cri pstatus "$P" | jq -r .status.state)" = SANDBOX_NOTREADY ]; }
        pass_if "$h: VMM killed: the pod is SANDBOX_NOTREADY" wait_until 60 notready
        left=$(rm_pod "$h" $n 30)
        expect "$h: VMM killed: the pod is removed and nothing is left" "" "${left# }"
    fi
    # containerd restarted while a pod runs: it reconnects to the shim
    # through the address file, and the pod keeps working
    n=f3
    if ! new_pod "$h" $n || ! c1=$(run_ctr "$h-$n" "$P" app1 "" sh -c "$SLEEPER"); then
        fail_with_logs "$h: containerd restarted: a pod with a container"
    else
        CIDS[$h-$n]=$c1
        kill -TERM "$CTRD_PID"
        wait_until 30 sh -c "! kill -0 $CTRD_PID 2>/dev/null"
        if ! run_containerd "$D/c" "$CRI_SHIM_DIR" 8>&-; then
            fail_with_logs "$h: containerd restarted: it answers again"
            return 1
        fi
        st=$(cri pstatus "$P" | jq -r .status.state)
        expect "$h: containerd restarted: the pod is still SANDBOX_READY, its container running" \
            "SANDBOX_READY CONTAINER_RUNNING" "$st $(cstate "$c1")"
        xc "$c1" echo still-here
        expect "$h: containerd restarted: ExecSync in the pod's container" "still-here 0" "$XOUT $XRC"
        if c2=$(run_ctr "$h-$n" "$P" app2 "" sh -c "$SLEEPER"); then
            CIDS[$h-$n]="$c1 $c2"
            xc "$c2" cat /proc/sys/kernel/random/boot_id
            st=$XOUT
            xc "$c1" cat /proc/sys/kernel/random/boot_id
            pass_if "$h: containerd restarted: a new container joins the running pod (same kernel)" \
                test -n "$st" -a "$st" = "$XOUT"
        else
            fail_with_logs "$h: containerd restarted: a new container joins the running pod (same kernel)"
        fi
        left=$(rm_pod "$h" $n)
        expect "$h: containerd restarted: the pod is removed and nothing is left" "" "${left# }"
    fi
}

# group_pidns H: a pod that shares its PID namespace (shareProcessNamespace):
# each container sees the other's processes and the pause process
group_pidns() {
    local h=$1 n=s1 c1 c2 left
    if ! CRI_PIDNS=POD new_pod "$h" $n ||
        ! c1=$(CRI_PIDNS=POD run_ctr "$h-$n" "$P" app1 "" sh -c 'trap "exit 0" TERM; sleep 3601 & wait') ||
        ! c2=$(CRI_PIDNS=POD run_ctr "$h-$n" "$P" app2 "" sh -c "$SLEEPER"); then
        fail_with_logs "$h: shared PID namespace: a pod with two containers"
        return 1
    fi
    CIDS[$h-$n]="$c1 $c2"
    xc "$c2" sh -c 'for f in /proc/[0-9]*/cmdline; do tr "\0" " " <"$f"; echo; done'
    pass_if "$h: shared PID namespace: app2 sees app1's process" grep -q '^sleep 3601' <<<"$XOUT"
    pass_if "$h: shared PID namespace: app2 sees the pause process" grep -q '^/pause' <<<"$XOUT"
    left=$(rm_pod "$h" $n)
    expect "$h: shared PID namespace: the pod is removed and nothing is left" "" "${left# }"
}

# group_cycles H: CRI_POD_CYCLES pods, each with two containers (one that
# runs on, one that exits), created, stopped and removed in turn
CRI_POD_CYCLES=${CRI_POD_CYCLES:-20}
group_cycles() {
    local h=$1 i c1 c2 left leaks="" failed=0 t0=$SECONDS
    for i in $(seq 1 "$CRI_POD_CYCLES"); do
        if ! new_pod "$h" "y$i" || ! c1=$(run_ctr "$h-y$i" "$P" app1 "" sh -c "$SLEEPER") ||
            ! c2=$(run_ctr "$h-y$i" "$P" app2 "" true); then
            failed=$((failed + 1))
            diag "$h: cycle $i failed: $(tail -n 2 "$D/logs/cri.log" | tr '\n' ' ' | cut -c1-300)"
        fi
        CIDS[$h-y$i]="${c1:-} ${c2:-}"
        left=$(rm_pod "$h" "y$i")
        [ -n "${left# }" ] && leaks="$leaks [$i:${left# }]"
        c1="" c2=""
    done
    diag "$h: $CRI_POD_CYCLES pod cycles in $((SECONDS - t0)) s"
    expect "$h: $CRI_POD_CYCLES pod create/remove cycles (two containers each) all ran" 0 "$failed"
    expect "$h: $CRI_POD_CYCLES pod create/remove cycles leave nothing behind" "" "${leaks# }"
}

# group_teardown H: StopPodSandbox + RemovePodSandbox of the handler's pods,
# then look for anything left of each of them
group_teardown() {
    local h=$1 n p left
    for n in a b c; do
        p=${POD[$h-$n]:-}
        [ -n "$p" ] || continue
        cri stopp "$p"
        expect "$h: StopPodSandbox $h-$n: SANDBOX_NOTREADY" SANDBOX_NOTREADY "$(cri pstatus "$p" | jq -r .status.state)"
        cri rmp "$p"
        expect "$h: RemovePodSandbox $h-$n: PodSandboxStatus answers NOT_FOUND" NOT_FOUND \
            "$(cri_code pstatus "$p")"
        left=$(pod_left "$h" "$n" "$p")
        expect "$h: after RemovePodSandbox $h-$n nothing is left (shim, socket, sandbox pid, mounts, bundles, netns, veth, IPAM, CNI cache, cgroups)" \
            "" "${left# }"
    done
    left=$(pgrep -f -- "containerd-shim-$h-v2 .*-address $CTRD_SOCK" | tr '\n' ' ')
    expect "$h: no containerd-shim-$h-v2 left for this containerd" "" "${left% }"
    expect "$h: no port left on bridge $BR" "" "$(bridge_ports | tr '\n' ' ')"
}

# group_ctr H: ctr run --runtime io.containerd.H.v2, a single container
group_ctr() {
    local h=$1 rt=io.containerd.$1.v2 out rc vol st
    cc() { tmo ctr --address "$CTRD_SOCK" -n "$CTR_NS" "$@"; }
    # ctr_run NAME ARGS...: ctr run with the handler's runtime, a cgroup under $CG
    ctr_run() {
        local name=$1
        shift
        local flags=(--runtime "$rt" --cgroup "$CG/ctr-$h/$name")
        [ "$h" = runc ] && flags+=(--runc-root "$D/c/runc-ctr")
        cc run "${flags[@]}" "$@"
    }
    if [ -z "${CTR_IMPORTED:-}" ]; then
        c -n "$CTR_NS" image import "$archive" >/dev/null
        CTR_IMPORTED=1
    fi
    out=$(ctr_run echo --rm "$IMG" "$h-echo" sh -c 'echo to-stdout; echo to-stderr >&2; exit 4' \
        </dev/null 2>"$D/ctr.err")
    rc=$?
    expect "ctr run --runtime $rt: stdout, stderr, exit code 4" "to-stdout|to-stderr|4" \
        "$out|$(grep -v '^time=' "$D/ctr.err")|$rc"
    vol=$D/ctr-vol-$h
    mkdir -p "$vol"
    # a counter in a bind-mounted host dir, replaced atomically, shows progress
    ctr_run bg -d --mount "type=bind,src=$vol,dst=/data,options=rbind:rw" "$IMG" "$h-bg" sh -c \
        'trap "echo got-TERM >/data/term; exit 0" TERM; i=0;
         while :; do i=$((i+1)); echo $i >/data/c.tmp; mv /data/c.tmp /data/count; sleep 0.1; done' \
        >/dev/null 2>>"$D/logs/ctr.log"
    pass_if "ctr run -d --runtime $rt: the task runs" wait_until 30 test -s "$vol/count"
    out=$(cc task exec --exec-id e1 "$h-bg" sh -c 'echo exec-out; echo exec-err >&2; exit 5' </dev/null 2>"$D/ctr.err")
    rc=$?
    expect "ctr task exec ($h): stdout, stderr, exit code 5" "exec-out|exec-err|5" \
        "$out|$(grep -v '^time=' "$D/ctr.err")|$rc"
    cc task pause "$h-bg" 2>>"$D/logs/ctr.log"
    st=$(cc task ls 2>>"$D/logs/ctr.log" | awk -v t="$h-bg" '$1 == t { print $3 }')
    local n1 n2
    sleep 0.3
    n1=$(cat "$vol/count")
    sleep 1
    n2=$(cat "$vol/count")
    expect "ctr task pause ($h): PAUSED, and the task makes no progress" "PAUSED $n1" "$st $n2"
    cc task resume "$h-bg" 2>>"$D/logs/ctr.log"
    st=$(cc task ls 2>>"$D/logs/ctr.log" | awk -v t="$h-bg" '$1 == t { print $3 }')
    advanced() { [ "$(cat "$vol/count")" -gt "$n2" ]; }
    pass_if "ctr task resume ($h): RUNNING, and the task goes on" test "$st" = RUNNING -a -n "$n2"
    pass_if "ctr task resume ($h): the counter advances again" wait_until 10 advanced
    out=$(cc task metrics --format json "$h-bg" 2>>"$D/logs/ctr.log")
    # cgroup v1 metrics have memory.usage.usage, v2 memory.usage
    if jqe '((.memory.usage.usage // .memory.usage // 0) > 0) and ((.pids.current // 0) >= 1)' <<<"$out"; then
        ok "ctr task metrics ($h): memory usage and pids are reported"
    else
        fail_with_logs "ctr task metrics ($h): memory usage and pids are reported"
        diag "metrics: $(jq -c . <<<"$out" 2>&1 | cut -c1-400)"
    fi
    cc task kill -s SIGTERM "$h-bg" 2>>"$D/logs/ctr.log"
    stopped() { [ "$(cc task ls 2>/dev/null | awk -v t="$h-bg" '$1 == t { print $3 }')" = STOPPED ]; }
    pass_if "ctr task kill -s SIGTERM ($h): the task handled it and stopped" wait_until 20 stopped
    expect "ctr task kill ($h): the trap ran" got-TERM "$(cat "$vol/term" 2>&1)"
    cc task delete "$h-bg" >/dev/null 2>>"$D/logs/ctr.log"
    expect "ctr task delete ($h)" 0 $?
    cc container delete "$h-bg" 2>>"$D/logs/ctr.log"
    expect "ctr container delete ($h)" 0 $?
    left=$(pgrep -f -- "containerd-shim-$h-v2 -namespace $CTR_NS " | tr '\n' ' ')
    expect "ctr ($h): no shim left for namespace $CTR_NS" "" "${left% }"
    expect "ctr ($h): no container left" "" "$(cc container ls -q 2>/dev/null)"
}

POD_STATUS=""
declare -A POD=() POD_IP=() POD_NETNS=() POD_PID=() POD_VETH=() POD_BOOT=() POD_SOCK=() CIDS=()
for h in $CRI_HANDLERS; do
    shim=containerd-shim-$h-v2
    if ! PATH="$CRI_SHIM_DIR:$PATH" command -v "$shim" >/dev/null; then
        for g in "${GROUPS_[@]}"; do
            skip "$h: $g" "$shim (runtime io.containerd.$h.v2) is not in $CRI_SHIM_DIR or on PATH"
        done
        continue
    fi
    diag "handler $h: $(PATH="$CRI_SHIM_DIR:$PATH" command -v "$shim")"
    # a shim that says it cannot run pods yet (moat's, until one VM holds a
    # whole pod) gets a skip per pod group, saying so; ctr run still runs
    feats=$(PATH="$CRI_SHIM_DIR:$PATH" "$shim" -v 2>/dev/null | sed -n 's/^ *Features: *//p')
    if [ "$h" != runc ] && ! grep -qw pods <<<"$feats"; then
        for g in "${GROUPS_[@]:0:7}"; do
            skip "$h: $g" "$shim does not run pods yet (its features: ${feats:-none})"
        done
        group_ctr "$h"
        continue
    fi
    C1="" C2=""
    group_pod "$h"
    group_exec "$h"
    group_two_pods "$h"
    group_teardown "$h"
    group_faults "$h"
    group_pidns "$h"
    group_cycles "$h"
    group_ctr "$h"
done
diag "cri.sh took $(($(date +%s) - T0)) s"
done_testing
