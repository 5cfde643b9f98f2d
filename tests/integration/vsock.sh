#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# moat-vsock under a real QEMU (vhost-user-vsock-device, microvm, TCG): boots
# a tiny static init (tests/guest/vsock-echo.c) that echoes on vsock port
# 1024, greets host port 5000 and reboots on a connection to port 1026.
cd "$(dirname "$0")/../.."
source tests/lib.sh

VSOCKD=${MOAT_VSOCK:-build/moat-vsock}
KERNEL=${MOAT_KERNEL:-build/vmlinux}
PY=/usr/bin/python3
QEMU=qemu-system-x86_64

for need in "$VSOCKD" "$KERNEL" "$PY"; do
    if [ ! -e "$need" ]; then skip vsock "missing $need"; exit 0; fi
done
if ! command -v $QEMU >/dev/null || ! command -v cpio >/dev/null; then
    skip vsock "needs $QEMU and cpio"; exit 0
fi

tmp=$(mktemp -d /tmp/moat-vsock-test.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/root"
if ! gcc -static -O2 -Wall -Werror -o "$tmp/root/init" tests/guest/vsock-echo.c 2>"$tmp/gcc.log"; then
    not_ok "build static test init"; sed 's/^/# /' "$tmp/gcc.log"; exit 1
fi
(cd "$tmp/root" && echo init | cpio -o -H newc 2>/dev/null) >"$tmp/initrd.cpio"
ok "build static test init and initramfs"

hyb=$tmp/v.sock
vu=$tmp/vu.sock

# moat-vsock must signal readiness on --ready-fd once both sockets listen.
mkfifo "$tmp/ready"
"$VSOCKD" --vhost-user "$vu" --socket "$hyb" --guest-cid 3 --log "$tmp/moat-vsock.log" --ready-fd 9 \
    9>"$tmp/ready" &
vpid=$!
pids+=("$vpid")
exec {ready_r}<"$tmp/ready"
if read -r -n1 -t 10 -u "$ready_r" byte && [ -S "$vu" ] && [ -S "$hyb" ]; then
    ok "moat-vsock reports ready with both sockets listening"
else
    not_ok "moat-vsock reports ready with both sockets listening"; exit 1
fi
exec {ready_r}<&-

# The guest->host listener must exist before the guest tries port 5000.
cat >"$tmp/test.py" <<'EOF'
import os, socket, subprocess, sys, threading, time

hyb, tmp = sys.argv[1], sys.argv[2]
results = []
def check(name, cond, detail=""):
    results.append((bool(cond), name, detail))

l5000 = socket.socket(socket.AF_UNIX)
l5000.bind(hyb + "_5000")
l5000.listen(4)
print("listening", flush=True)
sys.stdin.readline()  # QEMU started

def connect(port, deadline):
    """CONNECT through the hybrid socket, retrying while the guest is not listening yet."""
    while time.time() < deadline:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(20)
        s.connect(hyb)
        s.sendall(b"CONNECT %d\n" % port)
        line = b""
        try:
            while not line.endswith(b"\n"):
                c = s.recv(1)
                if not c:
                    break
                line += c
        except OSError:
            pass
        if line.startswith(b"OK "):
            return s, line
        s.close()
        time.sleep(0.5)
    return None, b""

def recv_all(s, n):
    buf = bytearray()
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            break
        buf.extend(b)
    return bytes(buf)

s, line = connect(1024, time.time() + 60)
check("host CONNECT 1024 answered with OK <port>", s is not None and line[3:-1].isdigit(), line)
if s:
    s.sendall(b"ping\n")
    check("small echo host->guest->host", recv_all(s, 5) == b"ping\n")

    data = os.urandom(1 << 20)
    got = bytearray()
    def reader():
        while True:
            b = s.recv(65536)
            if not b:
                break
            got.extend(b)
    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)       # host half-close: guest sees EOF
    t.join(60)
    check("1 MiB echo intact (credit flow control)", bytes(got) == data, "%d bytes back" % len(got))
    check("half-close: guest shut its side after our EOF (we read EOF)", not t.is_alive())
    s.close()

    # a second connection while the first is gone: ports are reused cleanly
    s2, line2 = connect(1024, time.time() + 10)
    check("second connection gets a different host port", s2 is not None and line2 != line, line2)
    if s2:
        s2.sendall(b"again\n")
        check("second connection echoes", recv_all(s2, 6) == b"again\n")
        s2.close()

l5000.settimeout(30)
try:
    c, _ = l5000.accept()
    c.settimeout(10)
    msg, eof = b"", False
    try:
        while True:
            b = c.recv(100)
            if not b:
                eof = True
                break
            msg += b
    except OSError:
        pass
    check("guest->host connection arrived at <socket>_5000", msg == b"hello from guest\n", msg)
    check("guest shutdown(SHUT_WR) reached the host as EOF", eof)
    c.close()
except OSError as e:
    check("guest->host connection arrived at <socket>_5000", False, str(e))

# unknown guest port: moat-vsock closes the client without OK
s3 = socket.socket(socket.AF_UNIX)
s3.settimeout(10)
s3.connect(hyb)
s3.sendall(b"CONNECT 4242\n")
try:
    r = s3.recv(100)
except OSError:
    r = b"error"
check("CONNECT to a port nobody listens on is closed without OK", r == b"", r)
s3.close()

# bad handshake
s4 = socket.socket(socket.AF_UNIX)
s4.settimeout(10)
s4.connect(hyb)
s4.sendall(b"HELLO\n")
try:
    r = s4.recv(100)
except OSError:
    r = b"error"
check("bad handshake line is closed", r == b"", r)
s4.close()

# reboot the guest
s5, _ = connect(1026, time.time() + 10)
check("reboot request accepted", s5 is not None)
for ok_, name, detail in results:
    print("%s\t%s\t%s" % ("ok" if ok_ else "not_ok", name, detail), flush=True)
print("done", flush=True)
EOF

coproc PYT { "$PY" "$tmp/test.py" "$hyb" "$tmp" 2>&1; }
pids+=("$PYT_PID")
# our own copies: bash drops PYT[] when the driver exits, and its last
# words (a traceback) must still be read
exec {drv_out}<&"${PYT[0]}" {drv_in}>&"${PYT[1]}"
read -r -t 10 -u "$drv_out" first
if [ "$first" != listening ]; then not_ok "test driver started" "$first"; exit 1; fi

$QEMU -M microvm,acpi=off -accel tcg -m 256M -nodefaults -no-user-config -nographic -no-reboot \
    -object memory-backend-memfd,id=mem,size=256M,share=on -machine memory-backend=mem \
    -kernel "$KERNEL" -initrd "$tmp/initrd.cpio" -append 'console=ttyS0 reboot=t panic=-1' \
    -serial file:"$tmp/serial.log" -chardev socket,id=vs,path="$vu" \
    -device vhost-user-vsock-device,chardev=vs >"$tmp/qemu.log" 2>&1 &
qpid=$!
pids+=("$qpid")
echo go >&"$drv_in"

finished=0
while IFS=$'\t' read -r -t 180 -u "$drv_out" status name detail; do
    case $status in
    ok) ok "$name" ;;
    not_ok) not_ok "$name"; diag "$detail" ;;
    done) finished=1 ;;
    *) diag "$status $name $detail" ;;
    esac
done
# a driver that died (an exception, a timeout) must not pass by silence
[ "$finished" = 1 ] && ok "the test driver ran to its end" || not_ok "the test driver ran to its end (see the lines above)"

# QEMU exits after the guest reboots (-no-reboot); moat-vsock follows.
for _ in $(seq 60); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$qpid" 2>/dev/null; then
    not_ok "QEMU exits after the guest reboots"
    kill "$qpid"
else
    ok "QEMU exits after the guest reboots"
fi
for _ in $(seq 20); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$vpid" 2>/dev/null; then
    not_ok "moat-vsock exits when QEMU disconnects"
else
    wait "$vpid"
    expect_eq "moat-vsock exits 0 when QEMU disconnects" 0 $?
fi
check "moat-vsock removed its sockets" test ! -e "$vu" -a ! -e "$hyb"
if grep -qiE 'error|unsupported' "$tmp/moat-vsock.log"; then
    not_ok "moat-vsock logged no errors"
    grep -iE 'error|unsupported' "$tmp/moat-vsock.log" | head -5 | sed 's/^/# /'
else
    ok "moat-vsock logged no errors"
fi
if [ -n "${VERBOSE:-}" ]; then sed 's/^/# serial: /' "$tmp/serial.log"; sed 's/^/# qemu: /' "$tmp/qemu.log"; fi

# SIGTERM: exits 0 and cleans up even without a frontend
"$VSOCKD" --vhost-user "$vu" --socket "$hyb" &
p=$!
for _ in $(seq 20); do [ -S "$hyb" ] && break; sleep 0.1; done
kill -TERM "$p"
wait "$p"
expect_eq "moat-vsock exits 0 on SIGTERM" 0 $?
check "sockets removed after SIGTERM" test ! -e "$vu" -a ! -e "$hyb"
done_testing
