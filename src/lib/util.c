/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "moat/util.h"

void
moat_cleanup_freep (void *p)
{
        void **pp = p;
        free (*pp);
        *pp = NULL;
}

void
moat_cleanup_closep (int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close (*fd);
                errno = saved;
        }
        *fd = -1;
}

void
moat_cleanup_fclosep (FILE **f)
{
        if (*f)
                fclose (*f);
        *f = NULL;
}

void
moat_cleanup_strv (char ***v)
{
        strv_free (*v);
        *v = NULL;
}

void *
xmalloc (size_t n)
{
        void *p = malloc (n ? n : 1);
        if (p == NULL)
                abort ();
        return p;
}

void *
xzalloc (size_t n)
{
        void *p = calloc (1, n ? n : 1);
        if (p == NULL)
                abort ();
        return p;
}

void *
xrealloc (void *p, size_t n)
{
        p = realloc (p, n ? n : 1);
        if (p == NULL)
                abort ();
        return p;
}

char *
xstrdup (const char *s)
{
        char *r;
        if (s == NULL)
                return NULL;
        r = strdup (s);
        if (r == NULL)
                abort ();
        return r;
}

char *
xstrndup (const char *s, size_t n)
{
        char *r = strndup (s, n);
        if (r == NULL)
                abort ();
        return r;
}

int
xasprintf (char **out, const char *fmt, ...)
{
        va_list ap;
        int r;
        va_start (ap, fmt);
        r = vasprintf (out, fmt, ap);
        va_end (ap);
        if (r < 0)
                abort ();
        return r;
}

char *
xasprintf_r (const char *fmt, ...)
{
        va_list ap;
        char *out;
        va_start (ap, fmt);
        if (vasprintf (&out, fmt, ap) < 0)
                abort ();
        va_end (ap);
        return out;
}

char *
moat_printable (const char *s, ssize_t len, size_t max)
{
        size_t n = s == NULL ? 0 : len < 0 ? strlen (s) : (size_t)len;
        size_t keep = n < max ? n : max, o = 0;
        char *out = xmalloc (keep * 4 + 48);

        for (size_t i = 0; i < keep; i++) {
                unsigned char c = s[i];
                if ((c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t')
                        out[o++] = c;
                else
                        o += sprintf (out + o, "\\x%02x", c);
        }
        if (keep < n)
                o += sprintf (out + o, "... (%zu more bytes)", n - keep);
        out[o] = '\0';
        return out;
}

void
strv_free (char **v)
{
        if (v == NULL)
                return;
        for (char **p = v; *p; p++)
                free (*p);
        free (v);
}

size_t
strv_len (char *const *v)
{
        size_t n = 0;
        while (v && v[n])
                n++;
        return n;
}

ssize_t
read_all (int fd, void *buf, size_t n)
{
        size_t done = 0;
        while (done < n) {
                ssize_t r = read (fd, (char *)buf + done, n - done);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -1;
                if (r == 0)
                        break;
                done += r;
        }
        return done;
}

ssize_t
write_all (int fd, const void *buf, size_t n)
{
        size_t done = 0;
        while (done < n) {
                ssize_t r = write (fd, (const char *)buf + done, n - done);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -1;
                done += r;
        }
        return done;
}

ssize_t
send_all (int fd, const void *buf, size_t n)
{
        size_t done = 0;
        while (done < n) {
                ssize_t r = send (fd, (const char *)buf + done, n - done, MSG_NOSIGNAL);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -1;
                done += r;
        }
        return done;
}

int
read_file (const char *path, char **out, size_t *len, moat_error_t *err)
{
        cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
        cleanup_free char *buf = NULL;
        size_t cap = 4096, n = 0;

        if (fd < 0)
                return moat_make_error (err, errno, "open %s", path);
        buf = xmalloc (cap);
        for (;;) {
                ssize_t r;
                if (n + 1 >= cap) {
                        cap *= 2;
                        buf = xrealloc (buf, cap);
                }
                r = read (fd, buf + n, cap - n - 1);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return moat_make_error (err, errno, "read %s", path);
                if (r == 0)
                        break;
                n += r;
        }
        buf[n] = '\0';
        if (len)
                *len = n;
        *out = steal_pointer (&buf);
        return 0;
}

int
write_file (const char *path, const char *data, size_t len, int mode, moat_error_t *err)
{
        cleanup_close int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return moat_make_error (err, errno, "open %s", path);
        if (write_all (fd, data, len) < 0)
                return moat_make_error (err, errno, "write %s", path);
        return 0;
}

int
mkdir_p (const char *path, int mode, moat_error_t *err)
{
        cleanup_free char *p = xstrdup (path);
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdir (p, mode) < 0 && errno != EEXIST)
                        return moat_make_error (err, errno, "mkdir %s", p);
                *s = '/';
        }
        if (mkdir (p, mode) < 0 && errno != EEXIST)
                return moat_make_error (err, errno, "mkdir %s", p);
        return 0;
}

/* Which filesystem mount a file belongs to, to stop rm_rf at mount points.
 * The mount ID (statx STATX_MNT_ID, Linux 5.8) is exact. st_dev is not: on
 * an overlayfs whose layers sit on different filesystems, directories report
 * the overlay's device and other files their layer's. Kernels without mount
 * IDs fall back to st_dev (the id is then the device number). */
struct mount_key {
        bool by_mnt_id;
        uint64_t id;
};

static int
mount_key_at (int dirfd, const char *name, struct mount_key *k, mode_t *mode)
{
        struct statx stx;
        if (statx (dirfd, name, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_MNT_ID, &stx) == 0) {
                *mode = stx.stx_mode;
                k->by_mnt_id = (stx.stx_mask & STATX_MNT_ID) != 0;
                k->id = k->by_mnt_id ? stx.stx_mnt_id : makedev (stx.stx_dev_major, stx.stx_dev_minor);
                return 0;
        }
        if (errno != ENOSYS)
                return -1;
        struct stat st;
        if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -1;
        *mode = st.st_mode;
        k->by_mnt_id = false;
        k->id = st.st_dev;
        return 0;
}

static bool
same_mount (const struct mount_key *a, const struct mount_key *b)
{
        return a->by_mnt_id == b->by_mnt_id && a->id == b->id;
}

static int
rm_rf_at (int parentfd, const char *name, const struct mount_key *top, moat_error_t *err)
{
        struct mount_key k;
        mode_t mode;
        if (mount_key_at (parentfd, name, &k, &mode) < 0) {
                if (errno == ENOENT)
                        return 0;
                return moat_make_error (err, errno, "stat %s", name);
        }
        if (S_ISDIR (mode)) {
                int fd;
                DIR *d;
                struct dirent *de;
                if (!same_mount (&k, top))
                        return moat_make_error (err, EBUSY,
                                                "refusing to remove %s: another filesystem is mounted there", name);
                fd = openat (parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return moat_make_error (err, errno, "open %s", name);
                d = fdopendir (fd);
                if (d == NULL) {
                        close (fd);
                        return moat_make_error (err, errno, "opendir %s", name);
                }
                while ((de = readdir (d)) != NULL) {
                        if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
                                continue;
                        if (rm_rf_at (dirfd (d), de->d_name, top, err) < 0) {
                                closedir (d);
                                return moat_error_wrap (err, "%s", name);
                        }
                }
                closedir (d);
                if (unlinkat (parentfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                        return moat_make_error (err, errno, "rmdir %s", name);
                return 0;
        }
        if (!same_mount (&k, top))
                return moat_make_error (err, EBUSY, "refusing to remove %s: a file is mounted there", name);
        if (unlinkat (parentfd, name, 0) < 0 && errno != ENOENT)
                return moat_make_error (err, errno, "unlink %s", name);
        return 0;
}

int
rm_rf (const char *path, moat_error_t *err)
{
        struct mount_key top;
        mode_t mode;
        if (mount_key_at (AT_FDCWD, path, &top, &mode) < 0) {
                if (errno == ENOENT)
                        return 0;
                return moat_make_error (err, errno, "stat %s", path);
        }
        return rm_rf_at (AT_FDCWD, path, &top, err);
}

int
set_cloexec (int fd, bool on)
{
        int fl = fcntl (fd, F_GETFD);
        if (fl < 0)
                return -1;
        return fcntl (fd, F_SETFD, on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC);
}

int
set_nonblock (int fd, bool on)
{
        int fl = fcntl (fd, F_GETFL);
        if (fl < 0)
                return -1;
        return fcntl (fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

int64_t
now_ms (void)
{
        struct timespec ts;
        clock_gettime (CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
