/* SPDX-License-Identifier: Apache-2.0 */
/* containerd-shim-moat-v2: containerd's runtime v2 shim for moat.
 *   main.c    flags (Go's flag syntax, as containerd passes them) and actions
 *   start.c   the `start` action: socket, address file, the daemon
 *   delete.c  the `delete` action: cleanup after a dead shim
 *   serve.c   the daemon: ttrpc server for containerd.task.v2.Task */
#ifndef MOAT_SHIM_H
#define MOAT_SHIM_H

#include <stdbool.h>
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
        const char *action;         /* "start", "delete", NULL: serve */
};

#define SHIM_NAME "containerd-shim-moat-v2"
/* containerd's socket directory for shims (fixed, whatever its state dir) */
#define SHIM_SOCKET_DIR "/run/containerd/s"
/* the annotation that groups a pod's containers into one shim */
#define SHIM_SANDBOX_ID_ANNOTATION "io.kubernetes.cri.sandbox-id"
#define SHIM_GROUP_ANNOTATION "io.containerd.runc.v2.group"

/* start.c */
/* "unix:///run/containerd/s/<sha256 hex of address/namespace/group>" */
char *shim_socket_address (const char *address, const char *ns, const char *group);
/* The group of the bundle in dir (its config.json annotations), or id. */
char *shim_group (const char *bundle_dir, const char *id, moat_error_t *err);
int shim_start (const struct shim_opts *o, moat_error_t *err);

/* delete.c */
int shim_delete (const struct shim_opts *o, moat_error_t *err);

/* serve.c */
int shim_serve (const struct shim_opts *o, int listen_fd, moat_error_t *err);

#endif
