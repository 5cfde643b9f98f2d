#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# lifecycle-reaper.py OUTFILE TIMEOUT CMD [ARGS...]
# Plays conmon/containerd-shim for moat's lifecycle test: becomes a child
# subreaper, runs CMD, then reaps every process that gets reparented to it
# (the stand-ins, the VMM, moat-vsock), appending "PID exited CODE" or
# "PID signaled SIG" to OUTFILE for each, until it has no children left or
# TIMEOUT seconds passed. CMD's own line is "cmd exited CODE".
import ctypes
import os
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def main():
    out, timeout, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("prctl failed", file=sys.stderr)
        return 1
    first = os.fork()
    if first == 0:
        os.execvp(cmd[0], cmd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.02)
            continue
        name = "cmd" if pid == first else str(pid)
        if os.WIFSIGNALED(status):
            line = "%s signaled %d\n" % (name, os.WTERMSIG(status))
        else:
            line = "%s exited %d\n" % (name, os.WEXITSTATUS(status))
        with open(out, "a") as f:
            f.write(line)
    return 0


sys.exit(main())
