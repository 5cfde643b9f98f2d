/* SPDX-License-Identifier: Apache-2.0 */
/* Helper processes of a sandbox (the VMM, moat-vsock): spawned in their own
 * session (so a terminal's ^C reaches moat, not them), stdin /dev/null,
 * stdout+stderr to a log file, optionally killed when moat dies. */
#ifndef MOAT_PROCESS_H
#define MOAT_PROCESS_H

#include <stdbool.h>
#include <sys/types.h>

#include "moat/error.h"

struct moat_spawn_opts {
        const char *workdir; /* NULL: inherit */
        const char *log;     /* stdout+stderr; NULL: /dev/null */
        int pass_fd;         /* -1 or an fd to hand to the child as pass_fd_as */
        int pass_fd_as;
        bool die_with_parent; /* PR_SET_PDEATHSIG(SIGKILL) */
};

int moat_spawn (char *const argv[], const struct moat_spawn_opts *o, pid_t *pid, moat_error_t *err);

/* Waits up to timeout_ms (<0: forever) for pid to exit. Returns 1 with
 * *status (waitpid format) when it exited, 0 on timeout, -1 on error
 * (ECHILD: not our child or already reaped). */
int moat_wait_pid (pid_t pid, int timeout_ms, int *status);

/* Sends sig, waits up to timeout_ms, then SIGKILLs and reaps. */
void moat_stop_pid (pid_t pid, int sig, int timeout_ms);

/* Last `lines` lines of a text file, for error messages (malloc'd, "" if
 * unreadable). */
char *moat_file_tail (const char *path, int lines);

#endif
