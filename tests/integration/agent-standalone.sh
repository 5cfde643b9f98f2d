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
    base_config | jq '.process.args = ["sh", "-c", "echo guest-pid=$$ $(grep ^0:: /proc/self/cgroup) mem=$(cat /sys/fs/cgroup/memory.max); exit 3"]
        | .linux.resources = {"memory": {"limit": 67108864}, "pids": {"limit": 64}}
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
    expect_eq "the guest powers off (QEMU exits by itself)" 0 "$GRC"
else
    skip "guest PID 1" "no $KERNEL, $INITRD or qemu-system-x86_64"
fi
