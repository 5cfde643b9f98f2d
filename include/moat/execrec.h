/* SPDX-License-Identifier: Apache-2.0 */
/* The stand-ins of `moat exec` processes, recorded in the container's state
 * directory so that `moat ps --format json` can report them: one file
 * <state dir>/execs/<exec id> per running exec, holding "<pid> <start>\n"
 * (the stand-in's host pid and its start time, which guards against pid
 * reuse). moat exec adds the record once the process runs in the guest and
 * its stand-in drops it when the process is done; a record whose stand-in
 * died without dropping it (SIGKILL) is dropped by whoever lists it. */
#ifndef MOAT_EXECREC_H
#define MOAT_EXECREC_H

#include <stddef.h>
#include <sys/types.h>

#include "moat/error.h"

/* Records the stand-in pid of exec exec_id. Never makes the state directory
 * itself (a container deleted meanwhile fails with ENOENT). */
int moat_execrec_add (const char *state_dir, const char *exec_id, pid_t pid, moat_error_t *err);

/* Drops the record of exec_id (missing is fine). */
void moat_execrec_remove (const char *state_dir, const char *exec_id);

/* The pids of the exec stand-ins alive now, sorted (*pids malloc'd, NULL
 * when *n is 0); records of dead stand-ins are removed. */
int moat_execrec_list (const char *state_dir, pid_t **pids, size_t *n, moat_error_t *err);

#endif
