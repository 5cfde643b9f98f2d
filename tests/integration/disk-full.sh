#!/bin/bash
# The host's disk full under --root: --root is a small tmpfs, filled up to
# a few sizes of free space (none, 4 KiB, 16 KiB, 64 KiB). A create either
# succeeds or fails with a clear error that names the disk (ENOSPC, "No
# space left on device"), within its time; it leaves nothing half-written
# (no state directory that `list` or `state` would show broken, no
# process, no mount), and delete --force still cleans. A disk that fills
# after the create leaves start, exec and state working or failing
# clearly (a failed start stops the container), and state.json whole. Once space is back, a create of the same
# id works.
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
for f in "$MOAT" build/moat-vsock build/initramfs.cpio.gz build/vmlinux; do
    if [ ! -e "$f" ]; then
        skip "disk full under --root" "$f is missing (run make && make guest)"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    skip "disk full under --root" "needs root (mounts a tmpfs)"
    exit 0
fi
export MOAT_BOOT_TIMEOUT=${MOAT_BOOT_TIMEOUT:-120}
ROOT=$(mktemp -d /tmp/moat-full.XXXXXX)
WORK=$(mktemp -d /tmp/moat-full-work.XXXXXX)
cleanup() {
    local id
    for id in $(ls "$ROOT" 2>/dev/null); do timeout 60 "$MOAT" --root "$ROOT" delete --force "$id" >/dev/null 2>&1; done
    pkill -KILL -f "$ROOT/" 2>/dev/null
    grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
    umount -l "$ROOT" 2>/dev/null
    for d in /sys/fs/cgroup/*/moat/df-*@*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
    rm -rf "$ROOT" "$WORK"
}
trap cleanup EXIT

if ! mount -t tmpfs -o size=2m,mode=0700 moat-full "$ROOT"; then
    skip "disk full under --root" "cannot mount a tmpfs on $ROOT"
    exit 0
fi
moat() { "$MOAT" --root "$ROOT" "$@"; }
free_bytes() { echo $(($(stat -f -c '%a * %S' "$ROOT"))); }
# fill FREE: leaves about FREE bytes free on the tmpfs
fill() {
    rm -f "$ROOT/.filler"
    local avail
    avail=$(free_bytes)
    if [ "$avail" -gt "$1" ]; then
        head -c $((avail - $1)) /dev/zero >"$ROOT/.filler" 2>/dev/null
    fi
}
leftovers() {
    local id=$1 left=""
    pgrep -f "$ROOT/$id/" >/dev/null && left="$left processes"
    [ -e "$ROOT/$id" ] && left="$left state-dir"
    grep -q " $ROOT/$id/" /proc/self/mountinfo && left="$left mounts"
    ls -d /sys/fs/cgroup/*/moat/"$id"@* >/dev/null 2>&1 && left="$left cgroup"
    echo "$left"
}

bundle "$WORK/b" '.process.args = ["sleep", "1000"]'
for free in 0 4096 16384 65536; do
    id=df-$free
    fill "$free"
    diag "$id: $(free_bytes) bytes free under --root"
    timeout -k 10 180 "$MOAT" --root "$ROOT" create -b "$WORK/b" "$id" </dev/null >"$WORK/$id.out" 2>"$WORK/$id.err"
    rc=$?
    err=$(head -c 2000 "$WORK/$id.err")
    if [ $rc = 124 ] || [ $rc = 137 ]; then
        not_ok "$id: create ends in time"
    elif [ $rc = 0 ]; then
        ok "$id: create succeeded with $free bytes free"
        expect_eq "$id: its state says created" created "$(moat state "$id" 2>/dev/null | jq -r .status)"
    elif [ $rc -gt 128 ]; then
        not_ok "$id: create fails without crashing (rc=$rc)"
    elif [[ "$err" == *"No space left on device"* ]]; then
        ok "$id: create fails naming the disk"
        diag "$err"
        if [[ "$err" == *"$ROOT"* ]]; then ok "$id: the error names the path under --root"; else not_ok "$id: the error names the path under --root"; fi
        expect_eq "$id: nothing half-written (no state directory, no process, no mount, no cgroup)" "" "$(leftovers "$id")"
        out=$(moat list 2>&1)
        if [[ "$out" != *"$id"* ]]; then ok "$id: list does not show it"; else not_ok "$id: list does not show it"; diag "$out"; fi
    else
        not_ok "$id: create fails naming the disk (rc=$rc)"
        diag "$err"
    fi
    rm -f "$ROOT/.filler"
    timeout -k 10 60 "$MOAT" --root "$ROOT" delete --force "$id" >/dev/null 2>&1
    rc=$?
    if [ $rc -lt 124 ]; then ok "$id: delete --force ends (rc $rc)"; else not_ok "$id: delete --force ends (rc $rc)"; fi
    wait_for 10 test -z "$(leftovers "$id")"
    expect_eq "$id: nothing left after delete --force" "" "$(leftovers "$id")"
done

# the disk fills after a container is created: start and exec either work
# or fail clearly (a start that cannot record it leaves the container
# stopped, not running behind a state that says created), state.json is
# never left half-written, delete cleans
id=df-late
fill 262144
timeout -k 10 180 "$MOAT" --root "$ROOT" create -b "$WORK/b" "$id" </dev/null >/dev/null 2>"$WORK/$id.err"
expect_eq "$id: create with 256 KiB free succeeds" 0 $?
fill 0
diag "$id: $(free_bytes) bytes free under --root"
for verb in start "exec $id true"; do
    # shellcheck disable=SC2086
    timeout -k 10 120 "$MOAT" --root "$ROOT" $verb $([ "$verb" = start ] && echo "$id") </dev/null >/dev/null 2>"$WORK/$id.verb"
    rc=$?
    if [ $rc = 0 ]; then
        ok "$id: ${verb%% *} on a full disk succeeds"
    elif { [ $rc -lt 124 ] || [ $rc = 255 ]; } && [ -s "$WORK/$id.verb" ]; then
        ok "$id: ${verb%% *} on a full disk fails clearly"
        diag "$(head -c 300 "$WORK/$id.verb")"
    else
        not_ok "$id: ${verb%% *} on a full disk (rc=$rc)"
        diag "$(head -c 300 "$WORK/$id.verb")"
    fi
    if [ "$verb" = start ] && [ $rc != 0 ]; then
        # the start failed: the process must not run behind a state that says created
        wait_for 20 test "$(moat state "$id" 2>/dev/null | jq -r .status)" = stopped
        expect_eq "$id: after the failed start, state says stopped" stopped "$(moat state "$id" 2>/dev/null | jq -r .status)"
    fi
    if jq -e .status "$ROOT/$id/state.json" >/dev/null 2>&1; then
        ok "$id: state.json is whole after ${verb%% *}"
    else
        not_ok "$id: state.json is whole after ${verb%% *}"
    fi
done
status=$(moat state "$id" 2>/dev/null | jq -r .status)
if [ -n "$status" ]; then ok "$id: state answers on a full disk ($status)"; else not_ok "$id: state answers on a full disk"; fi
timeout -k 10 60 "$MOAT" --root "$ROOT" delete --force "$id" >/dev/null 2>"$WORK/$id.del"
expect_eq "$id: delete --force on a full disk exits 0" 0 $?
wait_for 10 test -z "$(leftovers "$id")"
expect_eq "$id: nothing left after delete --force on a full disk" "" "$(leftovers "$id")"
rm -f "$ROOT/.filler"

# space is back: the same id works
id=df-0
timeout -k 10 180 "$MOAT" --root "$ROOT" create -b "$WORK/b" "$id" </dev/null >/dev/null 2>"$WORK/again.err"
expect_eq "with space again, create of $id succeeds" 0 $?
timeout -k 10 60 "$MOAT" --root "$ROOT" delete --force "$id" >/dev/null 2>&1
wait_for 10 test -z "$(leftovers "$id")"
expect_eq "$id: nothing left" "" "$(leftovers "$id")"
done_testing
