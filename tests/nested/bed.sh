#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The nested test bed: moat's tests under moat-vmm on a host whose /dev/kvm
# cannot run a Linux guest. QEMU TCG with -cpu max emulates an AMD CPU with
# SVM and nested paging; a Debian kernel booted in it (L1) loads kvm_amd,
# and moat-vmm inside L1 boots the lean guest kernel (L2).
#
#   tests/nested/bed.sh RESULTS NAME=SCRIPT...
#
# Runs each SCRIPT (relative to the repository) inside L1, one after the
# other, with the host's root read-only over 9p under a tmpfs overlay, and
# leaves in RESULTS (emptied first) NAME.tap, NAME.rc and NAME.secs per
# test, l1.tap (L1's own checks: kvm_amd, /dev/kvm, `moat check`),
# console.log (L1's serial console) and "finished" if L1 got through its
# list. tests/integration/nested.sh reads them.
#
# Exit status: 0 when L1 ran and powered off, 2 when this host cannot run
# the bed (RESULTS/skip says why), 1 otherwise.
#
# Knobs: MOAT_NESTED_MEM (MiB, 3072), MOAT_NESTED_CPUS (1),
# MOAT_NESTED_SCRIPT_TIMEOUT (seconds per inner test, 900),
# MOAT_NESTED_TIMEOUT (seconds for the whole L1, 3600),
# MOAT_NESTED_STALL (seconds without progress before the watchdog acts, 300),
# MOAT_NESTED_ENV (VAR=VALUE words exported to the inner tests).
set -u
cd "$(dirname "$0")/../.."
R=$1
shift
REPO=$PWD
modules="kvm-amd virtio_pci 9pnet_virtio 9p overlay tun veth sch_ingress cls_u32 cls_matchall act_mirred"

log() { echo "nested: $*" >&2; }
cannot() {
    echo "$*" >"$R/skip"
    log "cannot run here: $*"
    exit 2
}

mkdir -p "$R"
# one bed per results dir at a time
exec 8>"$R.lock"
flock -n 8 || { log "another bed is using $R"; exit 1; }
find "$R" -mindepth 1 -delete

[ "$(id -u)" -eq 0 ] || cannot "needs root (L1 reads the whole host root over 9p)"
qemu=$(command -v qemu-system-x86_64) || cannot "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"
for t in cpio gzip flock python3; do command -v $t >/dev/null || cannot "$t is missing"; done
busybox=/bin/busybox
[ -x $busybox ] && ! ldd $busybox >/dev/null 2>&1 || cannot "no static $busybox (apt-get install busybox-static)"
# Does this QEMU's TCG emulate SVM with nested paging? enforce makes it
# refuse to start otherwise.
if ! echo '{"execute":"qmp_capabilities"}{"execute":"quit"}' |
    timeout 60 "$qemu" -accel tcg -cpu max,+svm,+npt,enforce -M pc -nodefaults -display none -S -qmp stdio \
        >/dev/null 2>"$R/qemu-svm.err"; then
    cannot "QEMU TCG here lacks SVM with nested paging: $(grep -v '^$' "$R/qemu-svm.err" | tail -1)"
fi
for f in build/moat build/moat-vmm build/moat-vsock build/initramfs.cpio.gz build/vmlinux; do
    [ -e "$f" ] || cannot "$f is missing (make && make guest)"
done

# --- L1's kernel: Debian's, cached in moat's cache dir --------------------------
kdir=$(tests/nested/kernel.sh 2>"$R/kernel.err")
case $? in
0) ;;
2) cannot "no L1 kernel: $(tail -1 "$R/kernel.err")" ;;
*) log "fetching the L1 kernel failed: $(tail -3 "$R/kernel.err")"; exit 1 ;;
esac
kv=$(cat "$kdir/version")
km=$kdir/lib/modules/$kv

# --- L1's initramfs: busybox, the modules with their deps, tests/nested/init ----
ir=$R/initramfs
mkdir -p "$ir"/{bin,dev,proc,sys,tmp,lib/modules/$kv}
cp $busybox "$ir/bin/busybox"
cp tests/nested/init "$ir/init"
chmod 0755 "$ir/init"
echo "$modules" >"$ir/modules"
cp "$km"/modules.{dep,alias,builtin,order,softdep} "$ir/lib/modules/$kv/" 2>/dev/null
for m in $modules; do
    # modules.dep lines are "kernel/.../name.ko: dep.ko dep.ko"; - and _ are one
    line=$(grep -E "/${m//[-_]/[-_]}\.ko(\.[a-z]+)?:" "$km/modules.dep") || {
        log "L1 kernel $kv has no module $m"
        exit 1
    }
    for f in ${line%%:*} ${line#*:}; do
        install -D -m 0644 "$km/$f" "$ir/lib/modules/$kv/$f"
    done
done
(cd "$ir" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$R/l1.cpio.gz"
rm -rf "$ir"

# --- what L1 runs ---------------------------------------------------------------
: >"$R/tests"
for t in "$@"; do
    echo "${t%%=*} ${MOAT_NESTED_SCRIPT_TIMEOUT:-900} ${t#*=}" >>"$R/tests"
done
: >"$R/env"
for kv_ in ${MOAT_NESTED_ENV:-}; do echo "$kv_" >>"$R/env"; done
# the host's cgroup mounts, parents first, for L1 to copy
awk '$2 ~ "^/sys/fs/cgroup" && ($3 == "cgroup" || $3 == "cgroup2" || $3 == "tmpfs") {print $3, $2, $4}' /proc/mounts |
    sort -k2,2 >"$R/cgroups"
# cgroup v1 options minus the mount flags: the controllers and name=
sed -i -E 's/(^cgroup [^ ]+ )(.*)/\1\2,/; s/(rw|ro|relatime|noatime|nosuid|nodev|noexec|seclabel),//g; s/,$//' "$R/cgroups"
[ -s "$R/cgroups" ] || echo "cgroup2 /sys/fs/cgroup -" >"$R/cgroups"

# --- L1 ---------------------------------------------------------------------------
# qmp COMMAND [ARGUMENTS-JSON]: one QMP command to L1's QEMU, its answer on stdout
qmp() {
    python3 - "$R/qmp.sock" "$@" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
for cmd in ({"execute": "qmp_capabilities"},
            {"execute": sys.argv[2], "arguments": json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}}):
    f.write(json.dumps(cmd) + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r:
            break
r = r.get("return", r)
print(r if isinstance(r, str) else json.dumps(r))
PY
}
# progress: the newest change in the inner tests' results (not the console:
# the watchdog's own NMI prints there), in seconds since the epoch
progress() { find "$R" -maxdepth 1 -type f \( -name '*.tap' -o -name '*.rc' -o -name finished \) -printf '%T@\n' | sort -n | tail -1 | cut -d. -f1; }
# cputicks PID: the CPU time a process has used, in clock ticks
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

log "booting L1 ($kv, TCG, -cpu max): $*"
t0=$SECONDS
timeout -k 10 "${MOAT_NESTED_TIMEOUT:-3600}" "$qemu" -accel tcg -cpu max,+svm,+npt -m "${MOAT_NESTED_MEM:-3072}" \
    -smp "${MOAT_NESTED_CPUS:-1}" -nodefaults -nographic -no-reboot -serial "file:$R/console.log" -monitor none \
    -qmp "unix:$R/qmp.sock,server=on,wait=off" \
    -kernel "$kdir/boot/vmlinuz-$kv" -initrd "$R/l1.cpio.gz" \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$R,mount_tag=results,security_model=none" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4 REPO=$REPO" </dev/null >"$R/qemu.out" 2>&1 &
qpid=$!
# The watchdog. L1's own timeouts (each inner test's) need L1's clock to
# run: an L1 that stops altogether (seen once here: QEMU idle, its vCPU
# halted, every L1 process waiting, for 10 min) would hold the bed for
# MOAT_NESTED_TIMEOUT. After MOAT_NESTED_STALL seconds (300) in which no
# inner result came and QEMU used under 10% of a core, it saves L1's
# registers, tries an NMI, and if that brings neither within a minute,
# stops L1. RESULTS/stall.log says what happened.
stall=${MOAT_NESTED_STALL:-300}
sleep 1
qemu_pid=$(pgrep -P $qpid | head -1)
hz=$(getconf CLK_TCK)
last=$(progress) since=$SECONDS nmi= ticks=$(cputicks "$qemu_pid")
while kill -0 $qpid 2>/dev/null; do
    sleep 5
    now=$(progress) t=$(cputicks "$qemu_pid")
    busy=$((t - ticks >= hz / 2)) # 0.5 s of CPU in 5 s
    ticks=$t
    if [ "$now" != "$last" ] || [ $busy = 1 ]; then
        if [ -n "$nmi" ]; then
            echo "L1 ran again $((SECONDS - nmi))s after the NMI" >>"$R/stall.log"
            nmi=
        fi
        last=$now since=$SECONDS
        continue
    fi
    if [ -z "$nmi" ] && [ $((SECONDS - since)) -ge "$stall" ]; then
        running=$(grep -a '^nested-inner: ' "$R/console.log" | tail -1)
        echo "L1 idle with no result for $((SECONDS - since))s (last: ${running:-before the inner tests})" >>"$R/stall.log"
        qmp human-monitor-command '{"command-line": "info registers"}' >"$R/stall-registers.txt" 2>&1
        qmp inject-nmi >/dev/null 2>>"$R/stall.log"
        echo "injected an NMI" >>"$R/stall.log"
        nmi=$SECONDS
    elif [ -n "$nmi" ] && [ $((SECONDS - nmi)) -ge 60 ]; then
        echo "still idle 60s after the NMI: stopping L1" >>"$R/stall.log"
        touch "$R/stalled"
        qmp quit >/dev/null 2>&1 || kill $qpid
        break
    fi
done
wait $qpid
rc=$?
echo $((SECONDS - t0)) >"$R/qemu.secs"
if [ -f "$R/stalled" ]; then
    log "L1 stalled: $(head -1 "$R/stall.log")"
    exit 1
fi
if [ $rc -ne 0 ]; then
    [ $rc -eq 124 ] && log "L1 ran out of its ${MOAT_NESTED_TIMEOUT:-3600}s"
    log "QEMU exited with status $rc: $(tail -3 "$R/qemu.out")"
    exit 1
fi
log "L1 powered off after $((SECONDS - t0))s"
