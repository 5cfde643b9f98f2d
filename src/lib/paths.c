/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "moat/config.h"
#include "moat/paths.h"
#include "moat/util.h"

#ifndef MOAT_DATADIR
#define MOAT_DATADIR "/usr/share/moat"
#endif
#ifndef MOAT_LIBEXECDIR
#define MOAT_LIBEXECDIR "/usr/libexec/moat"
#endif

static const struct {
        enum moat_setting setting;
        const char *name, *instdir;
        int exec;
} files[] = {
        [MOAT_FILE_KERNEL] = {MOAT_SET_KERNEL, "vmlinux", MOAT_DATADIR, 0},
        [MOAT_FILE_INITRD] = {MOAT_SET_INITRAMFS, "initramfs.cpio.gz", MOAT_DATADIR, 0},
        [MOAT_FILE_VSOCKD] = {MOAT_SET_VSOCK, "moat-vsock", MOAT_LIBEXECDIR, 1},
        [MOAT_FILE_VMM] = {MOAT_SET_VMM, "moat-vmm", MOAT_LIBEXECDIR, 1},
};

static int
usable (const char *p, int exec)
{
        return access (p, exec ? X_OK : R_OK) == 0;
}

/* The directory of the running executable, resolved once when the process
 * starts: later, /proc/self/exe may name it from another root. Under a
 * chroot, unshare(CLONE_NEWNS) (moat create does it before it looks for the
 * kernel) makes readlink give the path from the mount namespace's root. */
static char *self_dir;

static char *
read_self_dir (void)
{
        char self[PATH_MAX];
        ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
                return NULL;
        self[n] = '\0';
        return xstrdup (dirname (self));
}

__attribute__ ((constructor)) static void
resolve_self_dir (void)
{
        self_dir = read_self_dir ();
}

const char *
moat_self_dir (void)
{
        /* no /proc at start (an early agent): try again now */
        if (self_dir == NULL)
                self_dir = read_self_dir ();
        return self_dir;
}

int
moat_find_file (enum moat_file which, char **out, moat_error_t *err)
{
        const struct moat_config_value *v = moat_config_value (files[which].setting);
        const struct moat_setting_spec *sp = moat_setting_spec (files[which].setting);
        const char *dir;
        cleanup_free char *cand = NULL;
        cleanup_free char *tried = NULL;

        /* set in the environment or a config file: that file or an error */
        if (*v->text) {
                cleanup_free char *what = NULL;
                if (v->origin == MOAT_FROM_FILE)
                        what = xasprintf_r ("%s:%d: %s.%s = %s", v->file, v->line, sp->section, sp->key, v->text);
                else
                        what = xasprintf_r ("%s=%s", v->name ? v->name : sp->env, v->text);
                if (!usable (v->text, files[which].exec))
                        return moat_make_error (err, errno, "%s", what);
                *out = realpath (v->text, NULL);
                if (*out == NULL)
                        return moat_make_error (err, errno, "%s", what);
                return 0;
        }
        dir = moat_self_dir ();
        if (dir != NULL) {
                cand = xasprintf_r ("%s/%s", dir, files[which].name);
                if (usable (cand, files[which].exec)) {
                        *out = realpath (cand, NULL);
                        if (*out != NULL)
                                return 0;
                }
        }
        tried = xasprintf_r ("%s, %s/%s", cand ? cand : "(no /proc/self/exe)", files[which].instdir, files[which].name);
        free (cand);
        cand = xasprintf_r ("%s/%s", files[which].instdir, files[which].name);
        if (usable (cand, files[which].exec)) {
                *out = steal_pointer (&cand);
                return 0;
        }
        return moat_make_error (err, ENOENT, "cannot find %s (set %s or %s.%s in moat.conf; tried %s)",
                                files[which].name, sp->env, sp->section, sp->key, tried);
}

int
moat_unix_path (const char *path, char *buf, size_t len, int *dirfd, moat_error_t *err)
{
        struct sockaddr_un sun;
        cleanup_free char *dir = NULL;
        const char *base;

        *dirfd = -1;
        if (strlen (path) < sizeof sun.sun_path) {
                if (strlen (path) >= len)
                        return moat_make_error (err, ENAMETOOLONG, "socket path %s", path);
                strcpy (buf, path);
                return 0;
        }
        dir = xstrdup (path);
        base = strrchr (path, '/');
        if (base == NULL)
                return moat_make_error (err, ENAMETOOLONG, "socket path %s", path);
        dir[base - path] = '\0';
        base++;
        *dirfd = open (*dir ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (*dirfd < 0)
                return moat_make_error (err, errno, "open %s", dir);
        if ((size_t)snprintf (buf, len, "/proc/self/fd/%d/%s", *dirfd, base) >= len ||
            strlen (buf) >= sizeof sun.sun_path) {
                close (*dirfd);
                *dirfd = -1;
                return moat_make_error (err, ENAMETOOLONG, "socket path %s", path);
        }
        return 0;
}

const char *
moat_cache_dir (void)
{
        const char *e = getenv ("MOAT_CACHE_DIR");
        return e && *e ? e : MOAT_DEFAULT_CACHE;
}
