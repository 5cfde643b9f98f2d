#!/bin/bash
# runc parity of the CLI surface that Docker (containerd-shim-runc-v2),
# Podman (conmon) and containerd read: exit codes, the JSON that state,
# list, ps, events, features and spec print, the error texts clients match
# on ("does not exist", "container not running", ...), the runc-style JSON
# log lines written with --log FILE --log-format json, signal names, kill
# semantics and the update flags. docs/clients.md ("Differences from runc")
# lists what a VM runtime cannot do the same way.
#
# Where runc is installed, a few cheap checks compare against it directly
# (the same bundle, its own --root); the rest assert runc's behaviour.
# One real container (QEMU) covers the lifecycle checks.
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
ROOT=$(mktemp -d /tmp/moat-parity.XXXXXX)
RROOT=$(mktemp -d /tmp/moat-parity-runc.XXXXXX)
WORK=$(mktemp -d /tmp/moat-parity-work.XXXXXX)
ID=parity1
RID=parity-runc1

moat() { "$MOAT" --root "$ROOT" "$@"; }
have_runc() { command -v runc >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; }

cleanup() {
    if [ -d "$ROOT/$ID" ]; then
        moat delete --force "$ID" >/dev/null 2>&1
    fi
    if have_runc && [ -d "$RROOT/$RID" ]; then
        runc --root "$RROOT" delete --force "$RID" >/dev/null 2>&1
    fi
    grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
    rm -rf "$ROOT" "$RROOT" "$WORK"
}
trap cleanup EXIT

if [ ! -x "$MOAT" ]; then
    skip "runc parity" "$MOAT is missing (run make)"
    exit 0
fi

# fails NAME NEEDLE COMMAND...: exits 1 and stderr contains NEEDLE.
fails() {
    local name=$1 needle=$2 out rc
    shift 2
    out=$("$@" 2>&1 >/dev/null </dev/null)
    rc=$?
    if [ "$rc" -eq 1 ] && [[ "$out" == *"$needle"* ]]; then
        ok "$name"
    else
        not_ok "$name"
        diag "exit $rc, stderr: $out"
    fi
}

# succeeds NAME COMMAND...: exits 0.
succeeds() {
    local name=$1 out rc
    shift
    out=$("$@" 2>&1 </dev/null)
    rc=$?
    if [ "$rc" -eq 0 ]; then ok "$name"; else not_ok "$name"; diag "exit $rc: $out"; fi
}

# logged NAME NEEDLE COMMAND...: the command fails, and the last line of its
# --log file (JSON) is runc's {"level":"error","msg":...,"time":...} with
# NEEDLE in msg and an RFC 3339 time.
logged() {
    local name=$1 needle=$2 log=$WORK/log.json last
    shift 2
    rm -f "$log"
    "$MOAT" --root "$ROOT" --log "$log" --log-format json "$@" >/dev/null 2>&1 </dev/null && {
        not_ok "$name"
        diag "the command succeeded"
        return
    }
    last=$(tail -n 1 "$log" 2>/dev/null)
    if jq -e --arg n "$needle" '(keys == ["level", "msg", "time"]) and .level == "error"
            and (.msg | contains($n)) and (.time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}(\\.[0-9]+)?Z$"))' \
            <<<"$last" >/dev/null 2>&1; then
        ok "$name"
    else
        not_ok "$name"
        diag "last log line: $last"
    fi
}

# state_types JSON: "key:type" for each key, sorted, one line.
key_types() { jq -r 'to_entries | map("\(.key):\(.value | type)") | sort | join(" ")'; }

wait_status() {
    local want=$1 end=$((SECONDS + 15))
    while [ $SECONDS -lt $end ]; do
        [ "$(moat state "$ID" 2>/dev/null | jq -r .status)" = "$want" ] && return 0
        sleep 0.2
    done
    return 1
}

# --- global flags, --version, --help (no VM) ----------------------------------
out=$("$MOAT" --version)
rc=$?
expect_eq "--version exits 0" 0 "$rc"
if [[ "$(head -n1 <<<"$out")" =~ ^moat\ version\ [0-9] ]] && grep -q '^spec: 1\.' <<<"$out" &&
    grep -q '^libseccomp: [0-9]' <<<"$out"; then
    ok "--version: runc's layout (NAME version X, spec:, libseccomp:)"
else
    not_ok "--version: runc's layout (NAME version X, spec:, libseccomp:)"
    diag "$out"
fi
succeeds "-v exits 0" "$MOAT" -v
if "$MOAT" --help | grep -q '^  --root DIR'; then ok "--help lists the global options"; else not_ok "--help lists the global options"; fi
for verb in create start state kill delete run exec ps list pause resume update spec features events; do
    if "$MOAT" "$verb" --help 2>/dev/null | grep -q "Usage: moat $verb" && "$MOAT" "$verb" -h >/dev/null 2>&1; then
        ok "$verb --help and -h exit 0"
    else
        not_ok "$verb --help and -h exit 0"
    fi
done
fails "unknown global option" "unknown global option --bogus" "$MOAT" --bogus list
fails "unknown command" 'unknown command "bogus"' "$MOAT" bogus
succeeds "--root=DIR and --log-format=json forms" "$MOAT" --root="$ROOT" --log="$WORK/l" --log-format=json list
fails "--log-format yaml is refused" "--log-format" "$MOAT" --log-format yaml list

# --- unknown id: every verb says "does not exist" (podman and containerd
#     match that text), exit 1 (exec 255, as runc) ------------------------------
for verb in state start kill delete pause resume ps events; do
    fails "$verb: unknown id: does not exist" "does not exist" moat "$verb" nosuch
done
fails "update: unknown id: does not exist" "does not exist" moat update --memory 1m nosuch
out=$(moat exec nosuch true 2>&1)
rc=$?
if [ "$rc" -eq 255 ] && [[ "$out" == *"does not exist"* ]]; then ok "exec: unknown id: exit 255, does not exist"; else
    not_ok "exec: unknown id: exit 255, does not exist"
    diag "exit $rc: $out"
fi
succeeds "delete --force of an unknown id succeeds (as runc)" moat delete --force nosuch

# --- --log FILE --log-format json: the error lines the shims read back --------
logged "log json: unknown id" "does not exist" state nosuch
logged "log json: usage error (missing id)" "expected exactly one container ID" state
logged "log json: bad signal" 'unknown signal "NOPE"' kill nosuch NOPE
logged "log json: missing bundle" "/nonexistent-bundle" create --bundle /nonexistent-bundle parity-nobundle
logged "log json: unknown command" "unknown command" bogus
logged "log json: bad update flag value" "--memory" update --memory 12x nosuch
rm -f "$WORK/text.log"
moat --log "$WORK/text.log" state nosuch >/dev/null 2>&1
if grep -q '^time="[0-9T:.Z-]*" level=error msg=".*does not exist.*"$' "$WORK/text.log"; then
    ok "log text (default format): logrus's line, as runc"
else
    not_ok "log text (default format): logrus's line, as runc"
    diag "$(cat "$WORK/text.log" 2>/dev/null)"
fi

# --- signals: runc's parsing --------------------------------------------------
fails "kill: unknown signal name" 'unknown signal "SIGNOPE"' moat kill nosuch SIGNOPE
fails "kill: KILL0 is not KILL" 'unknown signal "KILL0"' moat kill nosuch KILL0
for s in KILL SIGKILL 9 sigkill kill TERM SIGTERM 15 sigterm RTMIN+1 0; do
    # a valid signal gets as far as looking the container up
    fails "kill: signal $s is accepted" "does not exist" moat kill nosuch "$s"
done

# --- list, spec, features (no VM) ----------------------------------------------
expect_eq "list: runc's header on an empty root" 'ID          PID         STATUS      BUNDLE      CREATED     OWNER' "$(moat list)"
expect_eq "list -q: nothing on an empty root" '' "$(moat list -q)"
expect_eq "list --format json: an empty array" 0 "$(moat list --format json | jq 'length')"
expect_eq "list: a missing --root is an empty list (as runc)" 0 "$("$MOAT" --root "$WORK/no-such-root" list -f json | jq length)"

mkdir -p "$WORK/spec" "$WORK/spec-rootless"
moat spec --bundle "$WORK/spec"
moat spec --rootless --bundle "$WORK/spec-rootless"
for d in spec spec-rootless; do
    if jq -e '.ociVersion and .process and .root and .mounts and .linux' "$WORK/$d/config.json" >/dev/null; then
        ok "$d: JSON with runc's top-level keys"
    else
        not_ok "$d: JSON with runc's top-level keys"
    fi
done
fails "spec: an existing config.json is not overwritten (runc's text)" "config.json exists. Remove it first" \
    moat spec --bundle "$WORK/spec"
moat features >"$WORK/features.json"
if jq -e '(.ociVersionMin | type) == "string" and (.ociVersionMax | type) == "string" and (.hooks | type) == "array"
        and (.mountOptions | type) == "array" and (.linux.namespaces | type) == "array"
        and (.linux.capabilities | type) == "array" and (.linux.cgroup | type) == "object"
        and (.linux.seccomp.enabled | type) == "boolean" and (.annotations | type) == "object"' \
        "$WORK/features.json" >/dev/null; then
    ok "features: runc's keys and types"
else
    not_ok "features: runc's keys and types"
fi
if have_runc; then
    (cd "$WORK" && mkdir -p runc-rootless && cd runc-rootless && runc spec --rootless)
    norm='del(.hostname, .ociVersion)'
    if diff <(jq -S "$norm" "$WORK/runc-rootless/config.json") <(jq -S "$norm" "$WORK/spec-rootless/config.json") >/dev/null; then
        ok "spec --rootless: the same document as runc's (but hostname, ociVersion)"
    else
        not_ok "spec --rootless: the same document as runc's (but hostname, ociVersion)"
    fi
    missing=$(runc features | jq -r --slurpfile m "$WORK/features.json" \
        '[paths | select(all(.[]; type == "string")) | join(".") | select(startswith("annotations.") | not)]
         - [$m[0] | paths | select(all(.[]; type == "string")) | join(".")] | join(" ")')
    expect_eq "features: every key runc prints (but its own annotations)" "" "$missing"
    expect_eq "list: the same empty-root header as runc" "$(runc --root "$RROOT" list)" "$(moat list)"
else
    skip "spec --rootless: the same document as runc's" "runc is not installed"
fi

# --- one real container ---------------------------------------------------------
for f in build/moat-vsock build/initramfs.cpio.gz build/vmlinux; do
    if [ ! -e "$f" ]; then
        skip "runc parity on a container" "$f is missing (run make && make guest)"
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    skip "runc parity on a container" "needs root"
    exit 0
fi

# The process traps SIGTERM and writes which signal it got to a host
# directory bind-mounted at /out, so the default signal of `kill` shows.
B=$WORK/bundle
mkdir -p "$WORK/out"
scripts/mkbundle.sh "$B" >/dev/null
script='trap "echo TERM >/out/sig; exit 7" TERM; while :; do sleep 0.2; done'
jq --arg s "$script" --arg out "$WORK/out" '.process.args = ["sh", "-c", $s]
    | .mounts += [{"destination": "/out", "type": "bind", "source": $out, "options": ["rbind", "rw"]}]' \
    "$B/config.json" >"$B/config.tmp" && mv "$B/config.tmp" "$B/config.json"

if ! moat create --bundle "$B" "$ID" </dev/null >"$WORK/stdout" 2>"$WORK/create.err"; then
    not_ok "create"
    diag "$(cat "$WORK/create.err")"
    exit 0
fi
ok "create"

# state: runc's keys with runc's types
moat state "$ID" >"$WORK/state.json"
expect_eq "state (created): status and id" "created $ID" "$(jq -r '"\(.status) \(.id)"' "$WORK/state.json")"
if jq -e '(.ociVersion | type) == "string" and (.pid | type) == "number" and .pid > 0 and (.bundle | type) == "string"
        and (.rootfs | type) == "string" and (.created | test("^[0-9-]+T[0-9:.]+Z$")) and (.owner | type) == "string"' \
        "$WORK/state.json" >/dev/null; then
    ok "state: runc's keys and types"
else
    not_ok "state: runc's keys and types"
    diag "$(cat "$WORK/state.json")"
fi
pid=$(jq .pid "$WORK/state.json")
if kill -0 "$pid" 2>/dev/null; then ok "state: pid is a live host process (the stand-in)"; else not_ok "state: pid is a live host process (the stand-in)"; fi
expect_eq "state: bundle is the absolute bundle path" "$B" "$(jq -r .bundle "$WORK/state.json")"
if have_runc && runc --root "$RROOT" create --bundle "$B" "$RID" </dev/null >/dev/null 2>&1; then
    # every key runc prints, with the same JSON type
    r=$(runc --root "$RROOT" state "$RID" | key_types)
    m=$(key_types <"$WORK/state.json")
    missing=$(comm -23 <(tr ' ' '\n' <<<"$r") <(tr ' ' '\n' <<<"$m") | tr '\n' ' ')
    expect_eq "state: every key:type runc's state has" "" "$missing"
    r=$(runc --root "$RROOT" list --format json | jq -c '.[0]' | key_types)
    m=$(moat list --format json | jq -c '.[0]' | key_types)
    missing=$(comm -23 <(tr ' ' '\n' <<<"$r") <(tr ' ' '\n' <<<"$m") | tr '\n' ' ')
    expect_eq "list --format json: every key:type runc's has" "" "$missing"
    runc --root "$RROOT" delete --force "$RID" >/dev/null 2>&1
else
    skip "state: every key:type runc's state has" "runc is not installed or cannot run here"
fi

fails "create: duplicate id" "already exists" moat create --bundle "$B" "$ID"
logged "log json: duplicate id" "already exists" create --bundle "$B" "$ID"
succeeds "kill ID 0 on a created container (liveness, as runc)" moat kill "$ID" 0
expect_eq "list -q: the id" "$ID" "$(moat list -q)"
row=$(moat list | sed -n 2p)
read -r l_id l_pid l_status l_bundle l_created l_owner <<<"$row"
expect_eq "list: table row ID PID STATUS BUNDLE CREATED OWNER" "$ID $pid created $B root" \
    "$l_id $l_pid $l_status $l_bundle $l_owner"
expect_eq "list --format json: one object with status created" "1 created" \
    "$(moat list --format json | jq -r '"\(length) \(.[0].status)"')"

succeeds "start" moat start "$ID"
fails "start twice: runc's text" "cannot start an already running container" moat start "$ID"
expect_eq "state: running" running "$(moat state "$ID" | jq -r .status)"
fails "delete running without --force: not stopped" "not stopped" moat delete "$ID"
for s in CONT SIGCONT cont 18 SIGWINCH; do
    succeeds "kill $s (a harmless signal, name or number)" moat kill "$ID" "$s"
done
succeeds "kill --all ID SIGCONT" moat kill --all "$ID" SIGCONT
succeeds "kill -a ID 0" moat kill -a "$ID" 0

# ps --format json: host pids, as runc's (containerd's shim hands them to
# `docker top`, which filters the host's ps by them): the first is the
# init's, the state's pid (the stand-in); the table has guest pids
out=$(moat ps --format json "$ID")
expect_eq "ps --format json: host pids, the first is the state's pid (as runc)" "$pid" \
    "$(jq -r 'if type == "array" and all(type == "number") then .[0] else "not an array of pids: \(.)" end' <<<"$out" 2>&1)"
if have_runc && runc --root "$RROOT" create --bundle "$B" "$RID" </dev/null >/dev/null 2>&1; then
    expect_eq "runc: ps --format json starts with the state's pid too" \
        "$(runc --root "$RROOT" state "$RID" | jq .pid)" "$(runc --root "$RROOT" ps --format json "$RID" | jq '.[0]')"
    runc --root "$RROOT" delete --force "$RID" >/dev/null 2>&1
else
    skip "runc: ps --format json starts with the state's pid too" "runc is not installed or cannot run here"
fi
succeeds "ps -f=json form" moat ps --format=json "$ID"
expect_eq "ps (table): a PID column" PID "$(moat ps "$ID" | head -n1 | awk '{print $1}')"
fails "ps ID -- PS-ARGS: refused with the reason" "not supported" moat ps "$ID" -- -ef

# events --stats: one runc stats event
out=$(moat events --stats "$ID")
expect_eq "events --stats: exactly one line" 1 "$(grep -c . <<<"$out")"
if jq -e --arg id "$ID" '.type == "stats" and .id == $id and (.data.cpu.usage.total | type) == "number"
        and (.data.cpu.usage.kernel | type) == "number" and (.data.cpu.usage.user | type) == "number"
        and (.data.memory.usage.usage | type) == "number" and (.data.memory.usage.limit | type) == "number"
        and (.data.pids.current | type) == "number" and (.data.blkio | type) == "object"
        and (.data.hugetlb | type) == "object"' <<<"$out" >/dev/null 2>&1; then
    ok "events --stats: runc's stats event layout"
else
    not_ok "events --stats: runc's stats event layout"
    diag "$out"
fi

# update: runc's flags, --resources - (containerd: --resources=-), no-op
succeeds "update without options: nothing to change, exit 0 (as runc)" moat update "$ID"
out=$(moat update --kernel-memory 64m "$ID" 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && [[ "$out" == *"kernel-memory"*"ignored"* ]]; then
    ok "update --kernel-memory: accepted, ignored with a warning (as runc)"
else
    not_ok "update --kernel-memory: accepted, ignored with a warning (as runc)"
    diag "exit $rc: $out"
fi
succeeds "update --blkio-weight (ignored with a warning)" moat update --blkio-weight 500 "$ID"
fails "update --l3-cache-schema: refused (no Intel RDT)" "Intel RDT" moat update --l3-cache-schema L3:0=f "$ID"
fails "update --memory 12x: invalid size" "invalid size" moat update --memory 12x "$ID"
fails "update --pids-limit x: invalid number" "invalid number" moat update --pids-limit x "$ID"
succeeds "update --memory 256m --memory-swap -1 --memory-reservation 32m" \
    moat update --memory 256m --memory-swap -1 --memory-reservation 32m "$ID"
succeeds "update --cpu-quota --cpu-period --cpu-share --cpuset-cpus --cpuset-mems" \
    moat update --cpu-quota 50000 --cpu-period 100000 --cpu-share 512 --cpuset-cpus 0 --cpuset-mems 0 "$ID"
succeeds "update --pids-limit 99" moat update --pids-limit 99 "$ID"
expect_eq "update --pids-limit: seen by events --stats" 99 "$(moat events --stats "$ID" | jq .data.pids.limit)"
echo '{"pids": {"limit": 123}, "memory": {"limit": 268435456}, "blockIO": {"weight": 0}}' >"$WORK/res.json"
if moat update --resources=- "$ID" <"$WORK/res.json"; then ok "update --resources=- (stdin)"; else not_ok "update --resources=- (stdin)"; fi
expect_eq "update --resources=-: applied" 123 "$(moat events --stats "$ID" | jq .data.pids.limit)"
echo '{"pids": {"limit": 124}}' >"$WORK/res.json"
succeeds "update -r FILE" moat update -r "$WORK/res.json" "$ID"
expect_eq "update -r FILE: applied" 124 "$(moat events --stats "$ID" | jq .data.pids.limit)"
# zeros mean "unchanged" (runc): Docker sends this for `docker update --blkio-weight N`
echo '{"memory": {"limit": 0, "reservation": 0, "kernel": 0}, "cpu": {"shares": 0, "quota": 0, "period": 0},
      "pids": {"limit": 0}, "blockIO": {"weight": 0}, "devices": [{"allow": false, "access": "rwm"}]}' >"$WORK/res.json"
succeeds "update --resources with Docker's zero values" moat update --resources "$WORK/res.json" "$ID"
sleep 0.5
expect_eq "update: zero values leave the limits as they were (runc), the container runs" "running 124 268435456" \
    "$(moat state "$ID" | jq -r .status) $(moat events --stats "$ID" | jq -r '"\(.data.pids.limit) \(.data.memory.usage.limit)"')"
succeeds "update: devices in --resources are ignored (runc), /dev/null still usable" \
    moat exec "$ID" sh -c 'echo x >/dev/null'
fails "update --resources: bad JSON is an error" "--resources" sh -c 'echo "{bad" | "$0" --root "$1" update --resources - "$2"' \
    "$MOAT" "$ROOT" "$ID"

# pause / resume and their runc texts
fails "resume a running container: container not paused" "container not paused" moat resume "$ID"
succeeds "pause" moat pause "$ID"
expect_eq "state: paused" paused "$(moat state "$ID" | jq -r .status)"
fails "pause twice: container not running (runc's text)" "container not running" moat pause "$ID"
fails "start a paused container" "cannot start" moat start "$ID"
succeeds "resume" moat resume "$ID"
expect_eq "state: running again" running "$(moat state "$ID" | jq -r .status)"

# kill's default signal is SIGTERM (the process traps it)
succeeds "kill ID (no signal)" moat kill "$ID"
if wait_status stopped; then ok "kill ID: the container stops"; else not_ok "kill ID: the container stops"; fi
expect_eq "kill ID: the default signal is SIGTERM" TERM "$(cat "$WORK/out/sig" 2>/dev/null)"

# a stopped container
moat state "$ID" >"$WORK/state.json"
expect_eq "state (stopped): pid 0, as runc" "stopped 0" "$(jq -r '"\(.status) \(.pid)"' "$WORK/state.json")"
fails "kill a stopped container: container not running" "container not running" moat kill "$ID" KILL
logged "log json: kill a stopped container" "container not running" kill "$ID" KILL
succeeds "kill --all on a stopped container succeeds (as runc)" moat kill --all "$ID" KILL
fails "start a stopped container: runc's text" "cannot start a container that has stopped" moat start "$ID"
fails "pause a stopped container: container not running" "container not running" moat pause "$ID"
fails "resume a stopped container: container not paused" "container not paused" moat resume "$ID"
fails "update a stopped container: container not running" "container not running" moat update --memory 64m "$ID"
fails "events on a stopped container: not running" "not running" moat events --stats "$ID"
out=$(moat ps --format json "$ID")
expect_eq "ps --format json on a stopped container: [] and exit 0 (as runc)" "[] 0" "$out $?"
expect_eq "list: stopped, pid 0" "stopped 0" "$(moat list --format json | jq -r '.[0] | "\(.status) \(.pid)"')"

succeeds "delete a stopped container" moat delete "$ID"
fails "state after delete: does not exist" "does not exist" moat state "$ID"
expect_eq "list after delete: empty" '' "$(moat list -q)"
done_testing
