#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# mkinitramfs.sh AGENT OUT: the guest's initramfs, a gzip'd newc cpio whose
# /init is the static moat-agent. Besides it only the mount points the agent
# uses before it has a tmpfs root, and /dev/console so the kernel hands init
# the serial console as stdio. Reproducible: fixed mtimes and owners.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 AGENT OUT" >&2
    exit 2
fi
agent=$1
out=$2
[ -x "$agent" ] || { echo "mkinitramfs: $agent: not an executable" >&2; exit 1; }
if file -L "$agent" 2>/dev/null | grep -q 'dynamically linked'; then
    echo "mkinitramfs: $agent is dynamically linked; the guest has no libraries" >&2
    exit 1
fi
stage=$(mktemp -d "${TMPDIR:-/tmp}/moat-initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
mkdir -p "$stage/dev" "$stage/proc" "$stage/sys" "$stage/run" "$stage/tmp"
cp "$agent" "$stage/init"
chmod 0755 "$stage/init"
if [ "$(id -u)" = 0 ]; then
    mknod -m 0600 "$stage/dev/console" c 5 1
else
    echo "mkinitramfs: not root, no /dev/console node (the agent opens it after mounting devtmpfs)" >&2
fi
find "$stage" -exec touch -h -d @0 {} +
mkdir -p "$(dirname "$out")"
(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9 -n >"$out.tmp"
mv "$out.tmp" "$out"
