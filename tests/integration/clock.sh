#!/bin/bash
# The guest's wall clock and hostname, seen from a container, against the
# host's: right after start, across pause/resume, after a container set the
# guest's clock wrong, after minutes of running; the mtime a bind-mounted
# file gets; the hostname with and without a UTS namespace. Real VMs.
#   MOAT_CLOCK_RUN_SECONDS (default 120): how long the long-running
#   container runs before its last check.
# The guest's time is read with busybox adjtimex (microseconds; busybox
# date has no %N).
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
RUN_SECONDS=${MOAT_CLOCK_RUN_SECONDS:-120}
for f in "$MOAT" build/moat-vsock build/initramfs.cpio.gz build/vmlinux; do
    if [ ! -e "$f" ]; then
        skip "guest clock and hostname" "$f is missing (run make && make guest)"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    skip "guest clock and hostname" "needs root"
    exit 0
fi

ROOT=$(mktemp -d /tmp/moat-clock.XXXXXX)
WORK=$(mktemp -d /tmp/moat-clock-work.XXXXXX)
trap 'pkill -KILL -f "$ROOT/" 2>/dev/null; grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l; rm -rf "$ROOT" "$WORK"' EXIT
moat() { "$MOAT" --root "$ROOT" "$@"; }

# clock_bundle DIR [JQ-FILTER]: a busybox bundle with /bin/now, which
# prints the guest's CLOCK_REALTIME as seconds.microseconds
clock_bundle() {
    bundle "$1" "${2:-.}"
    cat >"$1/rootfs/bin/now" <<'EOF'
#!/bin/sh
adjtimex | awk '/tv_sec/ { s = $2 } /tv_usec/ { u = $2 } END { printf "%d.%06d\n", s, u }'
EOF
    chmod 0755 "$1/rootfs/bin/now"
}
hnow() { date +%s.%N; }
# within NAME T0 G T1 SLACK: the guest time G lies in the host's [T0, T1]
# widened by SLACK seconds
within() {
    local name=$1 t0=$2 g=$3 t1=$4 slack=$5
    if [ -n "$g" ] && awk -v a="$t0" -v g="$g" -v b="$t1" -v s="$slack" 'BEGIN { exit !(g >= a - s && g <= b + s) }'; then
        ok "$name"
    else
        not_ok "$name"
    fi
    diag "host [$t0, $t1], guest ${g:-(nothing)}"
}
# guest_check NAME ID SLACK: exec /bin/now in container ID
guest_check() {
    local t0 g t1
    t0=$(hnow)
    g=$(moat exec "$2" /bin/now 2>"$WORK/exec.err")
    t1=$(hnow)
    [ -s "$WORK/exec.err" ] && diag "exec: $(head -3 "$WORK/exec.err")"
    within "$1" "$t0" "$g" "$t1" "$3"
}
stopped() { [ "$(moat state "$1" 2>/dev/null | jq -r .status)" = stopped ]; }
wait_running() { wait_for 60 sh -c "$MOAT --root $ROOT state $1 2>/dev/null | jq -e '.status == \"running\"' >/dev/null"; }

# --- a running container: start, bind-mount mtime, pause/resume ---------------
mkdir -p "$WORK/vol"
clock_bundle "$WORK/c" '.process.args = ["sleep", "100000"] | .mounts += [{"destination": "/vol", "type": "bind", "source": "'"$WORK/vol"'", "options": ["rbind", "rw"]}]'
t_start=$(date +%s)
if moat create -b "$WORK/c" c >"$WORK/c.out" 2>&1 </dev/null && moat start c && wait_running c; then
    ok "long-running container starts"
else
    not_ok "long-running container starts"
    diag "$(tail -5 "$WORK/c.out")"
fi
guest_check "right after start: the guest's clock is within 1 s of the host's" c 1
guest_check "right after start: within 0.25 s (the clock was set, not guessed)" c 0.25

moat exec c touch /vol/made-in-guest
m=$(stat -c %Y "$WORK/vol/made-in-guest" 2>/dev/null || echo 0)
n=$(date +%s)
diag "host mtime $m, host now $n"
check "a file the container creates on a bind mount has a host mtime within 2 s of now" \
    test $((n - m)) -le 2 -a $((m - n)) -le 2
moat exec c touch -c /vol/made-in-guest
m=$(stat -c %Y "$WORK/vol/made-in-guest" 2>/dev/null || echo 0)
n=$(date +%s)
check "the container's touch of an existing file sets a host mtime within 2 s of now" \
    test $((n - m)) -le 2 -a $((m - n)) -le 2

if moat pause c; then
    sleep 5
    moat resume c
    guest_check "after pause, 5 s, resume: within 1 s of the host's" c 1
else
    not_ok "pause the container"
fi

# --- moat run: the first instruction of the container already sees the time ---
clock_bundle "$WORK/r" '.process.args = ["sh", "-c", "now; hostname"]'
t0=$(hnow)
out=$(moat run -b "$WORK/r" r 2>"$WORK/r.err" </dev/null)
t1=$(hnow)
within "moat run: the container's first reading of the clock is the host's time" "$t0" "$(echo "$out" | sed -n 1p)" "$t1" 1
expect_eq "a container with hostname set in its config sees it" moat "$(echo "$out" | sed -n 2p)"

# --- hostname without a UTS namespace, and a new one without a hostname ------
bundle "$WORK/nouts" '.process.args = ["hostname"] | .linux.namespaces |= map(select(.type != "uts")) | del(.hostname)'
expect_eq "no UTS namespace: the container sees the host's hostname (as under runc)" "$(hostname)" \
    "$(moat run -b "$WORK/nouts" nouts 2>"$WORK/nouts.err" </dev/null)"
bundle "$WORK/newuts" '.process.args = ["hostname"] | del(.hostname)'
expect_eq "new UTS namespace, no hostname: starts from the host's hostname (as under runc)" "$(hostname)" \
    "$(moat run -b "$WORK/newuts" newuts 2>"$WORK/newuts.err" </dev/null)"

# --- a container that sets the guest's clock wrong is corrected ----------------
clock_bundle "$WORK/skew" '.process.args = ["sleep", "100000"] | .process.capabilities |= with_entries(.value += ["CAP_SYS_TIME"])'
if moat create -b "$WORK/skew" skew >"$WORK/skew.out" 2>&1 </dev/null && moat start skew && wait_running skew; then
    moat exec skew date -u -s '2001-09-09 01:46:40' >/dev/null
    g=$(moat exec skew /bin/now)
    diag "guest after date -s: $g"
    check "a container with CAP_SYS_TIME sets only the guest's clock" test "${g%%.*}" -lt 1100000000 -a "$(date +%s)" -gt 1700000000
    fixed() { local t0 g t1; t0=$(hnow); g=$(moat exec skew /bin/now); t1=$(hnow);
        awk -v a="$t0" -v g="$g" -v b="$t1" 'BEGIN { exit !(g >= a - 1 && g <= b + 1) }'; }
    t0=$(date +%s)
    if wait_for 30 fixed; then
        ok "the stand-in brings the guest's clock back to the host's ($(($(date +%s) - t0)) s)"
    else
        not_ok "the stand-in brings the guest's clock back to the host's"
    fi
    moat delete -f skew
else
    not_ok "the skew container starts"
    diag "$(tail -5 "$WORK/skew.out")"
fi

# --- after minutes of running --------------------------------------------------
left=$((t_start + RUN_SECONDS - $(date +%s)))
[ "$left" -gt 0 ] && sleep "$left"
guest_check "after $RUN_SECONDS s of running: still within 1 s of the host's" c 1
moat kill c KILL
wait_for 20 stopped c
moat delete c
check "nothing left in the state directory" test -z "$(ls -A "$ROOT")"
done_testing
