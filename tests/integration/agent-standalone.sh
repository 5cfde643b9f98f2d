#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# moat-agent's container code without a VM: `moat-agent --standalone BUNDLE`
# runs a busybox bundle on this machine (root needed) and we check what the
# process sees: namespaces, capabilities, seccomp, user, mounts, cgroup.
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh

AGENT=${MOAT_AGENT:-build/moat-agent}
if [ "$(id -u)" != 0 ]; then skip agent-standalone "needs root"; exit 0; fi
if [ ! -x "$AGENT" ]; then skip agent-standalone "$AGENT not built"; exit 0; fi
BUSYBOX=$(command -v busybox || true)
if [ -z "$BUSYBOX" ] || ! file -L "$BUSYBOX" 2>/dev/null | grep -q static; then
    [ -x /bin/busybox ] && BUSYBOX=/bin/busybox
fi
if [ -z "$BUSYBOX" ]; then skip agent-standalone "busybox-static not installed"; exit 0; fi

# The host's cgroup2 mount (hybrid mode here); the agent skips controllers
# that are not available there.
CGROOT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
export MOAT_AGENT_CGROUP_ROOT=${CGROOT:-/nonexistent}

T=$(mktemp -d /tmp/moat-agent-test.XXXXXX)
chmod 755 "$T" # the user namespace test's root is host uid 100000
trap 'umount -R "$T"/rootfs 2>/dev/null; rm -rf "$T"' EXIT
mkdir -p "$T"/rootfs/{bin,proc,dev,sys,tmp,etc,data}
cp "$BUSYBOX" "$T"/rootfs/bin/busybox
chroot "$T"/rootfs /bin/busybox --install -s /bin
echo "secret" >"$T"/rootfs/etc/secret
mkdir -p "$T"/hostside
ln -s ../../../../../"$T"/hostside "$T"/rootfs/escape
echo "from-the-host" >"$T"/hostside/volume-file

base_config() {
    cat <<'JSON'
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": ["sh", "-c", "true"],
    "env": ["PATH=/usr/bin:/bin", "TERM=xterm"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    },
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}],
    "noNewPrivileges": true
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "moatbox",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}
  ],
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}],
    "maskedPaths": ["/etc/secret", "/proc/kcore", "/sys/firmware", "/does/not/exist"],
    "readonlyPaths": ["/proc/sys", "/proc/bus"]
  }
}
JSON
}

# run NAME JQ-FILTER CMD: writes the config, runs the agent, sets OUT and RC
N=0
run() {
    local jqf=$1; shift
    local cmd=$1
    N=$((N + 1))
    base_config | jq --arg cmd "$cmd" ".process.args = [\"sh\", \"-c\", \$cmd] | $jqf" >"$T"/config.json
    OUT=$(timeout 60 "$AGENT" --standalone "$T" "agent-test-$$-$N" 2>"$T"/stderr)
    RC=$?
    ERR=$(cat "$T"/stderr)
}

run . 'echo hello from moat'
expect_eq "echo output" "hello from moat" "$OUT"
expect_eq "exit status 0" 0 "$RC"

run . 'exit 7'
expect_eq "exit code 7 is passed through" 7 "$RC"

# (init of a pid namespace cannot SIGKILL itself: no pid namespace here)
run '.linux.namespaces |= map(select(.type != "pid"))' 'kill -9 $$'
expect_eq "killed by SIGKILL -> 137" 137 "$RC"

run . 'echo $$'
expect_eq "the process is PID 1 of its pid namespace" 1 "$OUT"

run . 'hostname'
expect_eq "hostname from the config" moatbox "$OUT"

run . 'grep CapEff /proc/self/status | cut -f2'
# CAP_CHOWN(0) | CAP_KILL(5) | CAP_NET_BIND_SERVICE(10)
expect_eq "CapEff is the configured set" 0000000000000421 "$OUT"

run . 'grep CapBnd /proc/self/status | cut -f2'
expect_eq "CapBnd is the configured bounding set" 0000000000000421 "$OUT"

run . 'grep NoNewPrivs /proc/self/status | cut -f2'
expect_eq "noNewPrivileges" 1 "$OUT"

run '.linux.seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
      "syscalls": [{"names": ["mkdir", "mkdirat", "no_such_syscall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}' \
    'mkdir /tmp/x 2>&1; echo rc=$?; touch /tmp/y && echo touch-ok'
case "$OUT" in
*"Operation not permitted"*"rc=1"*"touch-ok") ok "seccomp denies mkdir with EPERM, the rest works" ;;
*) not_ok "seccomp denies mkdir with EPERM"; diag "$OUT" ;;
esac

run '.linux.seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}' 'true'
case "$RC:$ERR" in
125:*"SCMP_ACT_NOTIFY is not supported"*) ok "SCMP_ACT_NOTIFY is refused clearly" ;;
*) not_ok "SCMP_ACT_NOTIFY is refused clearly"; diag "rc=$RC $ERR" ;;
esac

run '.process.user = {"uid": 1000, "gid": 1000, "additionalGids": [2000]}' 'echo $(id -u):$(id -g):$(id -G)'
expect_eq "uid/gid 1000:1000 with additional gid" "1000:1000:1000 2000" "$OUT"

run '.process.user = {"uid": 1000, "gid": 1000}' 'grep CapEff /proc/self/status | cut -f2'
expect_eq "non-root user has no effective caps without ambient" 0000000000000000 "$OUT"

run '.process.user = {"uid": 1000, "gid": 1000} | .process.capabilities.inheritable = ["CAP_NET_BIND_SERVICE"] | .process.capabilities.ambient = ["CAP_NET_BIND_SERVICE"]' \
    'grep CapEff /proc/self/status | cut -f2'
expect_eq "ambient capability raised for a non-root user" 0000000000000400 "$OUT"

run . 'echo x > /newfile 2>&1 || echo write-failed'
case "$OUT" in
*write-failed) ok "read-only rootfs refuses writes" ;;
*) not_ok "read-only rootfs refuses writes"; diag "$OUT" ;;
esac

run . 'echo x > /tmp/f && cat /tmp/f'
expect_eq "tmpfs mount is writable" x "$OUT"

run . 'cat /etc/secret; echo "[$(cat /etc/secret)]"'
expect_eq "masked file reads empty" "[]" "$OUT"

run . 'echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo writable || echo readonly'
expect_eq "readonlyPaths /proc/sys" readonly "$OUT"

run . 'ls /dev | sort | tr "\n" " "'
case "$OUT" in
*console*) not_ok "no /dev/console without a terminal" ;;
*full*null*ptmx*pts*random*shm*|*full*null*ptmx*pts*random*) ok "standard devices in /dev" ;;
*) not_ok "standard devices in /dev"; diag "$OUT" ;;
esac

run . 'echo hi > /dev/null && head -c 4 /dev/zero | od -An -tx1 | tr -d " "'
expect_eq "/dev/null and /dev/zero work" 00000000 "$OUT"

run '.linux.namespaces += [{"type": "user"}] | .linux.uidMappings = [{"containerID": 0, "hostID": 100000, "size": 65536}] | .linux.gidMappings = [{"containerID": 0, "hostID": 100000, "size": 65536}]' \
    'cat /proc/self/uid_map | tr -s " " | sed "s/^ //"; id -u'
expect_eq "user namespace mapping" "0 100000 65536
0" "$OUT"

run '.linux.namespaces += [{"type": "user"}] | .linux.uidMappings = [{"containerID": 0, "hostID": 100000, "size": 65536}] | .linux.gidMappings = [{"containerID": 0, "hostID": 100000, "size": 65536}]' \
    'stat -c %u /bin/busybox'
expect_eq "host root files are unmapped in the user namespace" 65534 "$OUT"

run . 'grep "^0::" /proc/self/cgroup'
case "$OUT" in
"0::/moat/agent-test-$$-$N") ok "process is in cgroup moat/<id>" ;;
*) if [ -z "$CGROOT" ]; then skip "cgroup" "no cgroup2 mount"; else not_ok "process is in cgroup moat/<id>"; diag "$OUT"; fi ;;
esac
[ ! -d "$CGROOT/moat/agent-test-$$-$N" ] && ok "cgroup removed after exit" || not_ok "cgroup removed after exit"

run '.linux.namespaces += [{"type": "cgroup"}]' 'grep "^0::" /proc/self/cgroup'
expect_eq "cgroup namespace rooted at the container cgroup" "0::/" "$OUT"

run '.mounts += [{"destination": "/escape/m", "type": "tmpfs", "source": "tmpfs"}]' 'ls -d /escape/m /hostside 2>&1 | head -1'
if [ -e "$T/hostside/m" ]; then not_ok "mount destination cannot escape through a symlink"; else ok "mount destination cannot escape through a symlink"; fi

run '.mounts += [{"destination": "/data/vol", "type": "bind", "source": "'"$T"'/hostside", "options": ["rbind", "ro"]}]' \
    'cat /data/vol/volume-file; touch /data/vol/new 2>/dev/null && echo rw || echo ro'
expect_eq "read-only bind mount" "from-the-host
ro" "$OUT"

run '.process.args = ["no-such-binary"]' ''
case "$RC:$ERR" in
125:*'exec: "no-such-binary": executable file not found in $PATH'*) ok "missing binary is reported at create like runc" ;;
*) not_ok "missing binary is reported at create like runc"; diag "rc=$RC $ERR" ;;
esac

run '.process.cwd = "/tmp" | .process.env += ["FOO=bar"]' 'echo $(pwd) $FOO $(ulimit -n)'
expect_eq "cwd, env and rlimits" "/tmp bar 512" "$OUT"

run '.linux.sysctl = {"net.ipv4.ip_forward": "1"} | .linux.readonlyPaths = []' 'cat /proc/sys/net/ipv4/ip_forward'
expect_eq "sysctl in the container's net namespace" 1 "$OUT"

run '.linux.namespaces = [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}, {"type": "time"}]' 'echo ok'
if grep -q time_for_children /proc/self/ns/* 2>/dev/null || [ -e /proc/self/ns/time ]; then
    expect_eq "time namespace" ok "$OUT"
else
    skip "time namespace" "kernel without time namespaces"
fi

run '.mounts += [{"destination": "/x", "type": "nosuchfs", "source": "none"}]' 'true'
case "$RC:$ERR" in
125:*"mounts[5] /x"*"No such device"*) ok "a failing mount names the mount" ;;
*) not_ok "a failing mount names the mount"; diag "rc=$RC $ERR" ;;
esac

# linux.resources.devices: a cgroup v2 device program built by the agent.
# /dev/oci-fuse (10:229) is opened only where the rules allow it; the
# default devices (/dev/null...) stay usable under a deny-all rule.
if [ -n "$CGROOT" ] && [ -c /dev/fuse ]; then
    DEVCFG='.linux.devices = [{"path": "/dev/oci-fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}]'
    run "$DEVCFG"' | .linux.resources.devices = [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}]' \
        '(exec 3<>/dev/oci-fuse) 2>/dev/null && echo fuse-opened || echo fuse-denied; echo x > /dev/null && echo null-ok'
    expect_eq "device rule allows 10:229, defaults keep /dev/null" "fuse-opened
null-ok" "$OUT"
    run "$DEVCFG"' | .linux.resources.devices = [{"allow": false, "access": "rwm"}, {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]' \
        '(exec 3<>/dev/oci-fuse) 2>/dev/null && echo fuse-opened || echo fuse-denied'
    expect_eq "device rule denies 10:229 although the node exists" fuse-denied "$OUT"
    run "$DEVCFG"' | .linux.resources.devices = [{"allow": true, "type": "c", "major": 10, "minor": 229, "access": "r"}]' \
        '(exec 3</dev/oci-fuse) 2>/dev/null && echo read-ok; (exec 3<>/dev/oci-fuse) 2>/dev/null && echo rw-opened || echo rw-denied'
    expect_eq "device rule with access r allows reading only" "read-ok
rw-denied" "$OUT"
else
    skip "device cgroup rules" "no cgroup2 mount or no /dev/fuse on this host"
fi

# Namespaces: duplicates and paths that are not there (in the VM, every
# host path) are errors that name the entry.
run '.linux.namespaces |= (map(select(.type != "network")) + [{"type": "network", "path": "/run/netns/moat-no-such-ns"}])' 'echo ran'
case "$RC:$ERR" in
125:*"network namespace path /run/netns/moat-no-such-ns does not exist"*) ok "a missing namespace path is a clear error" ;;
*) not_ok "a missing namespace path is a clear error"; diag "rc=$RC $ERR" ;;
esac
run '.linux.namespaces |= (map(select(.type != "ipc")) + [{"type": "ipc", "path": "/proc/self/ns/net"}])' 'echo ran'
case "$RC:$ERR" in
125:*"/proc/self/ns/net is not a namespace of type ipc"*) ok "a namespace path of the wrong type is an error" ;;
*) not_ok "a namespace path of the wrong type is an error"; diag "rc=$RC $ERR" ;;
esac
run '.linux.namespaces += [{"type": "pid"}]' 'echo ran'
case "$RC:$OUT:$ERR" in
125::*pid*) ok "a duplicated namespace type is an error" ;;
*) not_ok "a duplicated namespace type is an error"; diag "rc=$RC $OUT $ERR" ;;
esac
run '.process.rlimits += [{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 256}]' 'echo ran'
case "$RC:$OUT:$ERR" in
125::*RLIMIT_NOFILE*) ok "a duplicated rlimit type is an error" ;;
*) not_ok "a duplicated rlimit type is an error"; diag "rc=$RC $OUT $ERR" ;;
esac

# Hooks in the container namespace. createContainer runs before pivot_root
# with its path resolved in the agent's root (here the host's); the hook
# script logs its netns and stdin into a host dir. startContainer resolves in
# the container's root and writes through a bind mount.
mkdir -p "$T"/hooks
chmod 777 "$T"/hooks
printf '%s\n' '#!/bin/sh' \
    'cat >"$1/$2.json"' \
    'printf "%s %s %s\n" "$2" "$(readlink /proc/self/ns/net)" "$HOOKVAR" >>"$1/log"' \
    '[ -z "$HOOK_SLEEP" ] || exec sleep "$HOOK_SLEEP"' \
    'exit "${HOOK_EXIT:-0}"' >"$T"/hook.sh
chmod 755 "$T"/hook.sh
cp "$T"/hook.sh "$T"/rootfs/bin/oci-hook
HOOKS='.mounts += [{"destination": "/hooks", "type": "bind", "source": ($T + "/hooks"), "options": ["rbind"]}]
  | .annotations = {"org.example": "v"}
  | .hooks = {createContainer: [{path: ($T + "/hook.sh"), args: ["hook.sh", ($T + "/hooks"), "createContainer"], env: ["PATH=/usr/bin:/bin", "HOOKVAR=c1"]}],
              startContainer: [{path: "/bin/oci-hook", args: ["oci-hook", "/hooks", "startContainer"], env: ["PATH=/bin", "HOOKVAR=s1"]}]}'
hooks_run() { # JQ-EXTRA CMD
    rm -f "$T"/hooks/*
    N=$((N + 1))
    base_config | jq --arg T "$T" --arg cmd "$2" ".process.args = [\"sh\", \"-c\", \$cmd] | $HOOKS | $1" >"$T"/config.json
    OUT=$(timeout 60 "$AGENT" --standalone "$T" "agent-test-$$-$N" 2>"$T"/stderr)
    RC=$?
    ERR=$(cat "$T"/stderr)
}
MYNET=$(readlink /proc/self/ns/net)
hooks_run . 'readlink /proc/self/ns/net; cat /hooks/log'
CNET=$(echo "$OUT" | head -n1)
expect_eq "createContainer then startContainer, in the container's netns, before the program" \
    "$CNET
createContainer $CNET c1
startContainer $CNET s1" "$OUT"
[ -n "$CNET" ] && [ "$CNET" != "$MYNET" ] && ok "hooks did not run in the agent's netns" || not_ok "hooks did not run in the agent's netns"
expect_eq "createContainer state on stdin" "creating 1 org.example=v agent-test-$$-$N $T" \
    "$(jq -r '"\(.status) \(.pid) org.example=\(.annotations["org.example"]) \(.id) \(.bundle)"' "$T"/hooks/createContainer.json 2>&1)"
expect_eq "startContainer state on stdin (pid as seen in the container)" "created 1 1.0.2" \
    "$(jq -r '"\(.status) \(.pid) \(.ociVersion)"' "$T"/hooks/startContainer.json 2>&1)"

hooks_run '.hooks.startContainer[0].env += ["HOOK_EXIT=3"]' 'echo user-program-ran'
case "$RC:$OUT:$ERR" in
125::*"hooks.startContainer[0] (/bin/oci-hook): exit status 3"*) ok "a failing startContainer hook fails the start, the program does not run" ;;
*) not_ok "a failing startContainer hook fails the start, the program does not run"; diag "rc=$RC out=$OUT $ERR" ;;
esac
hooks_run '.hooks.createContainer[0].env += ["HOOK_EXIT=4"]' 'echo user-program-ran'
case "$RC:$OUT:$ERR" in
125::*"hooks.createContainer[0] ("*"exit status 4"*) ok "a failing createContainer hook fails the create" ;;
*) not_ok "a failing createContainer hook fails the create"; diag "rc=$RC out=$OUT $ERR" ;;
esac
hooks_run '.hooks.createContainer[0].path = "/no/such/hook"' 'echo user-program-ran'
case "$RC:$ERR" in
125:*"hooks.createContainer[0]: /no/such/hook: No such file or directory"*) ok "a createContainer hook path missing here is named" ;;
*) not_ok "a createContainer hook path missing here is named"; diag "rc=$RC $ERR" ;;
esac
t0=$SECONDS
hooks_run '.hooks.startContainer[0].env += ["HOOK_SLEEP=30"] | .hooks.startContainer[0].timeout = 1' 'echo user-program-ran'
case "$RC:$OUT:$ERR" in
125::*"killed after its timeout of 1 s"*) [ $((SECONDS - t0)) -lt 10 ] && ok "a hook is killed at its timeout" || not_ok "a hook is killed at its timeout (took $((SECONDS - t0))s)" ;;
*) not_ok "a hook is killed at its timeout"; diag "rc=$RC out=$OUT $ERR" ;;
esac

# nothing left behind
left=$(grep -c "$T" /proc/mounts)
expect_eq "no mounts left behind" 0 "$left"

# The same code as PID 1 of a real guest: boot the initramfs under QEMU with
# moat.standalone=<bundle on the 9p share>; the agent switches to a tmpfs
# root, mounts cgroup2 and the share, runs the bundle, powers off.
KERNEL=${MOAT_KERNEL:-build/vmlinux}
INITRD=${MOAT_INITRD:-build/initramfs.cpio.gz}
if [ -e "$KERNEL" ] && [ -e "$INITRD" ] && command -v qemu-system-x86_64 >/dev/null; then
    mkdir -p "$T"/share/b1
    cp -a "$T"/rootfs "$T"/share/b1/
    # Device rules in the guest: fuse (10:229) allowed, tun (10:200) denied;
    # the guest kernel has both drivers, so only the cgroup device program
    # tells them apart.
    base_config | jq '.process.args = ["sh", "-c", "echo guest-pid=$$ $(grep ^0:: /proc/self/cgroup) mem=$(cat /sys/fs/cgroup/memory.max); (exec 3<>/dev/fuse) 2>/dev/null && echo fuse=opened || echo fuse=denied; (exec 3<>/dev/tun) 2>/dev/null && echo tun=opened || echo tun=denied; echo netdevs=$(ls /sys/class/net | tr \"\\n\" ,); exit 3"]
        | .linux.devices = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438},
                            {"path": "/dev/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 438}]
        | .linux.resources = {"memory": {"limit": 67108864}, "pids": {"limit": 64},
                              "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}]}
        | .linux.namespaces += [{"type": "cgroup"}]
        | .mounts += [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}]' >"$T"/share/b1/config.json
    GOUT=$(timeout 120 qemu-system-x86_64 -M microvm,acpi=off -accel tcg -m 256 -nodefaults -no-reboot -nographic \
        -serial stdio -kernel "$KERNEL" -initrd "$INITRD" \
        -append "console=ttyS0 reboot=t panic=-1 quiet moat.standalone=/run/moat/share/b1" \
        -fsdev local,id=f0,path="$T"/share,security_model=none -device virtio-9p-device,fsdev=f0,mount_tag=moatshare 2>&1)
    GRC=$?
    case "$GOUT" in
    *"guest-pid=1 0::/ mem=67108864"*"standalone container exited with status 3"*) ok "guest PID 1 runs a container from the 9p share with cgroup limits" ;;
    *) not_ok "guest PID 1 runs a container from the 9p share with cgroup limits"; echo "$GOUT" | tail -15 | sed 's/^/# /' ;;
    esac
    case "$GOUT" in
    *"fuse=opened"*"tun=denied"*) ok "guest kernel enforces linux.resources.devices (cgroup BPF) and has fuse" ;;
    *) not_ok "guest kernel enforces linux.resources.devices (cgroup BPF) and has fuse"; echo "$GOUT" | grep -E "fuse=|tun=|WARNING" | sed 's/^/# /' ;;
    esac
    expect_eq "a new network namespace in the guest holds only lo" "netdevs=lo," \
        "$(echo "$GOUT" | grep -o 'netdevs=[^[:space:]]*' | head -n1)"
    expect_eq "the guest powers off (QEMU exits by itself)" 0 "$GRC"
else
    skip "guest PID 1" "no $KERNEL, $INITRD or qemu-system-x86_64"
fi
done_testing
