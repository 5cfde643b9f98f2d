#!/bin/bash
# moat run: real VMs (QEMU), real containers. Needs root, build/moat,
# build/moat-vsock, build/initramfs.cpio.gz and build/vmlinux.
# In-container checks are batched into few VMs (one boot is ~2-3 s under
# TCG); each fact is still its own TAP line.
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
ROOT=$(mktemp -d /tmp/moat-it.XXXXXX)
WORK=$(mktemp -d /tmp/moat-it-work.XXXXXX)
trap 'pkill -KILL -f "$ROOT/" 2>/dev/null; grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l; rm -rf "$ROOT" "$WORK"' EXIT

for f in "$MOAT" build/moat-vsock build/initramfs.cpio.gz build/vmlinux; do
    if [ ! -e "$f" ]; then
        skip "moat run" "$f is missing (run make && make guest)"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    skip "moat run" "needs root"
    exit 0
fi

moat() { "$MOAT" --root "$ROOT" "$@"; }

# assert_clean NAME ID: nothing of the container is left on the host.
assert_clean() {
    local name=$1 id=$2 left=""
    if pgrep -f "$ROOT/$id/" >/dev/null; then left="$left processes($(pgrep -f "$ROOT/$id/" | tr '\n' ' '))"; fi
    [ -e "$ROOT/$id" ] && left="$left state-dir"
    grep -q " $ROOT/" /proc/mounts && left="$left mounts"
    if [ -z "$left" ]; then ok "$name: nothing left behind"; else not_ok "$name: left behind:$left"; fi
}

bundle() { # DIR [JQ-ARGS...] JQ-FILTER: a fresh busybox bundle, config edited by jq
    local dir=$1
    shift
    scripts/mkbundle.sh "$dir" >/dev/null
    if ! jq "$@" "$dir/config.json" >"$dir/config.tmp"; then
        diag "jq failed on $dir"
        return 1
    fi
    mv "$dir/config.tmp" "$dir/config.json"
}

# A fake QEMU that records that a VM was started: the validation cases must
# never get that far.
FAKEQEMU=$WORK/fake-qemu
cat >"$FAKEQEMU" <<EOF2
#!/bin/sh
touch $WORK/vm-started
exit 1
EOF2
chmod +x "$FAKEQEMU"

kernel_release=$(cat "$(dirname "$(readlink -f build/vmlinux)")/release")

# --- 1. one VM, many facts -------------------------------------------------
B=$WORK/facts
mkdir -p "$WORK/vol"
echo volume-ok >"$WORK/vol/file"
echo file-bind-ok >"$WORK/single-file"
script='echo hello
echo release=$(uname -r)
echo pid=$$
echo hostname=$(hostname)
echo capeff=$(sed -n "s/^CapEff:[[:space:]]*//p" /proc/self/status)
echo memmax=$(cat /sys/fs/cgroup/memory.max)
echo mkdir=$(mkdir /dev/shm/x 2>&1 && echo created)
if touch /rootfs-write 2>/dev/null; then echo rootwrite=ok; else echo rootwrite=fail; fi
if [ -e /proc/kcore ]; then echo kcore=$(wc -c </proc/kcore); else echo kcore=absent; fi
echo version=$(wc -c </proc/version)
echo keys=$(wc -c </proc/keys)
echo vol=$(cat /vol/file)
echo filebind=$(cat /etc/motd)
echo err-to-stderr >&2
exit 7'
bundle "$B" --arg s "$script" --arg vol "$WORK/vol" --arg file "$WORK/single-file" '
  .process.args = ["sh", "-c", $s]
  | .hostname = "moat-test"
  | .linux.maskedPaths += ["/proc/version"]
  | .linux.resources.memory = {"limit": 67108864}
  | .linux.seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                      "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
  | .mounts += [{"destination": "/vol", "type": "bind", "source": $vol, "options": ["rbind", "ro"]},
                {"destination": "/etc/motd", "type": "bind", "source": $file, "options": ["bind", "ro"]}]'
moat run -b "$B" facts >"$WORK/facts.out" 2>"$WORK/facts.err"
rc=$?
fact() { sed -n "s/^$1=//p" "$WORK/facts.out" | head -1; }
expect_eq "sh -c 'exit 7' exits 7" 7 "$rc"
expect_eq "echo hello reaches stdout" hello "$(head -1 "$WORK/facts.out")"
if grep -q err-to-stderr "$WORK/facts.err"; then ok "stderr reaches stderr"; else not_ok "stderr reaches stderr"; fi
expect_eq "guest kernel release is the built one" "$kernel_release" "$(fact release)"
if [ "$(fact release)" != "$(uname -r)" ]; then ok "guest kernel differs from the host's"; else not_ok "guest kernel differs from the host's"; fi
expect_eq "the process is PID 1" 1 "$(fact pid)"
expect_eq "hostname" moat-test "$(fact hostname)"
expect_eq "CapEff is the configured set (AUDIT_WRITE KILL NET_BIND_SERVICE)" 0000000020000420 "$(fact capeff)"
expect_eq "memory.limit 64 MiB -> memory.max" 67108864 "$(fact memmax)"
case "$(fact mkdir)" in
*"not permitted"*) ok "seccomp denies mkdir with EPERM" ;;
*) not_ok "seccomp denies mkdir with EPERM"; diag "mkdir said: $(fact mkdir)" ;;
esac
expect_eq "root.readonly: writing / fails" fail "$(fact rootwrite)"
case "$(fact kcore)" in
0) ok "maskedPaths: /proc/kcore reads empty" ;;
absent) skip "maskedPaths: /proc/kcore reads empty" "the guest kernel has no /proc/kcore" ;;
*) not_ok "maskedPaths: /proc/kcore reads empty"; diag "read $(fact kcore) bytes" ;;
esac
expect_eq "maskedPaths: /proc/version (added) reads empty" 0 "$(fact version)"
expect_eq "maskedPaths: /proc/keys reads empty" 0 "$(fact keys)"
expect_eq "bind-mounted directory (rbind, ro)" volume-ok "$(fact vol)"
expect_eq "bind-mounted file" file-bind-ok "$(fact filebind)"
if [ "$rc" -ne 7 ]; then diag "stderr: $(cat "$WORK/facts.err")"; fi
assert_clean "facts" facts

# --- 2. user, stdin ---------------------------------------------------------
B=$WORK/user
bundle "$B" '.process.args = ["sh", "-c", "echo uid=$(id -u); echo gid=$(id -g); read line; echo stdin=$line"]
             | .process.user = {"uid": 1000, "gid": 1000}'
out=$(echo piped-in | moat run -b "$B" user 2>"$WORK/user.err")
rc=$?
expect_eq "user 1000:1000: id -u" 1000 "$(sed -n 's/^uid=//p' <<<"$out")"
expect_eq "user 1000:1000: id -g" 1000 "$(sed -n 's/^gid=//p' <<<"$out")"
expect_eq "stdin is relayed" piped-in "$(sed -n 's/^stdin=//p' <<<"$out")"
expect_eq "exit 0" 0 "$rc"
assert_clean "user" user

# --- 3. killed by a signal --------------------------------------------------
B=$WORK/kill
# Without a pid namespace: PID 1 of a namespace cannot SIGKILL itself.
bundle "$B" '.process.args = ["sh", "-c", "kill -9 $$"] | del(.linux.namespaces[] | select(.type == "pid"))'
# ... under a --root too long for Unix socket paths (sun_path is 108 bytes)
LONGROOT=$ROOT/$(printf 'l%.0s' $(seq 100))
"$MOAT" --root "$LONGROOT" run -b "$B" kill9 </dev/null >/dev/null 2>"$WORK/kill.err"
rc=$?
expect_eq "killed by SIGKILL -> 137 (long --root)" 137 "$rc"
[ "$rc" -ne 137 ] && diag "$(cat "$WORK/kill.err")"
assert_clean "kill -9" "${LONGROOT#$ROOT/}/kill9"

# --- 4. SIGTERM forwarded; duplicate id -------------------------------------
B=$WORK/term
mkdir -p "$WORK/data"
bundle "$B" --arg data "$WORK/data" '
  .process.args = ["sh", "-c", "echo from-guest >/data/out; touch /rw-root && echo rw=ok; trap \"echo got-term; exit 143\" TERM; echo ready; while :; do sleep 0.1; done"]
  | .root.readonly = false
  | .mounts += [{"destination": "/data", "type": "bind", "source": $data, "options": ["rbind", "rprivate"]}]'
"$MOAT" --root "$ROOT" run -b "$B" term </dev/null >"$WORK/term.out" 2>"$WORK/term.err" &
pid=$!
for _ in $(seq 600); do grep -q ready "$WORK/term.out" && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if grep -q ready "$WORK/term.out"; then
    dup=$(moat run -b "$B" term 2>&1 </dev/null)
    drc=$?
    expect_eq "duplicate id is refused" 1 "$drc"
    case "$dup" in *'container "term" already exists'*) ok "duplicate id: clear error" ;; *) not_ok "duplicate id: clear error"; diag "$dup" ;; esac
    kill -TERM $pid
    wait $pid
    rc=$?
    expect_eq "SIGTERM to moat run reaches the container (exit 143)" 143 "$rc"
    if grep -q got-term "$WORK/term.out"; then ok "container's TERM trap ran"; else not_ok "container's TERM trap ran"; fi
    if grep -q rw=ok "$WORK/term.out"; then ok "writable root (root.readonly false)"; else not_ok "writable root (root.readonly false)"; fi
    expect_eq "rw bind mount: the container's write reaches the host" from-guest "$(cat "$WORK/data/out" 2>&1)"
else
    kill -KILL $pid 2>/dev/null; wait $pid
    not_ok "container for the SIGTERM test did not start"; diag "$(cat "$WORK/term.err")"
fi
assert_clean "SIGTERM" term

# --- 5. invalid configs: clear error, no VM ---------------------------------
invalid() { # NAME ID EXPECTED-SUBSTRING JQ-FILTER|--raw TEXT
    local name=$1 id=$2 want=$3 b=$WORK/inv-$2 out rc
    rm -f "$WORK/vm-started"
    if [ "$4" = --raw ]; then
        scripts/mkbundle.sh "$b" >/dev/null
        printf '%s' "$5" >"$b/config.json"
    else
        bundle "$b" "$4"
    fi
    out=$(MOAT_QEMU=$FAKEQEMU moat run -b "$b" "$id" 2>&1 </dev/null)
    rc=$?
    if [ $rc -eq 1 ] && [[ "$out" == "moat: run $id: "*"$want"* ]] && [ ! -e "$WORK/vm-started" ]; then
        ok "$name"
    else
        not_ok "$name"; diag "rc=$rc output: $out"; [ -e "$WORK/vm-started" ] && diag "a VM was started"
    fi
    assert_clean "$name" "$id"
}
full=$(scripts/mkbundle.sh "$WORK/tmpb" >/dev/null; cat "$WORK/tmpb/config.json")
invalid "truncated config.json" trunc "config.json" --raw "${full:0:200}"
invalid "wrong type (process.args)" wrongtype "process.args" '.process.args = "sh"'
invalid "unknown namespace type" badns "foo" '.linux.namespaces += [{"type": "foo"}]'
invalid "missing root.path" noroot "root" 'del(.root.path)'
invalid "host device refused" hostdev "linux.devices: /dev/sda: b 8:0 is a host device; host devices cannot be passed into the VM" \
    '.linux.devices = [{"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}]'
invalid "empty config.json" empty "config.json" --raw ""
out=$(moat run -b "$WORK/does-not-exist" nob 2>&1); rc=$?
if [ $rc -eq 1 ] && [[ "$out" == *does-not-exist* ]]; then ok "nonexistent bundle named"; else not_ok "nonexistent bundle named"; diag "$out"; fi
out=$(moat run -b "$WORK/facts" "../x" 2>&1); rc=$?
if [ $rc -eq 1 ] && [[ "$out" == *"invalid container id"* ]]; then ok "bad id refused"; else not_ok "bad id refused"; diag "$out"; fi
out=$("$MOAT" frobnicate 2>&1); rc=$?
if [ $rc -eq 1 ] && [[ "$out" == *'unknown command "frobnicate"'* ]]; then ok "unknown verb"; else not_ok "unknown verb"; diag "$out"; fi

# --- 6. a guest that never answers ------------------------------------------
mkdir -p "$WORK/sleepinit/bin"
cp /bin/busybox "$WORK/sleepinit/bin/"
printf '#!/bin/busybox sh\n/bin/busybox echo sleeping-forever\nexec /bin/busybox sleep 100000\n' >"$WORK/sleepinit/init"
chmod +x "$WORK/sleepinit/init"
(cd "$WORK/sleepinit" && find . | cpio -o -H newc 2>/dev/null | gzip >"$WORK/sleep.cpio.gz")
B=$WORK/facts
# The guest must print its line within the timeout: a slow host (a nested
# guest under TCG prints nothing in 4 s) raises MOAT_TEST_SILENT_TIMEOUT.
silent_timeout=${MOAT_TEST_SILENT_TIMEOUT:-4}
start=$(date +%s)
out=$(MOAT_INITRD=$WORK/sleep.cpio.gz MOAT_BOOT_TIMEOUT=$silent_timeout moat run -b "$B" mute 2>&1 </dev/null)
rc=$?
took=$(($(date +%s) - start))
if [ $rc -eq 1 ] && [[ "$out" == *"guest did not answer within ${silent_timeout}s"* ]] && [[ "$out" == *sleeping-forever* ]]; then
    ok "silent guest: killed after the boot timeout with the console tail"
else
    not_ok "silent guest: killed after the boot timeout with the console tail"; diag "rc=$rc $out"
fi
if [ "$took" -lt $((silent_timeout + 11)) ]; then ok "silent guest: gave up in ${took}s"; else not_ok "silent guest: took ${took}s"; fi
assert_clean "silent guest" mute

# --- 7. interrupted during boot; VM killed under a running container --------
B=$WORK/sleeper
bundle "$B" '.process.args = ["sleep", "100"]'
"$MOAT" --root "$ROOT" run -b "$B" intr </dev/null >/dev/null 2>"$WORK/intr.err" &
pid=$!
sleep 0.5
kill -INT $pid
wait $pid
rc=$?
if [ $rc -eq 1 ] && grep -q "interrupted while the VM was booting" "$WORK/intr.err"; then
    ok "SIGINT during boot: clear error"
else
    not_ok "SIGINT during boot: clear error"; diag "rc=$rc $(cat "$WORK/intr.err")"
fi
assert_clean "SIGINT during boot" intr

"$MOAT" --root "$ROOT" run -b "$B" vmdies </dev/null >/dev/null 2>"$WORK/vmdies.err" &
pid=$!
for _ in $(seq 600); do grep -q '"status":"running"' "$ROOT/vmdies/state.json" 2>/dev/null && break; sleep 0.1; done
# whichever VMM the sandbox runs (QEMU or moat-vmm): its pid from moat's state
vmm_pid=$(jq -r '.vmmPid // 0' "$ROOT/vmdies/state.json" 2>/dev/null)
vmm_cmd=$(tr '\0' ' ' <"/proc/${vmm_pid:-0}/cmdline" 2>/dev/null)
if [ "${vmm_pid:-0}" -gt 0 ] && [[ "$vmm_cmd" == *"$ROOT/vmdies/"* ]]; then
    kill -KILL "$vmm_pid"
    ok "VM killed under a running container: the VMM's pid is in state.json"
    diag "killed ${vmm_cmd%% *}"
else
    not_ok "VM killed under a running container: the VMM's pid is in state.json"; diag "vmmPid=$vmm_pid"
    kill -KILL $pid
fi
wait $pid
rc=$?
if [ $rc -eq 1 ] && grep -q "wait for the container: .*(the VM exited)" "$WORK/vmdies.err"; then
    ok "VM killed under a running container: clear error"
else
    not_ok "VM killed under a running container: clear error"; diag "rc=$rc $(cat "$WORK/vmdies.err")"
fi
assert_clean "VM killed" vmdies

# --- 8. global options --------------------------------------------------------
"$MOAT" --root "$ROOT" --log "$WORK/log.json" --log-format json run -b "$WORK/nowhere" jl >/dev/null 2>&1
if jq -e 'select(.level == "error") | .msg | test("run jl: bundle")' "$WORK/log.json" >/dev/null 2>&1; then
    ok "--log-format json writes runc-style error lines"
else
    not_ok "--log-format json writes runc-style error lines"; diag "$(cat "$WORK/log.json" 2>&1)"
fi
out=$("$MOAT" --version); case "$out" in "moat version "*) ok "--version" ;; *) not_ok "--version"; diag "$out" ;; esac
done_testing
