#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Minimal --console-socket receiver for the OCI suite.
# usage: console-recv.py SOCKET OUTFILE [TIMEOUT]
# Listens on the Unix socket SOCKET, accepts one connection, receives the
# pseudoterminal master fd the runtime sends with SCM_RIGHTS, and copies
# everything read from it to OUTFILE until EOF/EIO or TIMEOUT seconds.
# Writes "ready" to OUTFILE.ready once it listens, and the exit reason to
# OUTFILE.status.
import os
import select
import socket
import sys
import time


def main():
    path, outfile = sys.argv[1], sys.argv[2]
    limit = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
    deadline = time.monotonic() + limit
    status = "timeout"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    with open(outfile + ".ready", "w") as f:
        f.write("ready\n")
    srv.settimeout(limit)
    try:
        conn, _ = srv.accept()
    except OSError as e:
        with open(outfile + ".status", "w") as f:
            f.write("accept: %s\n" % e)
        return 1
    conn.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
    except OSError as e:
        with open(outfile + ".status", "w") as f:
            f.write("recv: %s\n" % e)
        return 1
    conn.close()
    if not fds:
        with open(outfile + ".status", "w") as f:
            f.write("no fd received\n")
        return 1
    master = fds[0]
    with open(outfile, "wb") as out:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if not r:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:
                status = "eio"
                break
            if not data:
                status = "eof"
                break
            out.write(data)
            out.flush()
    with open(outfile + ".status", "w") as f:
        f.write(status + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
