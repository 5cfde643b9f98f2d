#!/bin/bash
# Host-side robustness of the lifecycle with real VMs: a create killed while
# the VM boots or while its hooks run, a stand-in, VMM or moat-vsock killed
# with SIGKILL, poststop hooks only after the sandbox is gone, and races
# (concurrent creates of one id, delete racing start/create/delete). Every
# case must end with `state` saying stopped (or does not exist), a plain
# delete cleaning everything, and nothing left on the host: processes,
# mounts, state dirs, cgroups.
# MOAT_CRASH_ROUNDS sets the rounds of the race stress (default 3),
# MOAT_CRASH_INFLIGHT the creates killed while in flight at once (default 20).
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
ROUNDS=${MOAT_CRASH_ROUNDS:-3}
INFLIGHT=${MOAT_CRASH_INFLIGHT:-20}
SPAN=${MOAT_CRASH_INFLIGHT_SPAN:-40}
ROOT=$(mktemp -d /tmp/moat-cr.XXXXXX)
WORK=$(mktemp -d /tmp/moat-cr-work.XXXXXX)
CGNAME=moat-cr-$$
cleanup() {
    local id
    for id in $(ls "$ROOT" 2>/dev/null); do "$MOAT" --root "$ROOT" delete --force "$id" >/dev/null 2>&1; done
    pkill -KILL -f "$ROOT/" 2>/dev/null
    pkill -KILL -f "$WORK/" 2>/dev/null
    grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
    for d in /sys/fs/cgroup/*/$CGNAME* /sys/fs/cgroup/*/moat/cr-*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
    rm -rf "$ROOT" "$WORK"
}
trap cleanup EXIT

for f in "$MOAT" build/moat-vsock build/initramfs.cpio.gz build/vmlinux; do
    if [ ! -e "$f" ]; then
        skip "moat lifecycle crashes" "$f is missing (run make && make guest)"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    skip "moat lifecycle crashes" "needs root"
    exit 0
fi

moat() { "$MOAT" --root "$ROOT" "$@"; }
st() { moat state "$1" 2>/dev/null | jq -r ".$2"; }
sj() { jq -r ".$2" "$ROOT/$1/state.json" 2>/dev/null; }

is_status() { [ "$(st "$1" status)" = "$2" ]; }
vm_booting() { [ "$(sj "$1" status)" = creating ] && [ "$(sj "$1" vmmPid)" -gt 0 ] 2>/dev/null; }
alive() { [ -n "$1" ] && [ "$1" != 0 ] && [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# leftovers ID: what the container left on the host (empty: nothing)
leftovers() {
    local id=$1 left="" d
    pgrep -f "$ROOT/$id/" >/dev/null && left="$left processes($(pgrep -f "$ROOT/$id/" | tr '\n' ' '))"
    [ -e "$ROOT/$id" ] && left="$left state-dir"
    grep -q -e " $ROOT/$id/" -e "$WORK/$id/rootfs" /proc/self/mountinfo && left="$left mounts"
    # any one left (ls -d of several paths fails when one is missing); the
    # default cgroup of a --root other than /run/moat is moat/<id>@<hash>
    for d in /sys/fs/cgroup/*/moat/"$id" /sys/fs/cgroup/*/moat/"$id"@* /sys/fs/cgroup/*/$CGNAME-"$id"; do
        [ -d "$d" ] && { left="$left cgroup"; break; }
    done
    echo "$left"
}
assert_clean() {
    local l
    l=$(leftovers "$2")
    if [ -z "$l" ]; then ok "$1: nothing left behind"; else not_ok "$1: left behind:$l"; fi
}
# stopped_and_clean NAME ID: state/list say stopped, start refuses, a plain
# delete cleans everything
stopped_and_clean() {
    local name=$1 id=$2 out rc
    wait_for 10 is_status "$id" stopped
    expect_eq "$name: state says stopped" stopped "$(st "$id" status)"
    expect_eq "$name: state pid is 0" 0 "$(st "$id" pid)"
    expect_eq "$name: list says stopped" stopped "$(moat list | awk -v id="$id" '$1 == id {print $3}')"
    expect_eq "$name: list --format json says stopped" stopped \
        "$(moat list --format json | jq -r --arg id "$id" '.[] | select(.id == $id) | .status')"
    out=$(moat start "$id" 2>&1); rc=$?
    if [ $rc -ne 0 ] && [[ "$out" == *stopped* ]]; then ok "$name: start refuses (stopped)"; else not_ok "$name: start refuses"; diag "rc=$rc $out"; fi
    out=$(moat delete "$id" 2>&1); rc=$?
    expect_eq "$name: plain delete exits 0" 0 "$rc"
    [ $rc -ne 0 ] && diag "$out"
    assert_clean "$name" "$id"
}

# --- 1. create killed while the VM boots -----------------------------------
id=cr-boot
B=$WORK/$id
bundle "$B" '.process.args = ["sleep", "30"] | .linux.cgroupsPath = $cg' --arg cg "/$CGNAME-$id"
"$MOAT" --root "$ROOT" create -b "$B" $id </dev/null >/dev/null 2>"$WORK/$id.err" &
CP=$!
if wait_for 20 vm_booting $id; then
    vmm=$(sj $id vmmPid)
    # the VM stays mid-boot for the checks below, however fast it boots
    kill -STOP "$vmm"
    sleep 0.3
    expect_eq "create booting: state says creating (the create holds the lock)" creating "$(st $id status)"
    expect_eq "create booting: list says creating" creating "$(moat list | awk -v id=$id '$1 == id {print $3}')"
    timeout 1 "$MOAT" --root "$ROOT" delete $id >/dev/null 2>&1
    expect_eq "create booting: a plain delete waits for the create's lock" 124 $?
    kill -KILL $CP
    wait $CP 2>/dev/null
    kill -CONT "$vmm"
    if alive "$vmm"; then ok "create killed mid-boot: its VM outlived it (the case to clean)"; else skip "create killed mid-boot: VM outlived it" "VM gone already"; fi
    stopped_and_clean "create killed mid-boot" $id
    if alive "$vmm"; then not_ok "create killed mid-boot: the VMM is gone"; else ok "create killed mid-boot: the VMM is gone"; fi
else
    not_ok "create killed mid-boot: the VM did not start"; diag "$(cat "$WORK/$id.err")"
    kill -KILL $CP 2>/dev/null; wait $CP 2>/dev/null
fi
moat delete --force $id >/dev/null 2>&1

# --- 1b. a foreground run killed while the VM boots ------------------------
id=cr-run
B=$WORK/$id
bundle "$B" '.process.args = ["sleep", "30"] | .linux.cgroupsPath = $cg' --arg cg "/$CGNAME-$id"
"$MOAT" --root "$ROOT" run -b "$B" $id </dev/null >/dev/null 2>"$WORK/$id.err" &
CP=$!
if wait_for 20 vm_booting $id; then
    kill -KILL $CP
    wait $CP 2>/dev/null
    stopped_and_clean "run killed mid-boot" $id
else
    not_ok "run killed mid-boot: the VM did not start"; diag "$(cat "$WORK/$id.err")"
    kill -KILL $CP 2>/dev/null; wait $CP 2>/dev/null
fi
moat delete --force $id >/dev/null 2>&1

# --- 2. create killed while its prestart hook runs (stand-in and cgroup exist)
id=cr-hook
B=$WORK/$id
bundle "$B" '.process.args = ["sleep", "30"] | .linux.cgroupsPath = $cg
  | .hooks = {prestart: [{path: "/bin/sh", args: ["sh", "-c", "echo $$ >\($m); exec sleep 3"]}]}' \
    --arg cg "/$CGNAME-$id" --arg m "$WORK/$id.hook"
"$MOAT" --root "$ROOT" create -b "$B" $id </dev/null >/dev/null 2>"$WORK/$id.err" &
CP=$!
if wait_for 30 test -s "$WORK/$id.hook"; then
    standin=$(sj $id pid)
    expect_eq "create in its prestart hook: state says creating" creating "$(st $id status)"
    if [ -d /sys/fs/cgroup/pids/$CGNAME-$id ]; then ok "create in its prestart hook: the host cgroup exists"; else not_ok "create in its prestart hook: the host cgroup exists"; fi
    kill -KILL $CP
    wait $CP 2>/dev/null
    stopped_and_clean "create killed in a hook" $id
    wait_for 5 eval '! alive "$standin"'
    if alive "$standin"; then not_ok "create killed in a hook: the stand-in is gone"; else ok "create killed in a hook: the stand-in is gone"; fi
    wait_for 5 eval '! alive "$(cat "$WORK/$id.hook")"' # the orphaned hook ends by itself
else
    not_ok "create killed in a hook: the hook did not run"; diag "$(cat "$WORK/$id.err")"
    kill -KILL $CP 2>/dev/null; wait $CP 2>/dev/null
fi
moat delete --force $id >/dev/null 2>&1

# --- 2b. the same, killed before it could record its pids and cgroup -------
# (what a create killed right after starting moat-vsock/the VMM or making
# the cgroup leaves: the state does not name them; delete finds them)
id=cr-unrec
B=$WORK/$id
bundle "$B" '.process.args = ["sleep", "30"] | .linux.cgroupsPath = $cg
  | .hooks = {prestart: [{path: "/bin/sh", args: ["sh", "-c", "echo $$ >\($m); exec sleep 3"]}]}' \
    --arg cg "/$CGNAME-$id" --arg m "$WORK/$id.hook"
"$MOAT" --root "$ROOT" create -b "$B" $id </dev/null >/dev/null 2>"$WORK/$id.err" &
CP=$!
if wait_for 30 test -s "$WORK/$id.hook"; then
    kill -KILL $CP
    wait $CP 2>/dev/null
    vmm=$(sj $id vmmPid) vsockd=$(sj $id vsockdPid)
    jq '.pid = 0 | .pidStart = 0 | .vmmPid = 0 | .vmmStart = 0 | .vsockdPid = 0 | .vsockdStart = 0 | del(.cgroup)' \
        "$ROOT/$id/state.json" >"$WORK/$id.state" && cp "$WORK/$id.state" "$ROOT/$id/state.json"
    if alive "$vmm" && [ -d /sys/fs/cgroup/pids/$CGNAME-$id ]; then ok "unrecorded: VMM and cgroup outlived create"; else not_ok "unrecorded: VMM and cgroup outlived create"; fi
    stopped_and_clean "create killed before recording its pids and cgroup" $id
    if alive "$vmm" || alive "$vsockd"; then not_ok "unrecorded: VMM and moat-vsock are gone"; else ok "unrecorded: VMM and moat-vsock are gone"; fi
    wait_for 5 eval '! alive "$(cat "$WORK/$id.hook")"'
else
    not_ok "unrecorded: the hook did not run"; diag "$(cat "$WORK/$id.err")"
    kill -KILL $CP 2>/dev/null; wait $CP 2>/dev/null
fi
moat delete --force $id >/dev/null 2>&1

# --- 3. create killed at random points --------------------------------------
id=cr-any
B=$WORK/$id
bundle "$B" '.process.args = ["sleep", "30"] | .linux.cgroupsPath = $cg' --arg cg "/$CGNAME-$id"
bad=0
for delay in 0.05 0.2 0.4 0.8 1.5 3 5; do
    "$MOAT" --root "$ROOT" create -b "$B" $id </dev/null >/dev/null 2>/dev/null &
    CP=$!
    sleep $delay
    kill -KILL $CP 2>/dev/null
    wait $CP 2>/dev/null
    s=$(st $id status)
    case $s in
    "") out=$(moat delete $id 2>&1); r=$? ;;                 # killed before any state
    stopped) out=$(moat delete $id 2>&1); r=$? ;;
    created) out=$(moat delete --force $id 2>&1); r=$? ;;    # create had finished
    *) out="status '$s' after create was killed"; r=1 ;;
    esac
    if [ -n "$s" ] && [ $r -ne 0 ]; then bad=$((bad + 1)); diag "kill after ${delay}s: $s: $out"; fi
    l=$(leftovers $id)
    if [ -n "$l" ]; then bad=$((bad + 1)); diag "kill after ${delay}s ($s): left behind:$l"; moat delete --force $id >/dev/null 2>&1; fi
done
expect_eq "create killed at 7 points: always stopped or created, delete cleans" 0 "$bad"

# --- 4. poststop runs after the sandbox is gone, before the state goes ------
HOOK=$WORK/poststop.sh
cat >"$HOOK" <<'EOF'
#!/bin/bash
# poststop.sh LOG VMMFILE STATEDIR CGDIR [EXIT]
s=$(cat)
vmm=$(cat "$2" 2>/dev/null)
{
    if [ -n "$vmm" ] && [ -d /proc/$vmm ] && ! grep -q '^State:.*Z' /proc/$vmm/status 2>/dev/null; then echo -n "vmm=alive "; else echo -n "vmm=gone "; fi
    if [ -d "$4" ]; then echo -n "cgroup=present "; else echo -n "cgroup=gone "; fi
    if [ -d "$3" ]; then echo -n "state=present "; else echo -n "state=gone "; fi
    echo "status=$(jq -r .status <<<"$s") pid=$(jq -r .pid <<<"$s")"
} >>"$1"
exit "${5:-0}"
EOF
chmod +x "$HOOK"
id=cr-post
B=$WORK/$id
bundle "$B" '.process.args = ["sleep", "30"] | .linux.cgroupsPath = $cg
  | .hooks = {poststop: [{path: $h, args: ["poststop.sh", $log, $vf, $sd, $cgd, "1"]},
                         {path: $h, args: ["poststop.sh", $log, $vf, $sd, $cgd]}]}' \
    --arg cg "/$CGNAME-$id" --arg h "$HOOK" --arg log "$WORK/$id.log" --arg vf "$WORK/$id.vmm" \
    --arg sd "$ROOT/$id" --arg cgd "/sys/fs/cgroup/pids/$CGNAME-$id"
if moat create -b "$B" $id </dev/null >/dev/null 2>"$WORK/$id.err"; then
    sj $id vmmPid >"$WORK/$id.vmm"
    moat start $id
    moat kill $id KILL
    wait_for 10 is_status $id stopped
    out=$(moat delete $id 2>&1); rc=$?
    expect_eq "poststop: delete exits 0 although the first hook fails" 0 "$rc"
    if [[ "$out" == *"poststop hook 0"* ]]; then ok "poststop: the failing hook is a warning naming it"; else not_ok "poststop: the failing hook is a warning naming it"; diag "$out"; fi
    expect_eq "poststop: both hooks ran after VM and cgroup were gone, state still there, status stopped" \
        "vmm=gone cgroup=gone state=present status=stopped pid=0,vmm=gone cgroup=gone state=present status=stopped pid=0" \
        "$(paste -sd, "$WORK/$id.log" 2>/dev/null)"
    assert_clean "poststop" $id
else
    not_ok "poststop: create"; diag "$(cat "$WORK/$id.err")"
fi
# create's failure path: a failing prestart hook, then poststop
id=cr-postfail
B=$WORK/$id
: >"$WORK/$id.log"
bundle "$B" '.process.args = ["sleep", "30"] | .linux.cgroupsPath = $cg
  | .hooks = {prestart: [{path: "/bin/sh", args: ["sh", "-c", "exit 5"]}],
              poststop: [{path: $h, args: ["poststop.sh", $log, $vf, $sd, $cgd]}]}' \
    --arg cg "/$CGNAME-$id" --arg h "$HOOK" --arg log "$WORK/$id.log" --arg vf "$WORK/$id.vmm" \
    --arg sd "$ROOT/$id" --arg cgd "/sys/fs/cgroup/pids/$CGNAME-$id"
( while [ ! -s "$WORK/$id.vmm" ]; do v=$(sj $id vmmPid); [ -n "$v" ] && [ "$v" != 0 ] && [ "$v" != null ] && echo "$v" >"$WORK/$id.vmm"; sleep 0.05; done ) &
WP=$!
out=$(moat create -b "$B" $id 2>&1 </dev/null >/dev/null); rc=$?
kill $WP 2>/dev/null; wait $WP 2>/dev/null
if [ $rc -ne 0 ] && [[ "$out" == *"exit status 5"* ]]; then ok "failing prestart fails create"; else not_ok "failing prestart fails create"; diag "$out"; fi
expect_eq "failing prestart: poststop ran after the VM and the cgroup were gone" "vmm=gone cgroup=gone" \
    "$(cut -d' ' -f1-2 "$WORK/$id.log" 2>/dev/null)"
assert_clean "failing prestart" $id

# --- 5. a stand-in, VMM or moat-vsock killed with SIGKILL -------------------
B=$WORK/dead
bundle "$B" '.process.args = ["sleep", "30"] | .linux.cgroupsPath = $cg' --arg cg "/$CGNAME-dead"
for c in created:stand-in created:vmm running:vsockd running:stand-in+vmm; do
    when=${c%%:*} victim=${c#*:}
    id=cr-$when-${victim//+/-}
    jq --arg cg "/$CGNAME-$id" '.linux.cgroupsPath = $cg' "$B/config.json" >"$B/c.tmp" && mv "$B/c.tmp" "$B/config.json"
    if ! moat create -b "$B" $id </dev/null >/dev/null 2>"$WORK/$id.err"; then
        not_ok "$victim killed ($when): create"; diag "$(cat "$WORK/$id.err")"
        continue
    fi
    [ $when = running ] && moat start $id
    pids=""
    case $victim in
    *stand-in*) pids="$pids $(sj $id pid)" ;;&
    *vmm*) pids="$pids $(sj $id vmmPid)" ;;&
    *vsockd*) pids="$pids $(sj $id vsockdPid)" ;;
    esac
    kill -KILL $pids
    stopped_and_clean "$victim killed ($when)" $id
done

# --- 6. races --------------------------------------------------------------
id=cr-race
B=$WORK/$id
bundle "$B" '.process.args = ["sleep", "30"] | .linux.cgroupsPath = $cg' --arg cg "/$CGNAME-$id"
bad=0
for ((r = 0; r < ROUNDS; r++)); do
    # three creates of one id: one wins, the others are told it exists
    pids=()
    for i in 0 1 2; do
        moat create -b "$B" --pid-file "$WORK/race.pid$i" $id </dev/null >/dev/null 2>"$WORK/race.err$i" &
        pids+=($!)
    done
    wins=0 exists=0
    for i in 0 1 2; do
        wait ${pids[$i]} && wins=$((wins + 1)) && winner=$i
        grep -q "container \"$id\" already exists" "$WORK/race.err$i" && exists=$((exists + 1))
    done
    if [ $wins != 1 ] || [ $exists != 2 ]; then bad=$((bad + 1)); diag "round $r: $wins winners, $exists 'already exists'"; fi
    if [ "$(st $id status)" != created ] || [ "$(st $id pid)" != "$(cat "$WORK/race.pid$winner" 2>/dev/null)" ]; then
        bad=$((bad + 1)); diag "round $r: state $(st $id status) pid $(st $id pid) after the creates"
    fi
    # a plain delete racing start: start wins, delete refuses
    moat start $id >"$WORK/rs.out" 2>&1 &
    p1=$!
    moat delete $id >"$WORK/rd.out" 2>&1 &
    p2=$!
    wait $p1; r1=$?
    wait $p2; r2=$?
    if [ $r1 != 0 ] || [ $r2 = 0 ] || ! grep -q "not stopped" "$WORK/rd.out" || [ "$(st $id status)" != running ]; then
        bad=$((bad + 1)); diag "round $r: start $r1 / plain delete $r2: $(cat "$WORK/rs.out" "$WORK/rd.out") status $(st $id status)"
    fi
    # two delete --force and a kill at once: both deletes succeed, nothing left
    moat delete --force $id >"$WORK/rd1.out" 2>&1 &
    p1=$!
    moat delete --force $id >"$WORK/rd2.out" 2>&1 &
    p2=$!
    moat kill $id KILL >/dev/null 2>&1 &
    p3=$!
    wait $p1; r1=$?
    wait $p2; r2=$?
    wait $p3
    if [ $r1 != 0 ] || [ $r2 != 0 ] || [ -n "$(leftovers $id)" ]; then
        bad=$((bad + 1)); diag "round $r: delete --force x2: $r1 $r2, left:$(leftovers $id) $(cat "$WORK/rd1.out" "$WORK/rd2.out")"
    fi
    # delete --force while create boots: it waits for create, then deletes
    moat create -b "$B" $id </dev/null >/dev/null 2>"$WORK/rc.err" &
    p1=$!
    wait_for 20 test -e "$ROOT/$id/state.json"
    moat delete --force $id >"$WORK/rd.out" 2>&1; r2=$?
    wait $p1; r1=$?
    if [ $r2 != 0 ] || [ -n "$(leftovers $id)" ] || [ -n "$(st $id status)" ]; then
        bad=$((bad + 1)); diag "round $r: create $r1 / delete --force during boot $r2: left:$(leftovers $id) $(cat "$WORK/rc.err" "$WORK/rd.out")"
    fi
    moat delete --force $id >/dev/null 2>&1
done
expect_eq "$ROUNDS race rounds (3 creates; start vs delete; delete --force x2 + kill; delete during create): consistent" 0 "$bad"
assert_clean "races" $id

# --- 7. kill -9 with many in flight -----------------------------------------
# INFLIGHT creates at once; create k is killed after k * SPAN / INFLIGHT s
# (SPAN: MOAT_CRASH_INFLIGHT_SPAN, default 40 s, about what 20 concurrent
# creates take here), so before its VM, while it boots, while the agent
# creates the container, or after it finished, and of those that finished, the stand-in, VMM or moat-vsock
# is killed in turn. Every one must end stopped (or never exist, or be
# created if the kill came after the create), delete must clean it, and
# nothing may be left.
B=$WORK/inflight
bundle "$B" '.process.args = ["sleep", "30"] | .linux.resources.memory.limit = 67108864'
cps=()
for k in $(seq "$INFLIGHT"); do
    "$MOAT" --root "$ROOT" create -b "$B" cr-fl-$k </dev/null >/dev/null 2>"$WORK/fl-$k.err" &
    cps+=($!)
done
t0=$SECONDS
for k in $(seq "$INFLIGHT"); do
    sleep "$(awk -v s="$SPAN" -v n="$INFLIGHT" 'BEGIN {print s / n}')"
    kill -KILL "${cps[$((k - 1))]}" 2>/dev/null
done
for p in "${cps[@]}"; do { wait "$p"; } 2>/dev/null; done
victims=(pid vmmPid vsockdPid)
bad=0 created=0 stopped=0 none=0
for k in $(seq "$INFLIGHT"); do
    id=cr-fl-$k
    s=$(st $id status)
    case $s in
    created)
        created=$((created + 1))
        v=${victims[$((k % 3))]}
        kill -KILL "$(sj $id "$v")" 2>/dev/null
        wait_for 10 is_status $id stopped
        s2=$(st $id status)
        [ "$s2" = stopped ] || { bad=$((bad + 1)); diag "$id: created, $v killed: status $s2"; }
        out=$(moat delete $id 2>&1) || { bad=$((bad + 1)); diag "$id: delete after $v killed: $out"; }
        ;;
    stopped)
        stopped=$((stopped + 1))
        out=$(moat delete $id 2>&1) || { bad=$((bad + 1)); diag "$id: delete: $out"; }
        ;;
    "") none=$((none + 1)) ;;
    *) bad=$((bad + 1)); diag "$id: status '$s' after its create was killed" ;;
    esac
    l=$(leftovers $id)
    if [ -n "$l" ]; then bad=$((bad + 1)); diag "$id ($s): left behind:$l"; moat delete --force $id >/dev/null 2>&1; fi
done
diag "$INFLIGHT in flight: $none never existed, $stopped stopped, $created created (then a process killed); $((SECONDS - t0)) s"
expect_eq "$INFLIGHT creates in flight killed at staggered times: each stopped, created or gone, delete cleans" 0 "$bad"

left=$(pgrep -f "$ROOT/" | wc -l)
expect_eq "no moat process left" 0 "$left"
expect_eq "no state dir left" "" "$(ls "$ROOT")"
expect_eq "no cgroup left" "" "$(ls -d /sys/fs/cgroup/*/$CGNAME* 2>/dev/null)"
done_testing
