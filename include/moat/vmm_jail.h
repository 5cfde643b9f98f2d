/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vmm's confinement besides its seccomp filters (src/vmm/jail.c), in
 * the spirit of Firecracker's jailer: a mount namespace of its own whose
 * root, once the devices are set up, is an empty read-only tmpfs holding
 * only the directory of its vsock sockets (read-only: a socket can still
 * be connected to, nothing can be unlinked or made); no inherited fds; no
 * capabilities in any thread (the 9p worker process keeps the few it needs
 * to serve files with their owners); rlimits. */
#ifndef MOAT_VMM_JAIL_H
#define MOAT_VMM_JAIL_H

#include <stdbool.h>

#include "moat/error.h"

/* At start, single-threaded (a process with threads cannot unshare its
 * mount namespace): closes every fd above 2, unshares the mount namespace
 * and makes every mount in it private. */
int vmm_jail_enter (moat_error_t *err);

/* Once every device is open: the new root, with keep_dir (NULL: none)
 * bound read-only at its own path; the cwd is kept if it lies in
 * keep_dir, else "/". Any thread may call it; it acts for all. */
int vmm_jail_pivot (const char *keep_dir, moat_error_t *err);

/* Whether vmm_jail_enter ran in this process (the 9p worker then takes a
 * mount namespace of its own, which the pivot leaves alone). */
bool vmm_jail_active (void);

/* The calling thread's capabilities: all dropped (effective, permitted,
 * inheritable; capabilities are per thread). */
int vmm_caps_drop_all (moat_error_t *err);

/* The 9p worker's: all but CAP_CHOWN, CAP_DAC_OVERRIDE,
 * CAP_DAC_READ_SEARCH, CAP_FOWNER and CAP_FSETID. */
int vmm_caps_keep_files (moat_error_t *err);

/* No core dumps (they would hold guest memory), RLIMIT_NOFILE's hard
 * limit lowered to its soft one. */
int vmm_set_rlimits (moat_error_t *err);

/* One line saying what the above put in force (moat check, --print-jail). */
extern const char vmm_jail_summary[];

#endif
