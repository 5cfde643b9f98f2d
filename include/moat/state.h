/* SPDX-License-Identifier: Apache-2.0 */
/* The state store: one directory per container under --root (default
 * /run/moat), <root>/<id>, mode 0700, holding state.json (runc-like) and
 * everything the sandbox needs on the host (sockets, console log, share).
 * The directory is created exclusively and guarded by an flock on
 * <root>/<id>/lock while a command works on it. */
#ifndef MOAT_STATE_H
#define MOAT_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "moat/error.h"

struct moat_state {
        char *id;
        char *bundle;                 /* absolute */
        char *rootfs;                 /* absolute host path of the bundle rootfs */
        char *status;                 /* "creating", "created", "running", "paused", "stopped" */
        pid_t pid;                    /* the stand-in process (what conmon/containerd wait on) */
        unsigned long long pid_start; /* its start time (/proc/<pid>/stat field 22), guards pid reuse */
        char *created;                /* RFC 3339 UTC */
        char **annotation_keys, **annotation_values;
        size_t n_annotations;
        /* moat's own fields */
        char *hypervisor; /* "qemu" */
        pid_t vmm_pid;
        unsigned long long vmm_start;
        pid_t vsockd_pid;
        unsigned long long vsockd_start;
        char *cgroup;       /* host cgroup path (relative to each hierarchy), NULL if none */
        char *vsock_socket; /* hybrid vsock socket path */
        char *console_log;
        /* A container of a pod added to the running VM of container
         * `sandbox` (the pod's sandbox container): the VMM, moat-vsock and
         * the agent socket above are the sandbox's, its files are staged in
         * share_dir/<id> (the sandbox's share) inside the VMM's mount
         * namespace. NULL: a sandbox of its own. */
        char *sandbox;
        char *share_dir;
        char *dir; /* <root>/<id>, set by moat_state_load (not stored) */
};

/* Validates a container id: not empty, not "." or "..", at most 1024
 * bytes, only [A-Za-z0-9_+.-] (what runc accepts). */
int moat_state_validate_id (const char *id, moat_error_t *err);

/* <root>/<id> (malloc'd). */
char *moat_state_dir (const char *root, const char *id);

/* Creates <root> (0700) if needed and <root>/<id> exclusively, and its
 * lock file (only create makes one); takes the lock (fd in *lock_fd, to be
 * held until the state says created, and never inherited by a process
 * that outlives create: "creating" with the lock free means the create
 * died). An existing id fails with EEXIST and the message
 * 'container "<id>" already exists'. */
int moat_state_create (const char *root, const char *id, int *lock_fd, moat_error_t *err);

/* Takes the lock of an existing container (LOCK_EX, waiting for whoever
 * holds it). A container deleted while we waited 'does not exist' (ENOENT),
 * and a lock taken is always the one of the directory now at <root>/<id>. */
int moat_state_lock (const char *root, const char *id, int *lock_fd, moat_error_t *err);

/* Writes <root>/<id>/state.json atomically (write + rename). */
int moat_state_save (const char *root, const struct moat_state *st, moat_error_t *err);
/* Reads <root>/<id>/state.json. ENOENT: 'container "<id>" does not exist'. */
int moat_state_load (const char *root, const char *id, struct moat_state **out, moat_error_t *err);
/* The state as stored (moat's own fields included); malloc'd. */
char *moat_state_to_json (const struct moat_state *st, int pretty);
/* The OCI state (what `moat state` prints and hooks read on stdin), with
 * status replaced by `status` when not NULL; malloc'd. */
char *moat_state_to_oci_json (const struct moat_state *st, const char *status, int pretty);
/* The status as it is now: the stored one, or "stopped" once the stand-in
 * (pid) or the VMM is gone, whatever was stored. "creating" is only true
 * while a create holds the lock: once nobody but us holds it (the create
 * was killed), the container is "stopped" (needs st->dir, from load). */
const char *moat_state_live_status (const struct moat_state *st);
void moat_state_free (struct moat_state *st);
/* Frees what st holds, not st itself (a state embedded in another struct). */
void moat_state_clear (struct moat_state *st);

/* Removes <root>/<id> (never crossing mount points). Callers hold the lock
 * and remove the state last: the id is free once it is gone. */
int moat_state_remove (const char *root, const char *id, moat_error_t *err);

/* Start time of a process (jiffies since boot), 0 if it does not exist. */
unsigned long long moat_pid_start_time (pid_t pid);
/* pid exists, is not a zombie, and (start != 0) started at `start`. */
bool moat_pid_alive (pid_t pid, unsigned long long start);

/* Current time as RFC 3339 with nanoseconds (malloc'd). */
char *moat_state_now (void);

#endif
