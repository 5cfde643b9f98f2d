/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <libcgroup.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "moat/hostcgroup.h"
#include "moat/paths.h"
#include "moat/util.h"

#define CG_ROOT "/sys/fs/cgroup"

/* What libcgroup does here and what is done by hand.
 *
 * libcgroup (2.0, Debian 12) creates the cgroup in the controller
 * hierarchies (every cgroup v1 controller, or the controllers moat limits
 * on a cgroup v2 host, enabling them in the parents' subtree_control) and
 * writes the limits; `moat update` changes them with cgroup_modify_cgroup.
 * By hand, because libcgroup 2.0 cannot:
 * - moving a process in: cgroup_attach_task_pid writes the pid to a v1
 *   hierarchy's `tasks` file, which moves one thread, not the process (the
 *   VMM is multithreaded by then, and its vCPU threads would stay outside
 *   the quota); cgroup.procs moves the whole process at once;
 * - hierarchies libcgroup does not know: named v1 hierarchies
 *   (name=systemd) and, on a hybrid host, the cgroup2 mount
 *   (/sys/fs/cgroup/unified; libcgroup 2.0 only lists it by the
 *   controllers it holds, and fails to create a cgroup in it when those
 *   are not enabled in its root): the process is placed there too, for
 *   the tools that read it, with no limits (moat's limits are on the v1
 *   controllers of such a host);
 * - cpuset levels get cpus and mems copied from their parent (a new v1
 *   cpuset cgroup has none, and no process can join it then);
 * - on a cgroup v2 host, enabling memory, cpu and pids in the root's
 *   subtree_control (libcgroup 2.0 enables them from the first level
 *   below the root; a host without systemd may not have them at the root);
 * - removal: rmdir, waiting for the last process to go (libcgroup's delete
 *   would move any process left to the parent instead). */

static pthread_once_t lcg_once = PTHREAD_ONCE_INIT;
static int lcg_rc = -1;

static void
lcg_init (void)
{
        lcg_rc = cgroup_init ();
}

/* 0, or a libcgroup error code (ECGROUPNOTMOUNTED: no cgroups here). */
static int
lcg_ready (void)
{
        pthread_once (&lcg_once, lcg_init);
        return lcg_rc;
}

static int
lcg_error (moat_error_t *err, int rc, const char *what, const char *path)
{
        int e = rc == ECGOTHER ? cgroup_get_last_errno () : 0;
        if (e)
                return moat_make_error (err, e, "%s %s", what, path);
        return moat_make_error (err, 0, "%s %s: %s", what, path, cgroup_strerror (rc));
}

static bool
is_cgroup2 (const char *path)
{
        struct statfs sf;
        return statfs (path, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

static bool
host_is_v2 (void)
{
        return is_cgroup2 (CG_ROOT);
}

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

/* Adds to cg every v1 controller libcgroup knows a mount of (on a hybrid
 * host the cgroup2 mount is placed by hand; on a v2 host only the
 * controllers that get a limit are added, by add_limits). Returns how many
 * it added, or -1. */
static int
add_v1_controllers (struct cgroup *cg)
{
        struct cgroup_mount_point mp;
        void *h = NULL;
        int n = 0;

        if (host_is_v2 ())
                return 0;
        for (int r = cgroup_get_controller_begin (&h, &mp); r == 0; r = cgroup_get_controller_next (&h, &mp)) {
                if (is_cgroup2 (mp.path) || cgroup_get_controller (cg, mp.name))
                        continue;
                if (cgroup_add_controller (cg, mp.name) == NULL) {
                        n = -1;
                        break;
                }
                n++;
        }
        cgroup_get_controller_end (&h);
        return n;
}

/* cg's controller `name`, added if need be; NULL if the host has no
 * usable mount of it (that limit is then not set). */
static struct cgroup_controller *
limit_controller (struct cgroup *cg, const char *name, bool v2)
{
        struct cgroup_controller *c = cgroup_get_controller (cg, name);
        cleanup_free char *mnt = NULL;
        if (c)
                return c;
        if (cgroup_get_subsys_mount_point (name, &mnt) != 0 || mnt == NULL || (!v2 && is_cgroup2 (mnt)))
                return NULL;
        return cgroup_add_controller (cg, name);
}

/* The limits as controller values on cg (controllers added as needed).
 * Returns how many values it set, or -1. */
static int
add_limits (struct cgroup *cg, const struct moat_hostcg_limits *lim, bool v2)
{
        struct cgroup_controller *c;
        int n = 0;
        if (lim->memory_bytes && (c = limit_controller (cg, "memory", v2)) != NULL) {
                n++;
                if (cgroup_add_value_uint64 (c, v2 ? "memory.max" : "memory.limit_in_bytes", lim->memory_bytes))
                        return -1;
        }
        if (lim->cpu_quota_us && (c = limit_controller (cg, "cpu", v2)) != NULL) {
                uint64_t period = lim->cpu_period_us ? lim->cpu_period_us : 100000;
                n++;
                if (v2) {
                        char max[64];
                        snprintf (max, sizeof max, "%" PRIu64 " %" PRIu64, lim->cpu_quota_us, period);
                        if (cgroup_add_value_string (c, "cpu.max", max))
                                return -1;
                } else if (cgroup_add_value_uint64 (c, "cpu.cfs_period_us", period) ||
                           cgroup_add_value_uint64 (c, "cpu.cfs_quota_us", lim->cpu_quota_us))
                        return -1;
        }
        if (lim->pids && (c = limit_controller (cg, "pids", v2)) != NULL) {
                n++;
                if (cgroup_add_value_uint64 (c, "pids.max", lim->pids))
                        return -1;
        }
        return n;
}

/* A v2 host's root: memory, cpu and pids enabled for its children. */
static int
enable_v2_root (const struct moat_hostcg_limits *lim, moat_error_t *err)
{
        const char *want[] = {lim->memory_bytes ? "memory" : NULL, lim->cpu_quota_us ? "cpu" : NULL,
                              lim->pids ? "pids" : NULL};
        cleanup_free char *on = NULL;
        if (read_file (CG_ROOT "/cgroup.subtree_control", &on, NULL, err) < 0)
                return -1;
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
                char word[16];
                bool found = false;
                if (want[i] == NULL)
                        continue;
                for (char *p = on; p && *p;) {
                        size_t n = strcspn (p, " \n");
                        if (n == strlen (want[i]) && strncmp (p, want[i], n) == 0)
                                found = true;
                        p += n;
                        p += strspn (p, " \n");
                }
                if (found)
                        continue;
                snprintf (word, sizeof word, "+%s", want[i]);
                if (write_file (CG_ROOT "/cgroup.subtree_control", word, strlen (word), 0644, err) < 0)
                        return moat_error_wrap (err, "enable the %s controller", want[i]);
        }
        return 0;
}

/* libcgroup's part: the cgroup in the controller hierarchies, with lim. */
static int
lcg_create (const char *path, const struct moat_hostcg_limits *lim, moat_error_t *err)
{
        struct cgroup *cg;
        bool v2 = host_is_v2 ();
        int r = lcg_ready ();

        if (r == ECGROUPNOTMOUNTED)
                return 0; /* no cgroups at all: nothing to account or limit */
        if (r != 0)
                return lcg_error (err, r, "libcgroup: init for", path);
        if (v2 && lim && enable_v2_root (lim, err) < 0)
                return -1;
        cg = cgroup_new_cgroup (path);
        if (cg == NULL)
                return moat_make_error (err, ENOMEM, "libcgroup: new cgroup %s", path);
        int nc = add_v1_controllers (cg);
        int nl = nc < 0 ? -1 : lim ? add_limits (cg, lim, v2) : 0;
        if (nc < 0 || nl < 0) {
                cgroup_free (&cg);
                return moat_make_error (err, 0, "libcgroup: describe cgroup %s", path);
        }
        if (nc + nl == 0) { /* a v2 host and no limits: placement only */
                cgroup_free (&cg);
                return 0;
        }
        r = cgroup_create_cgroup (cg, 1);
        cgroup_free (&cg);
        if (r != 0)
                return lcg_error (err, r, "libcgroup: create cgroup", path);
        return 0;
}

int
moat_hostcg_enter_limited (const char *path, const struct moat_hostcg_limits *lim, const pid_t *pids, moat_error_t *err)
{
        struct enter_ctx c = {.path = path, .pids = pids, .err = err};
        if (lcg_create (path, lim, err) < 0)
                return moat_error_wrap (err, "host cgroup %s", path);
        if (each_hierarchy (enter_one, &c) < 0)
                return moat_error_wrap (err, "host cgroup %s", path);
        return 0;
}

int
moat_hostcg_enter (const char *path, const pid_t *pids, moat_error_t *err)
{
        return moat_hostcg_enter_limited (path, NULL, pids, err);
}

int
moat_hostcg_add (const char *path, pid_t pid, moat_error_t *err)
{
        /* the cgroup exists (enter made it): placement only */
        pid_t pids[2] = {pid, 0};
        struct enter_ctx c = {.path = path, .pids = pids, .err = err};
        if (each_hierarchy (enter_one, &c) < 0)
                return moat_error_wrap (err, "host cgroup %s", path);
        return 0;
}

int
moat_hostcg_set_limits (const char *path, const struct moat_hostcg_limits *lim, moat_error_t *err)
{
        struct cgroup *cg;
        bool v2 = host_is_v2 ();
        int r = lcg_ready ();

        if (r == ECGROUPNOTMOUNTED)
                return 0;
        if (r != 0)
                return lcg_error (err, r, "libcgroup: init for", path);
        cg = cgroup_new_cgroup (path);
        if (cg == NULL)
                return moat_make_error (err, ENOMEM, "libcgroup: new cgroup %s", path);
        r = add_limits (cg, lim, v2);
        if (r <= 0) {
                cgroup_free (&cg);
                return r < 0 ? moat_make_error (err, 0, "libcgroup: describe cgroup %s", path) : 0;
        }
        r = cgroup_modify_cgroup (cg);
        cgroup_free (&cg);
        if (r != 0)
                return lcg_error (err, r, "libcgroup: set the limits of", path);
        return 0;
}

int
moat_hostcg_limits_from_update (const char *resources_json, struct moat_hostcg_limits *lim, moat_error_t *err)
{
        char ebuf[256];
        const char *qp[] = {"cpu", "quota", NULL};
        const char *pp[] = {"cpu", "period", NULL};
        yajl_val tree, q, p;
        int rc = 0;

        memset (lim, 0, sizeof *lim);
        tree = yajl_tree_parse (resources_json, ebuf, sizeof ebuf);
        if (tree == NULL)
                return moat_make_error (err, 0, "linux.resources: %s", ebuf);
        q = yajl_tree_get (tree, qp, yajl_t_number);
        p = yajl_tree_get (tree, pp, yajl_t_number);
        if (q && YAJL_IS_INTEGER (q) && YAJL_GET_INTEGER (q) > 0) {
                lim->cpu_quota_us = YAJL_GET_INTEGER (q);
                lim->cpu_period_us =
                        p && YAJL_IS_INTEGER (p) && YAJL_GET_INTEGER (p) > 0 ? YAJL_GET_INTEGER (p) : 100000;
                rc = 1;
        }
        yajl_tree_free (tree);
        return rc;
}

void
moat_hostcg_probe (struct moat_hostcg_info *info)
{
        struct cgroup_mount_point mp;
        void *h = NULL;
        bool v2 = host_is_v2 (), hybrid = false, any = false;
        struct statfs sf;
        DIR *d;
        struct dirent *de;
        int r;

        memset (info, 0, sizeof *info);
        if (!v2 && (d = opendir (CG_ROOT)) != NULL) {
                while ((de = readdir (d)) != NULL) {
                        char mnt[512];
                        if (de->d_name[0] == '.')
                                continue;
                        snprintf (mnt, sizeof mnt, CG_ROOT "/%s", de->d_name);
                        if (statfs (mnt, &sf) < 0)
                                continue;
                        if (sf.f_type == CGROUP2_SUPER_MAGIC)
                                hybrid = true;
                        if (sf.f_type == CGROUP_SUPER_MAGIC)
                                any = true;
                }
                closedir (d);
        }
        info->mode = v2 ? "v2" : any ? (hybrid ? "hybrid" : "v1") : "none";
        r = lcg_ready ();
        if (r != 0) {
                info->error = cgroup_strerror (r);
                return;
        }
        for (r = cgroup_get_controller_begin (&h, &mp); r == 0; r = cgroup_get_controller_next (&h, &mp)) {
                if (!v2 && is_cgroup2 (mp.path))
                        continue;
                if (strcmp (mp.name, "memory") == 0)
                        info->memory = true;
                else if (strcmp (mp.name, "cpu") == 0)
                        info->cpu = true;
                else if (strcmp (mp.name, "pids") == 0)
                        info->pids = true;
        }
        cgroup_get_controller_end (&h);
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
