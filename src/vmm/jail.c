/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vmm's confinement besides seccomp: mount namespace and pivot_root,
 * capabilities, rlimits (moat/vmm_jail.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "moat/util.h"
#include "moat/vmm_jail.h"

/* The jail's root is built on a tmpfs mounted over /tmp in the private
 * namespace (as bubblewrap does: /tmp exists on every host); keep_dir is
 * opened first, so a keep_dir under /tmp is still reachable. */
#define JAIL_BASE "/tmp"

static bool jailed;

const char vmm_jail_summary[] =
        "private mount namespace (root: an empty read-only tmpfs with only the sandbox directory, read-only), "
        "inherited fds closed, no capabilities (9p worker: chown, dac_override, dac_read_search, fowner, fsetid), "
        "no core dumps, RLIMIT_NOFILE fixed";

bool
vmm_jail_active (void)
{
        return jailed;
}

int
vmm_jail_enter (moat_error_t *err)
{
        if (close_range (3, ~0U, 0) < 0)
                return moat_make_error (err, errno, "jail: close inherited fds");
        if (unshare (CLONE_NEWNS) < 0)
                return moat_make_error (err, errno, "jail: unshare the mount namespace");
        if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return moat_make_error (err, errno, "jail: make the mounts private");
        jailed = true;
        return 0;
}

/* mkdir -p of an absolute path below base. */
static int
mkdirs (const char *base, const char *path, moat_error_t *err)
{
        cleanup_free char *full = xasprintf_r ("%s%s", base, path);
        for (char *p = full + strlen (base) + 1;; p++) {
                if (*p == '/' || *p == '\0') {
                        char c = *p;
                        *p = '\0';
                        if (mkdir (full, 0755) < 0 && errno != EEXIST)
                                return moat_make_error (err, errno, "jail: mkdir %s", full);
                        *p = c;
                        if (c == '\0')
                                break;
                }
        }
        return 0;
}

int
vmm_jail_pivot (const char *keep_dir, moat_error_t *err)
{
        char cwd[PATH_MAX], keep[PATH_MAX], src[64];
        cleanup_close int kfd = -1;
        const unsigned long ro = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;

        if (!jailed)
                return moat_make_error (err, EINVAL, "jail: not in a mount namespace of our own");
        if (getcwd (cwd, sizeof cwd) == NULL)
                cwd[0] = '\0';
        keep[0] = '\0';
        if (keep_dir) {
                if (realpath (keep_dir, keep) == NULL)
                        return moat_make_error (err, errno, "jail: %s", keep_dir);
                kfd = open (keep, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (kfd < 0)
                        return moat_make_error (err, errno, "jail: open %s", keep);
        }
        if (mount ("tmpfs", JAIL_BASE, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") < 0)
                return moat_make_error (err, errno, "jail: mount a tmpfs on " JAIL_BASE);
        if (kfd >= 0 && strcmp (keep, "/") != 0) {
                if (mkdirs (JAIL_BASE, keep, err) < 0)
                        return -1;
                cleanup_free char *dst = xasprintf_r (JAIL_BASE "%s", keep);
                snprintf (src, sizeof src, "/proc/self/fd/%d", kfd);
                if (mount (src, dst, NULL, MS_BIND, NULL) < 0)
                        return moat_make_error (err, errno, "jail: bind %s", keep);
                if (mount (NULL, dst, NULL, ro, NULL) < 0)
                        return moat_make_error (err, errno, "jail: make %s read-only", keep);
        }
        if (chdir (JAIL_BASE) < 0)
                return moat_make_error (err, errno, "jail: chdir " JAIL_BASE);
        /* the old root goes on top of the new one, then away */
        if (syscall (SYS_pivot_root, ".", ".") < 0)
                return moat_make_error (err, errno, "jail: pivot_root");
        if (umount2 (".", MNT_DETACH) < 0)
                return moat_make_error (err, errno, "jail: detach the old root");
        if (mount (NULL, "/", NULL, ro, NULL) < 0)
                return moat_make_error (err, errno, "jail: make the root read-only");
        size_t kl = strlen (keep);
        if (kl && strncmp (cwd, keep, kl) == 0 && (cwd[kl] == '\0' || cwd[kl] == '/')) {
                if (chdir (cwd) < 0)
                        return moat_make_error (err, errno, "jail: chdir %s", cwd);
        } else if (chdir ("/") < 0)
                return moat_make_error (err, errno, "jail: chdir /");
        return 0;
}

static int
set_caps (const cap_value_t *keep, int n, moat_error_t *err)
{
        cap_t c = cap_init ();
        int r = 0;
        if (c == NULL)
                return moat_make_error (err, errno, "cap_init");
        if (n > 0 && (cap_set_flag (c, CAP_PERMITTED, n, keep, CAP_SET) < 0 ||
                      cap_set_flag (c, CAP_EFFECTIVE, n, keep, CAP_SET) < 0))
                r = moat_make_error (err, errno, "cap_set_flag");
        else if (cap_set_proc (c) < 0)
                r = moat_make_error (err, errno, "drop capabilities");
        cap_free (c);
        return r;
}

int
vmm_caps_drop_all (moat_error_t *err)
{
        return set_caps (NULL, 0, err);
}

int
vmm_caps_keep_files (moat_error_t *err)
{
        static const cap_value_t keep[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID};
        cap_t cur = cap_get_proc ();
        cap_value_t have[ARRAY_SIZE (keep)];
        int n = 0;
        if (cur == NULL)
                return moat_make_error (err, errno, "cap_get_proc");
        /* only those it has (an unprivileged test run has none) */
        for (size_t i = 0; i < ARRAY_SIZE (keep); i++) {
                cap_flag_value_t v = CAP_CLEAR;
                if (cap_get_flag (cur, keep[i], CAP_PERMITTED, &v) == 0 && v == CAP_SET)
                        have[n++] = keep[i];
        }
        cap_free (cur);
        return set_caps (have, n, err);
}

int
vmm_set_rlimits (moat_error_t *err)
{
        struct rlimit core = {0, 0}, nofile;
        if (setrlimit (RLIMIT_CORE, &core) < 0)
                return moat_make_error (err, errno, "setrlimit RLIMIT_CORE");
        if (getrlimit (RLIMIT_NOFILE, &nofile) < 0)
                return moat_make_error (err, errno, "getrlimit RLIMIT_NOFILE");
        nofile.rlim_max = nofile.rlim_cur;
        if (setrlimit (RLIMIT_NOFILE, &nofile) < 0)
                return moat_make_error (err, errno, "setrlimit RLIMIT_NOFILE");
        return 0;
}
