#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The Debian package (make deb, packaging/debian): built (or reused when
# build/deb.commit says it was built from this clean commit), checked by
# lintian, installed with dpkg -i, then used from the installed paths alone
# (PATH without build/, no MOAT_* variable): moat env, moat check, a busybox
# container whose output comes from inside the guest, man moat; a drop-in in
# /etc/moat/moat.conf.d (in a private mount namespace over a copy of
# /etc/moat) changes the backend and the guest memory as moat env reports
# (and as the guest sees), a bad line fails with file:line; moat
# setup podman then podman --runtime moat run (in a private mount namespace
# over a copy of /etc/containers and a private /run). Then dpkg -r and
# --purge, and nothing of the package may be left on disk.
# This host is changed while the test runs: the EXIT trap purges the package
# whatever happened, and the test refuses to run (skips) where a moat
# package or any of its files is already installed, so it never replaces or
# deletes something it did not put there.
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

names=(deb-built lintian-clean deb-has-files dpkg-install installed-files-found vmlinux-unstripped
    agent-static-unstripped check-installed run-installed man-moat man-shim man-covers-verbs man-covers-options
    man-moat-conf conffile config-changes-env config-reaches-guest config-bad-line setup-podman-run
    dpkg-remove dpkg-purge nothing-left)
skip_all() {
    for n in "${names[@]}"; do skip "$n" "$1"; done
    exit 0
}
[ "$(id -u)" -eq 0 ] || skip_all "needs root (dpkg -i on this host)"
for t in dpkg-buildpackage dh go-md2man; do
    command -v "$t" >/dev/null || skip_all "no $t on this host (apt-get install dpkg-dev debhelper go-md2man)"
done
if dpkg-query -W -f='${Status}' moat 2>/dev/null | grep -qv "not-installed"; then
    skip_all "a moat package is installed already ($(dpkg-query -W -f='${Version} ${Status}' moat)); not replacing it"
fi

W=$(mktemp -d /tmp/moat-deb-test.XXXXXX)
installed=
cleanup() {
    if [ -n "$installed" ]; then
        # a container left by a failed check, then the package itself
        [ -x /usr/bin/moat ] && /usr/bin/moat --root "$W/root" delete -f deb-test >/dev/null 2>&1
        dpkg --purge moat >/dev/null 2>&1 || diag "cleanup: dpkg --purge moat failed"
    fi
    grep -o " $W/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
    rm -rf "$W"
}
trap cleanup EXIT
# interrupted (Ctrl-C, a runner's timeout): still through cleanup
trap 'exit 130' INT TERM HUP

# --- build (or reuse) -----------------------------------------------------
head=$(git rev-parse HEAD)
deb=$(ls build/moat_*_amd64.deb 2>/dev/null | head -1)
if [ -n "$deb" ] && [ "$(cat build/deb.commit 2>/dev/null)" = "$head" ] &&
    [ -z "$(git status --porcelain --untracked-files=normal)" ]; then
    diag "reusing $deb (built from $head)"
    ok "deb-built (reused, from $head)"
else
    if make -s deb >"$W/make.log" 2>&1; then
        deb=$(ls build/moat_*_amd64.deb | head -1)
        ok "deb-built ($deb)"
    else
        not_ok deb-built
        sed 's/^/#   /' "$W/make.log" | tail -n 30
        names=("${names[@]:1}")
        skip_all "no package was built"
    fi
fi

if command -v lintian >/dev/null; then
    if lintian --fail-on error,warning "$deb" >"$W/lintian" 2>&1; then ok lintian-clean; else
        not_ok lintian-clean
        sed 's/^/#   /' "$W/lintian"
    fi
else
    skip lintian-clean "no lintian on this host"
fi

dpkg-deb -c "$deb" | awk '{ print substr($6, 2) }' | sed 's,/$,,' | grep -v '^$' >"$W/contents"
want=(/usr/bin/moat /usr/bin/containerd-shim-moat-v2 /usr/libexec/moat/moat-vsock /usr/libexec/moat/moat-vmm
    /usr/share/moat/vmlinux /usr/share/moat/vmlinux.release /usr/share/moat/initramfs.cpio.gz
    /usr/share/man/man8/moat.8.gz /usr/share/man/man8/containerd-shim-moat-v2.8.gz
    /usr/share/man/man5/moat.conf.5.gz /etc/moat/moat.conf
    /usr/share/doc/moat/copyright /usr/share/doc/moat/README.md)
# dh_compress gzips a doc of more than 4 KiB: either form is the file
lacking=$(for f in "${want[@]}"; do grep -qxF -e "$f" -e "$f.gz" "$W/contents" || echo "$f"; done)
expect_eq deb-has-files "" "$lacking"

# Nothing of the package may be on disk before (a make install, a copy):
# dpkg would overwrite it and the removal delete it.
present=$(while read -r f; do [ -e "$f" ] && [ ! -d "$f" ] && echo "$f"; done <"$W/contents")
if [ -n "$present" ]; then
    diag "already on this host: $present"
    names=("${names[@]:3}")
    skip_all "files of the package are on this host already (not from a package); not overwriting them"
fi

# --- install --------------------------------------------------------------
installed=1
if dpkg -i "$deb" >"$W/dpkg.log" 2>&1; then ok dpkg-install; else
    not_ok dpkg-install
    sed 's/^/#   /' "$W/dpkg.log"
fi

# The installed programs with a clean environment: no build/ on PATH, no
# MOAT_* variable, run from a directory outside the tree.
inst() { (cd "$W" && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb "$@"); }

envout=$(inst moat env 2>&1)
if grep -qx MOAT_KERNEL=/usr/share/moat/vmlinux <<<"$envout" &&
    grep -qx MOAT_INITRD=/usr/share/moat/initramfs.cpio.gz <<<"$envout" &&
    grep -qx MOAT_VSOCK=/usr/libexec/moat/moat-vsock <<<"$envout" &&
    grep -qx MOAT_VMM=/usr/libexec/moat/moat-vmm <<<"$envout"; then
    ok installed-files-found
else
    not_ok installed-files-found
    diag "$envout"
fi

# dh_strip must have left the guest kernel alone: byte for byte the cached
# build of its key, with its symbols and PVH entry note.
key=$(guest-kernel-config/build.sh --key 2>/dev/null)
cached=${MOAT_CACHE_DIR:-/var/cache/moat}/kernel/$key/vmlinux
if [ -f "$cached" ]; then
    if cmp -s "$cached" /usr/share/moat/vmlinux &&
        [ "$(cat "${cached%/vmlinux}/release")" = "$(cat /usr/share/moat/vmlinux.release)" ]; then
        ok "vmlinux-unstripped (identical to the cached build $key)"
    else
        not_ok "vmlinux-unstripped (identical to the cached build $key)"
    fi
elif readelf -S /usr/share/moat/vmlinux | grep -q '\.symtab' && readelf -n /usr/share/moat/vmlinux | grep -q Xen; then
    ok "vmlinux-unstripped (symbols and PVH note)"
else
    not_ok "vmlinux-unstripped (symbols and PVH note)"
fi
mkdir "$W/initrd"
(cd "$W/initrd" && zcat /usr/share/moat/initramfs.cpio.gz | cpio -i --quiet init 2>/dev/null)
ftype=$(file -b "$W/initrd/init" 2>&1)
if grep -q 'statically linked' <<<"$ftype" && grep -q 'not stripped' <<<"$ftype"; then ok agent-static-unstripped; else
    not_ok agent-static-unstripped
    diag "$ftype"
fi

if out=$(inst moat check 2>&1); then ok check-installed; else
    not_ok check-installed
    diag "$out"
fi

# A container: its output names the guest kernel's release, not the host's.
bundle "$W/b" '.process.args = ["sh", "-c", "echo guest $(uname -r)"] | .process.terminal = false'
rel=$(cat /usr/share/moat/vmlinux.release)
out=$(inst timeout 120 moat --root "$W/root" run --bundle "$W/b" deb-test </dev/null 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && [ "$out" = "guest $rel" ] && [ "$rel" != "$(uname -r)" ]; then ok "run-installed (guest $rel)"; else
    not_ok run-installed
    diag "exit $rc, output: $out"
fi

# man pages render from the installed package (man-db's own lookup)
m=$(inst env MANPAGER=cat MANWIDTH=100 man moat 2>&1)
if grep -q '^NAME' <<<"$m" && grep -q 'moat run \[options\] ID' <<<"$m"; then ok man-moat; else
    not_ok man-moat
    diag "$(head -5 <<<"$m")"
fi
ms=$(inst env MANPAGER=cat MANWIDTH=100 man containerd-shim-moat-v2 2>&1)
if grep -q 'io.containerd.moat.v2' <<<"$ms"; then ok man-shim; else not_ok man-shim; fi

# the man page has a section for every verb moat --help lists, and names
# every option each verb's --help prints in that section (--help itself is
# described once, under the global options)
verbs=$(inst moat --help | sed -n '/^Commands:/,/^$/p' | awk 'NF > 1 { print $1 }')
lacking=$(for v in $verbs; do grep -q "^moat $v\b" <<<"$m" || echo "$v"; done | xargs)
expect_eq man-covers-verbs "" "$lacking"
lacking=$(for v in $verbs; do
    section=$(awk -v v="$v" '/^[A-Z]/ { in_v = 0 } /^moat [a-z]/ { in_v = ($2 == v) } in_v' <<<"$m")
    for o in $(inst moat "$v" --help 2>&1 | grep -oE -- '(^|[ [|,])--[a-z][a-z-]*' | grep -oE -- '--[a-z-]+' | sort -u); do
        [ "$o" = --help ] || grep -q -- "$o" <<<"$section" || echo "$v:$o"
    done
done | xargs)
expect_eq man-covers-options "" "$lacking"

mc=$(inst env MANPAGER=cat MANWIDTH=100 man 5 moat.conf 2>&1)
if grep -q 'memory_mib' <<<"$mc" && grep -q 'moat.conf.d' <<<"$mc"; then ok man-moat-conf; else not_ok man-moat-conf; fi

# --- the configuration ----------------------------------------------------
if dpkg-query -W -f='${Conffiles}\n' moat | grep -q '^ /etc/moat/moat.conf '; then ok conffile; else
    not_ok conffile
    diag "$(dpkg-query -W -f='${Conffiles}' moat)"
fi
# The drop-ins are written into a copy of /etc/moat bind-mounted over it in
# a private mount namespace: every other moat on this host keeps seeing the
# package's own /etc/moat, and a bad line there breaks nobody else's runs.
cp -a /etc/moat "$W/etc-moat"
mkdir "$W/etc-moat/moat.conf.d"
D=/etc/moat/moat.conf.d/50-deb-test.conf
inns() { inst unshare -m --propagation private sh -c 'mount --bind "$0" /etc/moat && exec "$@"' "$W/etc-moat" "$@"; }
printf '[runtime]\nhypervisor = qemu\n\n[guest]\nmemory_mib = 384\n' >"$W/etc-moat/moat.conf.d/50-deb-test.conf"
envout=$(inns moat env 2>&1)
if grep -qx MOAT_HYPERVISOR=qemu <<<"$envout" &&
    grep -qx "MOAT_HYPERVISOR_SOURCE=$D:2" <<<"$envout" &&
    grep -qx MOAT_VM_DEFAULT_MIB=384 <<<"$envout" &&
    grep -qx "MOAT_VM_DEFAULT_MIB_SOURCE=$D:5" <<<"$envout" &&
    grep -qx MOAT_CONFIG=/etc/moat/moat.conf <<<"$envout" && grep -qx MOAT_CONFIG_FOUND=true <<<"$envout"; then
    ok config-changes-env
else
    not_ok config-changes-env
    diag "$(grep -E 'HYPERVISOR|MIB|CONFIG' <<<"$envout")"
fi
bundle "$W/b2" '.process.args = ["grep", "MemTotal", "/proc/meminfo"] | .process.terminal = false'
out=$(inns timeout 120 moat --root "$W/root" run --bundle "$W/b2" deb-test2 </dev/null 2>&1)
inst moat --root "$W/root" delete -f deb-test2 >/dev/null 2>&1
kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' <<<"$out")
if [ -n "$kb" ] && [ "$kb" -gt $((300 * 1024)) ] && [ "$kb" -le $((384 * 1024)) ]; then
    ok "config-reaches-guest (memory_mib = 384: MemTotal $kb kB)"
else
    not_ok config-reaches-guest
    diag "$out"
fi
printf 'memroy_mib = 1\n' >>"$W/etc-moat/moat.conf.d/50-deb-test.conf"
out=$(inns moat --root "$W/root" list 2>&1)
rc=$?
if [ $rc -ne 0 ] && [[ "$out" == *"$D:6: guest.memroy_mib: unknown key"* ]]; then
    ok config-bad-line
else
    not_ok config-bad-line
    diag "rc=$rc: $out"
fi

# moat setup podman, then podman --runtime moat run: in a private mount
# namespace whose /etc/containers is a copy and whose /run is a tmpfs (moat
# and podman keep state there), so nothing of the host's changes.
if ! command -v podman >/dev/null || ! command -v conmon >/dev/null || [ ! -d /etc/containers ]; then
    skip setup-podman-run "no podman, conmon or /etc/containers"
elif ! archive=$(source tests/clients/lib.sh && clients_image_archive); then
    skip setup-podman-run "the busybox image archive could not be built"
else
    mkdir -p "$W/pm/etc" "$W/pm/storage"
    cp -a /etc/containers/. "$W/pm/etc/"
    cat >"$W/pm/run.sh" <<EOF
mount --bind $W/pm/etc /etc/containers && mount -t tmpfs tmpfs /run || exit 1
moat setup podman || exit 1
pm() { timeout -k 5 300 podman --root $W/pm/storage --storage-driver vfs --cgroup-manager cgroupfs \\
    --events-backend file "\$@"; }
pm load -i $archive >/dev/null 2>&1
pm --runtime moat run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \\
    moat-busybox:latest sh -c 'echo guest \$(uname -r)'
rc=\$?
pm rm -af >/dev/null 2>&1
pm system reset -f >/dev/null 2>&1
exit \$rc
EOF
    made_varlib=
    [ -e /var/lib/containers ] || made_varlib=1
    out=$(inst unshare -m --propagation private bash "$W/pm/run.sh" 2>&1)
    rc=$?
    [ -n "$made_varlib" ] && rm -rf /var/lib/containers
    if [ $rc -eq 0 ] && grep -qx "guest $rel" <<<"$out"; then ok "setup-podman-run (moat setup podman; podman --runtime moat run)"; else
        not_ok setup-podman-run
        diag "rc=$rc: $out"
    fi
fi

# --- remove ---------------------------------------------------------------
inst moat --root "$W/root" delete -f deb-test >/dev/null 2>&1
if dpkg -r moat >"$W/dpkg.log" 2>&1 && [ ! -e /usr/bin/moat ] && [ ! -e /usr/libexec/moat/moat-vmm ]; then
    ok dpkg-remove
else
    not_ok dpkg-remove
    sed 's/^/#   /' "$W/dpkg.log"
fi
if dpkg --purge moat >"$W/dpkg.log" 2>&1 && ! dpkg-query -W -f='${Status}\n' moat 2>/dev/null | grep -q installed; then
    ok dpkg-purge
    installed=
else
    not_ok dpkg-purge
    sed 's/^/#   /' "$W/dpkg.log"
fi
# every file of the package, and its own directories
left=$( (while read -r f; do [ -e "$f" ] && [ ! -d "$f" ] && echo "$f"; done <"$W/contents"
    for d in /usr/share/moat /usr/libexec/moat /usr/share/doc/moat /etc/moat; do [ -e "$d" ] && echo "$d"; done) | xargs)
expect_eq nothing-left "" "$left"

done_testing
