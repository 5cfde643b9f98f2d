/* SPDX-License-Identifier: Apache-2.0 */
/* Tearing down a sandbox that a previous moat command left running (create
 * exits and leaves the VM, moat-vsock and the stand-in behind): what
 * delete does, working from state.json alone, whatever is still alive. */
#ifndef MOAT_LIFECYCLE_H
#define MOAT_LIFECYCLE_H

#include <stdbool.h>
#include <sys/types.h>

#include "moat/error.h"
#include "moat/state.h"

/* Sends sig to pid (if it is still the process that started at `start`)
 * and waits up to timeout_ms for it to be gone (exited or a zombie); then
 * SIGKILL and another wait. Works on processes that are not our children. */
void moat_stop_process (pid_t pid, unsigned long long start, int sig, int timeout_ms);

/* Powers the VM off (DestroySandbox, else SIGKILL), kills the stand-in and
 * moat-vsock, then any process of the sandbox the state does not name (a
 * create killed before saving the pids: they run in the state directory
 * and name it on their command line), detaches the share and removes the
 * host cgroup (for a "creating" state without one, the path its saved
 * config names, if empty). Leaves the state directory (the caller runs
 * poststop hooks, then removes it). The first error is returned, but
 * every step is tried. */
int moat_sandbox_teardown (const char *root, const struct moat_state *st, moat_error_t *err);

#endif
