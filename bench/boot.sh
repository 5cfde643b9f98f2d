#!/bin/bash
# Boot benchmark for moat run with the QEMU backend.
#   bench/boot.sh [RUNS]
# For each guest kernel variant, over RUNS runs (default 3), prints:
#   ready_ms   QEMU launch -> the agent answered Check (moat --debug log)
#   output_ms  moat run started -> the container's first byte on stdout
#   total_ms   moat run started -> moat exited (VM gone, host cleaned)
#   used_kib   guest MemTotal - MemAvailable, read inside the container
# Variants: the lean kernel (build/vmlinux); the lean kernel without its
# optional fragments (net, overlayfs), built with guest-kernel-config/build.sh
# (cached; BENCH_BUILD_VARIANT=0 skips it); Debian's linux-image-cloud-amd64
# cannot serve (the script prints why from its config).
set -u
cd "$(dirname "$0")/.."
runs=${1:-3}
MOAT=${MOAT:-$PWD/build/moat}
work=$(mktemp -d /tmp/moat-bench.XXXXXX)
root=$work/root
trap 'rm -rf "$work"' EXIT

scripts/mkbundle.sh "$work/b" >/dev/null
jq '.process.args = ["sh", "-c", "echo first; awk \"/^MemTotal:/{t=\\$2} /^MemAvailable:/{a=\\$2} END{print \\\"used=\\\" t-a}\" /proc/meminfo"]' \
    "$work/b/config.json" >"$work/c.json" && mv "$work/c.json" "$work/b/config.json"

ms() { echo $(($(date +%s%N) / 1000000)); }

bench_kernel() { # LABEL VMLINUX
    local label=$1 kernel=$2 i ready output total used sr=0 so=0 st=0 su=0 n=0
    for i in $(seq "$runs"); do
        local t0 t1 t2 log=$work/log.$i
        rm -f "$log"
        t0=$(ms)
        MOAT_KERNEL=$kernel "$MOAT" --root "$root" --debug --log "$log" run -b "$work/b" bench$i </dev/null 2>/dev/null |
            { read -r _; echo "$(ms)" >"$work/first"; cat >"$work/rest"; }
        t2=$(ms)
        t1=$(cat "$work/first" 2>/dev/null || echo "$t2")
        ready=$(sed -n 's/.*answered \([0-9]*\) ms after launch.*/\1/p' "$log" | head -1)
        used=$(sed -n 's/^used=//p' "$work/rest")
        [ -n "$ready" ] && [ -n "$used" ] || { echo "  $label run $i failed (see $log)"; continue; }
        output=$((t1 - t0)); total=$((t2 - t0))
        sr=$((sr + ready)); so=$((so + output)); st=$((st + total)); su=$((su + used)); n=$((n + 1))
    done
    if [ $n -gt 0 ]; then
        printf '%-34s %9d %10d %9d %9d\n' "$label" $((sr / n)) $((so / n)) $((st / n)) $((su / n))
    fi
}

printf 'moat run boot benchmark, QEMU %s, accel %s, %d runs each (averages)\n' \
    "$(qemu-system-x86_64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')" \
    "$(grep -qwE 'vmx|svm' /proc/cpuinfo && [ -r /dev/kvm ] && echo kvm || echo tcg)" "$runs"
printf '%-34s %9s %10s %9s %9s\n' kernel ready_ms output_ms total_ms used_kib
lean=$(readlink -f build/vmlinux)
bench_kernel "lean $(cat "$(dirname "$lean")/release")" "$lean"

frags=()
for f in guest-kernel-config/*.config; do
    case "$(basename "$f")" in net.config | overlayfs.config) ;; *) frags+=("$PWD/$f") ;; esac
done
if [ "${BENCH_BUILD_VARIANT:-1}" = 1 ]; then
    if variant=$(nice -n 19 guest-kernel-config/build.sh "$work/vmlinux-min" "${frags[@]}" 2>"$work/build.log" | tail -1) &&
        [ -f "$variant" ]; then
        bench_kernel "lean minus net,overlayfs" "$variant"
    else
        echo "lean minus net,overlayfs: kernel build failed (tail of log:)"; tail -3 "$work/build.log"
    fi
else
    echo "lean minus net,overlayfs: skipped (BENCH_BUILD_VARIANT=0)"
fi

# Debian's cloud kernel: say why it cannot serve, from its config when one
# is at hand (/boot, or $MOAT_CACHE_DIR/debian-kernel/config-*).
cfg=$(ls /boot/config-*cloud-amd64 "${MOAT_CACHE_DIR:-/var/cache/moat}"/debian-kernel/config-*cloud-amd64 2>/dev/null | head -1)
echo
if [ -n "$cfg" ]; then
    echo "Debian $(basename "$cfg" | sed 's/^config-//'): not measured, it cannot serve moat:"
    for o in NET_9P 9P_FS VIRTIO_MMIO VIRTIO_MMIO_CMDLINE_DEVICES VSOCKETS VIRTIO_VSOCKETS; do
        v=$(grep -E "^(# )?CONFIG_$o[= ]" "$cfg" | sed 's/^# CONFIG_.* is not set/not set/; s/^CONFIG_[A-Z0-9_]*=//')
        printf '  CONFIG_%-28s %s\n' "$o" "${v:-absent (depends on an unset option)}"
    done
    cat <<'NOTE'
  No 9p means no guest share (rootfs, volumes); without
  VIRTIO_MMIO_CMDLINE_DEVICES the microvm's virtio-mmio devices (declared on
  the command line, acpi=off) are not found; vsock and virtio-mmio are
  modules, and moat's initramfs is only the static agent (no modules, no
  loader). So the comparison is the lean kernel with and without its
  optional fragments.
NOTE
else
    cat <<'NOTE'
Debian linux-image-cloud-amd64: not measured (no config at hand; put its
config-* in /var/cache/moat/debian-kernel/ to print why). Debian 12's
6.1.0-56-cloud-amd64 has CONFIG_NET_9P unset and
CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES unset, and vsock/virtio-mmio as modules,
so it cannot serve moat; the comparison is the lean kernel with and without
its optional fragments.
NOTE
fi
