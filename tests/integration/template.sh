#!/bin/bash
# VM templates (src/lib/template.c, agent/template.c): what two sandboxes
# started the way this host starts them (from a template where the
# backend can restore one, else cold) must not share; the switch; the
# backend probe; a template build and the fallback to a cold boot with one
# warning when a restore fails (MOAT_TEMPLATE=force makes moat try where
# the probe says no: QEMU 7.2 refuses to restore vhost-user-vsock-device);
# a key change builds another template; a corrupt template falls back and
# is rebuilt. Real VMs (QEMU), an own template cache (MOAT_CACHE_DIR).
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
for f in "$MOAT" build/moat-vsock build/initramfs.cpio.gz build/vmlinux; do
    if [ ! -e "$f" ]; then
        skip "vm templates" "$f is missing (run make && make guest)"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    skip "vm templates" "needs root"
    exit 0
fi

ROOT=$(mktemp -d /tmp/moat-tpl.XXXXXX)
WORK=$(mktemp -d /tmp/moat-tpl-work.XXXXXX)
export MOAT_CACHE_DIR=$WORK/cache
export MOAT_HYPERVISOR=qemu
trap 'grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l; rm -rf "$ROOT" "$WORK"' EXIT
moat() { "$MOAT" --root "$ROOT" "$@"; }
warnings() { grep -c 'level=warning' "$1"; }

# A bundle that prints what makes a VM unique, one fact a line: boot id,
# the first 16 bytes of /dev/urandom, the guest's clock (s.us), what an
# earlier sandbox may have left in the guest (a file in /dev/shm, a tmpfs
# of the guest kernel) and its env; then leaves a file there itself.
facts_bundle() {
    bundle "$1" ".process.terminal = false | .process.env += [\"$2=1\"] | .process.args = [\"/bin/facts\"]"
    cat >"$1/rootfs/bin/facts" <<'EOF'
#!/bin/sh
cat /proc/sys/kernel/random/boot_id
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; echo
adjtimex | awk '/tv_sec/ { s = $2 } /tv_usec/ { u = $2 } END { printf "%d.%06d\n", s, u }'
echo "shm:$(ls /dev/shm | tr '\n' ' ')"
echo "env:$(env | grep -c SECRET_)"
echo leftover >/dev/shm/leftover
EOF
    chmod 0755 "$1/rootfs/bin/facts"
}
facts_bundle "$WORK/b" SECRET_A
# host time stamps each line as it arrives
stamped() { while IFS= read -r l; do echo "$l $(date +%s.%N)"; done; }

# --- status and switch ---
status=$(moat check 2>&1 | sed -n 's/^vm template: *//p')
pass_if() { local n=$1; shift; if "$@"; then ok "$n"; else not_ok "$n"; fi; }
pass_if "moat check has a vm template line" test -n "$status"
diag "vm template: $status"
expect_eq "MOAT_TEMPLATE=off: moat env says off" "off" \
    "$(MOAT_TEMPLATE=off moat env | sed -n 's/^MOAT_TEMPLATE=//p')"
expect_eq "default: templates are on" "on" "$(moat env | sed -n 's/^MOAT_TEMPLATE=//p')"
case $status in
ready* | "not built yet"*) restorable=yes ;;
*) restorable=no ;;
esac

# --- two sandboxes the way this host starts them ---
how="cold boot: templates unavailable here"
[ $restorable = yes ] && how="restored from one template"
moat run -b "$WORK/b" u1 2>"$WORK/u1.err" | stamped >"$WORK/u1.out"
rc1=${PIPESTATUS[0]}
moat run -b "$WORK/b" u2 2>"$WORK/u2.err" | stamped >"$WORK/u2.out"
rc2=${PIPESTATUS[0]}
expect_eq "$how: both sandboxes ran" "0 0" "$rc1 $rc2"
expect_eq "$how: no warning" "0 0" "$(warnings "$WORK/u1.err") $(warnings "$WORK/u2.err")"
f() { sed -n "$2p" "$WORK/$1.out" | awk '{print $1}'; }
b1=$(f u1 1) b2=$(f u2 1) r1=$(f u1 2) r2=$(f u2 2)
pass_if "$how: different boot_id ($b1 / $b2)" test -n "$b1" -a -n "$b2" -a "$b1" != "$b2"
pass_if "$how: different first /dev/urandom bytes" test ${#r1} -eq 32 -a ${#r2} -eq 32 -a "$r1" != "$r2"
for u in u1 u2; do
    # the guest read its clock just before the host stamped the line
    g=$(f $u 3) h=$(sed -n 3p "$WORK/$u.out" | awk '{print $2}')
    pass_if "$how: $u: guest clock within 1 s of the host's ($g vs $h)" \
        awk -v g="$g" -v h="$h" 'BEGIN { d = h - g; exit !(g > 0 && d > -1.0 && d < 1.0) }'
done
expect_eq "$how: nothing of the first sandbox in the second's guest (/dev/shm)" "shm:" "$(f u2 4)"
facts_bundle "$WORK/b2" OTHER
moat run -b "$WORK/b2" u3 2>&1 | stamped >"$WORK/u3.out"
expect_eq "$how: nothing of earlier sandboxes (guest files, env) in a third" "shm: env:0" "$(f u3 4) $(f u3 5)"

if [ $restorable = yes ]; then
    n=$(ls -d "$MOAT_CACHE_DIR"/templates/*/ 2>/dev/null | wc -l)
    expect_eq "restorable: one template serves both sandboxes" 1 "$n"
else
    skip "restorable: one template serves both sandboxes" "$status"
fi

# --- forced: build, restore (or its failure), fallback ---
tdirs() { ls -d "$MOAT_CACHE_DIR"/templates/*/ 2>/dev/null | grep -v '/probe\.' | sort; }
MOAT_TEMPLATE=force moat --debug run -b "$WORK/b" f1 >"$WORK/f1.out" 2>"$WORK/f1.err"
rc=$?
expect_eq "force: the container ran" 0 "$rc"
pass_if "force: a template was built" grep -q 'template .* built in' "$WORK/f1.err"
if grep -q 'VM restored from template' "$WORK/f1.err"; then
    expect_eq "force: restored, no warning" 0 "$(warnings "$WORK/f1.err")"
    pass_if "force: the template stays" test -n "$(tdirs)"
else
    expect_eq "force: the failed restore warned once" 1 "$(warnings "$WORK/f1.err")"
    pass_if "force: the warning says it booted cold" grep -q 'restoring the VM template .* failed, booting cold' \
        "$WORK/f1.err"
    expect_eq "force: the template that failed is gone" "" "$(tdirs)"
fi
key1=$(grep -o 'template [^ ]* built' "$WORK/f1.err" | awk '{print $2}')

# a key change (another initramfs file) builds another template
cp build/initramfs.cpio.gz "$WORK/initramfs.cpio.gz"
MOAT_INITRD=$WORK/initramfs.cpio.gz MOAT_TEMPLATE=force moat --debug run -b "$WORK/b" f2 \
    >"$WORK/f2.out" 2>"$WORK/f2.err"
key2=$(grep -o 'template [^ ]* built' "$WORK/f2.err" | awk '{print $2}')
pass_if "key change: another template is built ($key2)" test -n "$key2" -a "$key2" != "$key1"
expect_eq "key change: the container ran" "env:1" "$(sed -n 5p "$WORK/f2.out")"

# a corrupt template: falls back with one warning, and is rebuilt
MOAT_TEMPLATE=force moat --debug run -b "$WORK/b" f3 >/dev/null 2>"$WORK/f3.err"
t=$(tdirs | head -1)
if [ -n "$t" ] && [ -f "$t/state" ]; then
    head -c 4096 /dev/urandom >"$t/state"
    MOAT_TEMPLATE=force moat --debug run -b "$WORK/b" f4 >"$WORK/f4.out" 2>"$WORK/f4.err"
    expect_eq "corrupt template: the container ran" "env:1" "$(sed -n 5p "$WORK/f4.out")"
    expect_eq "corrupt template: one warning" 1 "$(warnings "$WORK/f4.err")"
    MOAT_TEMPLATE=force moat --debug run -b "$WORK/b" f5 >/dev/null 2>"$WORK/f5.err"
    pass_if "corrupt template: the next sandbox rebuilds it" grep -q 'template .* built in' "$WORK/f5.err"
else
    # where restores fail, every forced sandbox removes the template it
    # built: the corrupt-state case is the failed restore above
    skip "corrupt template: the container ran" "no template survives a restore here ($status)"
    skip "corrupt template: one warning" "no template survives a restore here"
    skip "corrupt template: the next sandbox rebuilds it" "no template survives a restore here"
fi

# the probe's answer is cached: a second look costs nothing and agrees
expect_eq "the backend probe's answer is cached" "$status" "$(moat check 2>&1 | sed -n 's/^vm template: *//p')"
pass_if "nothing of the sandboxes is left in the state root" test -z "$(ls "$ROOT")"

done_testing
