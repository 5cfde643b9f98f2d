#!/bin/bash
# guest-kernel-config/build.sh's cache bookkeeping, without building a
# kernel: the release file holds exactly the release however build.sh is
# started (a shell, make, make inside make), and a cache entry whose release
# file holds anything else (an older build.sh captured make's "Entering
# directory" lines) heals itself. Uses the kernel build/vmlinux points at.
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

B=$PWD/guest-kernel-config/build.sh
vm=$(readlink -f build/vmlinux 2>/dev/null)
if [ -z "$vm" ] || [ ! -f "$vm" ]; then
    skip "guest kernel cache" "build/vmlinux is missing (run make guest)"
    exit 0
fi
if [ ! -f /usr/src/linux-source-6.12.tar.xz ]; then
    skip "guest kernel cache" "linux-source-6.12 is not installed (scripts/install-deps.sh)"
    exit 0
fi
W=$(mktemp -d /tmp/moat-gk.XXXXXX)
trap 'rm -rf "$W"' EXIT
valid() { [ "$(printf '%s\n' "$1" | wc -l)" -eq 1 ] && [[ $1 =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?[A-Za-z0-9._+~-]*$ ]]; }

# the release step alone, as a child of a make that prints directories
rel=$(MAKELEVEL=1 MAKEFLAGS=w "$B" --release-of "$vm" 2>"$W/err")
if valid "$rel"; then ok "release step under MAKELEVEL=1 MAKEFLAGS=w: one line ($rel)"; else
    not_ok "release step under MAKELEVEL=1 MAKEFLAGS=w: one line"
    diag "got: '$rel' $(cat "$W/err")"
fi
if [ -n "$rel" ] && strings "$vm" | grep -q "^Linux version $rel "; then ok "it is the release in the kernel's banner"; else
    not_ok "it is the release in the kernel's banner"
fi
check "the release step refuses a file that is no kernel" \
    sh -c "! '$B' --release-of /bin/true >/dev/null 2>&1"

# a cache entry for the current key whose release file holds make's noise
key=$("$B" --key 2>"$W/err")
if [ -z "$key" ]; then
    not_ok "build.sh --key prints the cache key"
    diag "$(cat "$W/err")"
fi
poison() { # CACHE: a finished build whose release file is corrupt
    mkdir -p "$1/kernel/$key"
    ln "$vm" "$1/kernel/$key/vmlinux" 2>/dev/null || cp "$vm" "$1/kernel/$key/vmlinux"
    printf "make[2]: Entering directory '/var/cache/moat/src/linux'\nmake[3]: Entering directory '%s/obj'\n%s\n" \
        "$1/kernel/$key" "$rel" >"$1/kernel/$key/release"
    touch "$1/kernel/$key/done"
}
poison "$W/c1"
out=$(MOAT_CACHE_DIR=$W/c1 MAKELEVEL=1 MAKEFLAGS=w "$B" "$W/out1/vmlinux" 2>"$W/err1")
expect_eq "a corrupt cached release: build.sh still answers with the cached vmlinux" "$W/c1/kernel/$key/vmlinux" "$out"
expect_eq "... and the release file is repaired to the one line" "$rel" "$(cat "$W/c1/kernel/$key/release")"
check "... saying so" grep -q "repaired the cached release" "$W/err1"
check "... without building or extracting anything" test ! -e "$W/c1/src" -a ! -e "$W/c1/kernel/$key/obj"

# the same from a real make inside make (make -C sets -w for its children)
poison "$W/c2"
mkdir -p "$W/mk"
printf 'all:\n\t$(MAKE) -C %s inner\ninner:\n\tMOAT_CACHE_DIR=%s %s %s >%s\n' "$W/mk" "$W/c2" "$B" "$W/out2/vmlinux" "$W/out2.txt" >"$W/mk/Makefile"
make -C "$W/mk" >"$W/mk.log" 2>&1
expect_eq "from make inside make: the release file is one line" "$rel" "$(cat "$W/c2/kernel/$key/release")"
expect_eq "from make inside make: stdout is the vmlinux path alone" "$W/c2/kernel/$key/vmlinux" "$(cat "$W/out2.txt" 2>/dev/null)"
expect_eq "the output link points at the cached vmlinux" "$W/c2/kernel/$key/vmlinux" "$(readlink "$W/out2/vmlinux")"

# the cache this tree uses is sound
r=$(cat "$(dirname "$vm")/release")
if valid "$r"; then ok "the cache of build/vmlinux holds a one-line release"; else
    not_ok "the cache of build/vmlinux holds a one-line release"
    diag "release: '$r'"
fi
done_testing
