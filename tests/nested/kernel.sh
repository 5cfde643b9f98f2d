#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The L1 kernel of the nested test bed (tests/nested/bed.sh): Debian's
# stock kernel, the package linux-image-amd64 depends on, which has kvm_amd
# as a module. Prints the directory of its unpacked tree:
#
#   tests/nested/kernel.sh    ->  $MOAT_CACHE_DIR/nested/<version>
#
# with boot/vmlinuz-<version> and lib/modules/<version> (depmod run) in it.
# The package is fetched with `apt-get download` and unpacked with
# `dpkg -x` into moat's cache dir (default /var/cache/moat); nothing is
# installed on the host. A second call finds the cached tree. If apt names
# no version (no package lists) or the download fails, the newest cached
# tree is used; with none, it exits 2 and says why on stderr (the bed then
# skips).
set -euo pipefail
cache=${MOAT_CACHE_DIR:-/var/cache/moat}/nested
log() { echo "nested-kernel: $*" >&2; }

# the newest tree a previous call finished, or nothing
newest_cached() {
    local d
    for d in $(ls -d "$cache"/*/done 2>/dev/null | sort -V -r); do
        dirname "$d"
        return 0
    done
}

kv=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: linux-image-//p' | head -1) || true
if [ -z "$kv" ]; then
    if d=$(newest_cached) && [ -n "$d" ]; then
        log "apt names no linux-image-amd64 dependency; using the cached $(basename "$d")"
        echo "$d"
        exit 0
    fi
    log "apt knows no linux-image-amd64 (no package lists? apt-get update) and nothing is cached in $cache"
    exit 2
fi
dir=$cache/$kv
if [ -f "$dir/done" ]; then
    echo "$dir"
    exit 0
fi

mkdir -p "$cache"
# One fetch of a version at a time: a second caller waits, then finds it.
exec 9>"$cache/.lock-$kv"
if ! flock -n 9; then
    log "waiting for another fetch of $kv"
    flock 9
fi
if [ -f "$dir/done" ]; then
    echo "$dir"
    exit 0
fi

command -v depmod >/dev/null || { log "depmod is missing (apt-get install kmod)"; exit 2; }
rm -rf "$dir"
mkdir -p "$dir/deb"
log "fetching linux-image-$kv"
# apt-get download as root drops to _apt, which must be able to write here
chmod 0777 "$dir/deb"
if ! (cd "$dir/deb" && apt-get download -q "linux-image-$kv" >&2); then
    rm -rf "$dir"
    if d=$(newest_cached) && [ -n "$d" ]; then
        log "apt-get download linux-image-$kv failed; using the cached $(basename "$d")"
        echo "$d"
        exit 0
    fi
    log "apt-get download linux-image-$kv failed (no network or no apt source?)"
    exit 2
fi
dpkg -x "$dir"/deb/linux-image-"${kv}"_*.deb "$dir/tree.tmp"
depmod -b "$dir/tree.tmp" "$kv"
[ -f "$dir/tree.tmp/boot/vmlinuz-$kv" ] || { log "no boot/vmlinuz-$kv in the package"; exit 1; }
mv "$dir/tree.tmp/boot" "$dir/tree.tmp/lib" "$dir/"
rm -rf "$dir/tree.tmp" "$dir/deb"
echo "$kv" >"$dir/version"
touch "$dir/done"
log "cached $kv in $dir"
echo "$dir"
