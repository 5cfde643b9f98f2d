#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# moat-vmm boots the probe guests (tests/probe) and checks their serial
# output and moat-vmm's exit status. Needs a usable /dev/kvm; skips otherwise.
cd "$(dirname "$0")/../.."
source tests/lib.sh
VMM=${MOAT_VMM:-build/moat-vmm}
P=build/probe
tmp=$(mktemp -d)
netns=
cleanup() {
    [ -n "$netns" ] && ip netns del "$netns" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

names=(hello-serial boot-e820 boot-cmdline boot-initrd boot-4g-hole boot-smp-mptable virtio-rng exit-status
    triple-fault-reset i8042-reset i8042-probe sigterm-stop bad-kernel bad-option linux-guest
    p9-probe p9-read p9-write p9-escape p9-reset p9-under-seccomp p9-bad-share p9-worker-confined p9-worker-death-stops-vm
    p9-worker-reaped-at-exit
    vsock-guest-connect vsock-host-connect vsock-refused vsock-json-config vsock-bad-cid
    seccomp-count seccomp-count-with-share seccomp-count-9p-worker seccomp-active memfd-ram
    net-probe net-arp-reply net-udp-echo net-json-config net-worker-confined net-bad-mac seccomp-count-with-tap
    console-log-file console-log-stdout console-hostile-descriptor)

skip_all() {
    for n in "${names[@]}"; do skip "$n" "$1"; done
    exit 0
}
[ -x "$VMM" ] || skip_all "$VMM not built (make build/moat-vmm probes)"
for p in hello virtio shutdown; do [ -f "$P/$p.elf" ] || skip_all "$P/$p.elf not built (make probes)"; done
[ -c /dev/kvm ] || skip_all "no /dev/kvm"
# Usable: the smallest probe boots and exits with its status. A failure that
# names KVM (no /dev/kvm access, missing capability) skips; anything else is
# left to the tests below to report.
timeout 20 "$VMM" --kernel "$P/shutdown.elf" --cmdline probe.mode=exit:7 --serial-log "$tmp/kvmcheck" \
    2>"$tmp/kvmcheck.err"
rc=$?
if [ $rc -ne 23 ] && grep -qi 'kvm' "$tmp/kvmcheck.err"; then
    skip_all "/dev/kvm unusable: $(head -1 "$tmp/kvmcheck.err")"
fi

# run NAME ARGS...: boots with serial to $tmp/NAME.out, status in $rc
run() {
    local name=$1; shift
    timeout 60 "$VMM" --serial-log "$tmp/$name.out" "$@" 2>"$tmp/$name.err"
    rc=$?
}
has() { grep -qF -- "$2" "$tmp/$1.out"; }
show() { sed 's/^/#   /' "$tmp/$1.out" "$tmp/$1.err" | head -40; }

run hello --kernel $P/hello.elf --memory 256 --cmdline "probe.mem=256 console=ttyS0"
if [ $rc -eq 0 ] && has hello "moat-probe: hello" && has hello "all checks passed"; then ok hello-serial; else
    not_ok hello-serial; show hello; fi
if has hello "ok e820 RAM ends at --memory" && has hello "ok e820 usable RAM matches --memory" &&
    has hello "e820 0x100000 0xff00000 1"; then ok boot-e820; else not_ok boot-e820; show hello; fi
expect_eq boot-cmdline "cmdline=probe.mem=256 console=ttyS0" "$(grep '^cmdline=' "$tmp/hello.out")"

head -c 300000 /dev/urandom >"$tmp/initrd"
size=$(stat -c %s "$tmp/initrd")
fnv=$(python3 -c 'import sys
h = 2166136261
for b in open(sys.argv[1], "rb").read(): h = ((h ^ b) * 16777619) & 0xffffffff
print(hex(h))' "$tmp/initrd")
run initrd --kernel $P/hello.elf --initrd "$tmp/initrd" --cmdline "probe.initrd_size=$size probe.initrd_fnv=$fnv"
if [ $rc -eq 0 ] && has initrd "ok initrd bytes" && has initrd "ok initrd placement"; then ok boot-initrd; else
    not_ok boot-initrd; show initrd; fi

run big --kernel $P/hello.elf --memory 4608 --cmdline "probe.mem=4608"
if [ $rc -eq 0 ] && has big "ok e820 RAM skips the 3-4 GiB hole" && has big "e820 0x100000000 0x60000000 1"; then
    ok boot-4g-hole; else not_ok boot-4g-hole; show big; fi

run smp --kernel $P/hello.elf --cpus 3 --cmdline "probe.cpus=3"
if [ $rc -eq 0 ] && has smp "mptable cpus=3"; then ok boot-smp-mptable; else not_ok boot-smp-mptable; show smp; fi

run virtio --kernel $P/virtio.elf --rng
if [ $rc -eq 0 ] && has virtio "ok second interrupt" && has virtio "all checks passed"; then ok virtio-rng; else
    not_ok virtio-rng; show virtio; fi

run exit --kernel $P/shutdown.elf --cmdline probe.mode=exit:42
expect_eq exit-status 58 "$rc"
run triple --kernel $P/shutdown.elf --cmdline probe.mode=triple
if [ $rc -eq 2 ] && grep -q "triple fault" "$tmp/triple.err"; then ok triple-fault-reset; else
    not_ok triple-fault-reset; echo "# rc=$rc"; show triple; fi
run i8042 --kernel $P/shutdown.elf --cmdline probe.mode=i8042
if [ $rc -eq 2 ] && grep -q "i8042" "$tmp/i8042.err"; then ok i8042-reset; else
    not_ok i8042-reset; echo "# rc=$rc"; show i8042; fi
# what Linux's i8042 driver sends while probing is answered at once
run i8042probe --kernel $P/i8042.elf
if [ $rc -eq 0 ] && has i8042probe "all checks passed"; then ok i8042-probe; else
    not_ok i8042-probe; echo "# rc=$rc"; show i8042probe; fi

"$VMM" --kernel $P/shutdown.elf --cmdline probe.mode=hang --cpus 2 --serial-log "$tmp/hang.out" 2>"$tmp/hang.err" &
pid=$!
for _ in $(seq 100); do has hang spinning && break; sleep 0.1; done
kill -TERM $pid
t0=$(date +%s%N)
wait $pid
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
if [ $rc -eq 4 ] && [ $ms -lt 2000 ]; then ok sigterm-stop; else not_ok sigterm-stop; echo "# rc=$rc after ${ms}ms"; fi

echo "not an elf" >"$tmp/bad"
run bad --kernel "$tmp/bad"
if [ $rc -eq 1 ] && grep -q "kernel $tmp/bad: not an ELF file" "$tmp/bad.err"; then ok bad-kernel; else
    not_ok bad-kernel; echo "# rc=$rc"; show bad; fi
run badopt --kernel $P/hello.elf --memory lots
if [ $rc -eq 1 ] && grep -q "memory \`lots\`" "$tmp/badopt.err"; then ok bad-option; else
    not_ok bad-option; echo "# rc=$rc"; show badopt; fi

# virtio-9p: the probe reads a file put in the share, writes one the host
# checks, and tries to leave the share ("..", a symlink to /etc).
if [ -f "$P/p9.elf" ]; then
    mkdir -p "$tmp/p9/share"
    printf 'hello from the host side\n' >"$tmp/p9/share/hello.txt"
    ln -s /etc "$tmp/p9/share/etc"
    echo "outside the share" >"$tmp/p9/secret"
    run p9 --kernel $P/p9.elf --share "moatshare=$tmp/p9/share"
    # Default filters (kill) on the VMM and on the 9p worker process: the
    # worker's allowlist must cover every file operation of the probe.
    if [ $rc -eq 0 ]; then ok p9-under-seccomp; else
        not_ok p9-under-seccomp; echo "# rc=$rc"; show p9
        rm -f "$tmp/p9/share/from-guest.txt"
        run p9 --kernel $P/p9.elf --share "moatshare=$tmp/p9/share" --seccomp off
    fi
    if [ $rc -eq 0 ] && has p9 "tag=moatshare" && has p9 "all checks passed"; then ok p9-probe; else
        not_ok p9-probe; echo "# rc=$rc"; show p9; fi
    if has p9 "read: hello from the host side" && has p9 "ok Tread hello.txt"; then ok p9-read; else
        not_ok p9-read; show p9; fi
    expect_eq p9-write "written by the p9 probe" "$(cat "$tmp/p9/share/from-guest.txt" 2>/dev/null)"
    if has p9 "ok escape: walk .. secret stops inside the share" &&
        has p9 "ok escape: walk through symlink etc -> /etc fails" &&
        has p9 "ok escape: Tlopen of the symlink is refused" && [ ! -e "$tmp/from-guest.txt" ] &&
        [ "$(cat "$tmp/p9/secret")" = "outside the share" ]; then ok p9-escape; else not_ok p9-escape; show p9; fi
    # A device reset goes through the worker: it drops every fid and starts over.
    if has p9 "ok reset: Tversion on the new queue" && has p9 "ok reset: fids from before the reset are forgotten" &&
        has p9 "ok reset: Tattach again"; then ok p9-reset; else not_ok p9-reset; show p9; fi
else
    for n in p9-probe p9-read p9-write p9-escape p9-reset p9-under-seccomp; do skip $n "$P/p9.elf not built"; done
fi
# The 9p server runs in its own process: confined (seccomp, no_new_privs),
# holding no KVM fd, the only one with an fd in the share; if it dies, the
# VM stops with an error.
mkdir -p "$tmp/p9wshare"
"$VMM" --kernel $P/shutdown.elf --cmdline probe.mode=hang --share "moatshare=$tmp/p9wshare" \
    --serial-log "$tmp/p9w.out" 2>"$tmp/p9w.err" &
pid=$!
for _ in $(seq 100); do has p9w spinning && break; sleep 0.1; done
wpid=$(cat /proc/$pid/task/*/children 2>/dev/null | tr -d ' ')
wst=/proc/$wpid/status
if [ -n "$wpid" ] && grep -q '^Name:[[:space:]]*moat-vmm-9p$' "$wst" && grep -q '^Seccomp:[[:space:]]*2$' "$wst" &&
    grep -q '^NoNewPrivs:[[:space:]]*1$' "$wst" &&
    ! ls -l /proc/$wpid/fd | grep -qE 'kvm' && ls -l /proc/$wpid/fd | grep -q -- "-> $tmp/p9wshare\$" &&
    ! ls -l /proc/$pid/fd | grep -q -- "-> $tmp/p9wshare\$"; then ok p9-worker-confined; else
    not_ok p9-worker-confined; echo "# worker=$wpid"; ls -l /proc/$wpid/fd /proc/$pid/fd 2>&1 | sed 's/^/#   /'; fi
[ -n "$wpid" ] && kill -KILL "$wpid"
timeout 10 tail --pid=$pid -f /dev/null
wait $pid
rc=$?
if [ $rc -eq 3 ] && grep -q "virtio-9p moatshare: the worker process exited" "$tmp/p9w.err"; then
    ok p9-worker-death-stops-vm; else not_ok p9-worker-death-stops-vm; echo "# rc=$rc"; show p9w; fi

# A VMM stopped by SIGTERM leaves no worker behind, not even a zombie.
"$VMM" --kernel $P/shutdown.elf --cmdline probe.mode=hang --share "moatshare=$tmp/p9wshare" \
    --serial-log "$tmp/p9r.out" 2>"$tmp/p9r.err" &
pid=$!
for _ in $(seq 100); do has p9r spinning && break; sleep 0.1; done
wpid=$(cat /proc/$pid/task/*/children 2>/dev/null | tr -d ' ')
kill -TERM $pid
wait $pid
rc=$?
if [ -n "$wpid" ] && [ $rc -eq 4 ] && [ ! -e /proc/$wpid ]; then ok p9-worker-reaped-at-exit; else
    not_ok p9-worker-reaped-at-exit; echo "# worker=$wpid rc=$rc"; grep State /proc/$wpid/status 2>/dev/null; fi

run p9bad --kernel $P/hello.elf --share "moatshare=$tmp/does-not-exist"
if [ $rc -eq 1 ] && grep -q "virtio-9p moatshare: share $tmp/does-not-exist: No such file" "$tmp/p9bad.err"; then
    ok p9-bad-share; else not_ok p9-bad-share; echo "# rc=$rc"; show p9bad; fi

# virtio-vsock: the probe (tests/probe/vsock.c) against the host client
# tests/integration/vsock-probe-host.py on the hybrid-vsock socket. Runs with
# the default seccomp filter (kill) and guest RAM from a memfd.
# vsock_run NAME VMM-ARGS...: client + probe; client output in $tmp/NAME.py, status in $prc
vsock_run() {
    local name=$1; shift
    local hyb=$tmp/$name.sock
    python3 tests/integration/vsock-probe-host.py "$hyb" >"$tmp/$name.py" 2>&1 &
    local ppid=$!
    for _ in $(seq 100); do [ -e "$hyb.ready" ] && break; sleep 0.1; done
    run "$name" --kernel $P/vsock.elf "$@"
    wait $ppid
    prc=$?
}
pyhas() { grep -qxF -- "$2" "$tmp/$1.py"; }
showpy() { show "$1"; sed 's/^/#   host: /' "$tmp/$1.py" | head -20; }

if [ -f "$P/vsock.elf" ]; then
    vsock_run vsock --vsock-socket "$tmp/vsock.sock" --guest-cid 5 --memfd --cmdline probe.cid=5
    if [ $rc -eq 0 ] && has vsock "ok connected to host port 5000" && has vsock "ok host port 5000 echoed the 3000 bytes" &&
        pyhas vsock "ok host-5000-data 3000 bytes" && pyhas vsock "ok host-5000-eof"; then ok vsock-guest-connect; else
        not_ok vsock-guest-connect; echo "# rc=$rc host=$prc"; showpy vsock; fi
    hport=$(sed -n 's/^host port //p' "$tmp/vsock.py")
    if [ $rc -eq 0 ] && pyhas vsock "ok connect-1024-echo 5000 bytes" && pyhas vsock "ok connect-1024-eof" &&
        [ -n "$hport" ] && has vsock "host connected from port $hport" && has vsock "ok host connection closed"; then
        ok vsock-host-connect; else not_ok vsock-host-connect; echo "# rc=$rc host=$prc"; showpy vsock; fi
    # Refusals both ways; the socket file is gone once moat-vmm exits.
    if has vsock "ok connect to an unserved host port is refused (RST)" &&
        pyhas vsock "ok connect-1099-refused b''" &&
        has vsock "ok host connection to a port nobody listens on was refused" && [ ! -e "$tmp/vsock.sock" ]; then
        ok vsock-refused; else not_ok vsock-refused; showpy vsock; fi

    printf '{"vsock_socket": "%s", "guest_cid": 7, "memfd": true, "cmdline": "probe.cid=7"}\n' "$tmp/vjson.sock" \
        >"$tmp/vjson.json"
    vsock_run vjson --config "$tmp/vjson.json"
    if [ $rc -eq 0 ] && has vjson "guest_cid=7" && has vjson "all checks passed" && [ $prc -eq 0 ]; then
        ok vsock-json-config; else not_ok vsock-json-config; echo "# rc=$rc host=$prc"; showpy vjson; fi
else
    for n in vsock-guest-connect vsock-host-connect vsock-refused vsock-json-config; do
        skip $n "$P/vsock.elf not built"; done
fi
run badcid --kernel $P/hello.elf --vsock-socket "$tmp/bad.sock" --guest-cid 2
if [ $rc -eq 1 ] && grep -q "guest CID 2: must be 3" "$tmp/badcid.err" && [ ! -e "$tmp/bad.sock" ]; then
    ok vsock-bad-cid; else not_ok vsock-bad-cid; echo "# rc=$rc"; show badcid; fi

# Confinement: the allowlist is short, and it is really on (every thread of
# the VMM in seccomp filter mode with no_new_privs) while a guest runs; the
# same VM's RAM is a memfd mapping.
n=$("$VMM" --print-seccomp | sed -n 's/^\([0-9]*\) syscalls$/\1/p')
if [ -n "$n" ] && [ "$n" -lt 50 ]; then ok seccomp-count; echo "# $n syscalls allowed"; else
    not_ok seccomp-count; echo "# count=$n"; fi
n=$("$VMM" --share "moatshare=$tmp" --print-seccomp | sed -n 's/^\([0-9]*\) syscalls$/\1/p')
if [ -n "$n" ] && [ "$n" -lt 50 ]; then ok seccomp-count-with-share; echo "# $n syscalls allowed"; else
    not_ok seccomp-count-with-share; echo "# count=$n"; fi
w=$("$VMM" --print-seccomp=9p-worker)
n=$(sed -n 's/^\([0-9]*\) syscalls$/\1/p' <<<"$w")
if [ -n "$n" ] && [ "$n" -lt 50 ] && ! grep -qE '^(ioctl|socket|connect|execve)' <<<"$w" && grep -q '^openat2' <<<"$w"; then
    ok seccomp-count-9p-worker; echo "# $n syscalls allowed in the 9p worker"; else
    not_ok seccomp-count-9p-worker; echo "# count=$n"; fi
"$VMM" --kernel $P/shutdown.elf --cmdline probe.mode=hang --cpus 2 --memfd --vsock-socket "$tmp/hang2.sock" \
    --serial-log "$tmp/hang2.out" 2>"$tmp/hang2.err" &
pid=$!
for _ in $(seq 100); do has hang2 spinning && break; sleep 0.1; done
tasks=0 confined=0
for st in /proc/$pid/task/*/status; do
    tasks=$((tasks + 1))
    grep -q '^Seccomp:[[:space:]]*2$' "$st" && grep -q '^NoNewPrivs:[[:space:]]*1$' "$st" && confined=$((confined + 1))
done
memfd=$(grep -c 'memfd:moat-guest-ram' /proc/$pid/maps)
kill -TERM $pid
wait $pid
rc=$?
if [ $tasks -ge 3 ] && [ $confined -eq $tasks ] && [ $rc -eq 4 ]; then ok seccomp-active; echo "# $confined/$tasks threads confined"; else
    not_ok seccomp-active; echo "# $confined of $tasks threads confined, rc=$rc"; show hang2; fi
if [ "$memfd" -ge 1 ]; then ok memfd-ram; else not_ok memfd-ram; echo "# no memfd:moat-guest-ram mapping"; fi

# virtio-net: a tap in a fresh network namespace with 10.0.2.1/24; the probe
# (tests/probe/net.c, 10.0.2.15) resolves the host by ARP and exchanges a UDP
# datagram with an echo server on the tap's address. The VMM runs under its
# default seccomp filter (kill).
net_names=(net-probe net-arp-reply net-udp-echo net-json-config net-worker-confined)
net_skip() { for n in "${net_names[@]}"; do skip "$n" "$1"; done; }
netns=moat-vmm-test-$$
if [ ! -f "$P/net.elf" ]; then
    net_skip "$P/net.elf not built"; netns=
elif ! command -v ip >/dev/null || [ ! -c /dev/net/tun ] || ! command -v python3 >/dev/null; then
    net_skip "needs ip (iproute2), /dev/net/tun and python3"; netns=
elif ! ip netns add "$netns" 2>"$tmp/netns.err"; then
    net_skip "ip netns add: $(head -1 "$tmp/netns.err")"; netns=
elif ! { ip -n "$netns" link set lo up && ip -n "$netns" tuntap add dev mtap0 mode tap &&
    ip -n "$netns" addr add 10.0.2.1/24 dev mtap0 && ip -n "$netns" link set mtap0 up; } 2>"$tmp/netns.err"; then
    net_skip "tap setup in a network namespace: $(head -1 "$tmp/netns.err")"
else
    cat >"$tmp/udpecho.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
open(sys.argv[3], "w").close()
s.settimeout(60)
data, addr = s.recvfrom(2048)
print("got %r from %s:%d" % (data.decode(), addr[0], addr[1]), flush=True)
s.sendto(b"echo: " + data, addr)
PY
    ip netns exec "$netns" python3 "$tmp/udpecho.py" 10.0.2.1 7777 "$tmp/udp.ready" >"$tmp/udp.out" 2>&1 &
    upid=$!
    for _ in $(seq 100); do [ -e "$tmp/udp.ready" ] && break; sleep 0.1; done
    tapmac=$(ip netns exec "$netns" cat /sys/class/net/mtap0/address)
    ncmd="probe.ip=10.0.2.15 probe.host_ip=10.0.2.1 probe.port=7777"
    ip netns exec "$netns" timeout 60 "$VMM" --kernel $P/net.elf --tap mtap0 --mac 02:00:00:12:34:56 \
        --cmdline "$ncmd probe.mac=02:00:00:12:34:56" --serial-log "$tmp/net.out" 2>"$tmp/net.err"
    rc=$?
    kill $upid 2>/dev/null; wait $upid 2>/dev/null
    if [ $rc -eq 0 ] && has net "ok header-only tx chain handed back" && has net "ok config space MAC is the --mac given" &&
        has net "ok no offloads offered" && has net "all checks passed"; then ok net-probe; else
        not_ok net-probe; echo "# rc=$rc"; show net; fi
    if has net "ok ARP reply from the host" && has net "host 10.0.2.1 is-at $tapmac"; then ok net-arp-reply; else
        not_ok net-arp-reply; echo "# tap mac $tapmac"; show net; fi
    if has net "udp reply: echo: hello from the net probe" &&
        grep -qxF "got 'hello from the net probe' from 10.0.2.15:4000" "$tmp/udp.out"; then ok net-udp-echo; else
        not_ok net-udp-echo; show net; sed 's/^/#   host: /' "$tmp/udp.out"; fi
    # The same device from the JSON config; no UDP server this time: ARP only.
    printf '{"kernel": "%s", "tap": "mtap0", "mac": "02:00:00:00:00:42", "cmdline": "%s probe.mac=02:00:00:00:00:42"}\n' \
        "$P/net.elf" "$ncmd" >"$tmp/njson.json"
    ip netns exec "$netns" timeout 60 "$VMM" --config "$tmp/njson.json" --serial-log "$tmp/njson.out" 2>"$tmp/njson.err"
    rc=$?
    if has njson "mac=02:00:00:00:00:42" && has njson "ok config space MAC is the --mac given" &&
        has njson "host 10.0.2.1 is-at $tapmac"; then ok net-json-config; else
        not_ok net-json-config; echo "# rc=$rc"; show njson; fi
    # While a guest runs: every thread (the net worker included) confined,
    # the tap open, and no new fds the filter would have had to allow.
    ip netns exec "$netns" "$VMM" --kernel $P/shutdown.elf --cmdline probe.mode=hang --tap mtap0 \
        --serial-log "$tmp/nhang.out" 2>"$tmp/nhang.err" &
    npid=$!
    for _ in $(seq 100); do has nhang spinning 2>/dev/null && break; sleep 0.1; done
    vpid=$(pgrep -P $npid -x moat-vmm || echo $npid)
    tasks=0 confined=0
    for st in /proc/$vpid/task/*/status; do
        tasks=$((tasks + 1))
        grep -q '^Seccomp:[[:space:]]*2$' "$st" && grep -q '^NoNewPrivs:[[:space:]]*1$' "$st" && confined=$((confined + 1))
    done
    tun=$(ls -l /proc/$vpid/fd 2>/dev/null | grep -c -- '-> /dev/net/tun$')
    kill -TERM $vpid
    wait $npid
    rc=$?
    if [ $tasks -ge 3 ] && [ $confined -eq $tasks ] && [ "$tun" -eq 1 ] && [ $rc -eq 4 ]; then
        ok net-worker-confined; echo "# $confined/$tasks threads confined, tap fd open"; else
        not_ok net-worker-confined; echo "# $confined of $tasks threads confined, tun fds=$tun rc=$rc"; show nhang; fi
    ip netns del "$netns"
    netns=
fi
run badmac --kernel $P/hello.elf --tap mtap9 --mac 01:00:5e:00:00:01
if [ $rc -eq 1 ] && grep -q "MAC address \`01:00:5e:00:00:01\`: a multicast address" "$tmp/badmac.err"; then
    ok net-bad-mac; else not_ok net-bad-mac; echo "# rc=$rc"; show badmac; fi
a=$("$VMM" --print-seccomp | tail -1)
b=$("$VMM" --tap mtap0 --console-log - --print-seccomp | tail -1)
if [ -n "$a" ] && [ "$a" = "$b" ]; then ok seccomp-count-with-tap; echo "# $b with --tap and --console-log"; else
    not_ok seccomp-count-with-tap; echo "# without: $a; with: $b"; fi

# virtio-console: the probe writes through it; the log gets exactly that.
if [ -f "$P/console.elf" ]; then
    printf 'console: hello from the console probe\nconsole: chained buffers\nconsole: writable tail ignored\n' \
        >"$tmp/console.want"
    run console --kernel $P/console.elf --console-log "$tmp/console.log"
    if [ $rc -eq 0 ] && has console "all checks passed" && cmp -s "$tmp/console.want" "$tmp/console.log"; then
        ok console-log-file; else not_ok console-log-file; echo "# rc=$rc"; show console
        sed 's/^/#   log: /' "$tmp/console.log"; fi
    timeout 60 "$VMM" --kernel $P/console.elf --console-log - --serial-log "$tmp/cstdout.out" \
        >"$tmp/cstdout.log" 2>"$tmp/cstdout.err"
    rc=$?
    if [ $rc -eq 0 ] && cmp -s "$tmp/console.want" "$tmp/cstdout.log"; then ok console-log-stdout; else
        not_ok console-log-stdout; echo "# rc=$rc"; show cstdout; fi
    # The probe's last buffer points outside guest RAM: a warning, no crash.
    if [ $rc -eq 0 ] && has console "ok bad buffer not handed back, VM still running" &&
        grep -q "virtio-console: virtqueue: .*outside guest memory" "$tmp/console.err"; then
        ok console-hostile-descriptor; else not_ok console-hostile-descriptor; show console; fi
else
    for n in console-log-file console-log-stdout console-hostile-descriptor; do skip $n "$P/console.elf not built"; done
fi

# Confinement besides seccomp (src/vmm/jail.c). Without --jail: no
# capability in any thread of the VMM, the 9p worker only the five that
# serve files with their owners, no core dumps. With --jail (what libmoat
# passes): inherited fds closed, and once the guest runs the VMM's root is
# a read-only tmpfs holding only the vsock socket's directory, read-only;
# the 9p worker keeps its view of the share, guest connections to host
# ports still work.
caps_of() { awk '/^CapEff/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
mkdir -p "$tmp/jv" "$tmp/jvshare"
echo "inherited" >"$tmp/jv-leak"
"$VMM" --kernel $P/shutdown.elf --cmdline probe.mode=hang --share "moatshare=$tmp/jvshare" \
    --vsock-socket "$tmp/jv/v.sock" --memfd --serial-log "$tmp/jv.out" --jail 2>"$tmp/jv.err" 9<"$tmp/jv-leak" &
pid=$!
for _ in $(seq 100); do has jv spinning && break; sleep 0.1; done
wpid=$(cat /proc/$pid/task/*/children 2>/dev/null | tr -d ' ')
tcaps=$(for t in /proc/$pid/task/*; do awk '/^CapEff/ { print $2 }' "$t/status"; done | sort -u | tr '\n' ' ')
expect_eq jail-no-capabilities "0000000000000000 " "$tcaps"
expect_eq jail-9p-worker-capabilities 000000000000001f "$(caps_of "$wpid")"
expect_eq jail-no-core-dumps 0 "$(awk '/^Max core file size/ { print $5 }' /proc/$pid/limits)"
view=$(cd /proc/$pid/root 2>/dev/null && find . -mindepth 1 | sort | tr '\n' ' ')
want=$(d=$tmp/jv; p=; while [ "$d" != / ]; do p="./${d#/} $p"; d=$(dirname "$d"); done; echo "$p./${tmp#/}/jv/v.sock ")
expect_eq jail-root-holds-only-the-socket-dir "$(tr ' ' '\n' <<<"$want" | sed '/^$/d' | sort | tr '\n' ' ')" "$view"
if ! touch "/proc/$pid/root$tmp/jv/new" 2>/dev/null && ! mkdir "/proc/$pid/root/x" 2>/dev/null; then
    ok jail-read-only; else not_ok jail-read-only; fi
if ! ls -l /proc/$pid/fd | grep -q -- "jv-leak"; then ok jail-inherited-fds-closed; else
    not_ok jail-inherited-fds-closed; ls -l /proc/$pid/fd | sed 's/^/#   /'; fi
# (by inode: how a readlink of another namespace's fd reads differs
# between kernels)
share_id=$(stat -c %d:%i "$tmp/jvshare")
if stat -L -c %d:%i /proc/$wpid/fd/* 2>/dev/null | grep -qx "$share_id" && [ -d "/proc/$wpid/root$tmp/jvshare" ]; then
    ok jail-9p-worker-keeps-the-share; else not_ok jail-9p-worker-keeps-the-share; fi
kill -TERM $pid
wait $pid
if [ -f "$P/p9.elf" ]; then
    # the file the probe reads is a bind mount in the share (as the rootfs
    # and volumes are), made in a mount namespace of the VMM's own; what
    # lies under it says "underneath"
    rm -rf "$tmp/p9j" && cp -a "$tmp/p9" "$tmp/p9j" && rm -f "$tmp/p9j/share/from-guest.txt"
    mv "$tmp/p9j/share/hello.txt" "$tmp/p9j/hello-src" && echo underneath >"$tmp/p9j/share/hello.txt"
    timeout 60 unshare -m --propagation private sh -c 'mount --bind "$1/hello-src" "$1/share/hello.txt" && shift && exec "$@"' \
        sh "$tmp/p9j" "$VMM" --serial-log "$tmp/p9jail.out" --kernel $P/p9.elf --share "moatshare=$tmp/p9j/share" \
        --jail 2>"$tmp/p9jail.err"
    rc=$?
    if [ $rc -eq 0 ] && has p9jail "all checks passed" &&
        [ "$(cat "$tmp/p9j/share/from-guest.txt" 2>/dev/null)" = "written by the p9 probe" ]; then ok p9-probe-jailed; else
        not_ok p9-probe-jailed; echo "# rc=$rc"; show p9jail; fi
else
    skip p9-probe-jailed "$P/p9.elf not built"
fi
if [ -f "$P/vsock.elf" ]; then
    vsock_run vsjail --vsock-socket "$tmp/vsjail.sock" --guest-cid 5 --memfd --cmdline probe.cid=5 --jail
    if [ $rc -eq 0 ] && has vsjail "ok host port 5000 echoed the 3000 bytes" && pyhas vsjail "ok connect-1024-eof"; then
        ok vsock-probe-jailed; else not_ok vsock-probe-jailed; echo "# rc=$rc host=$prc"; showpy vsjail; fi
else
    skip vsock-probe-jailed "$P/vsock.elf not built"
fi

# A real Linux guest needs hardware virtualization (kvm_pvm cannot run one).
if ! grep -qE 'vmx|svm' /proc/cpuinfo; then
    skip linux-guest "host lacks VMX/SVM (/dev/kvm is software-only here), cannot boot build/vmlinux"
elif [ ! -e build/vmlinux ] || [ ! -f build/initramfs.cpio.gz ]; then
    skip linux-guest "build/vmlinux or build/initramfs.cpio.gz missing"
else
    timeout 30 "$VMM" --kernel build/vmlinux --initrd build/initramfs.cpio.gz --memory 256 \
        --cmdline "console=ttyS0 reboot=t panic=-1" --serial-log "$tmp/linux.out" 2>"$tmp/linux.err"
    rc=$?
    # The agent is PID 1; without a host to talk to it stays up, so a reset or
    # a timeout both prove the kernel booted if the console shows init.
    if grep -qE 'Run /init|moat-agent' "$tmp/linux.out"; then ok linux-guest; else
        not_ok linux-guest; echo "# rc=$rc"; tail -20 "$tmp/linux.out" | sed 's/^/#   /'; fi
fi
done_testing
