#!/bin/bash
# The runc-compatible lifecycle with real VMs: create/start/state/kill/
# delete/run -d/exec, the stand-in (pid file, exit status, signals, stdio,
# console socket, namespaces, cgroup), host hooks, locking, and N
# create/start/delete cycles that must leave nothing behind.
# MOAT_LIFECYCLE_CYCLES sets N (default 20; the issue's 200 take ~10 min
# under TCG on 2 cores).
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
CYCLES=${MOAT_LIFECYCLE_CYCLES:-20}
ROOT=$(mktemp -d /tmp/moat-lc.XXXXXX)
WORK=$(mktemp -d /tmp/moat-lc-work.XXXXXX)
CGNAME=moat-lc-$$
REAPER=tests/integration/lifecycle-reaper.py
cleanup() {
    local id
    for id in $(ls "$ROOT" 2>/dev/null); do "$MOAT" --root "$ROOT" delete --force "$id" >/dev/null 2>&1; done
    pkill -KILL -f "$ROOT/" 2>/dev/null
    grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
    for d in /sys/fs/cgroup/*/$CGNAME* /sys/fs/cgroup/*/system.slice/$CGNAME*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
    rm -rf "$ROOT" "$WORK"
}
trap cleanup EXIT

for f in "$MOAT" build/moat-vsock build/initramfs.cpio.gz build/vmlinux; do
    if [ ! -e "$f" ]; then
        skip "moat lifecycle" "$f is missing (run make && make guest)"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    skip "moat lifecycle" "needs root"
    exit 0
fi
command -v python3 >/dev/null || { skip "moat lifecycle" "python3 is missing (subreaper and console-socket helpers)"; exit 0; }

moat() { "$MOAT" --root "$ROOT" "$@"; }
st() { moat state "$1" 2>/dev/null | jq -r ".$2"; }
HOST_NETNS=$(readlink /proc/self/ns/net)


is_status() { [ "$(st "$1" status)" = "$2" ]; }
file_has() { grep -q -- "$2" "$1" 2>/dev/null; }

# leftovers ID: what the container left on the host (empty: nothing)
leftovers() {
    local id=$1 left="" d
    pgrep -f "$ROOT/$id/" >/dev/null && left="$left processes($(pgrep -f "$ROOT/$id/" | tr '\n' ' '))"
    [ -e "$ROOT/$id" ] && left="$left state-dir"
    grep -q " $ROOT/$id/" /proc/mounts && left="$left mounts"
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

# --- 1. create / start / state / exit status, under a subreaper ------------
B=$WORK/basic
mkdir -p "$WORK/share1"
bundle "$B" '.process.args = ["sh", "-c", "echo ran >/share/marker; echo out-line; echo err-line >&2; read x; echo stdin=$x; exit 7"]
  | .mounts += [{destination: "/share", type: "bind", source: $s, options: ["rbind", "rw"]}]
  | .linux.cgroupsPath = $cg' --arg s "$WORK/share1" --arg cg "/$CGNAME-basic"
echo from-stdin >"$WORK/stdin1"
python3 $REAPER "$WORK/reap1" 60 "$MOAT" --root "$ROOT" create -b "$B" --pid-file "$WORK/pid1" basic \
    <"$WORK/stdin1" >"$WORK/out1" 2>"$WORK/err1" &
RP=$!
if wait_for 30 file_has "$WORK/reap1" "^cmd exited"; then
    expect_eq "create exits 0" "cmd exited 0" "$(grep '^cmd' "$WORK/reap1")"
    pid=$(cat "$WORK/pid1" 2>/dev/null)
    expect_eq "state after create: created" created "$(st basic status)"
    expect_eq "state.pid is the --pid-file pid" "$pid" "$(st basic pid)"
    expect_eq "the stand-in is called moat-standin" moat-standin "$(cat /proc/$pid/comm 2>/dev/null)"
    expect_eq "the stand-in is a child of create's caller (subreaper)" "$RP" "$(awk '{print $4}' /proc/$pid/stat 2>/dev/null)"
    ns=$(readlink /proc/$pid/ns/net 2>/dev/null)
    if [ -n "$ns" ] && [ "$ns" != "$HOST_NETNS" ]; then ok "the stand-in has its own network namespace"; else not_ok "the stand-in has its own network namespace ($ns)"; fi
    if grep -qx "$pid" /sys/fs/cgroup/pids/$CGNAME-basic/cgroup.procs 2>/dev/null; then ok "the stand-in is in cgroupsPath on the host"; else not_ok "the stand-in is in cgroupsPath on the host"; fi
    vmm=$(jq -r .vmmPid "$ROOT/basic/state.json")
    if grep -qx "$vmm" /sys/fs/cgroup/pids/$CGNAME-basic/cgroup.procs 2>/dev/null; then ok "the VMM is in cgroupsPath on the host"; else not_ok "the VMM is in cgroupsPath on the host"; fi
    n=0
    for p in $pid $vmm $(jq -r .vsockdPid "$ROOT/basic/state.json"); do
        ls -l /proc/$p/fd 2>/dev/null | grep -q "$ROOT/basic/lock" && n=$((n + 1))
    done
    expect_eq "no process left behind by create holds the state lock" 0 "$n"
    if grep -q -e "$B/rootfs" -e "$ROOT/basic/shared" /proc/self/mountinfo; then not_ok "the share's mounts are not visible on the host"; else ok "the share's mounts are not visible on the host"; fi
    sleep 0.5
    if [ ! -e "$WORK/share1/marker" ]; then ok "create does not run the process"; else not_ok "create does not run the process"; fi
    out=$(moat start basic 2>&1); rc=$?
    expect_eq "start exits 0" 0 "$rc"
    [ $rc -ne 0 ] && diag "$out"
    out=$(moat start basic 2>&1); rc=$?
    if [ $rc -ne 0 ]; then ok "start twice fails"; else not_ok "start twice fails"; fi
    wait_for 20 file_has "$WORK/reap1" "^$pid " || diag "the stand-in did not exit"
    expect_eq "the stand-in exits with the container's status" "$pid exited 7" "$(grep "^$pid " "$WORK/reap1")"
    expect_eq "stdout reaches the caller's stdout" out-line "$(grep out-line "$WORK/out1")"
    expect_eq "stderr reaches the caller's stderr" err-line "$(grep err-line "$WORK/err1")"
    expect_eq "the caller's stdin reaches the process" stdin=from-stdin "$(grep stdin= "$WORK/out1")"
    expect_eq "state after exit: stopped" stopped "$(st basic status)"
    out=$(moat kill basic KILL 2>&1); rc=$?
    if [ $rc -ne 0 ] && [[ "$out" == *"container not running"* ]]; then ok "kill of a stopped container: not running"; else not_ok "kill of a stopped container: not running"; diag "rc=$rc $out"; fi
    out=$(moat delete basic 2>&1); rc=$?
    expect_eq "delete of a stopped container exits 0" 0 "$rc"
    [ $rc -ne 0 ] && diag "$out"
    out=$(moat state basic 2>&1); rc=$?
    if [ $rc -ne 0 ] && [[ "$out" == *'container "basic" does not exist'* ]]; then ok "state after delete: does not exist"; else not_ok "state after delete: does not exist"; diag "$out"; fi
else
    not_ok "create under a subreaper did not finish"; diag "$(cat "$WORK/err1")"
fi
wait $RP 2>/dev/null
assert_clean "create/start/exit/delete" basic

# --- 2. signals, run -d, exec ----------------------------------------------
B=$WORK/sig
bundle "$B" '.process.args = ["sh", "-c", "trap \"echo got-usr1\" USR1; echo ready; while :; do sleep 0.1; done"] | .process.env += ["FOO=from-config"]'
python3 $REAPER "$WORK/reap2" 120 "$MOAT" --root "$ROOT" run -d -b "$B" --pid-file "$WORK/pid2" sig \
    </dev/null >"$WORK/out2" 2>"$WORK/err2" &
RP=$!
if wait_for 30 file_has "$WORK/out2" ready; then
    ok "run -d: the container runs"
    pid=$(cat "$WORK/pid2")
    expect_eq "run -d: state running" running "$(st sig status)"
    kill -USR1 "$pid"
    if wait_for 5 file_has "$WORK/out2" got-usr1; then ok "a signal sent to the stand-in reaches the container"; else not_ok "a signal sent to the stand-in reaches the container"; fi
    moat kill sig USR1
    wait_for 5 eval '[ $(grep -c got-usr1 "$WORK/out2") -ge 2 ]' && ok "kill ID USR1" || not_ok "kill ID USR1"
    out=$(moat kill sig NOSUCHSIG 2>&1); rc=$?
    if [ $rc -ne 0 ] && [[ "$out" == *'unknown signal "NOSUCHSIG"'* ]]; then ok "kill: invalid signal is refused"; else not_ok "kill: invalid signal is refused"; diag "$out"; fi
    out=$(moat exec sig sh -c 'echo exec-out $FOO; exit 4' 2>&1); rc=$?
    expect_eq "exec: exit status" 4 "$rc"
    expect_eq "exec: output and the config's env" "exec-out from-config" "$out"
    out=$(echo in | moat exec -e BAR=1 -u 1000:1000 --cwd /tmp sig sh -c 'read a; echo $a $BAR $(id -u):$(id -g) $(pwd)' 2>&1)
    expect_eq "exec: stdin, -e, -u, --cwd" "in 1 1000:1000 /tmp" "$out"
    jq -n '{args: ["sh", "-c", "echo from-process-json; exit 2"], cwd: "/", env: ["PATH=/bin:/usr/bin"], user: {uid: 0, gid: 0}}' >"$WORK/proc.json"
    out=$(moat exec --process "$WORK/proc.json" sig 2>&1); rc=$?
    expect_eq "exec --process: output" from-process-json "$out"
    expect_eq "exec --process: status" 2 "$rc"
    python3 $REAPER "$WORK/reap3" 20 "$MOAT" --root "$ROOT" exec -d --pid-file "$WORK/epid" sig \
        sh -c 'sleep 0.5; echo detached-exec; exit 9' </dev/null >>"$WORK/out2" 2>&1 &
    RP3=$!
    wait_for 10 file_has "$WORK/reap3" "^cmd exited"
    expect_eq "exec -d exits 0" "cmd exited 0" "$(grep '^cmd' "$WORK/reap3")"
    epid=$(cat "$WORK/epid" 2>/dev/null)
    expect_eq "exec -d: its stand-in is moat-standin" moat-standin "$(cat /proc/$epid/comm 2>/dev/null)"
    wait_for 10 file_has "$WORK/reap3" "^$epid " || diag "the exec stand-in did not exit"
    expect_eq "exec -d: the stand-in exits with the process's status" "$epid exited 9" "$(grep "^$epid " "$WORK/reap3")"
    wait $RP3
    if grep -q detached-exec "$WORK/out2"; then ok "exec -d: output reaches the caller's stdout"; else not_ok "exec -d: output reaches the caller's stdout"; fi
    out=$(moat delete sig 2>&1); rc=$?
    if [ $rc -ne 0 ] && [[ "$out" == *"not stopped"* ]] && [ "$(st sig status)" = running ]; then ok "delete of a running container fails and leaves it running"; else not_ok "delete of a running container fails and leaves it running"; diag "rc=$rc $out"; fi
    moat kill sig KILL
    wait_for 10 file_has "$WORK/reap2" "^$pid " || diag "the stand-in did not exit"
    expect_eq "killed by SIGKILL: the stand-in dies by SIGKILL" "$pid signaled 9" "$(grep "^$pid " "$WORK/reap2")"
    out=$(moat exec sig true 2>&1); rc=$?
    if [ $rc -ne 0 ] && [[ "$out" == *"stopped"* ]]; then ok "exec in a stopped container fails"; else not_ok "exec in a stopped container fails"; diag "$out"; fi
    moat delete sig
else
    not_ok "run -d: the container runs"; diag "$(cat "$WORK/err2")"
fi
kill $RP 2>/dev/null; wait $RP 2>/dev/null
assert_clean "signals/exec" sig

# --- 3. bad input -------------------------------------------------------------
B=$WORK/dup
bundle "$B" '.process.args = ["sleep", "30"]'
moat create -b "$B" dup </dev/null >/dev/null 2>"$WORK/dup.err"
pid=$(st dup pid)
out=$(moat create -b "$B" dup 2>&1 </dev/null >/dev/null); rc=$?
if [ $rc -ne 0 ] && [[ "$out" == *'container "dup" already exists'* ]]; then ok "duplicate id refused"; else not_ok "duplicate id refused"; diag "rc=$rc $out"; fi
expect_eq "duplicate id: the first container is untouched" "created $pid" "$(st dup status) $(st dup pid)"
out=$(moat delete dup 2>&1); rc=$?
if [ $rc -ne 0 ] && [ "$(st dup status)" = created ]; then ok "delete of a created container fails (runtime spec)"; else not_ok "delete of a created container fails"; diag "$out"; fi
moat kill dup KILL
wait_for 10 is_status dup stopped && ok "kill of a created container stops it" || not_ok "kill of a created container stops it"
moat delete dup
assert_clean "duplicate id" dup
out=$(moat state nosuch 2>&1); rc=$?
if [ $rc -ne 0 ] && [[ "$out" == *'container "nosuch" does not exist'* ]]; then ok "state of an unknown id"; else not_ok "state of an unknown id"; diag "$out"; fi
out=$(moat start nosuch 2>&1); rc=$?
if [ $rc -ne 0 ] && [[ "$out" == *'does not exist'* ]]; then ok "start of an unknown id"; else not_ok "start of an unknown id"; diag "$out"; fi
out=$(moat delete nosuch 2>&1); rc=$?
if [ $rc -ne 0 ] && [[ "$out" == *'does not exist'* ]]; then ok "delete of an unknown id fails"; else not_ok "delete of an unknown id fails"; diag "$out"; fi
moat delete --force nosuch; expect_eq "delete --force of an unknown id succeeds (runc)" 0 $?
mkdir -p "$WORK/noconfig"
out=$(moat create -b "$WORK/noconfig" nc 2>&1 </dev/null >/dev/null); rc=$?
if [ $rc -ne 0 ] && [[ "$out" == *"config.json"* ]] && [ ! -e "$ROOT/nc" ]; then ok "create without config.json: clear error, no state"; else not_ok "create without config.json"; diag "$out"; fi
out=$(moat create -b "$WORK/nowhere" nb 2>&1 </dev/null >/dev/null); rc=$?
if [ $rc -ne 0 ] && [[ "$out" == *"nowhere"* ]]; then ok "create with a missing bundle names it"; else not_ok "create with a missing bundle names it"; diag "$out"; fi
for v in create start state kill delete run exec; do
    if moat $v --help | grep -q "^Usage: moat $v"; then ok "$v --help"; else not_ok "$v --help"; fi
done

# --- 4. terminal through --console-socket -------------------------------------
B=$WORK/tty
bundle "$B" '.process.terminal = true | .process.consoleSize = {height: 31, width: 97}
  | .process.args = ["sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo TTY-OK; stty size; sleep 1; stty size; exit 3"]'
python3 tests/oci/console-recv.py "$WORK/console.sock" "$WORK/tty.out" 30 &
CR=$!
wait_for 5 test -e "$WORK/tty.out.ready"
if moat run -d -b "$B" --console-socket "$WORK/console.sock" tty </dev/null >/dev/null 2>"$WORK/tty.err"; then
    wait_for 15 is_status tty stopped
    t=$(tr -d '\r' <"$WORK/tty.out")
    case $t in *TTY-OK*) ok "console socket: stdio is a terminal" ;; *) not_ok "console socket: stdio is a terminal"; diag "$t" ;; esac
    expect_eq "console socket: consoleSize" "31 97" "$(sed -n 2p <<<"$t")"
    moat delete tty
else
    not_ok "run -d with --console-socket"; diag "$(cat "$WORK/tty.err")"
fi
kill $CR 2>/dev/null; wait $CR 2>/dev/null
assert_clean "console socket" tty
out=$(moat create -b "$B" tty2 2>&1 </dev/null >/dev/null); rc=$?
if [ $rc -ne 0 ] && [[ "$out" == *"--console-socket"* ]] && [ ! -e "$ROOT/tty2" ]; then ok "terminal without --console-socket is refused"; else not_ok "terminal without --console-socket is refused"; diag "$out"; fi

# --- 5. hooks -------------------------------------------------------------------
HOOK=$WORK/hook.sh
cat >"$HOOK" <<'EOF'
#!/bin/bash
# hook.sh DIR TYPE: log TYPE, our netns, the netns of state.pid, the status
s=$(cat)
pid=$(jq -r .pid <<<"$s")
printf '%s %s %s %s\n' "$2" "$(readlink /proc/self/ns/net)" "$(readlink /proc/$pid/ns/net 2>/dev/null || echo none)" "$(jq -r .status <<<"$s")" >>"$1/log"
exit "${HOOK_EXIT:-0}"
EOF
chmod +x "$HOOK"
B=$WORK/hooks
mkdir -p "$WORK/hlog"
bundle "$B" '.process.args = ["sleep", "30"] | .hooks = {
    prestart: [{path: $h, args: ["hook.sh", $d, "prestart"]}],
    createRuntime: [{path: $h, args: ["hook.sh", $d, "createRuntime"]}],
    createContainer: [{path: $h, args: ["hook.sh", $d, "createContainer"]}],
    poststart: [{path: $h, args: ["hook.sh", $d, "poststart"]}],
    poststop: [{path: $h, args: ["hook.sh", $d, "poststop"]}]}' --arg h "$HOOK" --arg d "$WORK/hlog"
moat create -b "$B" hooks </dev/null >/dev/null 2>"$WORK/hooks.err"
expect_eq "hooks after create" "prestart createRuntime createContainer" "$(cut -d' ' -f1 "$WORK/hlog/log" 2>/dev/null | xargs)"
read -r _ cns cpns _ <<<"$(sed -n 3p "$WORK/hlog/log" 2>/dev/null)"
if [ -n "${cns:-}" ] && [ "$cns" = "${cpns:-}" ] && [ "$cns" != "$HOST_NETNS" ]; then ok "createContainer runs in the container's network namespace (that of state.pid)"; else not_ok "createContainer runs in the container's network namespace, that of state.pid ($cns $cpns)"; fi
read -r _ hns pns hst <<<"$(head -1 "$WORK/hlog/log" 2>/dev/null)"
expect_eq "prestart runs in moat's network namespace" "$HOST_NETNS" "$hns"
if [ -n "${pns:-}" ] && [ "$pns" != none ] && [ "$pns" != "$HOST_NETNS" ]; then ok "prestart: /proc/<state.pid>/ns/net is the sandbox's namespace"; else not_ok "prestart: /proc/<state.pid>/ns/net is the sandbox's namespace ($pns)"; fi
expect_eq "prestart state status" creating "${hst:-}"
moat start hooks
expect_eq "hooks after start" "prestart createRuntime createContainer poststart" "$(cut -d' ' -f1 "$WORK/hlog/log" | xargs)"
moat delete --force hooks
expect_eq "hooks after delete --force" "prestart createRuntime createContainer poststart poststop" "$(cut -d' ' -f1 "$WORK/hlog/log" | xargs)"
expect_eq "poststop sees stopped" stopped "$(tail -1 "$WORK/hlog/log" | cut -d' ' -f4)"
assert_clean "hooks" hooks
: >"$WORK/hlog/log"
bundle "$B" '.process.args = ["sleep", "30"] | .hooks = {
    prestart: [{path: $h, args: ["hook.sh", $d, "prestart"], env: ["HOOK_EXIT=3", "PATH=/usr/bin:/bin"]}],
    poststop: [{path: $h, args: ["hook.sh", $d, "poststop"], env: ["PATH=/usr/bin:/bin"]}]}' --arg h "$HOOK" --arg d "$WORK/hlog"
out=$(moat create -b "$B" hookfail 2>&1 </dev/null >/dev/null); rc=$?
if [ $rc -ne 0 ] && [[ "$out" == *"prestart hook 0"*"exit status 3"* ]]; then ok "failing prestart hook fails create, named"; else not_ok "failing prestart hook fails create, named"; diag "$out"; fi
expect_eq "failing prestart: poststop still runs" "prestart poststop" "$(cut -d' ' -f1 "$WORK/hlog/log" | xargs)"
assert_clean "failing prestart hook" hookfail
bundle "$B" '.process.args = ["sleep", "30"] | .hooks = {createRuntime: [{path: "/bin/sleep", args: ["sleep", "30"], timeout: 1}]}'
t0=$SECONDS
out=$(moat create -b "$B" hooktime 2>&1 </dev/null >/dev/null); rc=$?
if [ $rc -ne 0 ] && [[ "$out" == *"timed out after 1s"* ]] && [ $((SECONDS - t0)) -lt 20 ]; then ok "hook timeout fails create"; else not_ok "hook timeout fails create"; diag "$out"; fi
assert_clean "hook timeout" hooktime

# --- 5b. namespace paths: checked on the host, joined by the stand-in -------
B=$WORK/nsp
NETNS=moat-lc-$$
if ip netns add $NETNS 2>/dev/null; then
    bundle "$B" '.process.args = ["sleep", "30"] | .linux.namespaces |= map(if .type == "network" then .path = $p else . end)' --arg p /run/netns/$NETNS
    if moat create -b "$B" nsp </dev/null >/dev/null 2>"$WORK/nsp.err"; then
        expect_eq "network namespace path: the stand-in joined it" "net:[$(stat -L -c %i /run/netns/$NETNS)]" "$(readlink /proc/$(st nsp pid)/ns/net)"
        moat delete --force nsp
    else
        not_ok "create with a network namespace path"; diag "$(cat "$WORK/nsp.err")"
    fi
    ip netns delete $NETNS
else
    skip "network namespace path" "ip netns add failed"
fi
bundle "$B" '.process.args = ["sleep", "30"] | .linux.namespaces |= map(if .type == "network" then .path = "/proc/self/ns/uts" else . end)'
out=$(moat create -b "$B" nsbad 2>&1 </dev/null >/dev/null); rc=$?
if [ $rc -ne 0 ] && [[ "$out" == *"is not a network namespace"* ]] && [ ! -e "$ROOT/nsbad" ]; then ok "a namespace path of the wrong type is refused before boot"; else not_ok "a namespace path of the wrong type is refused"; diag "$out"; fi

# --- 6. locking: concurrent creates, delete racing start ----------------------
B=$WORK/race
bundle "$B" '.process.args = ["sleep", "30"]'
moat create -b "$B" race </dev/null >/dev/null 2>"$WORK/race1.err" &
p1=$!
moat create -b "$B" race </dev/null >/dev/null 2>"$WORK/race2.err" &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
if { [ $r1 = 0 ] && [ $r2 != 0 ]; } || { [ $r1 != 0 ] && [ $r2 = 0 ]; }; then ok "two concurrent creates of one id: exactly one wins"; else not_ok "two concurrent creates: rc $r1 $r2"; fi
expect_eq "the winner is created" created "$(st race status)"
moat start race </dev/null >"$WORK/rs.out" 2>&1 &
p1=$!
moat delete --force race </dev/null >"$WORK/rd.out" 2>&1 &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
s=$(st race status)
if [ $r2 = 0 ] && [ -z "$s" ] && [ -z "$(leftovers race)" ]; then
    ok "delete --force racing start: deleted, nothing left (start rc $r1)"
elif [ $r1 = 0 ] && [ "$s" = running ]; then
    ok "delete racing start: start won, running"
else
    not_ok "delete racing start: inconsistent (start $r1, delete $r2, status '$s')"; diag "$(cat "$WORK/rs.out" "$WORK/rd.out")"
fi
moat delete --force race 2>/dev/null
assert_clean "race" race

# --- 7. a dead stand-in or VMM: stopped, and delete still cleans -------------
B=$WORK/dead
bundle "$B" '.process.args = ["sleep", "30"]'
for victim in stand-in vmm; do
    id=dead-$victim
    moat run -d -b "$B" "$id" </dev/null >/dev/null 2>&1
    if [ $victim = stand-in ]; then kill -KILL "$(st $id pid)"; else kill -KILL "$(jq -r .vmmPid "$ROOT/$id/state.json")"; fi
    wait_for 5 is_status $id stopped && ok "$victim killed: state says stopped" || not_ok "$victim killed: state says stopped ($(st $id status))"
    moat delete $id; expect_eq "$victim killed: delete exits 0" 0 $?
    assert_clean "$victim killed" $id
done

# --- 8. --systemd-cgroup: slice:prefix:name as its cgroupfs path -------------
B=$WORK/sd
bundle "$B" '.process.args = ["sleep", "30"] | .linux.cgroupsPath = "system.slice:moat-lc:'$$'"'
if moat --systemd-cgroup create -b "$B" sd </dev/null >/dev/null 2>"$WORK/sd.err"; then
    d=/sys/fs/cgroup/pids/system.slice/moat-lc-$$.scope
    if grep -qx "$(st sd pid)" "$d/cgroup.procs" 2>/dev/null; then ok "--systemd-cgroup: the stand-in is in $d"; else not_ok "--systemd-cgroup: stand-in not in $d"; fi
    moat delete --force sd
    if [ ! -d "$d" ]; then ok "--systemd-cgroup: the scope is removed"; else not_ok "--systemd-cgroup: $d left behind"; fi
else
    not_ok "--systemd-cgroup create"; diag "$(cat "$WORK/sd.err")"
fi
bundle "$WORK/sdbad" '.linux.cgroupsPath = "/plain/path"'
out=$(moat --systemd-cgroup create -b "$WORK/sdbad" sdbad 2>&1 </dev/null >/dev/null); rc=$?
if [ $rc -ne 0 ] && [[ "$out" == *"slice:prefix:name"* ]]; then ok "--systemd-cgroup with a plain path: clear error"; else not_ok "--systemd-cgroup with a plain path: clear error"; diag "$out"; fi

# --- 9. N create/start/delete cycles leave nothing behind --------------------
B=$WORK/cycle
bundle "$B" '.process.args = ["true"] | .linux.cgroupsPath = $cg' --arg cg "/$CGNAME-cycle"
diag "$CYCLES create/start/delete cycles (MOAT_LIFECYCLE_CYCLES; the issue asks for 200)"
fds_before=$(ls /proc/self/fd | wc -l)
t0=$SECONDS
failed=0
for ((i = 0; i < CYCLES; i++)); do
    if ! moat create -b "$B" cycle </dev/null >/dev/null 2>"$WORK/cycle.err" || ! moat start cycle 2>>"$WORK/cycle.err" ||
        ! wait_for 10 is_status cycle stopped || ! moat delete cycle 2>>"$WORK/cycle.err"; then
        failed=$((failed + 1))
        diag "cycle $i: $(tail -c 300 "$WORK/cycle.err")"
        moat delete --force cycle >/dev/null 2>&1
    fi
done
expect_eq "$CYCLES create/start/delete cycles succeed" 0 "$failed"
diag "$CYCLES cycles took $((SECONDS - t0))s"
assert_clean "$CYCLES cycles" cycle
left=$(pgrep -f "$ROOT/" | wc -l)
expect_eq "$CYCLES cycles: no moat process left" 0 "$left"
expect_eq "$CYCLES cycles: no state dir left" "" "$(ls "$ROOT")"
if [ ! -d /sys/fs/cgroup/pids/$CGNAME-cycle ]; then ok "$CYCLES cycles: no cgroup left"; else not_ok "$CYCLES cycles: cgroup left"; fi
expect_eq "$CYCLES cycles: no fd left in the caller" "$fds_before" "$(ls /proc/self/fd | wc -l)"
done_testing
