#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# mkdeb.sh OUTDIR: the Debian package (make deb). dpkg-buildpackage runs in
# a copy of the tree (git's tracked and untracked-but-not-ignored files, so
# uncommitted edits count) with packaging/debian as its debian/, so the
# source tree itself never gets a debian/ directory. The .deb (and its
# -dbgsym) land in OUTDIR, with OUTDIR/deb.commit naming the commit they
# were built from ("-dirty" appended when the tree had changes) and
# OUTDIR/deb-build.log the build's output.
set -euo pipefail
out=${1:?usage: mkdeb.sh OUTDIR}
top=$(git rev-parse --show-toplevel)
cd "$top"
mkdir -p "$out"
out=$(cd "$out" && pwd)
for t in dpkg-buildpackage dh go-md2man; do
    command -v "$t" >/dev/null || { echo "mkdeb: $t not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
commit=$(git rev-parse HEAD)
[ -z "$(git status --porcelain --untracked-files=normal)" ] || commit=$commit-dirty
tmp=$(mktemp -d "${TMPDIR:-/tmp}/moat-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/moat"
# deleted-but-tracked files are skipped
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar -c --null -T - -f - | tar -x -C "$tmp/moat" -f -
rm -rf "$tmp/moat/debian"
cp -r packaging/debian "$tmp/moat/debian"
# a parent make's flags must not reach the package build's make; -J: make
# -j as many jobs as cores (DEB_BUILD_OPTIONS parallel=N still wins)
if ! (cd "$tmp/moat" && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS dpkg-buildpackage -b -us -uc -J"$(nproc)") >"$out/deb-build.log" 2>&1; then
    tail -n 40 "$out/deb-build.log" >&2
    echo "mkdeb: dpkg-buildpackage failed (log: $out/deb-build.log)" >&2
    exit 1
fi
rm -f "$out"/moat_*.deb "$out"/moat-dbgsym_*.deb "$out/deb.commit"
cp "$tmp"/moat_*.deb "$out/"
cp "$tmp"/moat-dbgsym_*.deb "$out/" 2>/dev/null || true
echo "$commit" >"$out/deb.commit"
ls "$out"/moat_*.deb
