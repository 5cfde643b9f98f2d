#!/bin/bash
# Build moat's lean guest kernel from Debian's linux-source-6.12.
#
#   guest-kernel-config/build.sh [OUT_LINK] [FRAGMENT.config ...]
#   guest-kernel-config/build.sh --key [FRAGMENT.config ...]
#   guest-kernel-config/build.sh --release-of VMLINUX
#
# Merges the fragments (default: every *.config here) onto tinyconfig with the
# kernel's merge_config.sh, builds vmlinux with make -j$(nproc), checks that
# every requested option survived, and caches the result under
# $MOAT_CACHE_DIR (default /var/cache/moat) keyed by a hash of the fragments,
# the recipe version below and the kernel source version. A second build with the same
# inputs is instant. OUT_LINK (default build/vmlinux) becomes a symlink to
# the cached vmlinux.
set -euo pipefail
# A parent make (make demo, make check, make -C ...) exports MAKEFLAGS with
# "w" and MAKELEVEL: every child make would then print "Entering
# directory" lines, even with -s, into whatever we capture. The kernel's
# make gets its own -j below; it must not inherit anything else.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES GNUMAKEFLAGS

here=$(cd "$(dirname "$0")" && pwd)

# A kernel release as uname -r prints it: one line, "6.12.118-moat".
valid_release() {
    [[ $1 =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?[A-Za-z0-9._+~-]*$ ]]
}
# release_of VMLINUX: the release compiled into the kernel's banner (what
# the guest's uname -r reports), or nothing.
release_of() {
    local r
    r=$(grep -a -o -m1 'Linux version [0-9][^ ]* (' "$1" | head -1) || true
    r=${r#Linux version }
    r=${r% (}
    valid_release "$r" && echo "$r"
}

if [ "${1:-}" = --release-of ]; then
    # build.sh --release-of VMLINUX: the release step alone (tests use it)
    r=$(release_of "$2") || { echo "guest-kernel: no kernel release in $2" >&2; exit 1; }
    echo "$r"
    exit 0
fi
print_key=
if [ "${1:-}" = --key ]; then
    # build.sh --key [FRAGMENT...]: print the cache key and stop
    print_key=1
    shift
    set -- "$here/../build/vmlinux" "$@"
fi
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
    # stdout carries only the vmlinux path: callers capture it
    apt-get update >&2
    apt-get install -y --no-install-recommends linux-source-6.12 bc bison flex libelf-dev libssl-dev xz-utils cpio >&2
fi
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12)

for f in "${frags[@]}"; do
    [ -f "$f" ] || { log "no such fragment: $f"; exit 1; }
done

# The build recipe's version: bump it whenever a change to this script
# changes what the kernel build produces (the make targets and variables
# below, the base config). Changes to the bookkeeping around the build
# (messages, the cache checks) keep it, so they cost no rebuild.
recipe=1
key=$( { echo "$srcver"; echo "recipe $recipe";
         for f in "${frags[@]}"; do basename "$f"; cat "$f"; done; } | sha256sum | cut -c1-16)
dir=$cache/kernel/$key
if [ -n "$print_key" ]; then
    echo "$key"
    exit 0
fi
mkdir -p "$(dirname "$out")"

# One build of a key at a time: a second caller (another make, a test bed)
# waits here and then finds the finished build.
mkdir -p "$cache/kernel"
exec 9>"$cache/kernel/.lock-$key"
if ! flock -n 9; then
    log "waiting for another build of $key"
    flock 9
fi

if [ -f "$dir/vmlinux" ] && [ -f "$dir/done" ]; then
    rel=$(cat "$dir/release" 2>/dev/null || true)
    if ! valid_release "$rel"; then
        # an older build.sh captured make's directory messages into it
        if rel=$(release_of "$dir/vmlinux"); then
            log "repaired the cached release file of $key"
            echo "$rel" >"$dir/release.tmp" && mv "$dir/release.tmp" "$dir/release"
        else
            log "cached build $key is broken (no kernel release); rebuilding"
            rm -f "$dir/done"
        fi
    fi
fi
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
rel=$(cat "$dir/obj/include/config/kernel.release" 2>/dev/null || true)
if ! valid_release "$rel" || [ "$(release_of "$dir/vmlinux")" != "$rel" ]; then
    log "cannot tell the built kernel's release (kernel.release: '$rel')"
    exit 1
fi
echo "$rel" >"$dir/release"
touch "$dir/done"
# Keep the cache small: the object tree is only needed to rebuild.
rm -rf "$dir/obj"
log "built $(cat "$dir/release") in $(( $(date +%s) - start ))s"
ln -sfn "$dir/vmlinux" "$out"
echo "$dir/vmlinux"
