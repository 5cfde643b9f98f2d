#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# moat-vmm vs QEMU microvm, booting the same probe ELF (build/probe/bench.elf:
# moat-vmm enters it at its 64-bit ELF entry, QEMU through its PVH note):
#   - time from exec to the probe's first serial byte (median of N runs)
#   - host RSS of the monitor once the probe is up
# Usage: bench/vmm.sh [runs]   (default 5). Needs /dev/kvm; QEMU falls back
# to TCG if its KVM accelerator does not start, and says so.
#        bench/vmm.sh --nested    the same comparison with a Linux guest, in
# the nested test bed's L1 (tests/nested/bed.sh: an emulated SVM under QEMU
# TCG): launch to the agent's answer, `moat run true`, the VMM's RSS and
# PSS, moat-vmm against QEMU -accel kvm (bench/vmm-nested-inner.sh). Those
# figures compare the two VMMs under the same (slow) emulation; they say
# nothing absolute about real hardware.
set -u
cd "$(dirname "$0")/.."
if [ "${1:-}" = --nested ]; then
    R=build/nested/bench
    tests/nested/bed.sh "$R" vmmbench=bench/vmm-nested-inner.sh
    rc=$?
    if [ "$rc" -eq 2 ]; then
        echo "bench/vmm.sh --nested: this host cannot run the nested bed: $(cat "$R/skip")"
        exit 1
    fi
    grep -E '^(ok|not ok|#)' "$R/vmmbench.tap" 2>/dev/null || { echo "no results (see $R/console.log)"; exit 1; }
    exit "$rc"
fi
runs=${1:-5}
VMM=${MOAT_VMM:-build/moat-vmm}
PROBE=build/probe/bench.elf
for f in "$VMM" "$PROBE"; do
    [ -e "$f" ] || { echo "bench/vmm.sh: $f missing (make build/moat-vmm probes)" >&2; exit 1; }
done
[ -c /dev/kvm ] || { echo "bench/vmm.sh: no /dev/kvm" >&2; exit 1; }

measure() { # label runs cmd...
    python3 - "$@" <<'PY'
import os, select, signal, statistics, subprocess, sys, time
label, runs, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
times, rss = [], []
for _ in range(runs):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    ready, _, _ = select.select([p.stdout], [], [], 20)
    b = os.read(p.stdout.fileno(), 1) if ready else b""
    t1 = time.monotonic()
    if not b:
        p.kill()
        p.wait()
        print(f"# {label}: no serial output within 20 s (exit {p.returncode})")
        sys.exit(1)
    time.sleep(0.3)
    with open(f"/proc/{p.pid}/status") as s:
        for line in s:
            if line.startswith("VmRSS:"):
                rss.append(int(line.split()[1]))
    p.send_signal(signal.SIGTERM)
    p.wait()
    times.append((t1 - t0) * 1000)
print(f"{label:24s} first serial byte {statistics.median(times):8.1f} ms (min {min(times):.1f}, max {max(times):.1f})"
      f"   RSS {statistics.median(rss) / 1024:7.1f} MiB")
PY
}

echo "# $runs runs each, 128 MiB guest, 1 vCPU, probe $PROBE"
measure "moat-vmm" "$runs" "$VMM" --kernel "$PROBE" --memory 128 --serial-log -
qemu=$(command -v qemu-system-x86_64 || true)
if [ -z "$qemu" ]; then
    echo "qemu-system-x86_64 not installed: no comparison"
    exit 0
fi
qargs=(-M microvm -m 128 -nodefaults -no-user-config -display none -serial stdio -kernel "$PROBE")
if ! measure "qemu microvm (kvm)" "$runs" "$qemu" "${qargs[@]}" -accel kvm; then
    echo "# QEMU's KVM accelerator did not boot the probe here: comparing with TCG instead"
    measure "qemu microvm (tcg)" "$runs" "$qemu" "${qargs[@]}" -accel tcg
fi
