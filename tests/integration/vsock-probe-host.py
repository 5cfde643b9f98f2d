# SPDX-License-Identifier: Apache-2.0
# Host side of the vsock probe guest (tests/probe/vsock.c), used by vmm.sh:
#   python3 vsock-probe-host.py HYBRID_SOCKET
# Listens on HYBRID_SOCKET_5000 (creates HYBRID_SOCKET.ready once it does),
# takes the guest's connection and echoes its 3000 bytes back, then goes
# through the hybrid socket: CONNECT 1099 (the guest refuses it), CONNECT 1024
# (5000 random bytes must come back, then EOF after our SHUT_WR).
# Prints "ok NAME ..." / "FAIL NAME ..." lines; exit status 1 on any FAIL.
import os
import socket
import sys

hyb = sys.argv[1]
failed = False


def check(name, cond, detail=""):
    global failed
    failed |= not cond
    print(("ok " if cond else "FAIL ") + name + (" " + detail if detail else ""), flush=True)


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        b = s.recv(65536)
        if not b:
            break
        data += b
    return data


def hybrid(port):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(hyb)
    s.sendall(b"CONNECT %d\n" % port)
    line = b""
    while not line.endswith(b"\n"):
        try:
            b = s.recv(1)
        except ConnectionResetError:
            b = b""
        if not b:
            break
        line += b
    return s, line


l = socket.socket(socket.AF_UNIX)
l.bind(hyb + "_5000")
l.listen(4)
open(hyb + ".ready", "w").close()
l.settimeout(30)
c, _ = l.accept()
c.settimeout(30)
data = recv_exact(c, 3000)
check("host-5000-data", data == bytes((i * 7 + 3) & 0xFF for i in range(3000)), "%d bytes" % len(data))
c.sendall(data)
check("host-5000-eof", c.recv(1) == b"")
c.close()

s, line = hybrid(1099)
check("connect-1099-refused", line == b"", repr(line))
s.close()

s, line = hybrid(1024)
check("connect-1024-ok", line.startswith(b"OK ") and line.endswith(b"\n"), repr(line))
if line.startswith(b"OK "):
    print("host port %d" % int(line[3:]), flush=True)
    msg = os.urandom(5000)
    s.sendall(msg)
    back = recv_exact(s, len(msg))
    check("connect-1024-echo", back == msg, "%d bytes" % len(back))
    s.shutdown(socket.SHUT_WR)
    check("connect-1024-eof", s.recv(1) == b"")
s.close()
sys.exit(1 if failed else 0)
