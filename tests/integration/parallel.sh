#!/bin/bash
# Load: MOAT_PARALLEL (default 20) sandboxes at once. All are created and
# started concurrently (one VM each, small guests sharing one read-only
# busybox rootfs), each gets an exec, then all are killed and deleted
# concurrently, and nothing may be left: processes, mounts, taps (each
# sandbox's network namespace is a named one here, so its tap can be
# seen), cgroups, state directories and fds on the test's directories are
# counted before, while running and after.
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
N=${MOAT_PARALLEL:-20}
for f in "$MOAT" build/moat-vsock build/initramfs.cpio.gz build/vmlinux; do
    if [ ! -e "$f" ]; then
        skip "$N sandboxes at once" "$f is missing (run make && make guest)"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    skip "$N sandboxes at once" "needs root"
    exit 0
fi
export MOAT_BOOT_TIMEOUT=${MOAT_BOOT_TIMEOUT:-400}
ROOT=$(mktemp -d /tmp/moat-par.XXXXXX)
WORK=$(mktemp -d /tmp/moat-par-work.XXXXXX)
NSP=mpar$$
ids=()
for i in $(seq "$N"); do ids+=("pa-$i"); done
cleanup() {
    local id i
    for id in $(ls "$ROOT" 2>/dev/null); do timeout 60 "$MOAT" --root "$ROOT" delete --force "$id" >/dev/null 2>&1; done
    pkill -KILL -f "$ROOT/" 2>/dev/null
    grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
    for d in /sys/fs/cgroup/*/moat/pa-*@*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
    for i in $(seq "$N"); do ip netns del "$NSP-$i" 2>/dev/null; done
    rm -rf "$ROOT" "$WORK"
}
trap cleanup EXIT

moat() { "$MOAT" --root "$ROOT" "$@"; }
st() { moat state "$1" 2>/dev/null | jq -r ".$2"; }

# counts: "processes mounts taps cgroups statedirs fds" of this test's sandboxes
counts() {
    local procs mounts taps=0 cgroups dirs fds i
    procs=$(pgrep -fc "$ROOT/")
    mounts=$(grep -c -e " $ROOT/" -e " $WORK/" /proc/self/mountinfo)
    for i in $(seq "$N"); do
        taps=$((taps + $(ip -n "$NSP-$i" -o link show 2>/dev/null | awk -F': ' '{print $2}' | grep -c '^moat')))
    done
    cgroups=$(ls -d /sys/fs/cgroup/*/moat/pa-*@* 2>/dev/null | wc -l)
    dirs=$(find "$ROOT" -mindepth 1 -maxdepth 1 | wc -l)
    fds=$(find /proc/[0-9]*/fd -maxdepth 1 -lname "$ROOT/*" 2>/dev/null | wc -l)
    echo "processes=$procs mounts=$mounts taps=$taps cgroups=$cgroups statedirs=$dirs fds=$fds"
}

scripts/mkbundle.sh "$WORK/rootfs-bundle" >/dev/null
for i in $(seq "$N"); do
    ip netns add "$NSP-$i" || { not_ok "ip netns add $NSP-$i"; }
    mkdir -p "$WORK/pa-$i"
    jq --arg r "$WORK/rootfs-bundle/rootfs" --arg ns "/var/run/netns/$NSP-$i" \
        '.process.args = ["sleep", "1000"] | .root = {path: $r, readonly: true}
         | .linux.resources.memory.limit = 67108864
         | .linux.namespaces |= map(if .type == "network" then .path = $ns else . end)' \
        "$WORK/rootfs-bundle/config.json" >"$WORK/pa-$i/config.json"
done
before=$(counts)
expect_eq "nothing of this test's before it starts" "processes=0 mounts=0 taps=0 cgroups=0 statedirs=0 fds=0" "$before"

# --- create and start all at once ---------------------------------------------
t0=$(date +%s)
pids=()
for id in "${ids[@]}"; do
    (timeout -k 10 600 "$MOAT" --root "$ROOT" create -b "$WORK/$id" "$id" </dev/null >"$WORK/$id.create" 2>&1 &&
        timeout -k 10 120 "$MOAT" --root "$ROOT" start "$id" >"$WORK/$id.start" 2>&1) &
    pids+=($!)
done
failed=0
for k in "${!pids[@]}"; do
    if ! wait "${pids[$k]}"; then
        failed=$((failed + 1))
        diag "${ids[$k]}: $(cat "$WORK/${ids[$k]}.create" "$WORK/${ids[$k]}.start" 2>/dev/null | head -c 300)"
    fi
done
t1=$(date +%s)
expect_eq "$N concurrent create+start succeed" 0 "$failed"
diag "create+start of $N at once: $((t1 - t0)) s"
running=0
for id in "${ids[@]}"; do [ "$(st "$id" status)" = running ] && running=$((running + 1)); done
expect_eq "$N containers running at once" "$N" "$running"
during=$(counts)
diag "while running: $during"
taps=$(echo "$during" | grep -o 'taps=[0-9]*' | cut -d= -f2)
expect_eq "one tap per sandbox while they run" "$N" "$taps"
expect_eq "one state directory per sandbox" "$N" "$(echo "$during" | grep -o 'statedirs=[0-9]*' | cut -d= -f2)"

# --- an exec into each, all at once ---------------------------------------------
pids=()
for id in "${ids[@]}"; do
    timeout -k 10 300 "$MOAT" --root "$ROOT" exec "$id" sh -c "echo exec-in-\$(hostname)-$id" </dev/null >"$WORK/$id.exec" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
good=0
for id in "${ids[@]}"; do
    if grep -q "exec-in-.*-$id\$" "$WORK/$id.exec"; then good=$((good + 1)); else diag "$id exec: $(head -c 200 "$WORK/$id.exec")"; fi
done
t2=$(date +%s)
expect_eq "an exec into each of the $N answers" "$N" "$good"
diag "$N concurrent execs: $((t2 - t1)) s"

# --- kill and delete all at once ------------------------------------------------
pids=()
for id in "${ids[@]}"; do
    (timeout -k 10 60 "$MOAT" --root "$ROOT" kill "$id" KILL >/dev/null 2>&1
        for _ in $(seq 600); do [ "$(st "$id" status)" = stopped ] && break; sleep 0.1; done
        timeout -k 10 120 "$MOAT" --root "$ROOT" delete "$id" >"$WORK/$id.delete" 2>&1) &
    pids+=($!)
done
failed=0
for k in "${!pids[@]}"; do
    if ! wait "${pids[$k]}"; then
        failed=$((failed + 1))
        diag "${ids[$k]} delete: $(head -c 300 "$WORK/${ids[$k]}.delete")"
    fi
done
t3=$(date +%s)
expect_eq "$N concurrent kill+delete succeed" 0 "$failed"
diag "kill+delete of $N at once: $((t3 - t2)) s"
wait_for 20 test "$(counts)" = "$before"
expect_eq "nothing left after all are deleted" "$before" "$(counts)"
done_testing
