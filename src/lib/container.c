/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers for the verbs that work on an existing container: a bounded
 * lock, and the agent calls pause/resume/stats/update over their own ttrpc
 * connection. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "moat/agent_client.h"
#include "moat/container.h"
#include "moat/util.h"
#include "moat/json_gen.h"

int
moat_container_lock (const char *root, const char *id, int timeout_ms, int *lock_fd, moat_error_t *err)
{
        cleanup_free char *dir = NULL;
        cleanup_free char *path = NULL;
        cleanup_close int fd = -1;
        struct stat st;
        int64_t deadline = now_ms () + timeout_ms;

        if (moat_state_validate_id (id, err) < 0)
                return -1;
        dir = moat_state_dir (root, id);
        if (stat (dir, &st) < 0) {
                if (errno == ENOENT) {
                        moat_make_error (err, 0, "container \"%s\" does not exist", id);
                        (*err)->errno_ = ENOENT;
                        return -1;
                }
                return moat_make_error (err, errno, "stat %s", dir);
        }
        path = xasprintf_r ("%s/lock", dir);
        fd = open (path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT) { /* deleted meanwhile */
                        moat_make_error (err, 0, "container \"%s\" does not exist", id);
                        (*err)->errno_ = ENOENT;
                        return -1;
                }
                return moat_make_error (err, errno, "open %s", path);
        }
        for (;;) {
                if (flock (fd, LOCK_EX | LOCK_NB) == 0)
                        break;
                if (errno != EWOULDBLOCK && errno != EINTR)
                        return moat_make_error (err, errno, "lock %s", path);
                if (now_ms () >= deadline) {
                        moat_make_error (err, 0, "container \"%s\" is busy (another moat command holds its lock)", id);
                        (*err)->errno_ = EWOULDBLOCK;
                        return -1;
                }
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep (&ts, NULL);
        }
        *lock_fd = steal_fd (&fd);
        return 0;
}

int
moat_container_connect (const struct moat_state *st, int timeout_ms, struct moat_agent **out, moat_error_t *err)
{
        if (st->vsock_socket == NULL || *st->vsock_socket == '\0')
                return moat_make_error (err, 0, "container \"%s\" has no agent socket in its state", st->id);
        if (moat_agent_open (st->vsock_socket, timeout_ms, out, err) < 0)
                return moat_error_wrap (err, "connect to the agent of %s", st->id);
        return 0;
}

static void
ku64 (yajl_gen g, const char *k, uint64_t v)
{
        char buf[32];
        int n = snprintf (buf, sizeof buf, "%llu", (unsigned long long)v);
        moat_gen_str (g, k);
        yajl_gen_number (g, buf, n);
}

char *
moat_stats_event_json (const char *id, const struct moat_stats *s)
{
        yajl_gen g = yajl_gen_alloc (NULL);
        const unsigned char *buf;
        size_t len;
        char *out;

        yajl_gen_map_open (g);
        moat_gen_str (g, "type");
        moat_gen_str (g, "stats");
        moat_gen_str (g, "id");
        moat_gen_str (g, id);
        moat_gen_str (g, "data");
        yajl_gen_map_open (g);

        /* cpu: nanoseconds, like runc */
        moat_gen_str (g, "cpu");
        yajl_gen_map_open (g);
        moat_gen_str (g, "usage");
        yajl_gen_map_open (g);
        ku64 (g, "total", s->cpu_usage_usec * 1000);
        ku64 (g, "kernel", s->cpu_system_usec * 1000);
        ku64 (g, "user", s->cpu_user_usec * 1000);
        yajl_gen_map_close (g);
        moat_gen_str (g, "throttling");
        yajl_gen_map_open (g);
        yajl_gen_map_close (g);
        yajl_gen_map_close (g);

        /* memory: no limit is reported as the largest value, as runc does on cgroup v2 */
        moat_gen_str (g, "memory");
        yajl_gen_map_open (g);
        moat_gen_str (g, "usage");
        yajl_gen_map_open (g);
        ku64 (g, "limit", s->memory_limit ? s->memory_limit : UINT64_MAX);
        ku64 (g, "usage", s->memory_usage);
        ku64 (g, "max", s->memory_max_usage);
        ku64 (g, "failcnt", 0);
        yajl_gen_map_close (g);
        yajl_gen_map_close (g);

        moat_gen_str (g, "pids");
        yajl_gen_map_open (g);
        ku64 (g, "current", s->pids_current);
        if (s->pids_limit)
                ku64 (g, "limit", s->pids_limit);
        yajl_gen_map_close (g);

        moat_gen_str (g, "blkio");
        yajl_gen_map_open (g);
        yajl_gen_map_close (g);
        moat_gen_str (g, "hugetlb");
        yajl_gen_map_open (g);
        yajl_gen_map_close (g);
        yajl_gen_map_close (g);
        yajl_gen_map_close (g);

        yajl_gen_get_buf (g, &buf, &len);
        out = xstrndup ((const char *)buf, len);
        yajl_gen_free (g);
        return out;
}

#define LOCK_TIMEOUT_MS 10000
#define CONNECT_TIMEOUT_MS 5000

int
moat_container_pause (const char *root, const char *id, bool pause, moat_error_t *err)
{
        cleanup_close int lock_fd = -1;
        struct moat_state *st = NULL;
        struct moat_agent *a = NULL;
        const char *status, *want = pause ? "running" : "paused";
        int r = -1;

        if (moat_container_lock (root, id, LOCK_TIMEOUT_MS, &lock_fd, err) < 0)
                return -1;
        if (moat_state_load (root, id, &st, err) < 0)
                return -1;
        status = moat_state_live_status (st);
        if (strcmp (status, want) != 0) {
                if (pause && strcmp (status, "paused") == 0)
                        moat_make_error (err, 0, "container \"%s\" is already paused", id);
                else
                        moat_make_error (err, 0, "container \"%s\" is not %s (status: %s)", id,
                                         pause ? "running" : "paused", status);
                (*err)->errno_ = EINVAL;
                goto out;
        }
        if (moat_container_connect (st, CONNECT_TIMEOUT_MS, &a, err) < 0)
                goto out;
        if ((pause ? moat_agent_pause (a, id, err) : moat_agent_resume (a, id, err)) < 0)
                goto out;
        free (st->status);
        st->status = xstrdup (pause ? "paused" : "running");
        if (moat_state_save (root, st, err) < 0)
                goto out;
        r = 0;
out:
        moat_agent_free (a);
        moat_state_free (st);
        return r;
}

int
moat_container_open (const char *root, const char *id, struct moat_state **out, struct moat_agent **a,
                     moat_error_t *err)
{
        struct moat_state *st = NULL;
        const char *status;

        if (moat_state_load (root, id, &st, err) < 0)
                return -1;
        status = moat_state_live_status (st);
        if (strcmp (status, "running") != 0 && strcmp (status, "paused") != 0 && strcmp (status, "created") != 0) {
                moat_make_error (err, 0, "container \"%s\" is not running (status: %s)", id, status);
                (*err)->errno_ = EINVAL;
                moat_state_free (st);
                return -1;
        }
        if (moat_container_connect (st, CONNECT_TIMEOUT_MS, a, err) < 0) {
                moat_state_free (st);
                return -1;
        }
        *out = st;
        return 0;
}

int
moat_parse_duration (const char *flag, const char *s, int64_t *ms, moat_error_t *err)
{
        static const struct {
                const char *unit;
                double ms;
        } units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"µs", 1e-3}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
        const char *p = s;
        double total = 0;

        if (s == NULL || *s == '\0')
                goto bad;
        if (strspn (s, "0123456789.") == strlen (s)) { /* bare number: seconds */
                char *end;
                total = strtod (s, &end) * 1000;
                if (*end != '\0')
                        goto bad;
                p = end;
        }
        while (*p) {
                char *end;
                double v;
                size_t best = 0, k, bestlen = 0;
                if (!((*p >= '0' && *p <= '9') || *p == '.'))
                        goto bad;
                v = strtod (p, &end);
                if (end == p)
                        goto bad;
                p = end;
                for (k = 0; k < ARRAY_SIZE (units); k++) {
                        size_t l = strlen (units[k].unit);
                        if (strncmp (p, units[k].unit, l) == 0 && l > bestlen) {
                                best = k;
                                bestlen = l;
                        }
                }
                if (bestlen == 0)
                        goto bad;
                total += v * units[best].ms;
                p += bestlen;
        }
        if (total < 1)
                return moat_make_error (err, 0, "%s: duration \"%s\" must be at least 1ms", flag, s);
        if (total > 1e12)
                goto bad;
        *ms = (int64_t)total;
        return 0;
bad:
        return moat_make_error (err, 0, "%s: invalid duration \"%s\" (expected e.g. 5s, 500ms, 1m)", flag, s);
}
