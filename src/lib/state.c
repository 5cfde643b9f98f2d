/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "moat/state.h"
#include "moat/util.h"
#include "moat/json_gen.h"

int
moat_state_validate_id (const char *id, moat_error_t *err)
{
        if (id == NULL || *id == '\0')
                return moat_make_error (err, 0, "container id must not be empty");
        if (strcmp (id, ".") == 0 || strcmp (id, "..") == 0)
                return moat_make_error (err, 0, "invalid container id \"%s\"", id);
        if (strlen (id) > 1024)
                return moat_make_error (err, 0, "container id is longer than 1024 bytes");
        for (const char *p = id; *p; p++) {
                char c = *p;
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.' || c == '+')
                        continue;
                return moat_make_error (
                        err, 0, "invalid container id \"%s\": only letters, digits and _ + - . are allowed", id);
        }
        return 0;
}

static int
not_exist (const char *id, moat_error_t *err)
{
        moat_make_error (err, 0, "container \"%s\" does not exist", id);
        (*err)->errno_ = ENOENT; /* for callers; the message needs no strerror */
        return -1;
}

char *
moat_state_dir (const char *root, const char *id)
{
        return xasprintf_r ("%s/%s", root, id);
}

/* fd and path name the same file (a directory removed, or removed and
 * made again, while we waited for its lock fails this). */
static bool
same_file (int fd, const char *path)
{
        struct stat a, b;
        if (fstat (fd, &a) < 0 || stat (path, &b) < 0)
                return false;
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int
flock_retry (int fd, int op)
{
        int r;
        do
                r = flock (fd, op);
        while (r < 0 && errno == EINTR);
        return r;
}

int
moat_state_create (const char *root, const char *id, int *lock_fd, moat_error_t *err)
{
        cleanup_free char *dir = NULL;
        cleanup_free char *lock = NULL;
        cleanup_close int fd = -1;

        if (moat_state_validate_id (id, err) < 0)
                return -1;
        dir = moat_state_dir (root, id);
        /* (again if the root went meanwhile: the containerd shim removes
         * its namespace's root once it is empty) */
        for (int i = 0;; i++) {
                int e;
                if (mkdir_p (root, 0700, err) < 0)
                        return moat_error_wrap (err, "state root");
                if (mkdir (dir, 0700) == 0)
                        break;
                e = errno;
                if (e == ENOENT && i < 3)
                        continue;
                if (e == EEXIST) {
                        moat_make_error (err, 0, "container \"%s\" already exists", id);
                        (*err)->errno_ = EEXIST; /* for callers; the message needs no strerror */
                        return -1;
                }
                return moat_make_error (err, e, "mkdir %s", dir);
        }
        /* Only create makes the lock file (O_EXCL: it is ours). Another
         * command may open it and lock it first: it finds no state.json
         * and lets go, or (delete --force) removes the directory. So we
         * wait for the lock and check that the directory is still ours. */
        lock = xasprintf_r ("%s/lock", dir);
        fd = open (lock, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
                int e = errno;
                if (e == ENOENT) /* a delete --force removed it already */
                        return moat_make_error (err, 0, "container \"%s\" was deleted while it was being created", id);
                rmdir (dir); /* leave no directory behind: the id would stay taken */
                return moat_make_error (err, e, "create %s", lock);
        }
        if (flock_retry (fd, LOCK_EX) < 0) {
                int e = errno;
                unlink (lock);
                rmdir (dir);
                return moat_make_error (err, e, "lock %s", lock);
        }
        if (!same_file (fd, lock))
                return moat_make_error (err, 0, "container \"%s\" was deleted while it was being created", id);
        *lock_fd = steal_fd (&fd);
        return 0;
}

int
moat_state_lock (const char *root, const char *id, int *lock_fd, moat_error_t *err)
{
        cleanup_free char *dir = moat_state_dir (root, id);
        cleanup_free char *lock = xasprintf_r ("%s/lock", dir);

        for (;;) {
                cleanup_close int fd = open (lock, O_RDWR | O_CLOEXEC);
                if (fd < 0) {
                        /* no lock file: no container, or one whose create
                         * has not got that far (it owns the directory) */
                        if (errno == ENOENT || errno == ENOTDIR)
                                return not_exist (id, err);
                        return moat_make_error (err, errno, "open %s", lock);
                }
                if (flock_retry (fd, LOCK_EX) < 0)
                        return moat_make_error (err, errno, "lock %s", lock);
                if (same_file (fd, lock)) {
                        *lock_fd = steal_fd (&fd);
                        return 0;
                }
                /* deleted while we waited (maybe made again): look again */
        }
}

/* One of our own open files is fd's file and holds a lock on it (the
 * kernel lists the locks an open file holds in /proc/self/fdinfo). */
static bool
locked_by_us (int fd)
{
        struct stat want;
        DIR *d;
        struct dirent *de;
        bool found = false;

        if (fstat (fd, &want) < 0)
                return false;
        d = opendir ("/proc/self/fd");
        if (d == NULL)
                return false;
        while (!found && (de = readdir (d)) != NULL) {
                char path[64];
                cleanup_free char *info = NULL;
                cleanup_error moat_error_t e = NULL;
                struct stat st;
                int n;
                if (de->d_name[0] == '.')
                        continue;
                n = atoi (de->d_name);
                if (n == fd || n == dirfd (d) || fstat (n, &st) < 0)
                        continue;
                if (st.st_dev != want.st_dev || st.st_ino != want.st_ino)
                        continue;
                snprintf (path, sizeof path, "/proc/self/fdinfo/%d", n);
                if (read_file (path, &info, NULL, &e) == 0 &&
                    (strncmp (info, "lock:", 5) == 0 || strstr (info, "\nlock:")))
                        found = true;
        }
        closedir (d);
        return found;
}

/* Nobody but (maybe) this process holds <dir>/lock: a "creating" state
 * whose create is gone. */
static bool
creator_gone (const char *dir)
{
        cleanup_free char *lock = xasprintf_r ("%s/lock", dir);
        cleanup_close int fd = open (lock, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return true;
        /* shared: probes do not conflict with one another; every holder
         * takes it exclusively */
        if (flock (fd, LOCK_SH | LOCK_NB) == 0)
                return true; /* released by the close */
        return locked_by_us (fd);
}

static char *
state_json (const struct moat_state *st, const char *status, int pretty, bool internal)
{
        yajl_gen g = yajl_gen_alloc (NULL);
        const unsigned char *buf;
        size_t len;
        char *out;

        yajl_gen_config (g, yajl_gen_beautify, pretty);
        yajl_gen_map_open (g);
        moat_gen_kv (g, "ociVersion", "1.0.2");
        moat_gen_kv (g, "id", st->id);
        moat_gen_str (g, "pid");
        /* runc reports pid 0 once the container stopped */
        yajl_gen_integer (g, !internal && status && strcmp (status, "stopped") == 0 ? 0 : st->pid);
        moat_gen_kv (g, "status", status ? status : st->status);
        moat_gen_kv (g, "bundle", st->bundle);
        moat_gen_kv (g, "rootfs", st->rootfs);
        moat_gen_kv (g, "created", st->created);
        moat_gen_kv (g, "owner", "");
        moat_gen_str (g, "annotations");
        yajl_gen_map_open (g);
        for (size_t i = 0; i < st->n_annotations; i++)
                moat_gen_kv (g, st->annotation_keys[i], st->annotation_values[i]);
        yajl_gen_map_close (g);
        if (internal) {
                moat_gen_str (g, "pidStart");
                yajl_gen_integer (g, (long long)st->pid_start);
                moat_gen_kv (g, "hypervisor", st->hypervisor);
                moat_gen_str (g, "vmmPid");
                yajl_gen_integer (g, st->vmm_pid);
                moat_gen_str (g, "vmmStart");
                yajl_gen_integer (g, (long long)st->vmm_start);
                moat_gen_str (g, "vsockdPid");
                yajl_gen_integer (g, st->vsockd_pid);
                moat_gen_str (g, "vsockdStart");
                yajl_gen_integer (g, (long long)st->vsockd_start);
                moat_gen_kv (g, "vsockSocket", st->vsock_socket);
                moat_gen_kv (g, "consoleLog", st->console_log);
                moat_gen_kv (g, "cgroup", st->cgroup);
                if (st->sandbox)
                        moat_gen_kv (g, "sandbox", st->sandbox);
                if (st->share_dir)
                        moat_gen_kv (g, "shareDir", st->share_dir);
        } else
                moat_gen_kv (g, "hypervisor", st->hypervisor);
        yajl_gen_map_close (g);
        yajl_gen_get_buf (g, &buf, &len);
        out = xstrndup ((const char *)buf, len);
        yajl_gen_free (g);
        return out;
}

char *
moat_state_to_json (const struct moat_state *st, int pretty)
{
        return state_json (st, NULL, pretty, true);
}

char *
moat_state_to_oci_json (const struct moat_state *st, const char *status, int pretty)
{
        return state_json (st, status ? status : moat_state_live_status (st), pretty, false);
}

/* Start time of pid (field 22 of /proc/<pid>/stat), 0 if it does not
 * exist; *zombie set when it is a zombie (or dead). */
static unsigned long long
pid_start (pid_t pid, bool *zombie)
{
        char path[64], buf[1024];
        cleanup_close int fd = -1;
        ssize_t n;
        char *p;
        unsigned long long v = 0;

        *zombie = false;
        snprintf (path, sizeof path, "/proc/%d/stat", (int)pid);
        fd = open (path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        n = read (fd, buf, sizeof buf - 1);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        p = strrchr (buf, ')');
        if (p == NULL || p[1] != ' ')
                return 0;
        p += 2; /* field 3: state */
        *zombie = *p == 'Z' || *p == 'X';
        for (int field = 3; field < 22 && p; field++) {
                p = strchr (p, ' ');
                if (p)
                        p++;
        }
        if (p)
                v = strtoull (p, NULL, 10);
        return v;
}

unsigned long long
moat_pid_start_time (pid_t pid)
{
        bool z;
        return pid > 0 ? pid_start (pid, &z) : 0;
}

bool
moat_pid_alive (pid_t pid, unsigned long long start)
{
        bool zombie;
        unsigned long long s;
        if (pid <= 0)
                return false;
        s = pid_start (pid, &zombie);
        if (s == 0 || zombie)
                return false;
        return start == 0 || s == start;
}

const char *
moat_state_live_status (const struct moat_state *st)
{
        const char *s = st->status ? st->status : "stopped";
        /* a create killed before the container existed: its init never
         * ran, which runc calls stopped */
        if (strcmp (s, "creating") == 0 && st->dir && creator_gone (st->dir))
                return "stopped";
        if (strcmp (s, "created") == 0 || strcmp (s, "running") == 0 || strcmp (s, "paused") == 0) {
                if (!moat_pid_alive (st->pid, st->pid_start))
                        return "stopped";
                if (st->vmm_pid > 0 && !moat_pid_alive (st->vmm_pid, st->vmm_start))
                        return "stopped";
        }
        return s;
}

int
moat_state_save (const char *root, const struct moat_state *st, moat_error_t *err)
{
        cleanup_free char *dir = moat_state_dir (root, st->id);
        cleanup_free char *tmp = xasprintf_r ("%s/state.json.tmp", dir);
        cleanup_free char *path = xasprintf_r ("%s/state.json", dir);
        cleanup_free char *json = moat_state_to_json (st, 0);

        if (write_file (tmp, json, strlen (json), 0600, err) < 0)
                return -1;
        if (rename (tmp, path) < 0) {
                unlink (tmp);
                return moat_make_error (err, errno, "rename %s", path);
        }
        return 0;
}

static char *
get_str (yajl_val t, const char *key)
{
        const char *path[] = {key, NULL};
        yajl_val v = yajl_tree_get (t, path, yajl_t_string);
        return v ? xstrdup (YAJL_GET_STRING (v)) : NULL;
}

static long long
get_int (yajl_val t, const char *key)
{
        const char *path[] = {key, NULL};
        yajl_val v = yajl_tree_get (t, path, yajl_t_number);
        return v && YAJL_IS_INTEGER (v) ? YAJL_GET_INTEGER (v) : 0;
}

int
moat_state_load (const char *root, const char *id, struct moat_state **out, moat_error_t *err)
{
        cleanup_free char *dir = NULL;
        cleanup_free char *path = NULL;
        cleanup_free char *data = NULL;
        char ebuf[256] = "";
        yajl_val t, ann;
        struct moat_state *st;
        const char *ann_path[] = {"annotations", NULL};

        if (moat_state_validate_id (id, err) < 0)
                return -1;
        dir = moat_state_dir (root, id);
        path = xasprintf_r ("%s/state.json", dir);
        if (read_file (path, &data, NULL, err) < 0) {
                if (*err && (*err)->errno_ == ENOENT)
                        return not_exist (id, err);
                return -1;
        }
        t = yajl_tree_parse (data, ebuf, sizeof ebuf);
        if (t == NULL || !YAJL_IS_OBJECT (t)) {
                yajl_tree_free (t);
                return moat_make_error (err, 0, "%s: invalid state: %s", path, ebuf);
        }
        st = xzalloc (sizeof *st);
        st->id = get_str (t, "id");
        st->bundle = get_str (t, "bundle");
        st->rootfs = get_str (t, "rootfs");
        st->status = get_str (t, "status");
        st->created = get_str (t, "created");
        st->pid = get_int (t, "pid");
        st->pid_start = get_int (t, "pidStart");
        st->hypervisor = get_str (t, "hypervisor");
        st->vmm_pid = get_int (t, "vmmPid");
        st->vmm_start = get_int (t, "vmmStart");
        st->vsockd_pid = get_int (t, "vsockdPid");
        st->vsockd_start = get_int (t, "vsockdStart");
        st->cgroup = get_str (t, "cgroup");
        st->vsock_socket = get_str (t, "vsockSocket");
        st->console_log = get_str (t, "consoleLog");
        st->sandbox = get_str (t, "sandbox");
        st->share_dir = get_str (t, "shareDir");
        ann = yajl_tree_get (t, ann_path, yajl_t_object);
        if (ann) {
                size_t n = YAJL_GET_OBJECT (ann)->len;
                st->annotation_keys = xzalloc ((n + 1) * sizeof (char *));
                st->annotation_values = xzalloc ((n + 1) * sizeof (char *));
                for (size_t i = 0; i < n; i++) {
                        yajl_val v = YAJL_GET_OBJECT (ann)->values[i];
                        if (!YAJL_IS_STRING (v))
                                continue;
                        st->annotation_keys[st->n_annotations] = xstrdup (YAJL_GET_OBJECT (ann)->keys[i]);
                        st->annotation_values[st->n_annotations++] = xstrdup (YAJL_GET_STRING (v));
                }
        }
        yajl_tree_free (t);
        if (st->id == NULL)
                st->id = xstrdup (id);
        st->dir = steal_pointer (&dir);
        *out = st;
        return 0;
}

void
moat_state_free (struct moat_state *st)
{
        if (st == NULL)
                return;
        moat_state_clear (st);
        free (st);
}

void
moat_state_clear (struct moat_state *st)
{
        free (st->id);
        free (st->bundle);
        free (st->rootfs);
        free (st->status);
        free (st->created);
        strv_free (st->annotation_keys);
        strv_free (st->annotation_values);
        free (st->hypervisor);
        free (st->vsock_socket);
        free (st->console_log);
        free (st->cgroup);
        free (st->sandbox);
        free (st->share_dir);
        free (st->dir);
        memset (st, 0, sizeof *st);
}

int
moat_state_remove (const char *root, const char *id, moat_error_t *err)
{
        cleanup_free char *dir = moat_state_dir (root, id);
        if (rm_rf (dir, err) < 0)
                return moat_error_wrap (err, "remove state of %s", id);
        return 0;
}

char *
moat_state_now (void)
{
        struct timespec ts;
        struct tm tm;
        char buf[64];
        clock_gettime (CLOCK_REALTIME, &ts);
        gmtime_r (&ts.tv_sec, &tm);
        strftime (buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        return xasprintf_r ("%s.%09ldZ", buf, ts.tv_nsec);
}
