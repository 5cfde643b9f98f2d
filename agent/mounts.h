/* SPDX-License-Identifier: Apache-2.0 */
/* The container filesystem (mounts.c), used by the child in spawn.c. */
#ifndef MOAT_AGENT_MOUNTS_H
#define MOAT_AGENT_MOUNTS_H

#include <stdbool.h>

#include "moat/error.h"
#include "moat/oci.h"

struct mount_ctx {
        const char *rootfs;      /* absolute */
        const char *bundle_dir;  /* relative bind sources resolve here, may be NULL */
        const char *cgroup_path; /* for the cgroup mount fallback, may be NULL */
        bool userns;             /* in a new user namespace: no mknod */
        int rootfd;
        /* the createContainer hooks run after the mounts, before pivot_root */
        const char *container_id;
        const char *host_bundle;
};

int agent_mkpath_in_root (int rootfd, const char *path, bool as_file, moat_error_t *err);
/* Mounts everything and pivots into the rootfs. */
int agent_rootfs_setup (struct mount_ctx *mc, struct oci_config *cfg, moat_error_t *err);
/* After pivot_root: sysctls, readonly and masked paths, read-only root. */
int agent_rootfs_finish (struct oci_config *cfg, moat_error_t *err);
int agent_open_pty (int *slave, char **name, unsigned rows, unsigned cols, moat_error_t *err);
int agent_bind_console (const char *pts_name, moat_error_t *err);

#endif
