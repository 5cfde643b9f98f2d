#!/bin/bash
# --preserve-fds N: the caller's fds 3..3+N-1 reach the container process as
# the same fd numbers, relayed over vsock streams (a pipe in the guest for a
# read-only or write-only fd, a socket for a read-write one), with EOF
# carried both ways. Real VMs: run, exec, exec -d, a socketpair, the refusal
# of a listening socket (before any VM boots, nothing left behind), and
# podman run --preserve-fds when podman is installed.
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
ROOT=$(mktemp -d /tmp/moat-pfd.XXXXXX)
WORK=$(mktemp -d /tmp/moat-pfd-work.XXXXXX)

# ids unique on the host (the host cgroup is moat/<id>, whatever the root)
P=pfd$$-
moat() { "$MOAT" --root "$ROOT" "$@"; }
# anything of this test's root still running on the host?
leftovers() { pgrep -f -- "$ROOT/" 2>/dev/null | grep -vx "$$" | tr '\n' ' '; }

cleanup() {
    local d pids
    for d in "$ROOT"/*/; do
        [ -d "$d" ] && "$MOAT" --root "$ROOT" delete --force "$(basename "$d")" >/dev/null 2>&1
    done
    pids=$(leftovers)
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
    grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
    rm -rf "$ROOT" "$WORK"
}
trap cleanup EXIT

if [ ! -x "$MOAT" ]; then
    skip "preserve-fds" "$MOAT is missing (run make)"
    exit 0
fi

B=$WORK/bundle
scripts/mkbundle.sh "$B" >/dev/null
# bundle ARGS_JSON: the container runs `sh -c SCRIPT`
bundle() {
    jq --arg s "$1" '.process.args = ["sh", "-c", $s]' "$B/config.json" >"$B/c.tmp" && mv "$B/c.tmp" "$B/config.json"
}

# --- run: a pipe the test writes into (fd 3), read through /proc/self/fd/3 ---
bundle 'test -p /proc/self/fd/3 && echo fd3-is-a-pipe; tr a-z A-Z </proc/self/fd/3'
out=$(printf 'hello\nworld\n' | timeout 60 "$MOAT" --root "$ROOT" run --bundle "$B" --preserve-fds 1 ${P}r1 3<&0 </dev/null 2>"$WORK/err")
rc=$?
expect_eq "run --preserve-fds 1: the process reads the caller's pipe at /proc/self/fd/3 until EOF" \
    "0 fd3-is-a-pipe HELLO WORLD" "$rc $(echo $out)"
[ "$rc" -eq 0 ] || diag "$(cat "$WORK/err")"

# --- run: a pipe the container writes (fd 4) and the test reads; fd 3 from a file
echo from-file >"$WORK/in.txt"
bundle 'cat <&3 >&4; echo stdout-line; test -w /proc/self/fd/4 && echo fd4-writable >&4'
out=$(timeout 60 "$MOAT" --root "$ROOT" run --bundle "$B" --preserve-fds 2 ${P}r2 3<"$WORK/in.txt" 4>&1 \
    >"$WORK/stdout" </dev/null 2>"$WORK/err")
rc=$?
expect_eq "run --preserve-fds 2: the container writes into the caller's pipe at fd 4" \
    "0 from-file fd4-writable" "$rc $(echo $out)"
expect_eq "run --preserve-fds 2: stdout stays stdout" "stdout-line" "$(cat "$WORK/stdout")"

# --- EOF from the container: closing fd 4 ends the host reader while it runs
mkfifo "$WORK/fifo"
bundle 'echo early >&4; exec 4>&-; sleep 6; echo late'
# (no `timeout` wrapper here: it would hold fd 4 itself; a watchdog instead)
"$MOAT" --root "$ROOT" run --bundle "$B" --preserve-fds 2 ${P}r3 3</dev/null 4>"$WORK/fifo" \
    >"$WORK/stdout3" </dev/null 2>"$WORK/err3" &
runpid=$!
(sleep 60; kill "$runpid" 2>/dev/null) </dev/null >/dev/null 2>&1 &
watchdog=$!
start=$SECONDS
got=$(timeout 40 cat "$WORK/fifo")
took=$((SECONDS - start))
still=no
kill -0 "$runpid" 2>/dev/null && still=yes
expect_eq "run: the container closing fd 4 is EOF for the host reader (while the container runs)" \
    "early yes" "$got $still"
wait "$runpid"
expect_eq "run: then the container finishes normally" "0 late" "$? $(cat "$WORK/stdout3")"
pkill -P "$watchdog" 2>/dev/null
kill "$watchdog" 2>/dev/null
diag "reader got EOF after ${took}s"

# --- a read-write fd: a socketpair, both directions and both half-closes
bundle 'test -S /proc/self/fd/3 && echo fd3-is-a-socket; read l <&3; echo "pong:$l" >&3; exec 3>&-; echo done'
out=$(python3 - "$MOAT" "$ROOT" "$B" "$P" <<'EOF'
import os, socket, sys
moat, root, bundle = sys.argv[1:4]
a, b = socket.socketpair()
pid = os.fork()
if pid == 0:
    os.dup2(b.fileno(), 3)  # the copy at 3 is inheritable
    os.execv(moat, ["moat", "--root", root, "run", "--bundle", bundle, "--preserve-fds", "1", sys.argv[4] + "rw1"])
b.close()
a.settimeout(60)
a.sendall(b"ping\n")
a.shutdown(socket.SHUT_WR)
data = b""
while True:
    d = a.recv(100)
    if not d:
        break
    data += d
_, st = os.waitpid(pid, 0)
print(data.decode().strip(), os.waitstatus_to_exitcode(st))
EOF
)
expect_eq "run: a read-write socket at fd 3 carries data both ways, then EOF" \
    "pong:ping 0" "$(echo "$out" | tail -1)"

# --- a listening socket is refused before anything boots -----------------------
bundle 'true'
err=$(python3 - "$MOAT" "$ROOT" "$B" "$WORK/l.sock" "$P" <<'EOF' 2>&1
import os, socket, sys
moat, root, bundle, path = sys.argv[1:5]
l = socket.socket(socket.AF_UNIX)
l.bind(path)
l.listen()
os.dup2(l.fileno(), 4)
os.dup2(os.open("/dev/null", os.O_RDONLY), 3)
os.execv(moat, ["moat", "--root", root, "run", "--bundle", bundle, "--preserve-fds", "2", sys.argv[5] + "lis1"])
EOF
)
rc=$?
case "$rc:$err" in
[1-9]*:*"fd 4 is a listening socket; cannot be relayed into the VM"*) ok "run --preserve-fds: a listening socket is refused, naming the fd" ;;
*) not_ok "run --preserve-fds: a listening socket is refused, naming the fd"; diag "exit $rc: $err" ;;
esac
expect_eq "run --preserve-fds: after the refusal no state dir and no process are left" ":" \
    "$(ls "$ROOT" | grep -x "${P}lis1"):$(leftovers)"
err=$(moat run --bundle "$B" --preserve-fds 3 ${P}nf1 3</dev/null 2>&1 >/dev/null)
case "$err" in
*"--preserve-fds 3: fd 4 is not open"*) ok "run --preserve-fds 3 without fd 4: refused, naming fd 4" ;;
*) not_ok "run --preserve-fds 3 without fd 4: refused, naming fd 4"; diag "$err" ;;
esac

# --- exec --------------------------------------------------------------------
bundle 'sleep 300'
if ! moat run -d --bundle "$B" ${P}ex1 </dev/null >/dev/null 2>"$WORK/err"; then
    not_ok "run -d for the exec checks"
    diag "$(cat "$WORK/err")"
else
    out=$(printf 'exec-in\n' | timeout 60 "$MOAT" --root "$ROOT" exec --preserve-fds 2 ${P}ex1 \
        sh -c 'tr a-z A-Z </proc/self/fd/3 >&4; echo on-stdout' 3<&0 4>&1 >"$WORK/exstdout" </dev/null 2>"$WORK/err")
    expect_eq "exec --preserve-fds 2: pipe in at fd 3, pipe out at fd 4" "0 EXEC-IN on-stdout" \
        "$? $out $(cat "$WORK/exstdout")"
    echo detached-in >"$WORK/in2.txt"
    moat exec -d --pid-file "$WORK/ex.pid" --preserve-fds 2 ${P}ex1 sh -c 'cat <&3 >&4' \
        3<"$WORK/in2.txt" 4>"$WORK/out2.txt" </dev/null >/dev/null 2>"$WORK/err"
    rc=$?
    for _ in $(seq 50); do
        [ -s "$WORK/out2.txt" ] && ! kill -0 "$(cat "$WORK/ex.pid" 2>/dev/null)" 2>/dev/null && break
        sleep 0.2
    done
    expect_eq "exec -d --preserve-fds 2: the detached stand-in relays a file in and out" "0 detached-in" \
        "$rc $(cat "$WORK/out2.txt")"
    out=$(moat exec ${P}ex1 sh -c 'ls /proc/self/fd | sort -n | tr "\n" " "' </dev/null 2>&1)
    expect_eq "exec without --preserve-fds: only 0 1 2 (and ls's own)" "0 1 2 3 " "$out"
    moat delete --force ${P}ex1 >/dev/null 2>&1
fi

# --- podman ------------------------------------------------------------------
if [ "${PFD_PODMAN:-1}" = 0 ] || ! command -v podman >/dev/null || ! command -v conmon >/dev/null; then
    skip "podman run --preserve-fds" "podman or conmon is not installed"
else
    source tests/clients/lib.sh
    trap 'clients_run_cleanups; cleanup' EXIT
    D=$(mktemp -d /tmp/moat-pfd-podman.XXXXXX)
    clients_on_exit "rm -rf '$D'"
    clients_on_exit "umount_under '$D'"
    clients_on_exit "kill_under '$D'"
    mkdir -p "$D/storage" "$D/run" "$D/tmp" "$D/net" "$D/logs"
    RUNTIME=$MOAT
    if ! why=$(clients_runtime); then
        skip "podman run --preserve-fds" "$why"
    else
        clients_runtime >/dev/null
        RT=$(clients_runtime_wrapper "$D/logs")
        pm() {
            tmo podman --root "$D/storage" --runroot "$D/run" --tmpdir "$D/tmp" \
                --network-config-dir "$D/net" --storage-driver overlay \
                --runtime "$RT" --cgroup-manager cgroupfs --events-backend file "$@" 2>>"$D/logs/podman.log"
        }
        clients_on_exit "pm system reset -f"
        clients_on_exit "pm rm -af -t 2"
        DIAG_LOGS=("podman=$D/logs/podman.log" "runtime calls=$D/logs/runtime-calls.log" "runtime log=$D/logs/runtime.log")
        diag_mark
        if archive=$(clients_image_archive) && pm load -i "$archive" >/dev/null; then
            out=$(printf 'via-podman\n' | pm run --rm --network none --ulimit nofile=1024:1024 \
                --ulimit nproc=1024:1024 --preserve-fds 1 "$CLIENTS_IMAGE" \
                sh -c 'tr a-z A-Z </proc/self/fd/3' 3<&0 </dev/null)
            expect "podman run --preserve-fds 1: the container reads the caller's fd 3" "VIA-PODMAN" "$out"
            pass_if "podman run --preserve-fds: moat was called with --preserve-fds 1" \
                grep -q -- "--preserve-fds 1" "$D/logs/runtime-calls.log"
        else
            fail_with_logs "podman load of the busybox image"
        fi
    fi
fi

expect_eq "nothing of the test's root is left running" "" "$(sleep 1; leftovers)"
done_testing
