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
    triple-fault-reset i8042-reset sigterm-stop bad-kernel bad-option linux-guest)

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
