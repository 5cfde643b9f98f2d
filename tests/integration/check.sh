#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# moat check (the backend verdict and its JSON) and the hypervisor choice:
# auto, env MOAT_HYPERVISOR, annotation org.moat.hypervisor, and moat-vmm's
# refusal to start where the host has no hardware virtualization.
set -u
cd "$(dirname "$0")/../.."
source tests/lib.sh

MOAT=${MOAT:-$PWD/build/moat}
ROOT=$(mktemp -d /tmp/moat-check.XXXXXX)
WORK=$(mktemp -d /tmp/moat-check-work.XXXXXX)
trap 'grep -o " $ROOT/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l; rm -rf "$ROOT" "$WORK"' EXIT

names=(check-exit-status check-verdict-names-backend check-reports-kvm check-vhost-vsock-not-needed
    check-reports-host-limits check-reports-confinement
    check-json-shape check-json-agrees-with-text check-json-auto-matches-cpu check-missing-kernel-fails
    check-missing-qemu-named check-bad-argument moat-vmm-refused-without-vmx moat-vmm-refused-by-annotation
    unknown-hypervisor-named annotation-qemu-runs)
if [ ! -x "$MOAT" ]; then
    for n in "${names[@]}"; do skip "$n" "$MOAT not built"; done
    exit 0
fi
hw=$(grep -owE 'vmx|svm' /proc/cpuinfo | head -1)
if [ -n "$hw" ] && [ -r /dev/kvm ]; then want=moat-vmm; else want=qemu; fi

out=$("$MOAT" check 2>&1)
rc=$?
# Here some backend always runs: QEMU TCG at worst (the kernel and initramfs are built).
if [ -e build/vmlinux ] && [ -e build/initramfs.cpio.gz ]; then
    expect_eq check-exit-status 0 "$rc"
else
    skip check-exit-status "build/vmlinux or build/initramfs.cpio.gz missing"
fi
if grep -q "^auto picks: *$want: " <<<"$out" && grep -q "^verdict: OK, containers run here with hypervisor $want" <<<"$out"
then ok check-verdict-names-backend; else not_ok check-verdict-names-backend; diag "$out"; fi
if [ -c /dev/kvm ]; then
    if grep -qE '^/dev/kvm: +present, opens read-write, KVM API version 12' <<<"$out"; then ok check-reports-kvm; else
        not_ok check-reports-kvm; diag "$out"; fi
else
    if grep -qE '^/dev/kvm: +absent' <<<"$out"; then ok check-reports-kvm; else not_ok check-reports-kvm; fi
fi
if grep -qE '^/dev/vhost-vsock: +(present|absent) \(not needed' <<<"$out"; then ok check-vhost-vsock-not-needed; else
    not_ok check-vhost-vsock-not-needed; diag "$out"; fi

# the host's cgroups and the limits a sandbox gets, as /proc/cgroups says
lims=""
for c in memory cpu pids; do awk -v c=$c '$1 == c && $4 == 1 { f = 1 } END { exit !f }' /proc/cgroups && lims="$lims $c"; done
if grep -qE "^host cgroups: +(cgroup v1|cgroup v2|hybrid \(cgroup v1 controllers and a cgroup2 mount\)); limits on a sandbox's cgroup \(libcgroup\):${lims:- none}\$" <<<"$out"
then ok check-reports-host-limits; else not_ok check-reports-host-limits; diag "$(grep '^host cgroups' <<<"$out")"; fi
if grep -qE '^confinement qemu: +-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny, TCG' <<<"$out" &&
    grep -qE '^confinement moat-vmm: +seccomp .*no capabilities.*mount namespace' <<<"$out"; then
    ok check-reports-confinement; else not_ok check-reports-confinement; diag "$(grep '^confinement' <<<"$out")"; fi

json=$("$MOAT" check --json)
if python3 - "$json" <<'EOF'; then ok check-json-shape; else not_ok check-json-shape; diag "$json"; fi
import json, sys
d = json.loads(sys.argv[1])
def t(v, ty): assert isinstance(v, ty) or v is None, (v, ty)
assert set(d) == {"kvm", "hardware_virtualization", "vhost_vsock", "files", "qemu", "backends", "auto",
                  "host_cgroups", "confinement", "template", "ok"}, d.keys()
assert d["host_cgroups"]["mode"] in ("v1", "hybrid", "v2", "none"), d["host_cgroups"]
assert set(d["host_cgroups"]["limits"]) <= {"memory", "cpu", "pids"}; t(d["host_cgroups"]["error"], str)
assert set(d["confinement"]) == {"moat-vmm", "qemu"}
assert "-sandbox on,obsolete=deny" in d["confinement"]["qemu"] and "mount namespace" in d["confinement"]["moat-vmm"]
for k in ("present", "openable"): assert isinstance(d["kvm"][k], bool)
t(d["kvm"]["api_version"], int); t(d["kvm"]["error"], str); t(d["kvm"]["module"], str)
assert d["hardware_virtualization"] in (None, "vmx", "svm")
assert d["vhost_vsock"]["needed"] is False and isinstance(d["vhost_vsock"]["present"], bool)
assert set(d["files"]) == {"kernel", "initrd", "moat-vsock", "moat-vmm"}
for f in d["files"].values():
    assert (f["path"] is None) != (f["error"] is None), f
for k in ("path", "version", "error"): t(d["qemu"][k], str)
assert set(d["backends"]) == {"moat-vmm", "qemu"}
for b in d["backends"].values():
    assert isinstance(b["usable"], bool) and isinstance(b["reason"], str) and b["reason"]
assert d["backends"]["qemu"]["accel"] in ("kvm", "tcg")
assert d["auto"]["hypervisor"] in ("moat-vmm", "qemu") and d["auto"]["reason"]
assert d["ok"] == (d["backends"]["moat-vmm"]["usable"] or d["backends"]["qemu"]["usable"])
EOF
pick=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["auto"]["hypervisor"], d["ok"])' "$json")
if [ "$pick" = "$(sed -n 's/^auto picks: *\([a-z-]*\):.*/\1/p' <<<"$out") True" ]; then ok check-json-agrees-with-text; else
    not_ok check-json-agrees-with-text; diag "json: $pick"; fi
expect_eq check-json-auto-matches-cpu "$want ${hw:-None}" \
    "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["auto"]["hypervisor"], d["hardware_virtualization"])' "$json")"

out=$(MOAT_KERNEL=$WORK/no-vmlinux "$MOAT" check 2>&1)
rc=$?
if [ $rc -eq 1 ] && grep -q "^guest kernel: .*MOAT_KERNEL=$WORK/no-vmlinux" <<<"$out" &&
    grep -q '^verdict: FAIL, no hypervisor backend' <<<"$out"; then ok check-missing-kernel-fails; else
    not_ok check-missing-kernel-fails; diag "rc=$rc $out"; fi
out=$(MOAT_QEMU=$WORK/no-qemu "$MOAT" check --json)
if python3 -c 'import json,sys; d=json.loads(sys.argv[1]); q=d["qemu"]
assert q["version"] is None and sys.argv[2] in q["error"] and not d["backends"]["qemu"]["usable"]' "$out" "$WORK/no-qemu"
then ok check-missing-qemu-named; else not_ok check-missing-qemu-named; diag "$out"; fi
out=$("$MOAT" check --bogus 2>&1)
rc=$?
if [ $rc -eq 1 ] && [[ "$out" == *'unexpected argument "--bogus"'* ]]; then ok check-bad-argument; else
    not_ok check-bad-argument; diag "rc=$rc $out"; fi

# Choosing the backend.
if [ ! -e build/vmlinux ] || [ ! -e build/initramfs.cpio.gz ] || [ "$(id -u)" -ne 0 ]; then
    for n in moat-vmm-refused-without-vmx moat-vmm-refused-by-annotation unknown-hypervisor-named annotation-qemu-runs
    do skip "$n" "needs root, build/vmlinux and build/initramfs.cpio.gz"; done
    exit 0
fi
B=$WORK/bundle
scripts/mkbundle.sh "$B" >/dev/null
jq '.process.args = ["echo", "hello-from-qemu"]' "$B/config.json" >"$B/c" && mv "$B/c" "$B/config.json"
moat() { "$MOAT" --root "$ROOT" "$@"; }
if [ "$want" = qemu ]; then
    t0=$(date +%s%N)
    out=$(MOAT_HYPERVISOR=moat-vmm moat run -b "$B" vmm1 2>&1)
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    if [ $rc -ne 0 ] && [ $ms -lt 3000 ] && [[ "$out" == *"moat-vmm needs hardware virtualization (VMX/SVM), this host has none; use hypervisor=qemu"* ]] &&
        [ ! -e "$ROOT/vmm1" ]; then ok moat-vmm-refused-without-vmx; else
        not_ok moat-vmm-refused-without-vmx; diag "rc=$rc after ${ms}ms: $out"; fi
    jq '.annotations["org.moat.hypervisor"] = "moat-vmm"' "$B/config.json" >"$WORK/ann.json"
    mkdir -p "$WORK/ann" && cp "$WORK/ann.json" "$WORK/ann/config.json" && ln -s "$B/rootfs" "$WORK/ann/rootfs"
    out=$(MOAT_HYPERVISOR=qemu moat run -b "$WORK/ann" vmm2 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && [[ "$out" == *"moat-vmm needs hardware virtualization"* ]] && [ ! -e "$ROOT/vmm2" ]; then
        ok moat-vmm-refused-by-annotation; else not_ok moat-vmm-refused-by-annotation; diag "rc=$rc $out"; fi
else
    skip moat-vmm-refused-without-vmx "this host has $hw: moat-vmm runs here"
    skip moat-vmm-refused-by-annotation "this host has $hw: moat-vmm runs here"
fi
out=$(MOAT_HYPERVISOR=firecracker moat run -b "$B" bad1 2>&1)
rc=$?
if [ $rc -ne 0 ] && [[ "$out" == *'unknown hypervisor "firecracker" (known: qemu, moat-vmm, auto)'* ]] &&
    [ ! -e "$ROOT/bad1" ]; then ok unknown-hypervisor-named; else not_ok unknown-hypervisor-named; diag "rc=$rc $out"; fi
jq '.annotations["org.moat.hypervisor"] = "qemu"' "$B/config.json" >"$B/c" && mv "$B/c" "$B/config.json"
out=$(MOAT_HYPERVISOR=moat-vmm moat run -b "$B" q1 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ "$out" = hello-from-qemu ]; then ok annotation-qemu-runs; else
    not_ok annotation-qemu-runs; diag "rc=$rc $out"; fi
done_testing
