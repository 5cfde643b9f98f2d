/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "moat/hostcgroup.h"
#include "moat/paths.h"
#include "moat/util.h"

#define CG_ROOT "/sys/fs/cgroup"

/* systemd's slice expansion: "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice". */
static int
expand_slice (const char *slice, char **out, moat_error_t *err)
{
        size_t n = strlen (slice);
        cleanup_free char *name = NULL;
        char *acc = xstrdup ("");

        if (n < 6 || strcmp (slice + n - 6, ".slice") != 0 || strchr (slice, '/')) {
                free (acc);
                return moat_make_error (err, 0, "invalid systemd slice \"%s\"", slice);
        }
        name = xstrndup (slice, n - 6);
        if (strcmp (name, "-") == 0) {
                *out = acc;
                return 0;
        }
        if (name[0] == '-' || name[strlen (name) - 1] == '-' || strstr (name, "--")) {
                free (acc);
                return moat_make_error (err, 0, "invalid systemd slice \"%s\"", slice);
        }
        for (char *p = name;; p++) {
                if (*p == '-' || *p == '\0') {
                        char *next = xasprintf_r ("%s/%.*s.slice", acc, (int)(p - name), name);
                        free (acc);
                        acc = next;
                        if (*p == '\0')
                                break;
                }
        }
        *out = acc;
        return 0;
}

/* "" for the default root, else "@" and 16 hex digits of FNV-1a 64 over
 * the root's canonical path ('@' is not allowed in container ids, so a
 * suffixed name never equals another root's plain one). */
static char *
root_suffix (const char *root)
{
        char real[PATH_MAX];
        cleanup_free char *r = NULL;
        uint64_t h = 0xcbf29ce484222325ULL;
        size_t n;

        if (root == NULL)
                return xstrdup ("");
        if (realpath (root, real) != NULL)
                r = xstrdup (real);
        else {
                /* not made yet: as given, without trailing slashes */
                r = xstrdup (root);
                for (n = strlen (r); n > 1 && r[n - 1] == '/'; n--)
                        r[n - 1] = '\0';
        }
        if (strcmp (r, MOAT_DEFAULT_ROOT) == 0)
                return xstrdup ("");
        for (const unsigned char *p = (const unsigned char *)r; *p; p++) {
                h ^= *p;
                h *= 0x100000001b3ULL;
        }
        return xasprintf_r ("@%016" PRIx64, h);
}

int
moat_hostcg_resolve (const char *cgroups_path, const char *root, const char *id, bool systemd, char **out,
                     moat_error_t *err)
{
        const char *c1, *c2;

        if (cgroups_path == NULL || *cgroups_path == '\0') {
                cleanup_free char *sfx = root_suffix (root);
                *out = systemd ? xasprintf_r ("/system.slice/moat-%s%s.scope", id, sfx)
                               : xasprintf_r ("/moat/%s%s", id, sfx);
                return 0;
        }
        c1 = strchr (cgroups_path, ':');
        c2 = c1 ? strchr (c1 + 1, ':') : NULL;
        if (c1 && c2 && strchr (c2 + 1, ':') == NULL && cgroups_path[0] != '/') {
                cleanup_free char *slice = xstrndup (cgroups_path, c1 - cgroups_path);
                cleanup_free char *prefix = xstrndup (c1 + 1, c2 - c1 - 1);
                cleanup_free char *exp = NULL;
                const char *name = c2 + 1;
                if (*name == '\0' || strchr (name, '/') || strchr (prefix, '/'))
                        return moat_make_error (err, 0, "linux.cgroupsPath \"%s\": expected slice:prefix:name",
                                                cgroups_path);
                if (expand_slice (*slice ? slice : "system.slice", &exp, err) < 0)
                        return moat_error_wrap (err, "linux.cgroupsPath \"%s\"", cgroups_path);
                /* a name that is already a unit (".slice") is used as is */
                if (strlen (name) > 6 && strcmp (name + strlen (name) - 6, ".slice") == 0)
                        *out = xasprintf_r ("%s/%s", exp, name);
                else
                        *out = xasprintf_r ("%s/%s%s%s.scope", exp, prefix, *prefix ? "-" : "", name);
                return 0;
        }
        if (systemd)
                return moat_make_error (err, 0,
                                        "linux.cgroupsPath \"%s\": --systemd-cgroup needs the form slice:prefix:name",
                                        cgroups_path);
        if (strstr (cgroups_path, "..") != NULL)
                return moat_make_error (err, 0, "linux.cgroupsPath \"%s\": \"..\" is not allowed", cgroups_path);
        *out = cgroups_path[0] == '/' ? xstrdup (cgroups_path) : xasprintf_r ("/%s", cgroups_path);
        return 0;
}

int
moat_hostcg_path (const char *cgroups_path, const char *id, bool systemd, char **out, moat_error_t *err)
{
        return moat_hostcg_resolve (cgroups_path, NULL, id, systemd, out, err);
}

/* Calls fn for each hierarchy mount point below /sys/fs/cgroup (or
 * /sys/fs/cgroup itself on a pure cgroup v2 host). */
static int
each_hierarchy (int (*fn) (const char *mnt, bool v2, void *ctx), void *ctx)
{
        struct statfs sf;
        DIR *d;
        struct dirent *de;
        int rc = 0;

        if (statfs (CG_ROOT, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
                return fn (CG_ROOT, true, ctx);
        d = opendir (CG_ROOT);
        if (d == NULL)
                return 0; /* no cgroups at all: nothing to account */
        while ((de = readdir (d)) != NULL && rc == 0) {
                char mnt[512];
                struct stat st;
                if (de->d_name[0] == '.')
                        continue;
                snprintf (mnt, sizeof mnt, CG_ROOT "/%s", de->d_name);
                if (lstat (mnt, &st) < 0 || !S_ISDIR (st.st_mode)) /* cpu -> cpu,cpuacct */
                        continue;
                if (statfs (mnt, &sf) < 0)
                        continue;
                if (sf.f_type == CGROUP_SUPER_MAGIC)
                        rc = fn (mnt, false, ctx);
                else if (sf.f_type == CGROUP2_SUPER_MAGIC)
                        rc = fn (mnt, true, ctx);
        }
        closedir (d);
        return rc;
}

struct enter_ctx {
        const char *path;
        const pid_t *pids;
        moat_error_t *err;
};

static void
copy_parent (const char *dir, const char *file)
{
        cleanup_free char *parent = xstrdup (dir);
        cleanup_free char *src = NULL;
        cleanup_free char *dst = NULL;
        cleanup_free char *cur = NULL;
        cleanup_free char *val = NULL;
        char *slash = strrchr (parent, '/');
        if (slash == NULL)
                return;
        *slash = '\0';
        dst = xasprintf_r ("%s/%s", dir, file);
        if (read_file (dst, &cur, NULL, NULL) == 0 && cur[0] != '\n' && cur[0] != '\0')
                return;
        src = xasprintf_r ("%s/%s", parent, file);
        if (read_file (src, &val, NULL, NULL) < 0)
                return;
        write_file (dst, val, strlen (val), 0644, NULL);
}

static int
mkdir_levels (const char *mnt, const char *path, moat_error_t *err)
{
        cleanup_free char *full = xasprintf_r ("%s%s", mnt, path);
        bool cpuset = strstr (mnt, "cpuset") != NULL;
        for (char *p = full + strlen (mnt) + 1;; p++) {
                if (*p == '/' || *p == '\0') {
                        char c = *p;
                        *p = '\0';
                        if (mkdir (full, 0755) < 0 && errno != EEXIST)
                                return moat_make_error (err, errno, "mkdir %s", full);
                        if (cpuset) {
                                copy_parent (full, "cpuset.cpus");
                                copy_parent (full, "cpuset.mems");
                        }
                        *p = c;
                        if (c == '\0')
                                break;
                }
        }
        return 0;
}

static int
join (const char *dir, pid_t pid, moat_error_t *err)
{
        cleanup_free char *procs = xasprintf_r ("%s/cgroup.procs", dir);
        char buf[32];
        int n = snprintf (buf, sizeof buf, "%d", (int)pid);
        cleanup_close int fd = open (procs, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return moat_make_error (err, errno, "open %s", procs);
        if (write (fd, buf, n) != n) {
                if (errno == ESRCH)
                        return 0; /* it exited meanwhile */
                return moat_make_error (err, errno, "move pid %d into %s", (int)pid, dir);
        }
        return 0;
}

static int
enter_one (const char *mnt, bool v2, void *arg)
{
        struct enter_ctx *c = arg;
        cleanup_free char *dir = xasprintf_r ("%s%s", mnt, c->path);
        if (mkdir_levels (mnt, c->path, c->err) < 0)
                return -1;
        for (const pid_t *p = c->pids; p && *p > 0; p++)
                if (join (dir, *p, c->err) < 0)
                        return -1;
        return 0;
}

int
moat_hostcg_enter (const char *path, const pid_t *pids, moat_error_t *err)
{
        struct enter_ctx c = {.path = path, .pids = pids, .err = err};
        if (each_hierarchy (enter_one, &c) < 0)
                return moat_error_wrap (err, "host cgroup %s", path);
        return 0;
}

int
moat_hostcg_add (const char *path, pid_t pid, moat_error_t *err)
{
        pid_t pids[2] = {pid, 0};
        return moat_hostcg_enter (path, pids, err);
}

struct remove_ctx {
        const char *path;
        int64_t deadline;
        moat_error_t *err;
};

static int
remove_one (const char *mnt, bool v2, void *arg)
{
        struct remove_ctx *c = arg;
        cleanup_free char *dir = xasprintf_r ("%s%s", mnt, c->path);
        for (;;) {
                if (rmdir (dir) == 0 || errno == ENOENT)
                        return 0;
                if (errno != EBUSY || now_ms () >= c->deadline) {
                        if (*c->err == NULL)
                                moat_make_error (c->err, errno, "rmdir %s", dir);
                        return 0;
                }
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep (&ts, NULL);
        }
}

int
moat_hostcg_remove (const char *path, int timeout_ms, moat_error_t *err)
{
        struct remove_ctx c = {.path = path, .deadline = now_ms () + timeout_ms, .err = err};
        if (path == NULL || strcmp (path, "/") == 0)
                return 0;
        each_hierarchy (remove_one, &c);
        return *err ? -1 : 0;
}
