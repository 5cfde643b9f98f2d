/* SPDX-License-Identifier: Apache-2.0 */
/* cgroup v2 for the containers: one directory per container under the
 * cgroup2 root, limits written from linux.resources.
 *
 * Why not libcgroup: it discovers hierarchies from /proc/mounts and has no
 * way to point it at another root, which the standalone mode needs on this
 * hybrid host (MOAT_AGENT_CGROUP_ROOT); it has no notion of cgroup.freeze,
 * cgroup.kill or cgroup.events; and cgroup_set_value_* on a cgroup2-only
 * system still goes through its v1 controller tables, so unified keys
 * ("memory.high", "io.weight") would need the raw file anyway. The files are
 * a stable kernel ABI, so writing them directly is simpler and has no
 * surprises. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "moat/util.h"

const char *
agent_cgroup_root (void)
{
        const char *r = getenv ("MOAT_AGENT_CGROUP_ROOT");
        return r && *r ? r : "/sys/fs/cgroup";
}

static int
cg_write (const char *dir, const char *file, const char *value, moat_error_t *err)
{
        cleanup_free char *path = xasprintf_r ("%s/%s", dir, file);
        cleanup_close int fd = open (path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0)
                return moat_make_error (err, errno, "open %s", path);
        if (write (fd, value, strlen (value)) < 0)
                return moat_make_error (err, errno, "write %s to %s", value, path);
        return 0;
}

/* Writes a limit; a file that does not exist means the controller is not
 * available here: logged and skipped. */
static int
cg_set (const char *dir, const char *file, const char *value, moat_error_t *err)
{
        cleanup_free char *path = xasprintf_r ("%s/%s", dir, file);
        if (access (path, F_OK) < 0 && errno == ENOENT) {
                agent_log ("cgroup: %s is not available, %s=%s not applied", path, file, value);
                return 0;
        }
        agent_debug ("cgroup: %s = %s", path, value);
        return cg_write (dir, file, value, err);
}

/* The first line of dir/file without its newline (malloc'd), NULL if it
 * cannot be read. */
static char *
cg_read (const char *dir, const char *file)
{
        cleanup_free char *path = xasprintf_r ("%s/%s", dir, file);
        char *buf = NULL;
        moat_error_t e = NULL;
        if (read_file (path, &buf, NULL, &e) < 0) {
                moat_error_release (&e);
                return NULL;
        }
        buf[strcspn (buf, "\n")] = '\0';
        return buf;
}

static char *
limit_str (int64_t v)
{
        return v < 0 ? xstrdup ("max") : xasprintf_r ("%" PRId64, v);
}

/* crun/runc's conversion of cgroup v1 cpu.shares [2, 262144] to cpu.weight [1, 10000]. */
static uint64_t
shares_to_weight (uint64_t shares)
{
        if (shares == 0)
                return 0;
        if (shares < 2)
                shares = 2;
        if (shares > 262144)
                shares = 262144;
        return 1 + ((shares - 2) * 9999) / 262142;
}

/* memory.swap.max. OCI's swap is memory+swap, v2's is swap alone: the
 * difference with the limit of this request, or else the cgroup's current
 * one (an update of the swap alone). As runc: 0 is "not set", except that
 * an unlimited memory with no swap given makes swap unlimited too; -1 is
 * unlimited; a swap limit needs a memory limit. *out: the value to write,
 * NULL for none; checked before anything is written. */
static int
swap_value (const char *path, const struct oci_resources *r, char **out, moat_error_t *err)
{
        bool limit_set = r->has_memory_limit && r->memory_limit != 0;
        int64_t swap = r->has_memory_swap ? r->memory_swap : 0;
        int64_t mem = limit_set ? r->memory_limit : 0;

        *out = NULL;
        if (swap == 0) {
                if (!(limit_set && r->memory_limit < 0))
                        return 0;
                swap = -1;
        }
        if (swap < 0) {
                *out = xstrdup ("max");
                return 0;
        }
        if (!limit_set) {
                cleanup_free char *cur = cg_read (path, "memory.max");
                if (cur == NULL) {
                        *out = xstrdup ("max"); /* no memory controller: cg_set logs it */
                        return 0;
                }
                mem = strcmp (cur, "max") == 0 ? -1 : strtoll (cur, NULL, 10);
        }
        if (mem < 0)
                return moat_make_error (err, EINVAL,
                                        "memory.swap (%" PRId64 ") needs a memory limit (memory.limit is unlimited)",
                                        swap);
        if (swap < mem)
                return moat_make_error (
                        err, EINVAL, "memory.swap (%" PRId64 ") is lower than memory.limit (%" PRId64 ")", swap, mem);
        *out = xasprintf_r ("%" PRId64, swap - mem);
        return 0;
}

/* cpu.max "QUOTA PERIOD". As runc, a 0 quota or period is "not set": the
 * kernel keeps the period when only a quota is written, and a period
 * alone keeps the cgroup's current quota (read back from cpu.max). A
 * negative quota is unlimited. */
static int
apply_cpu_max (const char *path, const struct oci_resources *r, moat_error_t *err)
{
        bool quota_set = r->has_cpu_quota && r->cpu_quota != 0;
        bool period_set = r->has_cpu_period && r->cpu_period != 0;
        cleanup_free char *quota = NULL;
        cleanup_free char *v = NULL;

        if (!quota_set && !period_set)
                return 0;
        if (quota_set)
                quota = limit_str (r->cpu_quota);
        else {
                quota = cg_read (path, "cpu.max");
                if (quota == NULL)
                        quota = xstrdup ("max");
                quota[strcspn (quota, " ")] = '\0';
        }
        v = period_set ? xasprintf_r ("%s %" PRIu64, quota, r->cpu_period) : xstrdup (quota);
        return cg_set (path, "cpu.max", v, err);
}

/* Applies linux.resources, at create and on update. As runc reads them, a
 * 0 (or "") means "not set" and is not written: memory.limit,
 * memory.reservation, memory.swap, cpu.shares, cpu.quota, cpu.period,
 * pids.limit, cpu.cpus, cpu.mems (blockIO, hugepageLimits, rdma and
 * network are not applied in the guest at all). -1 means unlimited. */
int
agent_cgroup_apply (const char *path, struct oci_resources *r, moat_error_t *err)
{
        cleanup_free char *swap = NULL;

        if (r == NULL)
                return 0;
        if (swap_value (path, r, &swap, err) < 0)
                return -1;
        if (r->has_memory_limit && r->memory_limit != 0) {
                cleanup_free char *v = limit_str (r->memory_limit);
                if (cg_set (path, "memory.max", v, err) < 0)
                        return -1;
        }
        if (r->has_memory_reservation && r->memory_reservation != 0) {
                cleanup_free char *v = limit_str (r->memory_reservation);
                if (cg_set (path, "memory.low", v, err) < 0)
                        return -1;
        }
        if (swap && cg_set (path, "memory.swap.max", swap, err) < 0)
                return -1;
        if (apply_cpu_max (path, r, err) < 0)
                return -1;
        if (r->has_cpu_shares && r->cpu_shares) {
                cleanup_free char *v = xasprintf_r ("%" PRIu64, shares_to_weight (r->cpu_shares));
                if (cg_set (path, "cpu.weight", v, err) < 0)
                        return -1;
        }
        if (r->cpu_cpus && *r->cpu_cpus && cg_set (path, "cpuset.cpus", r->cpu_cpus, err) < 0)
                return -1;
        if (r->cpu_mems && *r->cpu_mems && cg_set (path, "cpuset.mems", r->cpu_mems, err) < 0)
                return -1;
        if (r->has_pids_limit && r->pids_limit != 0) {
                cleanup_free char *v = limit_str (r->pids_limit);
                if (cg_set (path, "pids.max", v, err) < 0)
                        return -1;
        }
        for (size_t i = 0; i < r->n_unified; i++) {
                const char *k = r->unified_keys[i];
                if (strchr (k, '/') || strcmp (k, "..") == 0 || strcmp (k, ".") == 0 || strchr (k, '.') == NULL)
                        return moat_make_error (err, EINVAL, "linux.resources.unified: invalid key \"%s\"", k);
                if (cg_write (path, k, r->unified_values[i], err) < 0)
                        return moat_error_wrap (err, "linux.resources.unified");
        }
        if (r->n_devices > 0 && agent_devices_apply (path, r->devices, r->n_devices, err) < 0)
                return -1;
        return 0;
}

/* Enables every available controller we care about in dir's subtree_control. */
static void
enable_controllers (const char *dir)
{
        static const char *const wanted[] = {"cpu", "cpuset", "memory", "pids", "io", "hugetlb"};
        cleanup_free char *avail = NULL;
        cleanup_free char *path = xasprintf_r ("%s/cgroup.controllers", dir);
        moat_error_t err = NULL;

        if (read_file (path, &avail, NULL, &err) < 0) {
                moat_error_release (&err);
                return;
        }
        for (size_t i = 0; i < ARRAY_SIZE (wanted); i++) {
                cleanup_free char *v = NULL;
                char *p = avail;
                size_t l = strlen (wanted[i]);
                bool found = false;
                while ((p = strstr (p, wanted[i])) != NULL) {
                        if ((p == avail || p[-1] == ' ') && (p[l] == ' ' || p[l] == '\n' || p[l] == '\0')) {
                                found = true;
                                break;
                        }
                        p += l;
                }
                if (!found) {
                        agent_debug ("cgroup: controller %s not available in %s", wanted[i], dir);
                        continue;
                }
                v = xasprintf_r ("+%s", wanted[i]);
                if (cg_write (dir, "cgroup.subtree_control", v, &err) < 0) {
                        agent_debug ("cgroup: %s", err->msg);
                        moat_error_release (&err);
                }
        }
}

static bool
has_dotdot (const char *p)
{
        for (const char *s = p; *s;) {
                size_t l = strcspn (s, "/");
                if (l == 2 && s[0] == '.' && s[1] == '.')
                        return true;
                s += l;
                while (*s == '/')
                        s++;
        }
        return false;
}

int
agent_cgroup_create (const char *id, struct oci_config *cfg, char **path_out, moat_error_t *err)
{
        const char *root = agent_cgroup_root ();
        const char *cp = cfg->linux_ ? cfg->linux_->cgroups_path : NULL;
        cleanup_free char *rel = NULL;
        cleanup_free char *path = NULL;
        struct stat st;

        if (stat (root, &st) < 0)
                return moat_make_error (err, errno, "cgroup root %s", root);
        /* systemd-style "slice:prefix:name" means nothing in the guest. */
        if (cp == NULL || *cp == '\0' || strchr (cp, ':'))
                rel = xasprintf_r ("moat/%s", id);
        else {
                while (*cp == '/')
                        cp++;
                rel = xstrdup (cp);
        }
        if (has_dotdot (rel))
                return moat_make_error (err, EINVAL, "linux.cgroupsPath \"%s\": contains \"..\"", cp);
        if (*rel == '\0')
                return moat_make_error (err, EINVAL, "linux.cgroupsPath: empty");

        /* Create level by level, enabling controllers in each parent. */
        path = xstrdup (root);
        for (char *s = rel; *s;) {
                char *slash = strchr (s, '/');
                size_t l = slash ? (size_t)(slash - s) : strlen (s);
                char *next;
                if (l > 0) {
                        enable_controllers (path);
                        next = xasprintf_r ("%s/%.*s", path, (int)l, s);
                        free (path);
                        path = next;
                        if (mkdir (path, 0755) < 0 && errno != EEXIST)
                                return moat_make_error (err, errno, "create cgroup %s", path);
                }
                s += l;
                while (*s == '/')
                        s++;
        }
        if (cfg->linux_ && agent_cgroup_apply (path, cfg->linux_->resources, err) < 0) {
                rmdir (path);
                return moat_error_wrap (err, "cgroup %s", path);
        }
        if (cfg->linux_ == NULL || cfg->linux_->resources == NULL || cfg->linux_->resources->n_devices == 0) {
                /* No rules in the config: the default devices only, as
                 * runc does. Nothing was asked, so a kernel that cannot
                 * do it is only logged. */
                moat_error_t e = NULL;
                if (agent_devices_apply (path, NULL, 0, &e) < 0) {
                        agent_log ("cgroup %s: default device rules not applied: %s", path, e->msg);
                        moat_error_release (&e);
                }
        }
        *path_out = steal_pointer (&path);
        return 0;
}

int
agent_cgroup_enter (const char *path, pid_t pid, moat_error_t *err)
{
        char buf[32];
        snprintf (buf, sizeof buf, "%d", (int)pid);
        return cg_write (path, "cgroup.procs", buf, err);
}

int
agent_cgroup_freeze (const char *path, bool frozen, moat_error_t *err)
{
        if (cg_write (path, "cgroup.freeze", frozen ? "1" : "0", err) < 0)
                return -1;
        /* Wait until cgroup.events says the state was reached. */
        for (int i = 0; i < 200; i++) {
                cleanup_free char *ev = NULL;
                cleanup_free char *f = xasprintf_r ("%s/cgroup.events", path);
                moat_error_t e = NULL;
                if (read_file (f, &ev, NULL, &e) < 0) {
                        moat_error_release (&e);
                        return 0;
                }
                if (strstr (ev, frozen ? "frozen 1" : "frozen 0"))
                        return 0;
                usleep (10000);
        }
        return moat_make_error (err, ETIMEDOUT, "%s %s", frozen ? "freeze" : "thaw", path);
}

int
agent_cgroup_pids (const char *path, pid_t **pids, size_t *n, moat_error_t *err)
{
        cleanup_free char *f = xasprintf_r ("%s/cgroup.procs", path);
        cleanup_free char *buf = NULL;
        pid_t *v = NULL;
        size_t cnt = 0;

        if (read_file (f, &buf, NULL, err) < 0)
                return -1;
        for (char *s = buf, *end; *s; s = end) {
                long p = strtol (s, &end, 10);
                if (end == s)
                        break;
                v = xrealloc (v, (cnt + 1) * sizeof *v);
                v[cnt++] = p;
        }
        *pids = v;
        *n = cnt;
        return 0;
}

int
agent_cgroup_kill (const char *path, int sig, moat_error_t *err)
{
        cleanup_free pid_t *pids = NULL;
        size_t n = 0;
        cleanup_free char *kf = xasprintf_r ("%s/cgroup.kill", path);

        if (sig == SIGKILL && access (kf, F_OK) == 0)
                return cg_write (path, "cgroup.kill", "1", err);
        /* Freeze so nothing forks behind our back while we signal. */
        if (agent_cgroup_pids (path, &pids, &n, err) < 0)
                return -1;
        for (size_t i = 0; i < n; i++)
                if (kill (pids[i], sig) < 0 && errno != ESRCH)
                        return moat_make_error (err, errno, "kill %d", pids[i]);
        return 0;
}

int
agent_cgroup_destroy (const char *path, moat_error_t *err)
{
        for (int i = 0; i < 300; i++) {
                if (rmdir (path) == 0 || errno == ENOENT)
                        return 0;
                if (errno != EBUSY)
                        return moat_make_error (err, errno, "remove cgroup %s", path);
                usleep (10000);
        }
        return moat_make_error (err, EBUSY, "remove cgroup %s", path);
}

int
agent_cgroup_read_u64 (const char *path, const char *file, const char *key, uint64_t *out)
{
        cleanup_free char *f = xasprintf_r ("%s/%s", path, file);
        cleanup_free char *buf = NULL;
        moat_error_t err = NULL;
        char *p = NULL;

        *out = 0;
        if (read_file (f, &buf, NULL, &err) < 0) {
                moat_error_release (&err);
                return -1;
        }
        if (key == NULL)
                p = buf;
        else {
                size_t l = strlen (key);
                for (char *line = buf; line && *line; line = strchr (line, '\n') ? strchr (line, '\n') + 1 : NULL)
                        if (strncmp (line, key, l) == 0 && line[l] == ' ') {
                                p = line + l + 1;
                                break;
                        }
        }
        if (p == NULL)
                return -1;
        if (strncmp (p, "max", 3) == 0) /* no limit: reported as 0 */
                return 0;
        *out = strtoull (p, NULL, 10);
        return 0;
}
