/* SPDX-License-Identifier: Apache-2.0 */
/* The state store: one directory per container under --root (default
 * /run/moat), <root>/<id>, mode 0700, holding state.json (runc-like) and
 * everything the sandbox needs on the host (sockets, console log, share).
 * The directory is created exclusively and guarded by an flock on
 * <root>/<id>/lock while a command works on it. */
#ifndef MOAT_STATE_H
#define MOAT_STATE_H

#include <stdint.h>
#include <sys/types.h>

#include "moat/error.h"

struct moat_state {
        char *id;
        char *bundle;  /* absolute */
        char *rootfs;  /* absolute host path of the bundle rootfs */
        char *status;  /* "creating", "created", "running", "stopped" */
        pid_t pid;     /* the sandbox VMM process (what the host sees) */
        char *created; /* RFC 3339 UTC */
        char **annotation_keys, **annotation_values;
        size_t n_annotations;
        /* moat's own fields */
        char *hypervisor; /* "qemu" */
        pid_t vsockd_pid;
        char *vsock_socket; /* hybrid vsock socket path */
        char *console_log;
};

/* Validates a container id: not empty, not "." or "..", at most 1024
 * bytes, only [A-Za-z0-9_+.-] (what runc accepts). */
int moat_state_validate_id (const char *id, moat_error_t *err);

/* <root>/<id> (malloc'd). */
char *moat_state_dir (const char *root, const char *id);

/* Creates <root> (0700) if needed and <root>/<id> exclusively; takes the
 * lock (fd in *lock_fd). An existing id fails with EEXIST and the message
 * 'container "<id>" already exists'. */
int moat_state_create (const char *root, const char *id, int *lock_fd, moat_error_t *err);

/* Takes the lock of an existing container (LOCK_EX; nonblocking: EWOULDBLOCK
 * if another moat holds it). */
int moat_state_lock (const char *root, const char *id, int *lock_fd, moat_error_t *err);

/* Writes <root>/<id>/state.json atomically (write + rename). */
int moat_state_save (const char *root, const struct moat_state *st, moat_error_t *err);
/* Reads <root>/<id>/state.json. ENOENT: 'container "<id>" does not exist'. */
int moat_state_load (const char *root, const char *id, struct moat_state **out, moat_error_t *err);
/* The state as JSON (what `moat state` prints); malloc'd. */
char *moat_state_to_json (const struct moat_state *st, int pretty);
void moat_state_free (struct moat_state *st);

/* Removes <root>/<id> (never crossing mount points). */
int moat_state_remove (const char *root, const char *id, moat_error_t *err);

/* Current time as RFC 3339 with nanoseconds (malloc'd). */
char *moat_state_now (void);

#endif
