/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/execrec.h"
#include "moat/state.h"
#include "moat/util.h"

#define EXECS_DIR "execs"

/* An exec id names a file: no '/', not "." or "..", nothing hidden. */
static bool
valid_exec_id (const char *id)
{
        return id && *id && *id != '.' && strchr (id, '/') == NULL;
}

int
moat_execrec_add (const char *state_dir, const char *exec_id, pid_t pid, moat_error_t *err)
{
        cleanup_free char *dir = xasprintf_r ("%s/" EXECS_DIR, state_dir);
        cleanup_free char *tmp = xasprintf_r ("%s/.%s.tmp", dir, exec_id);
        cleanup_free char *path = xasprintf_r ("%s/%s", dir, exec_id);
        cleanup_free char *line = NULL;
        unsigned long long start = moat_pid_start_time (pid);

        if (!valid_exec_id (exec_id))
                return moat_make_error (err, EINVAL, "exec id \"%s\" cannot name a record", exec_id ? exec_id : "");
        if (start == 0)
                return moat_make_error (err, ESRCH, "exec %s: stand-in %d is gone", exec_id, (int)pid);
        /* mkdir, not mkdir_p: a container deleted meanwhile stays deleted */
        if (mkdir (dir, 0700) < 0 && errno != EEXIST)
                return moat_make_error (err, errno, "mkdir %s", dir);
        line = xasprintf_r ("%d %llu\n", (int)pid, start);
        if (write_file (tmp, line, strlen (line), 0600, err) < 0)
                return -1;
        if (rename (tmp, path) < 0) {
                int e = errno;
                unlink (tmp);
                return moat_make_error (err, e, "rename %s", path);
        }
        return 0;
}

void
moat_execrec_remove (const char *state_dir, const char *exec_id)
{
        cleanup_free char *path = NULL;

        if (!valid_exec_id (exec_id))
                return;
        path = xasprintf_r ("%s/" EXECS_DIR "/%s", state_dir, exec_id);
        unlink (path);
}

static int
cmp_pid (const void *a, const void *b)
{
        pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
        return x < y ? -1 : x > y;
}

int
moat_execrec_list (const char *state_dir, pid_t **pids, size_t *n, moat_error_t *err)
{
        cleanup_free char *dir = xasprintf_r ("%s/" EXECS_DIR, state_dir);
        pid_t *v = NULL;
        size_t cnt = 0;
        struct dirent *de;
        DIR *d;

        *pids = NULL;
        *n = 0;
        d = opendir (dir);
        if (d == NULL) {
                if (errno == ENOENT)
                        return 0; /* no exec ever ran */
                return moat_make_error (err, errno, "open %s", dir);
        }
        while ((de = readdir (d)) != NULL) {
                cleanup_free char *path = NULL;
                cleanup_free char *buf = NULL;
                moat_error_t e = NULL;
                unsigned long long start = 0;
                int pid = 0;

                if (!valid_exec_id (de->d_name))
                        continue; /* ".", "..", a record being written */
                path = xasprintf_r ("%s/%s", dir, de->d_name);
                if (read_file (path, &buf, NULL, &e) < 0) {
                        moat_error_release (&e); /* dropped meanwhile */
                        continue;
                }
                if (sscanf (buf, "%d %llu", &pid, &start) != 2 || pid <= 0 || start == 0 ||
                    !moat_pid_alive (pid, start)) {
                        unlink (path);
                        continue;
                }
                v = xrealloc (v, (cnt + 1) * sizeof *v);
                v[cnt++] = pid;
        }
        closedir (d);
        if (cnt > 1)
                qsort (v, cnt, sizeof *v, cmp_pid);
        *pids = v;
        *n = cnt;
        return 0;
}
