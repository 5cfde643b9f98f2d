#!/bin/bash
# The runc-compatible verbs besides create/start/run/exec: spec, features,
# env, list, ps, pause, resume, update, events. The file-only checks need no
# VM; the rest share ONE real container (QEMU), created from `moat spec`'s
# own output, so that one boot covers them all.
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
ROOT=$(mktemp -d /tmp/moat-verbs.XXXXXX)
WORK=$(mktemp -d /tmp/moat-verbs-work.XXXXXX)
ID=verbs1

moat() { "$MOAT" --root "$ROOT" "$@"; }

cleanup() {
    if [ -d "$ROOT/$ID" ]; then
        moat delete --force "$ID" >/dev/null 2>&1
    fi
    if [ -s "$WORK/standin.pid" ]; then
        kill -KILL "$(cat "$WORK/standin.pid")" 2>/dev/null
    fi
    grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
    rm -rf "$ROOT" "$WORK"
}
trap cleanup EXIT

if [ ! -x "$MOAT" ]; then
    skip "moat verbs" "$MOAT is missing (run make)"
    exit 0
fi

# fails NAME NEEDLE COMMAND...: the command exits non-zero and its stderr
# contains NEEDLE.
fails() {
    local name=$1 needle=$2 out rc
    shift 2
    out=$("$@" 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" -ne 0 ] && [[ "$out" == *"$needle"* ]]; then
        ok "$name"
    else
        not_ok "$name"
        diag "exit $rc, stderr: $out"
    fi
}

# wait_for SECONDS COMMAND...: polls until the command succeeds.
wait_for() {
    local end=$((SECONDS + $1))
    shift
    while [ $SECONDS -lt "$end" ]; do
        "$@" && return 0
        sleep 0.2
    done
    "$@"
}

# --- spec -------------------------------------------------------------------
mkdir -p "$WORK/spec" "$WORK/rootless"
if moat spec --bundle "$WORK/spec"; then ok "spec --bundle writes config.json"; else not_ok "spec --bundle writes config.json"; fi
if jq -e . "$WORK/spec/config.json" >/dev/null 2>&1; then ok "spec: valid JSON"; else not_ok "spec: valid JSON"; fi
expect_eq "spec: args [\"sh\"], terminal true (as runc)" '["sh"] true' \
    "$(jq -c .process.args "$WORK/spec/config.json") $(jq -c .process.terminal "$WORK/spec/config.json")"
expect_eq "spec: root rootfs, read-only" '"rootfs" true' \
    "$(jq -c .root.path "$WORK/spec/config.json") $(jq -c .root.readonly "$WORK/spec/config.json")"
expect_eq "spec: namespaces pid network ipc uts mount" 'pid network ipc uts mount' \
    "$(jq -r '[.linux.namespaces[].type] | join(" ")' "$WORK/spec/config.json")"
expect_eq "spec: the runc mount list" '/proc /dev /dev/pts /dev/shm /dev/mqueue /sys /sys/fs/cgroup' \
    "$(jq -r '[.mounts[].destination] | join(" ")' "$WORK/spec/config.json")"
if command -v runc >/dev/null 2>&1; then
    mkdir -p "$WORK/runc-spec"
    (cd "$WORK/runc-spec" && runc spec)
    # same document except the hostname and the spec version string
    norm='del(.hostname, .ociVersion)'
    if diff <(jq -S "$norm" "$WORK/runc-spec/config.json") <(jq -S "$norm" "$WORK/spec/config.json") >"$WORK/spec.diff"; then
        ok "spec: same document as runc spec (but hostname, ociVersion)"
    else
        not_ok "spec: same document as runc spec (but hostname, ociVersion)"
        sed 's/^/# /' "$WORK/spec.diff" | head -20
    fi
else
    skip "spec: same document as runc spec (but hostname, ociVersion)" "runc is not installed"
fi
cp "$WORK/spec/config.json" "$WORK/spec.orig"
fails "spec refuses to overwrite config.json" "config.json exists. Remove it first" moat spec --bundle "$WORK/spec"
if cmp -s "$WORK/spec.orig" "$WORK/spec/config.json"; then ok "spec: the existing config.json is untouched"; else not_ok "spec: the existing config.json is untouched"; fi
fails "spec: missing bundle directory is named" "$WORK/nope" moat spec --bundle "$WORK/nope"
if (cd "$WORK/spec" && rm config.json && "$MOAT" spec) && [ -s "$WORK/spec/config.json" ]; then
    ok "spec without --bundle writes ./config.json"
else
    not_ok "spec without --bundle writes ./config.json"
fi
moat spec --rootless --bundle "$WORK/rootless"
expect_eq "spec --rootless: user namespace instead of network" 'pid ipc uts mount user' \
    "$(jq -r '[.linux.namespaces[].type] | join(" ")' "$WORK/rootless/config.json")"
expect_eq "spec --rootless: root maps to the caller" "$(id -u) 1" \
    "$(jq -r '.linux.uidMappings[0] | "\(.hostID) \(.size)"' "$WORK/rootless/config.json")"
expect_eq "spec --rootless: /sys is a bind mount, no device rules" 'none null' \
    "$(jq -r '(.mounts[] | select(.destination == "/sys") | .type), (.linux.resources | tostring)' "$WORK/rootless/config.json" | tr '\n' ' ' | sed 's/ $//')"

# --- features ---------------------------------------------------------------
moat features >"$WORK/features.json"
if jq -e . "$WORK/features.json" >/dev/null 2>&1; then ok "features: valid JSON"; else not_ok "features: valid JSON"; fi
expect_eq "features: ociVersionMax is the version moat reports" \
    "$("$MOAT" --version | sed -n 's/^spec: //p')" "$(jq -r .ociVersionMax "$WORK/features.json")"
expect_eq "features: cgroup v2 only, no systemd" 'false true false' \
    "$(jq -r '.linux.cgroup | "\(.v1) \(.v2) \(.systemd)"' "$WORK/features.json")"
expect_eq "features: seccomp enabled, no SCMP_ACT_NOTIFY" 'true false' \
    "$(jq -r '.linux.seccomp | "\(.enabled) \(.actions | index("SCMP_ACT_NOTIFY") != null)"' "$WORK/features.json")"
expect_eq "features: apparmor, selinux, intelRdt, idmap disabled" 'false false false false' \
    "$(jq -r '.linux | "\(.apparmor.enabled) \(.selinux.enabled) \(.intelRdt.enabled) \(.mountExtensions.idmap.enabled)"' "$WORK/features.json")"
expect_eq "features: 41 capabilities, CAP_CHOWN first" '41 CAP_CHOWN' \
    "$(jq -r '.linux.capabilities | "\(length) \(.[0])"' "$WORK/features.json")"
expect_eq "features: the six hooks" 'createContainer createRuntime poststart poststop prestart startContainer' \
    "$(jq -r '.hooks | sort | join(" ")' "$WORK/features.json")"
expect_eq "features: hypervisor annotation" 'qemu,moat-vmm' \
    "$(jq -r '.annotations["org.moat.hypervisor"]' "$WORK/features.json")"
if command -v runc >/dev/null 2>&1; then
    # every mount option moat claims is one runc knows too
    extra=$(jq -r --slurpfile r <(runc features) '.mountOptions - $r[0].mountOptions | join(" ")' "$WORK/features.json")
    expect_eq "features: mount options are a subset of runc's" "" "$extra"
fi
fails "features: rejects arguments" "unexpected argument" moat features extra

# --- env --------------------------------------------------------------------
moat env >"$WORK/env.out"
rc=$?
expect_eq "env exits 0" 0 "$rc"
if grep -qvE '^[A-Z_]+=' "$WORK/env.out"; then not_ok "env: only KEY=value lines"; else ok "env: only KEY=value lines"; fi
expect_eq "env: MOAT_ROOT is --root" "$ROOT" "$(sed -n 's/^MOAT_ROOT=//p' "$WORK/env.out")"
expect_eq "env: MOAT_VERSION" "$("$MOAT" --version | sed -n 's/^moat version //p')" "$(sed -n 's/^MOAT_VERSION=//p' "$WORK/env.out")"
kernel=$(sed -n 's/^MOAT_KERNEL=//p' "$WORK/env.out")
if [ -e build/vmlinux ]; then
    expect_eq "env: MOAT_KERNEL is the build's vmlinux" "$(readlink -f build/vmlinux)" "$kernel"
else
    skip "env: MOAT_KERNEL is the build's vmlinux" "build/vmlinux is missing"
fi
expect_eq "env: MOAT_KERNEL honours the environment" /dev/null \
    "$(MOAT_KERNEL=/dev/null "$MOAT" env | sed -n 's/^MOAT_KERNEL=//p')"
expect_eq "env: a missing file gets an empty value and an error line" "1 1" \
    "$(MOAT_INITRD=/nonexistent "$MOAT" env | grep -c '^MOAT_INITRD=$') $(MOAT_INITRD=/nonexistent "$MOAT" env | grep -c '^MOAT_INITRD_ERROR=.*nonexistent')"
expect_eq "env: MOAT_HYPERVISOR follows the environment" moat-vmm \
    "$(MOAT_HYPERVISOR=moat-vmm "$MOAT" env | sed -n 's/^MOAT_HYPERVISOR=//p')"
expect_eq "env --json: the same values" "$(sed -n 's/^MOAT_INITRD=//p' "$WORK/env.out")" \
    "$(moat env --json | jq -r .MOAT_INITRD)"

# --- list on an empty root, bad input (no VM) --------------------------------
expect_eq "list: header only when there is no container" 'ID          PID         STATUS      BUNDLE      CREATED     OWNER' "$(moat list)"
expect_eq "list --format json: empty array" '[]' "$(moat list --format json)"
expect_eq "list -q: nothing" '' "$(moat list -q)"
fails "list --format yaml is refused" 'expected table or json' moat list --format yaml
for verb in ps pause resume update events; do
    args=()
    [ "$verb" = update ] && args=(--memory 1m)
    fails "$verb: unknown id is named" 'container "nosuch" does not exist' moat "$verb" "${args[@]}" nosuch
done
fails "pause: needs an id" 'expected exactly one container ID' moat pause
fails "update: invalid --memory is named" '--memory: invalid size "12x"' moat update --memory 12x nosuch
fails "update: --l3-cache-schema is refused (no Intel RDT)" 'Intel RDT' moat update --l3-cache-schema L3:0=f nosuch
fails "update without options: the id is still checked" 'does not exist' moat update nosuch
fails "update: invalid --resources JSON is named" '--resources' sh -c "echo '{\"memory\":{\"limit\":\"x\"}}' | \"\$0\" --root \"\$1\" update -r - nosuch" "$MOAT" "$ROOT"
fails "events: invalid --interval is named" '--interval: invalid duration "5x"' moat events --interval 5x nosuch
fails "ps: host ps options are refused" 'not supported' moat ps nosuch -- -o pid
for verb in spec features env list ps pause resume update events; do
    if moat "$verb" --help | grep -q "Usage: moat $verb"; then ok "$verb --help"; else not_ok "$verb --help"; fi
done

# --- one real container -------------------------------------------------------
for f in build/moat-vsock build/initramfs.cpio.gz build/vmlinux; do
    if [ ! -e "$f" ]; then
        skip "verbs on a running container" "$f is missing (run make && make guest)"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    skip "verbs on a running container" "needs root"
    exit 0
fi
if ! moat create --help >/dev/null 2>&1; then
    skip "verbs on a running container" "moat create is not implemented yet"
    exit 0
fi

# The container is moat spec's config, made non-interactive. It prints a
# tick, the cgroup's memory.max and pids.max every 0.2 s to its stdout,
# which the stand-in writes to a file, so pause, resume and update can be
# seen from inside. The ambient set is dropped: runc's default lists
# ambient capabilities without inheritable ones, which moat's agent refuses
# (runc skips them).
B=$WORK/bundle
scripts/mkbundle.sh "$B" >/dev/null
rm "$B/config.json"
moat spec --bundle "$B"
script='sleep 1000 & i=0; while :; do i=$((i+1)); echo "tick=$i mem=$(cat /sys/fs/cgroup/memory.max) pids=$(cat /sys/fs/cgroup/pids.max)"; sleep 0.2; done'
jq --arg s "$script" '.process.terminal = false | .process.args = ["sh", "-c", $s]
    | del(.process.capabilities.ambient) | .linux.namespaces += [{"type": "cgroup"}]' \
    "$B/config.json" >"$B/config.tmp" && mv "$B/config.tmp" "$B/config.json"

moat create --bundle "$B" --pid-file "$WORK/standin.pid" "$ID" </dev/null >"$WORK/out" 2>"$WORK/err"
rc=$?
expect_eq "create from moat spec's config" 0 "$rc"
if [ "$rc" -ne 0 ]; then
    diag "$(cat "$WORK/err")"
    exit 0
fi
expect_eq "list: created" created "$(moat list --format json | jq -r '.[0].status')"
moat start "$ID"
ticks() { sed -n 's/^tick=\([0-9]*\).*/\1/p' "$WORK/out" | tail -1; }
wait_for 20 grep -q tick= "$WORK/out"

# list
pid=$(cat "$WORK/standin.pid")
line=$(moat list | sed -n 2p)
read -r l_id l_pid l_status l_bundle l_created l_owner <<<"$line"
expect_eq "list: one row: id pid status bundle owner" "$ID $pid running $B root" "$l_id $l_pid $l_status $l_bundle $l_owner"
expect_eq "list: created is the state's" "$(moat state "$ID" | jq -r .created)" "$l_created"
expect_eq "list -q: the id" "$ID" "$(moat list -q)"
expect_eq "list --format json: id pid status bundle owner" "$ID $pid running $B root" \
    "$(moat list --format json | jq -r '.[0] | "\(.id) \(.pid) \(.status) \(.bundle) \(.owner)"')"

# ps: --format json lists host pids, as runc (containerd's shim passes them
# to `docker top`, which filters the host's ps by them): the stand-ins of
# the init (the state's pid) and of each running exec. The table lists the
# guest pids.
expect_eq "ps --format json: the init's stand-in, the state's pid (host pids, as runc)" "[$pid]" \
    "$(moat ps --format json "$ID")"
table=$(moat ps "$ID")
expect_eq "ps (table): a PID header, then pids" "PID" "$(head -1 <<<"$table")$(sed 1d <<<"$table" | grep -v '^[0-9]*$')"
if [ "$(sed 1d <<<"$table" | wc -l)" -ge 2 ] && ! sed 1d <<<"$table" | grep -qx "$pid"; then
    ok "ps (table): the guest pids (sh and sleep at least), not the host's"
else
    not_ok "ps (table): the guest pids (sh and sleep at least), not the host's"
    diag "got: $table"
fi
# a detached exec: its stand-in is listed while the process runs, and
# dropped when the process ends (SIGTERM to the stand-in is forwarded)
moat exec -d --pid-file "$WORK/exec1.pid" "$ID" sleep 1000 </dev/null >/dev/null 2>&1
e1=$(cat "$WORK/exec1.pid" 2>/dev/null)
expect_eq "ps --format json: + the stand-in of exec -d" "[$pid,$e1]" "$(moat ps --format json "$ID")"
# a foreground exec: moat exec is the stand-in (run directly: $! is its pid)
"$MOAT" --root "$ROOT" exec "$ID" sleep 1000 </dev/null >/dev/null 2>&1 &
e2=$!
has_e2() { moat ps --format json "$ID" | jq -e --argjson p "$e2" 'index($p) != null' >/dev/null; }
wait_for 10 has_e2
expect_eq "ps --format json: + the foreground exec (moat exec itself)" \
    "$(printf '%s\n' "$e1" "$e2" | sort -n | jq -s -c --argjson p "$pid" '[$p] + .')" "$(moat ps --format json "$ID")"
kill -TERM "$e2"
wait "$e2" 2>/dev/null
kill -TERM "$e1"
gone() { ! kill -0 "$e1" 2>/dev/null; }
wait_for 10 gone
expect_eq "ps --format json: exec stand-ins dropped once their processes ended" "[$pid] " \
    "$(moat ps --format json "$ID") $(ls "$ROOT/$ID/execs" 2>/dev/null)"
# a stand-in killed outright leaves its record: ps drops it as dead
moat exec -d --pid-file "$WORK/exec3.pid" "$ID" sleep 1000 </dev/null >/dev/null 2>&1
e3=$(cat "$WORK/exec3.pid" 2>/dev/null)
kill -KILL "$e3"
gone3() { ! kill -0 "$e3" 2>/dev/null; }
wait_for 5 gone3
expect_eq "ps --format json: a dead stand-in's record is dropped" "[$pid] " \
    "$(moat ps --format json "$ID") $(ls "$ROOT/$ID/execs" 2>/dev/null)"

# exec --additional-gids (and -u) reach the process, as runc; a process.json's
# additionalGids too
expect_eq "exec -u 1000:1000 -g 7 -g 3000,4000: the supplementary groups" "1000 7 3000 4000" \
    "$(moat exec -u 1000:1000 -g 7 -g 3000,4000 "$ID" id -G </dev/null 2>&1)"
expect_eq "exec --additional-gids 9: added to the container's user (root)" "0 9" \
    "$(moat exec --additional-gids 9 "$ID" id -G </dev/null 2>&1)"
jq -n '{args: ["id", "-G"], cwd: "/", env: ["PATH=/bin:/usr/bin"], user: {uid: 1000, gid: 1000, additionalGids: [5, 6]}}' \
    >"$WORK/process.json"
expect_eq "exec --process with user.additionalGids" "1000 5 6" \
    "$(moat exec --process "$WORK/process.json" "$ID" </dev/null 2>&1)"
fails "exec -g: a bad gid is a usage error naming it" '"-1"' moat exec -g -1 "$ID" true

# events
ev=$(moat events --stats "$ID")
if jq -e '.type == "stats" and .id == "'"$ID"'" and (.data.cpu.usage.total > 0) and (.data.memory.usage.usage > 0) and (.data.pids.current >= 2)' <<<"$ev" >/dev/null; then
    ok "events --stats: one runc stats event with cpu, memory, pids"
else
    not_ok "events --stats: one runc stats event with cpu, memory, pids"
    diag "got: $ev"
fi
expect_eq "events --stats: exactly one line" 1 "$(wc -l <<<"$ev")"
timeout 3 "$MOAT" --root "$ROOT" events --interval 400ms "$ID" >"$WORK/events.out"
n=$(wc -l <"$WORK/events.out")
if [ "$n" -ge 3 ] && [ "$n" -le 9 ] && jq -e -s 'all(.type == "stats")' "$WORK/events.out" >/dev/null; then
    ok "events --interval 400ms: a stats event every interval ($n in 3 s)"
else
    not_ok "events --interval 400ms: a stats event every interval ($n in 3 s)"
fi

# update: seen by the agent (stats) and inside the container (memory.max)
moat update --memory 48m --pids-limit 64 "$ID"
expect_eq "update --memory 48m --pids-limit 64 exits 0" 0 $?
expect_eq "update: events report the new memory limit" 50331648 "$(moat events --stats "$ID" | jq -r .data.memory.usage.limit)"
expect_eq "update: events report the new pids limit" 64 "$(moat events --stats "$ID" | jq -r .data.pids.limit)"
if wait_for 10 grep -q "mem=50331648 pids=64" "$WORK/out"; then
    ok "update: memory.max and pids.max change inside the container"
else
    not_ok "update: memory.max and pids.max change inside the container"
    diag "$(tail -2 "$WORK/out")"
fi
echo '{"memory": {"limit": 67108864}, "pids": {"limit": -1}}' | moat update --resources - "$ID"
if wait_for 10 grep -q "mem=67108864 pids=max" "$WORK/out"; then
    ok "update --resources -: applied inside the container"
else
    not_ok "update --resources -: applied inside the container"
    diag "$(tail -2 "$WORK/out")"
fi

# pause / resume
moat pause "$ID"
expect_eq "pause exits 0" 0 $?
expect_eq "pause: state says paused" paused "$(moat state "$ID" | jq -r .status)"
expect_eq "pause: list says paused" paused "$(moat list --format json | jq -r '.[0].status')"
t1=$(ticks)
c1=$(moat events --stats "$ID" | jq .data.cpu.usage.total)
sleep 1.5
t2=$(ticks)
c2=$(moat events --stats "$ID" | jq .data.cpu.usage.total)
expect_eq "pause: the container makes no progress" "$t1 $c1" "$t2 $c2"
fails "pause twice fails" 'container not running (status: paused)' moat pause "$ID"
expect_eq "pause twice: still paused" paused "$(moat state "$ID" | jq -r .status)"
moat resume "$ID"
expect_eq "resume exits 0" 0 $?
expect_eq "resume: state says running" running "$(moat state "$ID" | jq -r .status)"
ticks_past() { [ "$(ticks)" -gt "$1" ]; }
if wait_for 10 ticks_past "$t2"; then ok "resume: the container runs again"; else not_ok "resume: the container runs again"; fi
fails "resume of a running container fails" 'container not paused' moat resume "$ID"

# a stopped container
"$MOAT" --root "$ROOT" events --interval 300ms "$ID" >"$WORK/events2.out" 2>&1 &
evpid=$!
sleep 1
moat kill "$ID" KILL
if wait_for 15 sh -c "! kill -0 $evpid 2>/dev/null"; then
    wait "$evpid"
    expect_eq "events: ends with status 0 when the container stops" 0 $?
else
    not_ok "events: ends with status 0 when the container stops"
    kill "$evpid" 2>/dev/null
fi
wait_for 15 sh -c "\"$MOAT\" --root \"$ROOT\" list --format json | jq -e '.[0].status == \"stopped\"' >/dev/null"
expect_eq "list: stopped once the container exited (pid 0)" "stopped 0" \
    "$(moat list --format json | jq -r '.[0] | "\(.status) \(.pid)"')"
fails "pause of a stopped container fails" 'container not running (status: stopped)' moat pause "$ID"
expect_eq "ps of a stopped container: no pids (as runc)" '[]' "$(moat ps --format json "$ID")"
fails "update of a stopped container fails" 'container not running' moat update --memory 1g "$ID"
moat delete "$ID"
expect_eq "list: empty after delete" '' "$(moat list -q)"
done_testing
