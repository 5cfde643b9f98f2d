#!/bin/bash
# Build moat's lean guest kernel from Debian's linux-source-6.12.
#
#   guest-kernel-config/build.sh [OUT_LINK] [FRAGMENT.config ...]
#
# Merges the fragments (default: every *.config here) onto tinyconfig with the
# kernel's merge_config.sh, builds vmlinux with make -j$(nproc), checks that
# every requested option survived, and caches the result under
# $MOAT_CACHE_DIR (default /var/cache/moat) keyed by a hash of the fragments,
# this script and the kernel source version. A second build with the same
# inputs is instant. OUT_LINK (default build/vmlinux) becomes a symlink to
# the cached vmlinux.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../build/vmlinux}
shift || true
if [ $# -gt 0 ]; then
    frags=("$@")
else
    frags=("$here"/*.config)
fi
cache=${MOAT_CACHE_DIR:-/var/cache/moat}
tarball=/usr/src/linux-source-6.12.tar.xz

log() { echo "guest-kernel: $*" >&2; }

if [ ! -f "$tarball" ]; then
    log "installing linux-source-6.12"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends linux-source-6.12 bc bison flex libelf-dev libssl-dev xz-utils cpio
fi
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12)

for f in "${frags[@]}"; do
    [ -f "$f" ] || { log "no such fragment: $f"; exit 1; }
done

key=$( { echo "$srcver"; sha256sum "$here/build.sh" | cut -d' ' -f1;
         for f in "${frags[@]}"; do basename "$f"; cat "$f"; done; } | sha256sum | cut -c1-16)
dir=$cache/kernel/$key
mkdir -p "$(dirname "$out")"

if [ -f "$dir/vmlinux" ] && [ -f "$dir/done" ]; then
    log "cached build $key ($(cat "$dir/release"))"
    ln -sfn "$dir/vmlinux" "$out"
    echo "$dir/vmlinux"
    exit 0
fi

src=$cache/src/linux-source-$srcver
if [ ! -f "$src/.extracted" ]; then
    log "extracting $tarball (once)"
    rm -rf "$src"
    mkdir -p "$src"
    tar -C "$src" --strip-components=1 -xf "$tarball"
    touch "$src/.extracted"
fi

rm -rf "$dir"
mkdir -p "$dir/obj"
log "configuring $key from tinyconfig + $(for f in "${frags[@]}"; do printf '%s ' "$(basename "$f")"; done)"
make -s -C "$src" O="$dir/obj" ARCH=x86_64 tinyconfig >/dev/null
(cd "$dir/obj" && KCONFIG_CONFIG=.config "$src/scripts/kconfig/merge_config.sh" -m -O "$dir/obj" .config "${frags[@]}" >"$dir/merge.log")
make -s -C "$src" O="$dir/obj" ARCH=x86_64 olddefconfig >/dev/null

# Every option a fragment asks for must have survived olddefconfig.
missing=0
for f in "${frags[@]}"; do
    while IFS= read -r line; do
        case "$line" in
        CONFIG_*=*)
            if ! grep -qxF "$line" "$dir/obj/.config"; then
                log "$(basename "$f"): $line was dropped (now: $(grep -E "^(# )?${line%%=*}[= ]" "$dir/obj/.config" || echo unset))"
                missing=1
            fi ;;
        "# CONFIG_"*" is not set")
            opt=${line#\# }; opt=${opt%% *}
            if grep -q "^$opt=" "$dir/obj/.config"; then
                log "$(basename "$f"): $opt should be unset"
                missing=1
            fi ;;
        esac
    done <"$f"
done
if [ "$missing" -ne 0 ]; then
    log "requested options were dropped; fix the fragments"
    exit 1
fi

jobs=$(nproc)
log "building vmlinux with make -j$jobs (several minutes on 2 cores)"
start=$(date +%s)
make -C "$src" O="$dir/obj" ARCH=x86_64 -j"$jobs" vmlinux 2>&1 |
    grep --line-buffered -E '^  (CC|LD|AR|AS) ' | awk '{ n++; if (n % 200 == 0) { printf "guest-kernel: %d objects built, last %s\n", n, $2 > "/dev/stderr"; fflush() } }'
if [ "${PIPESTATUS[0]}" -ne 0 ] || [ ! -f "$dir/obj/vmlinux" ]; then
    log "kernel build failed; rerun: make -C $src O=$dir/obj ARCH=x86_64 vmlinux"
    exit 1
fi
cp "$dir/obj/vmlinux" "$dir/vmlinux"
cp "$dir/obj/.config" "$dir/config"
make -s -C "$src" O="$dir/obj" ARCH=x86_64 kernelrelease >"$dir/release"
touch "$dir/done"
# Keep the cache small: the object tree is only needed to rebuild.
rm -rf "$dir/obj"
log "built $(cat "$dir/release") in $(( $(date +%s) - start ))s"
ln -sfn "$dir/vmlinux" "$out"
echo "$dir/vmlinux"
