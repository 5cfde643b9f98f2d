/* SPDX-License-Identifier: Apache-2.0 */
/* libmoat's container API: one OCI container (one config.json) in a
 * sandbox (include/moat/sandbox.h: the VM, its vsock, share and network).
 * Every front end calls these: the runc-compatible CLI (src/cli, one verb
 * each) and, later, the containerd shim (src/shim).
 *
 * moat_container_create boots a sandbox for a container (the container's id
 * is the sandbox's); moat_container_create_in adds a container to a running
 * sandbox (a pod: one VM, the sandbox container and its app containers).
 * Every call takes the container's id and finds the rest in its state
 * under ctx->root. */
#ifndef MOAT_CONTAINER_H
#define MOAT_CONTAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "moat/agent_client.h"
#include "moat/error.h"
#include "moat/state.h"

struct moat_sandbox;

/* What every call needs (crun's libcrun_context_t). */
struct moat_context {
        const char *root;    /* state root (--root) */
        bool debug;          /* the guest agent logs to the console too */
        bool systemd_cgroup; /* cgroupsPath is systemd's slice:prefix:name */
};

/* --- create --- */
struct moat_container_create_opts {
        const char *id, *bundle;
        const char *pid_file;       /* the stand-in's pid, written atomically */
        const char *console_socket; /* process.terminal: the pty master goes there */
        int preserve_fds;           /* the caller's fds 3..3+n-1 go to the process */
        /* run in the foreground: the VM dies with this process, a terminal
         * without console_socket is our own stdin/stdout; the stand-in's
         * pid and the socket on which it reports "E<message>" before it
         * exits on an error are returned. */
        bool foreground;
        pid_t *standin_pid;
        int *standin_sync;
};

/* Boots a sandbox VM for the container and creates it there, held before
 * its process runs: checks the config (nothing starts on bad input), makes
 * the state, a private mount namespace for the share, the sandbox network
 * namespace and tap, the VM, the host cgroup, the stand-in (a child of the
 * caller, which it outlives), runs the prestart and createRuntime hooks
 * and calls CreateContainer. Blocks SIGTERM, SIGINT, SIGHUP and SIGQUIT
 * (pending, they abort the boot) and ignores SIGPIPE. On failure
 * everything is undone (poststop hooks run if a hook ran). */
int moat_container_create (const struct moat_context *ctx, const struct moat_container_create_opts *o,
                           moat_error_t *err);

/* A container of a pod: created as above, but in the running VM of
 * container sandbox_id (the pod's sandbox container, under the same root)
 * rather than a VM of its own (moat_sandbox_join). The namespaces its
 * config gives a path of type network, ipc, uts or pid (CRI points them at
 * the sandbox task) are the sandbox container's in the guest; it gets no
 * network device of its own and its stand-in does not power the VM off.
 * createContainer hooks are refused (the host view is never lent to a VM
 * in which a container runs). The caller's process stays in the VMM's
 * mount namespace. Deleting it removes only this container. */
int moat_container_create_in (const struct moat_context *ctx, const char *sandbox_id,
                              const struct moat_container_create_opts *o, moat_error_t *err);

/* --- lifecycle --- */

/* Starts the process of a created container, then the poststart hooks (a
 * failing one, or a failing startContainer hook, kills the container and
 * fails start). */
int moat_container_start (const struct moat_context *ctx, const char *id, moat_error_t *err);

/* Sends sig to the container's process (all: to every process of it).
 * Signal 0 only checks that it is alive; all on a stopped container
 * succeeds, as runc does. */
int moat_container_kill (const struct moat_context *ctx, const char *id, int sig, bool all, moat_error_t *err);
/* The same for one process: exec_id NULL is the init (as above), else the
 * exec that moat_container_exec started with that exec_id. */
int moat_container_kill_process (const struct moat_context *ctx, const char *id, const char *exec_id, int sig, bool all,
                                 moat_error_t *err);

/* Waits for a process of the container (exec_id NULL: its init) to exit. */
int moat_container_wait (const struct moat_context *ctx, const char *id, const char *exec_id, struct moat_exit *ex,
                         moat_error_t *err);

/* Deletes a stopped container (force: whatever its status; an unknown id
 * then succeeds): tears its sandbox down (moat_sandbox_destroy), runs the
 * poststop hooks and removes the state. */
int moat_container_delete (const struct moat_context *ctx, const char *id, bool force, moat_error_t *err);

/* --- exec --- */
struct moat_container_exec_opts {
        /* The process: process_json (OCI process JSON) if given, else the
         * file process_file, else the container's own process with the
         * fields below applied (runc exec's options). */
        const char *process_json, *process_file;
        char **args; /* NULL-terminated */
        char **env;  /* NAME=VALUE, appended */
        size_t n_env;
        char **caps; /* added to every capability set */
        size_t n_caps;
        const char *cwd;
        const char *user; /* "UID[:GID]": the container's gid stays without :GID */
        uint32_t *gids;   /* appended to additionalGids */
        size_t n_gids;
        bool tty, no_new_privs;
        /* Where it runs: detach forks a stand-in that outlives the call,
         * else the caller becomes the stand-in until the process exits. */
        bool detach;
        const char *console_socket, *pid_file;
        int preserve_fds;
        /* the agent's id for the process (letters, digits, '-', '_', '.';
         * the shim passes containerd's); NULL: a fresh one */
        const char *exec_id;
};

/* Runs a new process in a created or running container. *exit_code: the
 * process's status (code, or 128+n when signal n killed it) when not
 * detached, else 0. */
int moat_container_exec (const struct moat_context *ctx, const char *id, const struct moat_container_exec_opts *o,
                         int *exit_code, moat_error_t *err);

/* --- pause, resume, update, stats --- */

/* pause needs "running", resume "paused"; the new status is stored. */
int moat_container_pause (const struct moat_context *ctx, const char *id, moat_error_t *err);
int moat_container_resume (const struct moat_context *ctx, const char *id, moat_error_t *err);

/* resources_json: an OCI linux.resources object, applied in the guest as
 * runc applies an update (moat_resources_drop_unchanged: no devices, zero
 * means unchanged); NULL only checks that the container is created,
 * running or paused. */
int moat_container_update (const struct moat_context *ctx, const char *id, const char *resources_json,
                           moat_error_t *err);

/* The statistics of a container that is not stopped (free with
 * moat_stats_clear). */
int moat_container_stats (const struct moat_context *ctx, const char *id, struct moat_stats *s, moat_error_t *err);

/* --- helpers the verbs share --- */

/* Fails unless the live status of container id is one of `allowed`
 * (space-separated), with runc's wording, which clients match on:
 * "container not <want> (status: <status>)". */
int moat_container_expect_status (const struct moat_context *ctx, const char *id, const char *allowed, const char *want,
                                  moat_error_t *err);

/* Takes the container's state lock (<root>/<id>/lock), waiting at most
 * timeout_ms; fails with EWOULDBLOCK 'container "<id>" is busy (another
 * moat command holds its lock)'. Unknown id: 'container "<id>" does not
 * exist'. */
int moat_container_lock (const char *root, const char *id, int timeout_ms, int *lock_fd, moat_error_t *err);

/* Writes "<pid>" to path atomically (temporary file + rename), like runc. */
int moat_write_pid_file (const char *path, pid_t pid, moat_error_t *err);

/* A Go-style duration ("5s", "500ms", "1m30s", "1.5s", "2h"; a bare
 * number is seconds) in milliseconds; must be > 0. `flag` names the input
 * in errors. */
int moat_parse_duration (const char *flag, const char *s, int64_t *ms, moat_error_t *err);

/* runc's event JSON for stats: {"type":"stats","id":...,"data":{"cpu":...,
 * "memory":...,"pids":...}} on one line (malloc'd). */
char *moat_stats_event_json (const char *id, const struct moat_stats *s);

#endif
