/* SPDX-License-Identifier: Apache-2.0 */
/* containerd-shim-moat-v2: containerd's runtime v2 shim for moat.
 *   main.c    flags (Go's flag syntax, as containerd passes them) and actions
 *   start.c   the `start` action: socket, address file, the daemon
 *   delete.c  the `delete` action: cleanup after a dead shim
 *   serve.c   the daemon: ttrpc server for containerd.task.v2.Task
 *   events.c  task events forwarded to containerd over ttrpc */
#ifndef MOAT_SHIM_H
#define MOAT_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/error.h"

struct shim_opts {
        const char *namespace_;     /* -namespace */
        const char *address;        /* -address: containerd's gRPC socket */
        const char *publish_binary; /* -publish-binary (unused: events go over ttrpc) */
        const char *id;             /* -id */
        const char *bundle;         /* -bundle (delete); else the cwd */
        const char *socket;         /* -socket: serve there instead of fd 3 */
        bool debug;                 /* -debug */
        const char *action;         /* "start", "delete", "internal", NULL: serve */
        int n_args;                 /* after the action (internal) */
        char **args;
};

#define SHIM_NAME "containerd-shim-moat-v2"
/* containerd's socket directory for shims (fixed, whatever its state dir) */
#define SHIM_SOCKET_DIR "/run/containerd/s"
/* the annotation that groups a pod's containers into one shim */
#define SHIM_SANDBOX_ID_ANNOTATION "io.kubernetes.cri.sandbox-id"
#define SHIM_GROUP_ANNOTATION "io.containerd.runc.v2.group"

/* libmoat's state root of the shim's containers: SHIM_STATE_ROOT/<namespace> */
#define SHIM_STATE_ROOT "/run/moat-shim"
/* internal.c's children answer on this fd */
#define SHIM_RESULT_FD 3
/* ... and log to the daemon's log on this one */
#define SHIM_LOG_FD 4

/* internal.c: one libmoat call in a child ("internal ROOT VERB ARGS...") */
int shim_internal (const struct shim_opts *o, int argc, char **argv);

/* start.c */
/* "unix:///run/containerd/s/<sha256 hex of address/namespace/group>" */
char *shim_socket_address (const char *address, const char *ns, const char *group);
/* The annotation key of the bundle's config.json ("" if absent). */
char *shim_annotation (const char *bundle_dir, const char *key, moat_error_t *err);
/* The socket the bundle's "address" file names, when it is ours and no
 * shim serves it any more (a shim killed before it could remove it): gone. */
void shim_remove_stale_socket (const char *bundle);
#define SHIM_CONTAINER_TYPE_ANNOTATION "io.kubernetes.cri.container-type"
/* The group of the bundle in dir (its config.json annotations), or id. */
char *shim_group (const char *bundle_dir, const char *id, moat_error_t *err);
int shim_start (const struct shim_opts *o, moat_error_t *err);

/* delete.c */
int shim_delete (const struct shim_opts *o, moat_error_t *err);

/* serve.c */
int shim_serve (const struct shim_opts *o, int listen_fd, moat_error_t *err);

/* events.c */
struct shim_events;
/* A publisher to $TTRPC_ADDRESS (NULL or "": events are dropped, with a
 * debug line). */
struct shim_events *shim_events_new (const char *ttrpc_address, const char *ns);
/* Queues one event (topic "/tasks/exit", type "containerd.events.TaskExit",
 * the packed payload); sent in order by the publisher's thread. */
void shim_events_publish (struct shim_events *e, const char *topic, const char *type, const uint8_t *payload,
                          size_t len);
/* Waits up to timeout_ms for the queue to drain, then stops the thread. */
void shim_events_close (struct shim_events *e, int timeout_ms);

#endif
