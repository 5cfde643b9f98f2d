#!/bin/bash
# A compromised agent: every host process that reads what the guest sends
# (each CLI verb, the stand-in, moat-vsock, the VMM) meets a guest whose
# agent answers with malformed, truncated, oversized and never-ending ttrpc
# replies, error messages full of terminal escapes, values out of range,
# garbage and floods on the stdio streams, floods of vsock connections, and
# silence in the middle of a call. Each must fail with a clear error within
# its timeout (every run is bounded by `timeout`), never hang, never crash
# (no SIGSEGV/SIGABRT/... exit), and `delete --force` must still clean
# everything (no process, mount, cgroup or state directory left).
#
# The guest is build/tests/initramfs-hostile.cpio.gz (make test-guests):
# tests/hostile/agent.c as PID 1, booted through MOAT_INITRD. Its modes
# come from "moat.hostile.<Method|stdio>" annotations of the container's
# config (read at CreateContainer) and from "SET <key> <mode>" lines on its
# vsock port 1100, which this script reaches through the sandbox's hybrid
# socket. Modes: see the head of tests/hostile/agent.c.
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
HOSTILE=$PWD/build/tests/initramfs-hostile.cpio.gz
for f in "$MOAT" build/moat-vsock build/vmlinux "$HOSTILE"; do
    if [ ! -e "$f" ]; then
        skip "hostile agent" "$f is missing (run make && make guest && make test-guests)"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    skip "hostile agent" "needs root"
    exit 0
fi
export MOAT_INITRD=$HOSTILE MOAT_BOOT_TIMEOUT=${MOAT_BOOT_TIMEOUT:-120}
ROOT=$(mktemp -d /tmp/moat-ha.XXXXXX)
WORK=$(mktemp -d /tmp/moat-ha-work.XXXXXX)
C=$WORK/cases
mkdir -p "$C"
cleanup() {
    local id
    for id in $(ls "$ROOT" 2>/dev/null); do timeout 60 "$MOAT" --root "$ROOT" delete --force "$id" >/dev/null 2>&1; done
    pkill -KILL -f "$ROOT/" 2>/dev/null
    grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
    for d in /sys/fs/cgroup/*/moat/ha-*@*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
    rm -rf "$ROOT" "$WORK"
}
trap cleanup EXIT

moat() { "$MOAT" --root "$ROOT" "$@"; }
sj() { jq -r ".$2" "$ROOT/$1/state.json" 2>/dev/null; }
alive() { [ -n "$1" ] && [ "$1" != 0 ] && [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# ctl ID LINE: one command to the hostile agent's control port; prints its answer
ctl() {
    timeout 60 python3 - "$ROOT/$1/vsock.sock" "$2" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(50)
s.connect(sys.argv[1])
s.sendall(b"CONNECT 1100\n")
f = s.makefile("rb")
if not f.readline().startswith(b"OK"):
    sys.exit(1)
s.sendall(sys.argv[2].encode() + b"\n")
print(f.readline().decode().strip())
EOF
}
set_mode() { # ID KEY MODE
    [ "$(ctl "$1" "SET $2 $3")" = OK ] || diag "could not set $2 to $3 in $1"
}

# runcase NAME LIMIT CMD...: runs CMD bounded by timeout LIMIT; its exit
# status, stdout and stderr go to $C/NAME.{rc,out,err}
runcase() {
    local name=$1 limit=$2
    shift 2
    timeout -k 10 "$limit" "$@" >"$C/$name.out" 2>"$C/$name.err" </dev/null
    echo $? >"$C/$name.rc"
}
# judge NAME LIMIT fail|any: the checks of one case. fail: it must fail;
# any: it may succeed (the garbage could not be told from an answer), but
# a failure must be clear. Always: within its time, no crash.
judge() {
    local name=$1 limit=$2 want=$3 rc err
    rc=$(cat "$C/$name.rc" 2>/dev/null || echo missing)
    err=$(head -c 20000 "$C/$name.err" 2>/dev/null)
    if [ "$rc" = 124 ] || [ "$rc" = 137 ] || [ "$rc" = missing ]; then
        not_ok "$name: ends within ${limit}s (rc=$rc)"
    else
        ok "$name: ends within ${limit}s"
    fi
    case "$rc" in
    132 | 133 | 134 | 135 | 136 | 139 | 140) not_ok "$name: no crash (killed by signal $((rc - 128)))" ;;
    *) ok "$name: no crash" ;;
    esac
    if [ "$want" = fail ] && [ "$rc" = 0 ]; then
        not_ok "$name: fails"
        diag "stdout: $(head -c 300 "$C/$name.out")"
        return
    fi
    if [ "$rc" = 0 ]; then
        ok "$name: succeeds or fails clearly (it succeeded)"
    elif [ -z "$err" ]; then
        not_ok "$name: fails with a clear error (stderr is empty)"
    elif [ "$(stat -c %s "$C/$name.err")" -gt 4096 ]; then
        not_ok "$name: fails with a clear error (stderr has $(stat -c %s "$C/$name.err") bytes)"
    elif LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$C/$name.err"; then
        not_ok "$name: fails with a clear error (control characters from the guest on stderr)"
        diag "$(head -c 300 "$C/$name.err" | cat -v)"
    else
        ok "$name: fails with a clear error"
        diag "$(head -c 200 "$C/$name.err" | tr '\n' ' ')"
    fi
}

# leftovers ID: what the container left on the host (empty: nothing)
leftovers() {
    local id=$1 left="" d
    pgrep -f "$ROOT/$id/" >/dev/null && left="$left processes($(pgrep -f "$ROOT/$id/" | tr '\n' ' '))"
    [ -e "$ROOT/$id" ] && left="$left state-dir"
    grep -q -e " $ROOT/$id/" -e "$WORK/$id/rootfs" /proc/self/mountinfo && left="$left mounts"
    for d in /sys/fs/cgroup/*/moat/"$id"@*; do
        [ -d "$d" ] && { left="$left cgroup"; break; }
    done
    echo "$left"
}
# force_clean ID: delete --force ends in time and leaves nothing
force_clean() {
    local id=$1 rc l
    timeout -k 5 60 "$MOAT" --root "$ROOT" delete --force "$id" >"$C/del-$id.out" 2>&1
    diag "$id: delete --force done at $(date +%T.%N)"
    rc=$?
    expect_eq "$id: delete --force exits 0 in time" 0 "$rc"
    [ "$rc" != 0 ] && diag "$(head -c 300 "$C/del-$id.out")"
    wait_for 10 test -z "$(leftovers "$id")"
    l=$(leftovers "$id")
    if [ -z "$l" ]; then ok "$id: nothing left behind"; else
        not_ok "$id: left behind:$l"
        for d in /sys/fs/cgroup/*/moat/"$id"@*; do
            [ -d "$d" ] && diag "$d: procs $(tr '\n' ' ' <"$d/cgroup.procs" 2>/dev/null) ($(stat -c %y "$d"))"
        done
        diag "delete said: $(head -c 500 "$C/del-$id.out")"
    fi
}

mkb() { # ID [JQ FILTER]: a bundle running a long sleep (the fake agent runs nothing)
    bundle "$WORK/$1" ".process.args = [\"sleep\", \"1000\"] ${2:+| $2}"
}

dmesg_crashes() { dmesg 2>/dev/null | grep -cE 'moat[-a-z0-9]*\[[0-9]+\]: segfault|traps: moat' ; }
CRASHES_BEFORE=$(dmesg_crashes)

FAST="close truncated badframe badpayload oversized errmsg badvalue"
SLOW="silent endless trickle huge"

# --- 1. create: CreateContainer answered badly (mode from the annotation) ---
# fast modes one after the other, slow modes all at once in the background
for m in $FAST $SLOW; do
    mkb "ha-c-$m" ".annotations[\"moat.hostile.CreateContainer\"] = \"$m\""
done
for m in $SLOW; do
    runcase "create-$m" 200 "$MOAT" --root "$ROOT" create -b "$WORK/ha-c-$m" "ha-c-$m" &
done
for m in $FAST; do
    runcase "create-$m" 150 "$MOAT" --root "$ROOT" create -b "$WORK/ha-c-$m" "ha-c-$m"
done
wait
for m in $FAST; do
    w=fail
    [ "$m" = badvalue ] && w=any # pid 0 is all it can say wrong
    [ "$m" = badpayload ] && w=any
    judge "create-$m" 150 $w
done
for m in $SLOW; do judge "create-$m" 200 fail; done
for m in $FAST $SLOW; do force_clean "ha-c-$m"; done

# --- 2. start: StartContainer answered badly ---------------------------------
for m in $FAST $SLOW; do
    mkb "ha-s-$m" ".annotations[\"moat.hostile.StartContainer\"] = \"$m\""
done
for m in $FAST $SLOW; do
    runcase "start-$m-create" 150 "$MOAT" --root "$ROOT" create -b "$WORK/ha-s-$m" "ha-s-$m" &
done
wait
for m in $FAST $SLOW; do
    if [ "$(cat "$C/start-$m-create.rc")" != 0 ]; then
        not_ok "start-$m: the create before it succeeds"
        diag "$(head -c 300 "$C/start-$m-create.err")"
    fi
done
for m in $SLOW; do runcase "start-$m" 200 "$MOAT" --root "$ROOT" start "ha-s-$m" & done
for m in $FAST; do runcase "start-$m" 150 "$MOAT" --root "$ROOT" start "ha-s-$m"; done
wait
for m in $FAST; do
    w=fail
    [ "$m" = badvalue ] || [ "$m" = badpayload ] && w=any # an Empty answer has nothing to get wrong
    judge "start-$m" 150 $w
done
for m in $SLOW; do judge "start-$m" 200 fail; done
for m in $FAST $SLOW; do force_clean "ha-s-$m"; done

# --- 3. the verbs of a running container, one sandbox --------------------
V=ha-v
mkb $V
runcase v-create 150 "$MOAT" --root "$ROOT" create -b "$WORK/$V" $V
runcase v-start 60 "$MOAT" --root "$ROOT" start $V
expect_eq "a container under the hostile agent starts (all answers ok)" "0 0" "$(cat "$C/v-create.rc") $(cat "$C/v-start.rc")"
VMM=$(sj $V vmmPid)
VSOCKD=$(sj $V vsockdPid)

# verb NAME: the command line of a verb and the method its answer comes from
declare -A METHOD=(
    [kill]=SignalProcess [ps]=StatsContainer [pause]=PauseContainer [resume]=ResumeContainer
    [update]=UpdateContainer [events]=StatsContainer [exec]=ExecProcess [connect]=Check
)
verb_cmd() {
    case $1 in
    kill) echo kill $V USR1 ;;
    ps) echo ps $V ;;
    pause) echo pause $V ;;
    resume) echo resume $V ;;
    update) echo update --pids-limit 100 $V ;;
    events) echo events --stats $V ;;
    exec) echo exec $V true ;;
    connect) echo ps $V ;;
    esac
}
VERBS="kill ps pause resume update events exec connect"
for v in $VERBS; do
    for m in $FAST; do
        # resume needs a paused container
        [ $v = resume ] && timeout 60 "$MOAT" --root "$ROOT" pause $V >/dev/null 2>&1
        set_mode $V "${METHOD[$v]}" "$m"
        # shellcheck disable=SC2046
        runcase "$v-$m" 100 "$MOAT" --root "$ROOT" $(verb_cmd $v)
        set_mode $V "${METHOD[$v]}" ok
        w=fail
        case $v-$m in
        ps-badvalue | events-badvalue) ;; # pids out of range are refused
        *-badvalue | *-badpayload) w=any ;;
        esac
        judge "$v-$m" 100 $w
    done
done
timeout 60 "$MOAT" --root "$ROOT" resume $V >/dev/null 2>&1
# the slow modes: every method at once, the verbs in parallel, and
# meanwhile `state` answers at once (it never waits for the agent)
# pause in two rounds, resume (of a container paused before) in the other two
declare -A SLOWVERBS=(
    [silent]="kill ps pause update events exec connect" [trickle]="kill ps pause update events exec connect"
    [endless]="kill ps resume update events exec connect" [huge]="kill ps resume update events exec connect"
)
for m in $SLOW; do
    [[ " ${SLOWVERBS[$m]} " == *" resume "* ]] && timeout 60 "$MOAT" --root "$ROOT" pause $V >/dev/null 2>&1
    for v in ${SLOWVERBS[$m]}; do set_mode $V "${METHOD[$v]}" "$m"; done
    set_mode $V Check ok
    pids=()
    for v in ${SLOWVERBS[$m]}; do
        [ "$v" = connect ] && continue
        # shellcheck disable=SC2046
        runcase "$v-$m" 100 "$MOAT" --root "$ROOT" $(verb_cmd $v) &
        pids+=($!)
    done
    sleep 2
    runcase "state-during-$m" 10 "$MOAT" --root "$ROOT" state $V
    expect_eq "state answers while every verb waits on a $m agent" 0 "$(cat "$C/state-during-$m.rc")"
    wait "${pids[@]}"
    for v in $VERBS; do set_mode $V "${METHOD[$v]}" ok; done
    # Check (every verb's first call) in this mode
    set_mode $V Check "$m"
    runcase "connect-$m" 100 "$MOAT" --root "$ROOT" ps $V
    set_mode $V Check ok
    for v in ${SLOWVERBS[$m]}; do judge "$v-$m" 100 fail; done
    timeout 60 "$MOAT" --root "$ROOT" resume $V >/dev/null 2>&1
done

# --- 4. the stand-in: WaitProcess and the stdio streams --------------------
for m in close truncated badframe badpayload oversized errmsg endless; do
    set_mode $V WaitProcess "$m"
    runcase "wait-$m" 60 "$MOAT" --root "$ROOT" exec $V true
    set_mode $V WaitProcess ok
    judge "wait-$m" 60 fail
done
# an exit status of -1, "killed by SIGSTOP": a foreground exec exits 255
set_mode $V WaitProcess badvalue
runcase wait-badvalue 60 "$MOAT" --root "$ROOT" exec $V true
set_mode $V WaitProcess ok
expect_eq "wait-badvalue: exec exits with the low byte of status -1" 255 "$(cat "$C/wait-badvalue.rc")"
# ... and the init's stand-in, which re-raises a killing signal, must not
# stop itself: it exits, and state says stopped
W=ha-w
mkb $W '.annotations["moat.hostile.WaitProcess"] = "badvalue"'
runcase w-create 150 "$MOAT" --root "$ROOT" create -b "$WORK/$W" $W
standin=$(sj $W pid)
runcase w-start 60 "$MOAT" --root "$ROOT" start $W
gone() { ! alive "$standin"; }
if wait_for 20 gone; then
    ok "wait-sigstop: the init's stand-in exits (not stopped by a SIGSTOP the agent named)"
else
    not_ok "wait-sigstop: the init's stand-in exits ($(grep ^State: /proc/"$standin"/status 2>/dev/null))"
    kill -KILL "$standin" 2>/dev/null
fi
expect_eq "wait-sigstop: state says stopped" stopped "$(moat state $W 2>/dev/null | jq -r .status)"
force_clean $W
for m in close badline silent; do
    set_mode $V stdio "$m"
    runcase "stdio-$m" 60 "$MOAT" --root "$ROOT" exec $V true
    judge "stdio-$m" 60 fail
done
set_mode $V stdio garbage
runcase stdio-garbage 60 "$MOAT" --root "$ROOT" exec $V cat
judge stdio-garbage 60 any
expect_eq "stdio garbage: 1 MiB relayed as it came" 1048576 "$(stat -c %s "$C/stdio-garbage.out")"
# a never-ending stdout: relayed with bounded memory, ended by delete --force
set_mode $V stdio flood
timeout -k 5 300 "$MOAT" --root "$ROOT" exec $V yes >/dev/null 2>"$C/flood.err" </dev/null &
FLOOD=$!
sleep 5
set_mode $V stdio ok
rss=$(awk '/VmRSS/ {print $2}' /proc/$FLOOD/status 2>/dev/null)
rss=$(pgrep -P $FLOOD | head -1 | xargs -r -I{} awk '/VmRSS/ {print $2}' /proc/{}/status 2>/dev/null || echo "$rss")
if alive $FLOOD && [ "${rss:-0}" -lt 65536 ]; then
    ok "stdio flood: the exec relays it with bounded memory (${rss} kB)"
else
    not_ok "stdio flood: the exec relays it with bounded memory (alive: $(alive $FLOOD && echo yes || echo no), ${rss:-?} kB)"
fi

# --- 5. moat-vsock: a flood of connections from the guest ---------------------
out=$(ctl $V "FLOOD 2000")
diag "guest flood: $out"
if alive "$VSOCKD"; then ok "moat-vsock survives 2000 guest connections"; else not_ok "moat-vsock survives 2000 guest connections"; fi
runcase after-flood 60 "$MOAT" --root "$ROOT" ps $V
expect_eq "the agent still answers through moat-vsock after the flood" 0 "$(cat "$C/after-flood.rc")"
size=$(cat "$ROOT/$V"/vsock.log "$ROOT/$V"/vmm.log 2>/dev/null | wc -c)
diag "logs: $(cd "$ROOT/$V" && wc -c ./*.log | tr '\n' ' ')"
if [ "$size" -lt $((1 << 20)) ]; then ok "the flood did not flood the host's logs ($size bytes)"; else not_ok "the flood did not flood the host's logs ($size bytes)"; fi

# --- 6. the VMM and the end --------------------------------------------------
if alive "$VMM"; then ok "the VMM ($(sj $V hypervisor)) survived every hostile answer"; else not_ok "the VMM survived every hostile answer"; fi
if [ "$(sj $V hypervisor)" != moat-vmm ]; then
    skip "moat-vmm with a hostile agent" "moat check picks $(sj $V hypervisor) here (moat-vmm needs hardware virtualization to boot a Linux guest)"
fi
# delete --force of a running container whose agent stops answering every
# call it makes (it must not wait on the agent for long)
for m in SignalProcess RemoveContainer DestroySandbox WaitProcess; do set_mode $V $m silent; done
force_clean $V
if ! alive $FLOOD; then ok "delete --force ended the flooded exec"; else not_ok "delete --force ended the flooded exec"; kill -KILL $FLOOD; fi
wait $FLOOD 2>/dev/null
if alive "$VMM"; then not_ok "the VMM is gone"; else ok "the VMM is gone"; fi
if alive "$VSOCKD"; then not_ok "moat-vsock is gone"; else ok "moat-vsock is gone"; fi
expect_eq "no moat program segfaulted (dmesg)" "$CRASHES_BEFORE" "$(dmesg_crashes)"
done_testing
