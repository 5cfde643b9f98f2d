#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# moat.conf and moat setup (docs/configuration.md):
#  - moat env shows each setting's value and where it came from (a file and
#    line, a drop-in, the environment, a flag), as text and as JSON; a bad
#    line fails every command with file:line and key, and leaves nothing;
#  - a config file changes the guest a container gets (memory, kernel
#    command line), seen from inside the container;
#  - moat setup podman|docker|containerd [--remove] against temporary
#    roots (--root-dir): idempotent, --remove undoes exactly what was
#    added, foreign or malformed files are reported and left untouched; the
#    results are checked with the clients' own parsers where they have one
#    (containerd config dump, podman info in a private mount namespace
#    whose /etc/containers is a copy) and with jq and python's tomllib;
#  - podman --runtime moat run through the registration (a private mount
#    namespace again, so the host's /etc/containers is never changed).
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh
source tests/clients/lib.sh # its EXIT trap runs what clients_on_exit registers

MOAT=$PWD/build/moat
W=$(mktemp -d /tmp/moat-setup-test.XXXXXX)
clients_on_exit "rm -rf '$W'"
clients_on_exit "umount_under '$W'"
clients_on_exit "'$MOAT' --root '$W/state' delete -f cfg-vm"
# no MOAT_* from the caller's shell may change what these checks see
for v in $(env | sed -n 's/^\(MOAT_[A-Z_]*\)=.*/\1/p'); do
    [ "$v" = MOAT_BOOT_TIMEOUT ] || unset "$v"
done
if [ ! -x "$MOAT" ]; then
    skip "setup and configuration" "build/moat is missing (make)"
    exit 0
fi
envv() { # envv KEY [moat args...]: one value of moat env
    local k=$1
    shift
    "$MOAT" "$@" env | sed -n "s|^$k=||p"
}

# --- moat env: values and their provenance ----------------------------------
C=$W/etc/moat.conf
mkdir -p "$C.d"
cat >"$C" <<'EOF'
# a comment
[runtime]
hypervisor = qemu

[guest]
memory_mib = 1024
vcpus = 2
EOF
cat >"$C.d/20-b.conf" <<'EOF'
[guest]
memory_mib = 768
EOF
cat >"$C.d/10-a.conf" <<'EOF'
[guest]

memory_mib = 640
kernel_params = moat.test=from-dropin
EOF
echo '[guest]' >"$C.d/30-not-read.conf.bak"
echo 'memory_mib = 1' >>"$C.d/30-not-read.conf.bak"

out=$(MOAT_CONFIG=$C "$MOAT" env 2>&1)
expect_eq "env: the main file's value and line" "qemu $C:3" \
    "$(sed -n 's/^MOAT_HYPERVISOR=//p' <<<"$out") $(sed -n 's/^MOAT_HYPERVISOR_SOURCE=//p' <<<"$out")"
expect_eq "env: the last drop-in (by name) wins, named with its line" "768 $C.d/20-b.conf:2" \
    "$(sed -n 's/^MOAT_VM_DEFAULT_MIB=//p' <<<"$out") $(sed -n 's/^MOAT_VM_DEFAULT_MIB_SOURCE=//p' <<<"$out")"
expect_eq "env: a drop-in's own setting" "moat.test=from-dropin $C.d/10-a.conf:4" \
    "$(sed -n 's/^MOAT_KERNEL_PARAMS=//p' <<<"$out") $(sed -n 's/^MOAT_KERNEL_PARAMS_SOURCE=//p' <<<"$out")"
expect_eq "env: a setting no file sets is a default" "192 default" \
    "$(sed -n 's/^MOAT_VM_OVERHEAD_MIB=//p' <<<"$out") $(sed -n 's/^MOAT_VM_OVERHEAD_MIB_SOURCE=//p' <<<"$out")"
expect_eq "env: the files read" "$C MOAT_CONFIG true $C.d/10-a.conf $C.d/20-b.conf" \
    "$(sed -n 's/^MOAT_CONFIG=//p' <<<"$out") $(sed -n 's/^MOAT_CONFIG_SOURCE=//p' <<<"$out") $(sed -n 's/^MOAT_CONFIG_FOUND=//p' <<<"$out") $(sed -n 's/^MOAT_CONFIG_DROPINS=//p' <<<"$out")"
if grep -q 'moat.test=from-dropin' <<<"$(sed -n 's/^MOAT_GUEST_CMDLINE=//p' <<<"$out")"; then
    ok "env: kernel_params reach the guest command line"
else not_ok "env: kernel_params reach the guest command line"; fi
expect_eq "env: the environment beats the files" "900 env MOAT_VM_DEFAULT_MIB" \
    "$(MOAT_VM_DEFAULT_MIB=900 envv MOAT_VM_DEFAULT_MIB --config "$C") $(MOAT_VM_DEFAULT_MIB=900 envv MOAT_VM_DEFAULT_MIB_SOURCE --config "$C")"
expect_eq "env: --config names the file" "$C --config" \
    "$(envv MOAT_CONFIG --config "$C") $(envv MOAT_CONFIG_SOURCE --config "$C")"
expect_eq "env: a flag beats the environment" "debug flag --debug" \
    "$(MOAT_LOG_LEVEL=info envv MOAT_LOG_LEVEL --debug) $(MOAT_LOG_LEVEL=info envv MOAT_LOG_LEVEL_SOURCE --debug)"
expect_eq "env: MOAT_DEBUG means log_level debug" "debug env MOAT_DEBUG" \
    "$(MOAT_DEBUG=1 envv MOAT_LOG_LEVEL) $(MOAT_DEBUG=1 envv MOAT_LOG_LEVEL_SOURCE)"
: >"$W/empty.conf"
expect_eq "env: no file, no variable: every setting is a default" "" \
    "$(env -u MOAT_BOOT_TIMEOUT MOAT_CONFIG="$W/empty.conf" "$MOAT" env | grep '_SOURCE=' | grep -v '^MOAT_CONFIG_SOURCE=' | grep -v '=default$')"
json=$(MOAT_CONFIG=$C "$MOAT" env --json)
expect_eq "env --json: the same values and sources as the text" \
    "$(sed -n 's/^MOAT_VM_DEFAULT_MIB=//p' <<<"$out") $(sed -n 's/^MOAT_VM_DEFAULT_MIB_SOURCE=//p' <<<"$out")" \
    "$(jq -r '"\(.MOAT_VM_DEFAULT_MIB) \(.MOAT_VM_DEFAULT_MIB_SOURCE)"' <<<"$json")"
expect_eq "env --json: settings with file, line, variable and default" "768 $C.d/20-b.conf 2 MOAT_VM_DEFAULT_MIB 512" \
    "$(jq -r '.settings["guest.memory_mib"] | "\(.value) \(.file) \(.line) \(.env) \(.default)"' <<<"$json")"
expect_eq "env --json: a default has no file" "default null" \
    "$(jq -r '.settings["guest.overhead_mib"] | "\(.source) \(.file)"' <<<"$json")"

# --- bad configuration -------------------------------------------------------
bad_case() { # NAME WANT TEXT
    local name=$1 want=$2
    printf '%b' "$3" >"$C.d/50-bad.conf"
    local o rc
    o=$(MOAT_CONFIG=$C "$MOAT" --root "$W/state" list 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && [[ "$o" == *"$want"* ]] && [ ! -e "$W/state" ]; then ok "$name"; else
        not_ok "$name"
        diag "rc=$rc: $o"
    fi
    rm -f "$C.d/50-bad.conf"
}
bad_case "bad config: an unknown key names file:line and key" \
    "$C.d/50-bad.conf:3: guest.memroy_mib: unknown key" '[guest]\n\nmemroy_mib = 1\n'
bad_case "bad config: a bad value names file:line and key" \
    "$C.d/50-bad.conf:2: guest.vcpus: \"many\": expected an integer" '[guest]\nvcpus = many\n'
bad_case "bad config: an unknown section" "$C.d/50-bad.conf:2: vm.memory: unknown section [vm]" '[vm]\nmemory = 1\n'
bad_case "bad config: a line that is not INI" "$C.d/50-bad.conf:2: syntax error" '[guest]\nmemory_mib 512\n'
bad_case "bad config: an unknown hypervisor" \
    "$C.d/50-bad.conf:2: runtime.hypervisor: unknown hypervisor \"kvmtool\"" '[runtime]\nhypervisor = kvmtool\n'
o=$("$MOAT" --config "$W/nonexistent.conf" env 2>&1)
rc=$?
if [ $rc -ne 0 ] && [[ "$o" == *"config file $W/nonexistent.conf: No such file or directory"* ]]; then
    ok "bad config: a --config file that does not exist"
else
    not_ok "bad config: a --config file that does not exist"
    diag "rc=$rc: $o"
fi
o=$(MOAT_VM_DEFAULT_MIB=lots "$MOAT" env 2>&1)
rc=$?
if [ $rc -ne 0 ] && [[ "$o" == *'MOAT_VM_DEFAULT_MIB=lots: "lots": expected an integer'* ]]; then
    ok "bad config: a bad environment value names the variable"
else
    not_ok "bad config: a bad environment value names the variable"
    diag "rc=$rc: $o"
fi

# --- the configuration reaches the guest ------------------------------------
vm_names=(config-memory config-cmdline)
if [ "$(id -u)" -ne 0 ] || [ ! -e build/vmlinux ] || [ ! -e build/initramfs.cpio.gz ]; then
    for n in "${vm_names[@]}"; do skip "$n" "needs root, build/vmlinux and build/initramfs.cpio.gz (make all guest)"; done
else
    bundle "$W/b" '.process.args = ["sh", "-c", "grep MemTotal /proc/meminfo; cat /proc/cmdline"] | .process.terminal = false'
    cat >"$C.d/40-vm.conf" <<'EOF'
[guest]
memory_mib = 320
boot_timeout = 120
EOF
    out=$(MOAT_CONFIG=$C timeout 300 "$MOAT" --root "$W/state" run --bundle "$W/b" cfg-vm </dev/null 2>&1)
    rc=$?
    "$MOAT" --root "$W/state" delete -f cfg-vm >/dev/null 2>&1
    # MemTotal is the guest's RAM less what its kernel reserves
    kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' <<<"$out")
    if [ $rc -eq 0 ] && [ -n "$kb" ] && [ "$kb" -gt $((240 * 1024)) ] && [ "$kb" -le $((320 * 1024)) ]; then
        ok "config-memory (guest.memory_mib = 320: MemTotal $kb kB)"
    else
        not_ok config-memory
        diag "rc=$rc: $out"
    fi
    if grep -q 'moat.test=from-dropin' <<<"$out"; then ok "config-cmdline (guest.kernel_params in /proc/cmdline)"; else
        not_ok config-cmdline
        diag "$out"
    fi
    rm -f "$C.d/40-vm.conf"
fi

# --- moat setup podman -------------------------------------------------------
R=$W/root
P=$R/etc/containers/containers.conf.d/moat.conf
o=$("$MOAT" setup podman --root-dir "$R" 2>&1)
if [ -f "$P" ] && [[ "$o" == *"wrote $P"* ]]; then ok "setup podman writes the drop-in"; else
    not_ok "setup podman writes the drop-in"
    diag "$o"
fi
toml_get() { # FILE PYTHON-EXPRESSION over t (the parsed TOML)
    python3 -c 'import sys, tomllib; t = tomllib.load(open(sys.argv[1], "rb")); print(eval(sys.argv[2]))' "$1" "$2" 2>&1
}
expect_eq "setup podman: [engine.runtimes] moat is this moat (tomllib)" "['$MOAT']" \
    "$(toml_get "$P" 't["engine"]["runtimes"]["moat"]')"
sum=$(sha256sum "$P")
o=$("$MOAT" setup podman --root-dir "$R" 2>&1)
if [[ "$o" == *"unchanged $P"* ]] && [ "$(sha256sum "$P")" = "$sum" ]; then ok "setup podman again changes nothing"; else
    not_ok "setup podman again changes nothing"
    diag "$o"
fi
o=$("$MOAT" setup podman --root-dir "$R" --remove 2>&1)
if [ ! -e "$P" ] && [ ! -e "$(dirname "$P")" ] && [[ "$o" == *"removed $P"* ]]; then
    ok "setup podman --remove deletes the drop-in (and the directory it made)"
else
    not_ok "setup podman --remove deletes the drop-in (and the directory it made)"
    diag "$o"
fi
o=$("$MOAT" setup podman --root-dir "$R" --remove 2>&1)
expect_eq "setup podman --remove again: nothing to remove" "0 nothing to remove: $P does not exist" "$? $o"
mkdir -p "$(dirname "$P")"
printf '[engine]\nruntime = "crun"\n' >"$P"
sum=$(sha256sum "$P")
o=$("$MOAT" setup podman --root-dir "$R" 2>&1)
rc=$?
o2=$("$MOAT" setup podman --root-dir "$R" --remove 2>&1)
rc2=$?
if [ $rc -ne 0 ] && [ $rc2 -ne 0 ] && [[ "$o" == *"$P exists and was not written by moat setup"* ]] &&
    [ "$(sha256sum "$P")" = "$sum" ]; then
    ok "setup podman: a foreign file of that name is named and left untouched"
else
    not_ok "setup podman: a foreign file of that name is named and left untouched"
    diag "$rc $o / $rc2 $o2"
fi
rm -rf "$R"
o=$("$MOAT" setup podman --root-dir "$R" --dry-run 2>&1)
if [[ "$o" == *"would write $P"* ]] && [ ! -e "$R" ]; then ok "setup podman --dry-run changes nothing"; else
    not_ok "setup podman --dry-run changes nothing"
    diag "$o"
fi

# --- moat setup docker -------------------------------------------------------
D=$R/etc/docker/daemon.json
mkdir -p "$(dirname "$D")"
cat >"$D" <<'EOF'
{
    "data-root": "/var/lib/docker-test",
    "log-opts": { "max-size": "10m", "max-file": "3" },
    "default-ulimits": { "nofile": { "Name": "nofile", "Hard": 1024, "Soft": 1024 } },
    "max-concurrent-downloads": 3,
    "debug": false,
    "runtimes": { "crun": { "path": "/usr/bin/crun", "runtimeArgs": ["--debug"] } }
}
EOF
cp "$D" "$W/daemon.orig"
o=$("$MOAT" setup docker --root-dir "$R" 2>&1)
rc=$?
expect_eq "setup docker: runtimes.moat.path is this moat" "0 $MOAT" "$rc $(jq -r '.runtimes.moat.path' "$D" 2>&1)"
expect_eq "setup docker: every other key kept as it was" "$(jq -S . "$W/daemon.orig")" \
    "$(jq -S 'del(.runtimes.moat)' "$D" 2>&1)"
if cmp -s "$D.moat-backup" "$W/daemon.orig" && [[ "$o" == *"$D.moat-backup"* ]]; then
    ok "setup docker: the previous file is kept as daemon.json.moat-backup"
else
    not_ok "setup docker: the previous file is kept as daemon.json.moat-backup"
    diag "$o"
fi
sum=$(sha256sum "$D")
o=$("$MOAT" setup docker --root-dir "$R" 2>&1)
if [[ "$o" == *"unchanged $D"* ]] && [ "$(sha256sum "$D")" = "$sum" ]; then ok "setup docker again changes nothing"; else
    not_ok "setup docker again changes nothing"
    diag "$o"
fi
if command -v dockerd >/dev/null && dockerd --help 2>&1 | grep -q -- '--validate'; then
    if o=$(dockerd --validate --config-file "$D" 2>&1); then ok "setup docker: dockerd --validate accepts it"; else
        not_ok "setup docker: dockerd --validate accepts it"
        diag "$o"
    fi
else
    skip "setup docker: dockerd --validate accepts it" "this dockerd has no --validate (Docker 23 added it); checked with jq"
fi
o=$("$MOAT" setup docker --root-dir "$R" --remove 2>&1)
expect_eq "setup docker --remove: back to the original object" "$(jq -S . "$W/daemon.orig")" "$(jq -S . "$D" 2>&1)"
if [ ! -e "$D.moat-backup" ]; then ok "setup docker --remove: no backup left"; else not_ok "setup docker --remove: no backup left"; fi
echo '{"debug": true,' >"$D"
sum=$(sha256sum "$D")
o=$("$MOAT" setup docker --root-dir "$R" 2>&1)
rc=$?
if [ $rc -ne 0 ] && [[ "$o" == *"$D: not valid JSON"*"left untouched"* ]] && [ "$(sha256sum "$D")" = "$sum" ] &&
    [ ! -e "$D.moat-backup" ]; then
    ok "setup docker: a malformed daemon.json is reported and left untouched"
else
    not_ok "setup docker: a malformed daemon.json is reported and left untouched"
    diag "rc=$rc: $o"
fi
rm -f "$D"
"$MOAT" setup docker --root-dir "$R" >/dev/null 2>&1
expect_eq "setup docker: without a daemon.json, one with only runtimes.moat" '{"runtimes":{"moat":{"path":"'"$MOAT"'"}}}' \
    "$(jq -c . "$D" 2>&1)"
"$MOAT" setup docker --root-dir "$R" --remove >/dev/null 2>&1
expect_eq "setup docker --remove: the file it created is gone" "" "$(ls -A "$(dirname "$D")")"

# --- moat setup containerd ---------------------------------------------------
K=$R/etc/containerd/conf.d/moat.toml
CT=$R/etc/containerd/config.toml
mkdir -p "$(dirname "$CT")"
printf 'version = 2\n' >"$CT"
o=$("$MOAT" setup containerd --root-dir "$R" 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ ! -e "$K" ] && [[ "$o" == *"imports = [\"$R/etc/containerd/conf.d/*.toml\"]"* ]] &&
    [[ "$o" == *'runtimes.moat-runc.options]'* ]]; then
    ok "setup containerd: without imports, nothing changes and the snippet is printed"
else
    not_ok "setup containerd: without imports, nothing changes and the snippet is printed"
    diag "rc=$rc: $o"
fi
printf 'version = 2\nimports = ["%s/etc/containerd/conf.d/*.toml"]\n' "$R" >"$CT"
o=$("$MOAT" setup containerd --root-dir "$R" 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ -f "$K" ]; then ok "setup containerd: with imports, the drop-in is written"; else
    not_ok "setup containerd: with imports, the drop-in is written"
    diag "rc=$rc: $o"
fi
expect_eq "setup containerd: handlers moat and moat-runc (tomllib)" "io.containerd.moat.v2 io.containerd.runc.v2 $MOAT" \
    "$(toml_get "$K" '" ".join([t["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"][r]["runtime_type"] for r in ("moat", "moat-runc")] + [t["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["moat-runc"]["options"]["BinaryName"]])')"
if command -v containerd >/dev/null; then
    dump=$(containerd --config "$CT" config dump 2>&1)
    if grep -q "^imports = .*\"$K\"" <<<"$dump" && grep -q 'runtime_type = "io.containerd.moat.v2"' <<<"$dump" &&
        grep -q "BinaryName = \"$MOAT\"" <<<"$dump"; then
        ok "setup containerd: containerd config dump has both handlers"
    else
        not_ok "setup containerd: containerd config dump has both handlers"
        diag "$(grep -n 'imports\|moat' <<<"$dump" | head)"
    fi
else
    skip "setup containerd: containerd config dump has both handlers" "no containerd binary"
fi
sum=$(sha256sum "$K")
o=$("$MOAT" setup containerd --root-dir "$R" 2>&1)
if [[ "$o" == *"unchanged $K"* ]] && [ "$(sha256sum "$K")" = "$sum" ]; then ok "setup containerd again changes nothing"; else
    not_ok "setup containerd again changes nothing"
    diag "$o"
fi
o=$("$MOAT" setup containerd --root-dir "$R" --remove 2>&1)
if [ ! -e "$K" ] && [ ! -e "$(dirname "$K")" ] && [ "$(cat "$CT")" = "$(printf 'version = 2\nimports = ["%s/etc/containerd/conf.d/*.toml"]' "$R")" ]; then
    ok "setup containerd --remove: the drop-in is gone, config.toml as it was"
else
    not_ok "setup containerd --remove: the drop-in is gone, config.toml as it was"
    diag "$o"
fi
o=$("$MOAT" setup firecracker 2>&1)
expect_eq "setup: an unknown client is named" '1 moat: setup: unknown client "firecracker" (known: podman, docker, containerd)' "$? $o"

# --- podman, through the registration ---------------------------------------
# In a private mount namespace whose /etc/containers is a copy: the host's
# own file is never written. The registered runtime is a wrapper that keeps
# moat's state under $W.
pod_names=(setup-podman-info setup-podman-run)
if [ "$(id -u)" -ne 0 ] || ! command -v podman >/dev/null || ! command -v conmon >/dev/null ||
    ! command -v unshare >/dev/null || [ ! -d /etc/containers ]; then
    for n in "${pod_names[@]}"; do skip "$n" "needs root, podman, conmon, unshare and /etc/containers"; done
else
    mkdir -p "$W/pm/etc" "$W/pm/storage" "$W/pm/run" "$W/pm/tmp" "$W/pm/net"
    cp -a /etc/containers/. "$W/pm/etc/"
    cat >"$W/pm/moat" <<EOF
#!/bin/sh
exec $MOAT --root $W/pm/state "\$@"
EOF
    chmod +x "$W/pm/moat"
    archive=$(clients_image_archive) || archive=
    cat >"$W/pm/run.sh" <<EOF
set -u
mount --bind $W/pm/etc /etc/containers || exit 1
$MOAT setup podman --runtime-path $W/pm/moat >$W/pm/setup.log 2>&1 || exit 1
pm() { timeout -k 5 300 podman --root $W/pm/storage --runroot $W/pm/run --tmpdir $W/pm/tmp \\
    --network-config-dir $W/pm/net --storage-driver vfs --cgroup-manager cgroupfs --events-backend file "\$@"; }
pm --runtime moat info --format '{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Path}}' >$W/pm/info 2>&1
if [ -n "$archive" ] && [ -e build/vmlinux ]; then
    pm load -i "$archive" >/dev/null 2>&1
    MOAT_BOOT_TIMEOUT=120 pm --runtime moat run --rm --network none --ulimit nofile=1024:1024 \\
        --ulimit nproc=1024:1024 ${CLIENTS_IMAGE:-moat-busybox:latest} sh -c 'echo hello \$(uname -r)' >$W/pm/run.out 2>&1
    echo \$? >$W/pm/run.rc
    pm rm -af >/dev/null 2>&1
    pm system reset -f >/dev/null 2>&1
fi
EOF
    # podman writes its blob-info cache to /var/lib/containers/cache
    # whatever --root says: removed again if this test made it
    [ -e /var/lib/containers ] || clients_on_exit "rm -rf /var/lib/containers"
    unshare -m --propagation private bash "$W/pm/run.sh"
    expect_eq setup-podman-info "moat $W/pm/moat" "$(cat "$W/pm/info" 2>/dev/null)"
    if [ ! -e "$W/pm/run.rc" ]; then
        skip setup-podman-run "no busybox image archive or no build/vmlinux"
    elif [ "$(cat "$W/pm/run.rc")" = 0 ] && grep -qx "hello $(cat "$(dirname "$(readlink -f build/vmlinux)")/release" 2>/dev/null)" "$W/pm/run.out"; then
        ok "setup-podman-run (podman --runtime moat run, output from the guest kernel)"
    else
        not_ok setup-podman-run
        diag "rc=$(cat "$W/pm/run.rc"): $(cat "$W/pm/run.out")"
    fi
    if [ -e /etc/containers/containers.conf.d/moat.conf ]; then
        not_ok "setup podman left the host's /etc/containers alone"
    else ok "setup podman left the host's /etc/containers alone"; fi
fi

done_testing
