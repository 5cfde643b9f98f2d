/* SPDX-License-Identifier: Apache-2.0 */
/* Where moat finds its companion files: the guest kernel, the initramfs and
 * the moat-vsock helper. Order: the setting (include/moat/config.h:
 * MOAT_KERNEL, MOAT_INITRD, MOAT_VSOCK, MOAT_VMM or guest.kernel,
 * guest.initramfs, hypervisor.vsock_helper, hypervisor.moat_vmm in
 * moat.conf), then next to the executable (the build tree), then the
 * install directories (MOAT_DATADIR, MOAT_LIBEXECDIR). The
 * executable's directory is read from /proc/self/exe once, when the process
 * starts, before any mount namespace change can alter what it says. */
#ifndef MOAT_PATHS_H
#define MOAT_PATHS_H

#include "moat/error.h"

#define MOAT_DEFAULT_ROOT "/run/moat"

enum moat_file {
        MOAT_FILE_KERNEL = 0, /* vmlinux */
        MOAT_FILE_INITRD,     /* initramfs.cpio.gz */
        MOAT_FILE_VSOCKD,     /* moat-vsock */
        MOAT_FILE_VMM,        /* moat-vmm (env MOAT_VMM) */
};

/* Finds one companion file; *out is malloc'd and absolute. The error lists
 * every place that was tried. */
int moat_find_file (enum moat_file which, char **out, moat_error_t *err);

/* The running executable's directory as resolved at process start, or NULL
 * when /proc/self/exe could not be read. */
const char *moat_self_dir (void);

/* moat's cache directory: $MOAT_CACHE_DIR, else /var/cache/moat (where
 * guest-kernel-config/build.sh keeps the guest kernel and template.c its
 * templates). */
#define MOAT_DEFAULT_CACHE "/var/cache/moat"
const char *moat_cache_dir (void);

/* A Unix socket path usable with bind/connect: `path` itself when it fits in
 * sun_path, else "/proc/self/fd/<dirfd>/<name>" through *dirfd (opened
 * O_PATH on the parent directory; close it after the call). */
int moat_unix_path (const char *path, char *buf, size_t len, int *dirfd, moat_error_t *err);

#endif
