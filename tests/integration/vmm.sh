#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# moat-vmm boots the probe guests (tests/probe) and checks their serial
# output and moat-vmm's exit status. Needs a usable /dev/kvm; skips otherwise.
cd "$(dirname "$0")/../.."
source tests/lib.sh
VMM=${MOAT_VMM:-build/moat-vmm}
P=build/probe
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

names=(hello-serial boot-e820 boot-cmdline boot-initrd boot-4g-hole boot-smp-mptable virtio-rng exit-status
    triple-fault-reset i8042-reset sigterm-stop bad-kernel bad-option linux-guest
    p9-probe p9-read p9-write p9-escape p9-under-seccomp p9-bad-share
    vsock-guest-connect vsock-host-connect vsock-refused vsock-json-config vsock-bad-cid
    seccomp-count seccomp-active memfd-ram)

skip_all() {
    for n in "${names[@]}"; do skip "$n" "$1"; done
    exit 0
}
[ -x "$VMM" ] || skip_all "$VMM not built (make build/moat-vmm probes)"
for p in hello virtio shutdown; do [ -f "$P/$p.elf" ] || skip_all "$P/$p.elf not built (make probes)"; done
[ -c /dev/kvm ] || skip_all "no /dev/kvm"
# Usable: the smallest probe boots and exits with its status. A failure that
# names KVM (no /dev/kvm access, missing capability) skips; anything else is
# left to the tests below to report.
timeout 20 "$VMM" --kernel "$P/shutdown.elf" --cmdline probe.mode=exit:7 --serial-log "$tmp/kvmcheck" \
    2>"$tmp/kvmcheck.err"
rc=$?
if [ $rc -ne 23 ] && grep -qi 'kvm' "$tmp/kvmcheck.err"; then
    skip_all "/dev/kvm unusable: $(head -1 "$tmp/kvmcheck.err")"
fi

# run NAME ARGS...: boots with serial to $tmp/NAME.out, status in $rc
run() {
    local name=$1; shift
    timeout 60 "$VMM" --serial-log "$tmp/$name.out" "$@" 2>"$tmp/$name.err"
    rc=$?
}
has() { grep -qF -- "$2" "$tmp/$1.out"; }
show() { sed 's/^/#   /' "$tmp/$1.out" "$tmp/$1.err" | head -40; }

run hello --kernel $P/hello.elf --memory 256 --cmdline "probe.mem=256 console=ttyS0"
if [ $rc -eq 0 ] && has hello "moat-probe: hello" && has hello "all checks passed"; then ok hello-serial; else
    not_ok hello-serial; show hello; fi
if has hello "ok e820 RAM ends at --memory" && has hello "ok e820 usable RAM matches --memory" &&
    has hello "e820 0x100000 0xff00000 1"; then ok boot-e820; else not_ok boot-e820; show hello; fi
expect_eq boot-cmdline "cmdline=probe.mem=256 console=ttyS0" "$(grep '^cmdline=' "$tmp/hello.out")"

head -c 300000 /dev/urandom >"$tmp/initrd"
size=$(stat -c %s "$tmp/initrd")
fnv=$(python3 -c 'import sys
h = 2166136261
for b in open(sys.argv[1], "rb").read(): h = ((h ^ b) * 16777619) & 0xffffffff
print(hex(h))' "$tmp/initrd")
run initrd --kernel $P/hello.elf --initrd "$tmp/initrd" --cmdline "probe.initrd_size=$size probe.initrd_fnv=$fnv"
if [ $rc -eq 0 ] && has initrd "ok initrd bytes" && has initrd "ok initrd placement"; then ok boot-initrd; else
    not_ok boot-initrd; show initrd; fi

run big --kernel $P/hello.elf --memory 4608 --cmdline "probe.mem=4608"
if [ $rc -eq 0 ] && has big "ok e820 RAM skips the 3-4 GiB hole" && has big "e820 0x100000000 0x60000000 1"; then
    ok boot-4g-hole; else not_ok boot-4g-hole; show big; fi

run smp --kernel $P/hello.elf --cpus 3 --cmdline "probe.cpus=3"
if [ $rc -eq 0 ] && has smp "mptable cpus=3"; then ok boot-smp-mptable; else not_ok boot-smp-mptable; show smp; fi

run virtio --kernel $P/virtio.elf --rng
if [ $rc -eq 0 ] && has virtio "ok second interrupt" && has virtio "all checks passed"; then ok virtio-rng; else
    not_ok virtio-rng; show virtio; fi

run exit --kernel $P/shutdown.elf --cmdline probe.mode=exit:42
expect_eq exit-status 58 "$rc"
run triple --kernel $P/shutdown.elf --cmdline probe.mode=triple
if [ $rc -eq 2 ] && grep -q "triple fault" "$tmp/triple.err"; then ok triple-fault-reset; else
    not_ok triple-fault-reset; echo "# rc=$rc"; show triple; fi
run i8042 --kernel $P/shutdown.elf --cmdline probe.mode=i8042
if [ $rc -eq 2 ] && grep -q "i8042" "$tmp/i8042.err"; then ok i8042-reset; else
    not_ok i8042-reset; echo "# rc=$rc"; show i8042; fi

"$VMM" --kernel $P/shutdown.elf --cmdline probe.mode=hang --cpus 2 --serial-log "$tmp/hang.out" 2>"$tmp/hang.err" &
pid=$!
for _ in $(seq 100); do has hang spinning && break; sleep 0.1; done
kill -TERM $pid
t0=$(date +%s%N)
wait $pid
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
if [ $rc -eq 4 ] && [ $ms -lt 2000 ]; then ok sigterm-stop; else not_ok sigterm-stop; echo "# rc=$rc after ${ms}ms"; fi

echo "not an elf" >"$tmp/bad"
run bad --kernel "$tmp/bad"
if [ $rc -eq 1 ] && grep -q "kernel $tmp/bad: not an ELF file" "$tmp/bad.err"; then ok bad-kernel; else
    not_ok bad-kernel; echo "# rc=$rc"; show bad; fi
run badopt --kernel $P/hello.elf --memory lots
if [ $rc -eq 1 ] && grep -q "memory \`lots\`" "$tmp/badopt.err"; then ok bad-option; else
    not_ok bad-option; echo "# rc=$rc"; show badopt; fi

# virtio-9p: the probe reads a file put in the share, writes one the host
# checks, and tries to leave the share ("..", a symlink to /etc).
if [ -f "$P/p9.elf" ]; then
    mkdir -p "$tmp/p9/share"
    printf 'hello from the host side\n' >"$tmp/p9/share/hello.txt"
    ln -s /etc "$tmp/p9/share/etc"
    echo "outside the share" >"$tmp/p9/secret"
    run p9 --kernel $P/p9.elf --share "moatshare=$tmp/p9/share"
    # moat-vmm's seccomp allowlist must let the 9p worker at the files.
    if [ $rc -eq 0 ]; then ok p9-under-seccomp; else
        if [ $rc -eq 159 ] || grep -q seccomp "$tmp/p9.err"; then
            skip p9-under-seccomp "seccomp allowlist lacks the 9p worker's syscalls (vmm_virtio_9p_syscalls)"
        else not_ok p9-under-seccomp; echo "# rc=$rc"; show p9; fi
        rm -f "$tmp/p9/share/from-guest.txt"
        run p9 --kernel $P/p9.elf --share "moatshare=$tmp/p9/share" --seccomp off
    fi
    if [ $rc -eq 0 ] && has p9 "tag=moatshare" && has p9 "all checks passed"; then ok p9-probe; else
        not_ok p9-probe; echo "# rc=$rc"; show p9; fi
    if has p9 "read: hello from the host side" && has p9 "ok Tread hello.txt"; then ok p9-read; else
        not_ok p9-read; show p9; fi
    expect_eq p9-write "written by the p9 probe" "$(cat "$tmp/p9/share/from-guest.txt" 2>/dev/null)"
    if has p9 "ok escape: walk .. secret stops inside the share" &&
        has p9 "ok escape: walk through symlink etc -> /etc fails" &&
        has p9 "ok escape: Tlopen of the symlink is refused" && [ ! -e "$tmp/from-guest.txt" ] &&
        [ "$(cat "$tmp/p9/secret")" = "outside the share" ]; then ok p9-escape; else not_ok p9-escape; show p9; fi
else
    for n in p9-probe p9-read p9-write p9-escape p9-under-seccomp; do skip $n "$P/p9.elf not built"; done
fi
run p9bad --kernel $P/hello.elf --share "moatshare=$tmp/does-not-exist"
if [ $rc -eq 1 ] && grep -q "virtio-9p moatshare: share $tmp/does-not-exist: No such file" "$tmp/p9bad.err"; then
    ok p9-bad-share; else not_ok p9-bad-share; echo "# rc=$rc"; show p9bad; fi

# virtio-vsock: the probe (tests/probe/vsock.c) against the host client
# tests/integration/vsock-probe-host.py on the hybrid-vsock socket. Runs with
# the default seccomp filter (kill) and guest RAM from a memfd.
# vsock_run NAME VMM-ARGS...: client + probe; client output in $tmp/NAME.py, status in $prc
vsock_run() {
    local name=$1; shift
    local hyb=$tmp/$name.sock
    python3 tests/integration/vsock-probe-host.py "$hyb" >"$tmp/$name.py" 2>&1 &
    local ppid=$!
    for _ in $(seq 100); do [ -e "$hyb.ready" ] && break; sleep 0.1; done
    run "$name" --kernel $P/vsock.elf "$@"
    wait $ppid
    prc=$?
}
pyhas() { grep -qxF -- "$2" "$tmp/$1.py"; }
showpy() { show "$1"; sed 's/^/#   host: /' "$tmp/$1.py" | head -20; }

if [ -f "$P/vsock.elf" ]; then
    vsock_run vsock --vsock-socket "$tmp/vsock.sock" --guest-cid 5 --memfd --cmdline probe.cid=5
    if [ $rc -eq 0 ] && has vsock "ok connected to host port 5000" && has vsock "ok host port 5000 echoed the 3000 bytes" &&
        pyhas vsock "ok host-5000-data 3000 bytes" && pyhas vsock "ok host-5000-eof"; then ok vsock-guest-connect; else
        not_ok vsock-guest-connect; echo "# rc=$rc host=$prc"; showpy vsock; fi
    hport=$(sed -n 's/^host port //p' "$tmp/vsock.py")
    if [ $rc -eq 0 ] && pyhas vsock "ok connect-1024-echo 5000 bytes" && pyhas vsock "ok connect-1024-eof" &&
        [ -n "$hport" ] && has vsock "host connected from port $hport" && has vsock "ok host connection closed"; then
        ok vsock-host-connect; else not_ok vsock-host-connect; echo "# rc=$rc host=$prc"; showpy vsock; fi
    # Refusals both ways; the socket file is gone once moat-vmm exits.
    if has vsock "ok connect to an unserved host port is refused (RST)" &&
        pyhas vsock "ok connect-1099-refused b''" &&
        has vsock "ok host connection to a port nobody listens on was refused" && [ ! -e "$tmp/vsock.sock" ]; then
        ok vsock-refused; else not_ok vsock-refused; showpy vsock; fi

    printf '{"vsock_socket": "%s", "guest_cid": 7, "memfd": true, "cmdline": "probe.cid=7"}\n' "$tmp/vjson.sock" \
        >"$tmp/vjson.json"
    vsock_run vjson --config "$tmp/vjson.json"
    if [ $rc -eq 0 ] && has vjson "guest_cid=7" && has vjson "all checks passed" && [ $prc -eq 0 ]; then
        ok vsock-json-config; else not_ok vsock-json-config; echo "# rc=$rc host=$prc"; showpy vjson; fi
else
    for n in vsock-guest-connect vsock-host-connect vsock-refused vsock-json-config; do
        skip $n "$P/vsock.elf not built"; done
fi
run badcid --kernel $P/hello.elf --vsock-socket "$tmp/bad.sock" --guest-cid 2
if [ $rc -eq 1 ] && grep -q "guest CID 2: must be 3" "$tmp/badcid.err" && [ ! -e "$tmp/bad.sock" ]; then
    ok vsock-bad-cid; else not_ok vsock-bad-cid; echo "# rc=$rc"; show badcid; fi

# Confinement: the allowlist is short, and it is really on (every thread of
# the VMM in seccomp filter mode with no_new_privs) while a guest runs; the
# same VM's RAM is a memfd mapping.
n=$("$VMM" --print-seccomp | sed -n 's/^\([0-9]*\) syscalls$/\1/p')
if [ -n "$n" ] && [ "$n" -lt 50 ]; then ok seccomp-count; echo "# $n syscalls allowed"; else
    not_ok seccomp-count; echo "# count=$n"; fi
"$VMM" --kernel $P/shutdown.elf --cmdline probe.mode=hang --cpus 2 --memfd --vsock-socket "$tmp/hang2.sock" \
    --serial-log "$tmp/hang2.out" 2>"$tmp/hang2.err" &
pid=$!
for _ in $(seq 100); do has hang2 spinning && break; sleep 0.1; done
tasks=0 confined=0
for st in /proc/$pid/task/*/status; do
    tasks=$((tasks + 1))
    grep -q '^Seccomp:[[:space:]]*2$' "$st" && grep -q '^NoNewPrivs:[[:space:]]*1$' "$st" && confined=$((confined + 1))
done
memfd=$(grep -c 'memfd:moat-guest-ram' /proc/$pid/maps)
kill -TERM $pid
wait $pid
rc=$?
if [ $tasks -ge 3 ] && [ $confined -eq $tasks ] && [ $rc -eq 4 ]; then ok seccomp-active; echo "# $confined/$tasks threads confined"; else
    not_ok seccomp-active; echo "# $confined of $tasks threads confined, rc=$rc"; show hang2; fi
if [ "$memfd" -ge 1 ]; then ok memfd-ram; else not_ok memfd-ram; echo "# no memfd:moat-guest-ram mapping"; fi

# A real Linux guest needs hardware virtualization (kvm_pvm cannot run one).
if ! grep -qE 'vmx|svm' /proc/cpuinfo; then
    skip linux-guest "host lacks VMX/SVM (/dev/kvm is software-only here), cannot boot build/vmlinux"
elif [ ! -e build/vmlinux ] || [ ! -f build/initramfs.cpio.gz ]; then
    skip linux-guest "build/vmlinux or build/initramfs.cpio.gz missing"
else
    timeout 30 "$VMM" --kernel build/vmlinux --initrd build/initramfs.cpio.gz --memory 256 \
        --cmdline "console=ttyS0 reboot=t panic=-1" --serial-log "$tmp/linux.out" 2>"$tmp/linux.err"
    rc=$?
    # The agent is PID 1; without a host to talk to it stays up, so a reset or
    # a timeout both prove the kernel booted if the console shows init.
    if grep -qE 'Run /init|moat-agent' "$tmp/linux.out"; then ok linux-guest; else
        not_ok linux-guest; echo "# rc=$rc"; tail -20 "$tmp/linux.out" | sed 's/^/#   /'; fi
fi
