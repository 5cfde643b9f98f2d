/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal QMP client (QEMU's JSON monitor on a Unix socket), for what
 * templates need of QEMU: stop, migrate to a file, query, quit. Replies
 * are bounded and read with deadlines; QEMU is not trusted to answer. */
#ifndef MOAT_QMP_H
#define MOAT_QMP_H

#include <stdint.h>

#include "moat/error.h"

/* Connects to the QMP socket at path (retrying until deadline_ms, a
 * now_ms() value, while QEMU creates it), reads the greeting and leaves
 * capability negotiation mode. Returns the fd. */
int moat_qmp_open (const char *path, int64_t deadline_ms, moat_error_t *err);

/* Sends one command (a JSON object) and waits for its reply, skipping
 * events. *reply (if reply) gets the reply line; an "error" reply is an
 * error naming the command. */
int moat_qmp_cmd (int fd, const char *json, int64_t deadline_ms, char **reply, moat_error_t *err);

#endif
