#!/bin/bash
# createContainer hooks run inside the guest, in the container's namespaces,
# their path resolved on the host: the host lends the guest a view of its
# root until CreateContainer returns. The OCI suite (tests/oci) checks order,
# stdin and namespaces for every hook type against runc too; this checks
# what only a VM runtime has: the guest kernel, the host's files, the guest's
# /proc, and that the view is withdrawn before the container runs.
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
ROOT=$(mktemp -d /tmp/moat-hooks.XXXXXX)
WORK=$(mktemp -d /tmp/moat-hooks-work.XXXXXX)
B=$WORK/bundle
ID=hooks1

moat() { "$MOAT" --root "$ROOT" "$@"; }

cleanup() {
    for d in "$ROOT"/*/; do
        [ -d "$d" ] && moat delete --force "$(basename "$d")" >/dev/null 2>&1
    done
    grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
    rm -rf "$ROOT" "$WORK"
}
trap cleanup EXIT

if [ ! -x "$MOAT" ]; then
    skip "createContainer hooks in the guest" "$MOAT is missing (run make)"
    exit 0
fi

scripts/mkbundle.sh "$B" >/dev/null
mkdir -p "$B/out"
echo "a host file" >"$WORK/host-file"
# A host program (bash, dynamically linked: it needs the host's loader and
# libraries) that records where it runs.
cat >"$WORK/cc-hook.sh" <<'EOF'
#!/bin/bash
out=$1
{
    echo "kernel=$(uname -r)"
    echo "cwd=$(pwd)"
    echo "state=$(cat)"
    echo "netns=$(readlink /proc/self/ns/net)"
    echo "hostfile=$(cat "$out/../../host-file")"
    echo "procs=$(ls /proc | grep -c '^[0-9]')"
    echo "hookvar=$HOOKVAR"
} >"$out/../../hook-log"
echo "made by the createContainer hook" >rootfs/from-hook
# a daemon left behind, its cwd in the host view: must not survive the create
sleep 1000 >/dev/null 2>&1 &
EOF
chmod 755 "$WORK/cc-hook.sh"

cfg() {
    jq "$@" "$B/config.json" >"$B/config.json.new" && mv "$B/config.json.new" "$B/config.json"
}
cfg --arg h "$WORK/cc-hook.sh" --arg o "$B/out" \
    '.process.args = ["sh", "-c", "cat /from-hook; for p in /proc/[0-9]*; do cat $p/comm; done | grep -c sleep"]
     | .hooks = {createContainer: [{path: $h, args: ["cc-hook.sh", $o], env: ["PATH=/usr/bin:/bin", "HOOKVAR=v1"]}]}'

if ! moat create --bundle "$B" "$ID" >"$WORK/create.out" 2>"$WORK/create.err"; then
    not_ok "create with a createContainer hook"
    diag "$(tail -c 600 "$WORK/create.err")"
    exit 0
fi
ok "create with a createContainer hook"
# the hook wrote its log outside the bundle, on the host, as under runc
LOG=$(cat "$WORK/hook-log" 2>/dev/null)
host_kernel=$(uname -r)
hook_kernel=$(sed -n 's/^kernel=//p' <<<"$LOG")
if [ -n "$hook_kernel" ] && [ "$hook_kernel" != "$host_kernel" ]; then
    ok "the hook ran inside the guest (kernel $hook_kernel, host $host_kernel)"
else
    not_ok "the hook ran inside the guest"
    diag "hook log: $LOG"
fi
expect_eq "the hook's cwd is the bundle" "$B" "$(sed -n 's/^cwd=//p' <<<"$LOG")"
expect_eq "the hook got the state on stdin" "$ID creating $B" \
    "$(sed -n 's/^state=//p' <<<"$LOG" | jq -r '"\(.id) \(.status) \(.bundle)"' 2>&1)"
host_netns=$(readlink /proc/self/ns/net)
hook_netns=$(sed -n 's/^netns=//p' <<<"$LOG")
if [ -n "$hook_netns" ] && [ "$hook_netns" != "$host_netns" ]; then
    ok "the hook ran in the container's network namespace"
else
    not_ok "the hook ran in the container's network namespace"
    diag "hook netns '$hook_netns', host '$host_netns'"
fi
expect_eq "the hook reads host files" "a host file" "$(sed -n 's/^hostfile=//p' <<<"$LOG")"
procs=$(sed -n 's/^procs=//p' <<<"$LOG")
if [ -n "$procs" ] && [ "$procs" -lt 10 ]; then
    ok "the hook sees the container's /proc, not the host's ($procs processes)"
else
    not_ok "the hook sees the container's /proc, not the host's"
    diag "processes in the hook's /proc: '$procs'"
fi
expect_eq "the hook's args and env" "v1" "$(sed -n 's/^hookvar=//p' <<<"$LOG")"

# The view is withdrawn once create returns: no process (VMM, moat-vsock,
# stand-in) still has it mounted.
held=$(grep -l "/shared/$ID/host" /proc/[0-9]*/mountinfo 2>/dev/null | head -3)
if [ -z "$held" ]; then
    ok "the host view is withdrawn after create"
else
    not_ok "the host view is withdrawn after create"
    diag "still mounted in: $held"
fi

out=$(moat start "$ID" 2>&1 && sleep 0.1)
# the container's stdout is the stand-in's, i.e. create's stdout
for _ in $(seq 50); do
    [ "$(moat state "$ID" 2>/dev/null | jq -r .status)" = stopped ] && break
    sleep 0.2
done
expect_eq "the container sees what the hook wrote into its rootfs" "made by the createContainer hook" \
    "$(head -1 "$WORK/create.out")"
expect_eq "a process a hook left behind did not survive the create" 0 "$(sed -n 2p "$WORK/create.out")"
moat delete "$ID" >/dev/null 2>&1
rm -f "$B/rootfs/from-hook"

# A hook path that does not exist on the host fails the create naming it,
# and leaves nothing behind.
cfg '.hooks.createContainer[0].path = "/nonexistent/moat-hook"'
if moat create --bundle "$B" hooks2 >/dev/null 2>"$WORK/err2"; then
    not_ok "a missing createContainer hook fails the create"
else
    if grep -q "/nonexistent/moat-hook" "$WORK/err2"; then
        ok "a missing createContainer hook fails the create, naming the path"
    else
        not_ok "a missing createContainer hook fails the create, naming the path"
        diag "$(cat "$WORK/err2")"
    fi
fi
if [ -e "$ROOT/hooks2" ] || grep -q " $ROOT/" /proc/mounts || pgrep -f -- "$ROOT/hooks2" >/dev/null; then
    not_ok "nothing left behind by the failed create"
    diag "$(ls "$ROOT"; grep " $ROOT/" /proc/mounts; pgrep -af -- "$ROOT/hooks2")"
else
    ok "nothing left behind by the failed create"
fi
done_testing
