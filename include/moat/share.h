/* SPDX-License-Identifier: Apache-2.0 */
/* The per-sandbox guest share: <state dir>/shared, exported to the guest as
 * virtio-9p tag "moatshare" and mounted by the agent at /run/moat/share.
 * For each container it holds shared/<id>/rootfs (a bind of the bundle
 * rootfs, read-only if root.readonly) and shared/<id>/mounts/<n> (a bind, or
 * rbind, of the source of config mount n). The config sent to the guest is
 * rewritten to point at those paths. */
#ifndef MOAT_SHARE_H
#define MOAT_SHARE_H

#include <stddef.h>

#include "moat/error.h"
#include "moat/oci.h"

struct moat_share {
        char *dir;      /* <state dir>/shared */
        char **mounted; /* host mount points made, in order (NULL-terminated) */
        size_t n_mounted;
        char *host_view; /* shared/<id>/host while createContainer hooks may need it */
        /* A pod's container (moat_share_join): stage attaches its binds in
         * this mount namespace (the sandbox VMM's, which the caller then
         * stays in), and release removes only `owned`, its shared/<id>. */
        int mntns_fd;
        char *owned;
};

/* Creates <state_dir>/shared. */
int moat_share_init (struct moat_share *s, const char *state_dir, moat_error_t *err);

/* The share of a running sandbox (share_dir, its <state dir>/shared) for
 * container `id` of the same pod: moat_share_stage then clones the sources
 * where the caller's paths resolve, joins mount namespace mntns_fd (the
 * sandbox VMM's: the process stays there) and attaches them at
 * share_dir/<id>. mntns_fd stays the caller's. */
int moat_share_join (struct moat_share *s, const char *share_dir, const char *id, int mntns_fd, moat_error_t *err);
/* Stages container `id` of `bundle` (absolute) and returns in *guest_json
 * the config as the guest must see it: root.path and bind sources moved
 * into the share, host-side hooks (prestart, createRuntime, poststart,
 * poststop) removed, linux.namespaces paths (host paths) removed. cfg->tree is modified. On failure, what
 * was mounted so far stays recorded in s for moat_share_release(). */
int moat_share_stage (struct moat_share *s, const char *id, const char *bundle, struct oci_config *cfg,
                      char **guest_json, moat_error_t *err);

/* Withdraws the host view staged for createContainer hooks (see share.c),
 * once CreateContainer has returned. No-op without one. */
int moat_share_drop_host_view (struct moat_share *s, moat_error_t *err);

/* Detaches every staged mount (MNT_DETACH, reverse order) and removes the
 * share directory. Safe on a zeroed or partially staged share. */
int moat_share_release (struct moat_share *s, moat_error_t *err);

/* Undoes the staging of container `id` in share_dir, in the mount
 * namespace we are in (the sandbox VMM's, or ours once it is gone):
 * detaches every mount below share_dir/<id>, newest first, and removes
 * that directory (never crossing a mount point). */
int moat_share_unstage (const char *share_dir, const char *id, moat_error_t *err);
/* Whether mount m is a bind mount (type "bind" or a bind/rbind option);
 * *recursive set for rbind. */
int moat_mount_is_bind (const struct oci_mount *m, int *recursive);

#endif
