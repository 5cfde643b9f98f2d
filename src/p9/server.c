/* SPDX-License-Identifier: Apache-2.0 */
/* 9P2000.L server confined to one shared directory. See moat/p9.h.
 *
 * Confinement rules, applied everywhere:
 *  - a name from the wire is a single component: not empty, no '/', no NUL,
 *    at most NAME_MAX bytes; "." and ".." are accepted only by Twalk;
 *  - it is resolved relative to a fid's fd with openat2(RESOLVE_BENEATH |
 *    RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) and O_NOFOLLOW (a plain
 *    openat(O_NOFOLLOW) of the single component where openat2 is missing);
 *    *at() calls that create, remove or rename take the fid's fd and the
 *    validated name;
 *  - ".." from the share root is the share root; from anywhere else it is
 *    the kernel's parent of the fid's directory, which is inside the share;
 *  - symlinks are never followed here: walking onto one yields a fid for
 *    the link itself, walking through it fails with ENOTDIR, and the guest
 *    kernel resolves the text Treadlink returns;
 *  - nothing but a regular file or a directory is ever opened for I/O: a
 *    fifo would block the worker until someone opens its other end, a
 *    device node would be opened on the host. Tlopen reopens the fid's fd
 *    through /proc/self/fd (which names that exact inode, whose type was
 *    checked); Tlcreate checks an existing entry with fstatat before it
 *    opens it; and both open with O_NONBLOCK, check the type of what they
 *    got with fstat and only then clear O_NONBLOCK.
 *
 * What a guest may make (it is root in its VM, but the files are the
 * host's): regular files, directories, symlinks, fifos and sockets, never
 * device nodes; and never a setuid or setgid file. Creation and chmod keep
 * the permission bits and the sticky bit of directories only, so S_ISUID
 * and S_ISGID (and S_ISVTX on a non-directory) are dropped; a regular file
 * that already has them (from the image) loses them when the guest opens it
 * for writing, truncates it or changes its owner, as the kernel does for an
 * unprivileged writer. Ownership is the guest's to choose (containers
 * chown their files). See docs/architecture.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "moat/p9.h"
#include "moat/util.h"

#define FID_BUCKETS 256
#define QID_DIR 0x80
#define QID_SYMLINK 0x02
#define QID_FILE 0x00

/* Tsetattr valid bits */
#define SETATTR_MODE 0x1
#define SETATTR_UID 0x2
#define SETATTR_GID 0x4
#define SETATTR_SIZE 0x8
#define SETATTR_ATIME 0x10
#define SETATTR_MTIME 0x20
#define SETATTR_ATIME_SET 0x80
#define SETATTR_MTIME_SET 0x100
#define GETATTR_BASIC 0x7ffULL

struct fid {
        uint32_t id;
        int fd;      /* O_PATH, or a dup of open_fd */
        int open_fd; /* -1 until Tlopen/Tlcreate */
        uint32_t uid;
        struct fid *next;
};

struct moat_p9_server {
        int root_fd;
        dev_t root_dev;
        ino_t root_ino;
        uint32_t msize;
        bool versioned;
        int have_openat2; /* -1 unknown, 0 no (ENOSYS), 1 yes */
        struct fid *fids[FID_BUCKETS];
        size_t nfids;
};

/* ---- wire encoding ---- */

struct rd {
        const uint8_t *p;
        size_t len, off;
        bool bad;
};

struct wr {
        uint8_t *p;
        size_t cap, off;
        bool full;
};

static const uint8_t *
rd_take (struct rd *r, size_t n)
{
        if (r->bad || n > r->len - r->off) {
                r->bad = true;
                return NULL;
        }
        const uint8_t *q = r->p + r->off;
        r->off += n;
        return q;
}

static uint64_t
rd_le (struct rd *r, int n)
{
        const uint8_t *q = rd_take (r, n);
        uint64_t v = 0;
        if (q == NULL)
                return 0;
        for (int i = n - 1; i >= 0; i--)
                v = (v << 8) | q[i];
        return v;
}
#define rd8(r) ((uint8_t)rd_le (r, 1))
#define rd16(r) ((uint16_t)rd_le (r, 2))
#define rd32(r) ((uint32_t)rd_le (r, 4))
#define rd64(r) (rd_le (r, 8))

/* Reads a string into buf (size bytes including NUL). A string longer than
 * the message, longer than buf, or holding a NUL marks the reader bad. */
static void
rd_str (struct rd *r, char *buf, size_t size)
{
        uint16_t n = rd16 (r);
        const uint8_t *q = rd_take (r, n);
        buf[0] = '\0';
        if (q == NULL)
                return;
        if (n >= size || memchr (q, '\0', n) != NULL) {
                r->bad = true;
                return;
        }
        memcpy (buf, q, n);
        buf[n] = '\0';
}

static uint8_t *
wr_take (struct wr *w, size_t n)
{
        if (w->full || n > w->cap - w->off) {
                w->full = true;
                return NULL;
        }
        uint8_t *q = w->p + w->off;
        w->off += n;
        return q;
}

static void
wr_le (struct wr *w, uint64_t v, int n)
{
        uint8_t *q = wr_take (w, n);
        for (int i = 0; q && i < n; i++, v >>= 8)
                q[i] = v & 0xff;
}
#define wr8(w, v) wr_le (w, v, 1)
#define wr16(w, v) wr_le (w, v, 2)
#define wr32(w, v) wr_le (w, v, 4)
#define wr64(w, v) wr_le (w, v, 8)

static void
wr_str (struct wr *w, const char *s)
{
        size_t n = strlen (s);
        if (n > UINT16_MAX) {
                w->full = true;
                return;
        }
        wr16 (w, n);
        uint8_t *q = wr_take (w, n);
        if (q)
                memcpy (q, s, n);
}

struct qid {
        uint8_t type;
        uint32_t version;
        uint64_t path;
};

static struct qid
qid_of (const struct stat *st)
{
        struct qid q = {QID_FILE, 0, (uint64_t)st->st_ino ^ ((uint64_t)st->st_dev << 48)};
        if (S_ISDIR (st->st_mode))
                q.type = QID_DIR;
        else if (S_ISLNK (st->st_mode))
                q.type = QID_SYMLINK;
        return q;
}

static void
wr_qid (struct wr *w, struct qid q)
{
        wr8 (w, q.type);
        wr32 (w, q.version);
        wr64 (w, q.path);
}

/* ---- fids ---- */

static struct fid *
fid_get (struct moat_p9_server *s, uint32_t id)
{
        for (struct fid *f = s->fids[id % FID_BUCKETS]; f; f = f->next)
                if (f->id == id)
                        return f;
        return NULL;
}

static void
fid_close (struct fid *f)
{
        moat_cleanup_closep (&f->fd);
        moat_cleanup_closep (&f->open_fd);
        free (f);
}

/* Takes ownership of fd (closed on failure). */
static int
fid_add (struct moat_p9_server *s, uint32_t id, int fd, uint32_t uid)
{
        if (id == MOAT_P9_NOFID || fid_get (s, id)) {
                close (fd);
                return -EBADF;
        }
        if (s->nfids >= MOAT_P9_MAX_FIDS) {
                close (fd);
                return -ENFILE;
        }
        struct fid *f = xzalloc (sizeof *f);
        f->id = id;
        f->fd = fd;
        f->open_fd = -1;
        f->uid = uid;
        f->next = s->fids[id % FID_BUCKETS];
        s->fids[id % FID_BUCKETS] = f;
        s->nfids++;
        return 0;
}

static int
fid_del (struct moat_p9_server *s, uint32_t id)
{
        for (struct fid **pp = &s->fids[id % FID_BUCKETS]; *pp; pp = &(*pp)->next) {
                if ((*pp)->id == id) {
                        struct fid *f = *pp;
                        *pp = f->next;
                        fid_close (f);
                        s->nfids--;
                        return 0;
                }
        }
        return -EBADF;
}

void
moat_p9_reset (struct moat_p9_server *s)
{
        for (int i = 0; i < FID_BUCKETS; i++) {
                while (s->fids[i]) {
                        struct fid *f = s->fids[i];
                        s->fids[i] = f->next;
                        fid_close (f);
                }
        }
        s->nfids = 0;
        s->versioned = false;
        s->msize = MOAT_P9_MAX_MSIZE;
}

/* ---- confined lookups ---- */

static bool
name_ok (const char *name)
{
        size_t n = strlen (name);
        return n > 0 && n <= NAME_MAX && strchr (name, '/') == NULL && strcmp (name, ".") != 0 &&
               strcmp (name, "..") != 0;
}

static int
proc_fd_path (int fd, char *buf, size_t size)
{
        snprintf (buf, size, "/proc/self/fd/%d", fd);
        return 0;
}

/* Opens one validated component below dirfd as O_PATH without following
 * anything. Returns the fd or -errno. */
static int
lookup_one (struct moat_p9_server *s, int dirfd, const char *name)
{
        if (s->have_openat2 != 0) {
                struct open_how how = {
                        .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
                        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
                };
                long fd = syscall (SYS_openat2, dirfd, name, &how, sizeof how);
                if (fd >= 0) {
                        s->have_openat2 = 1;
                        return fd;
                }
                if (errno != ENOSYS)
                        return -errno;
                s->have_openat2 = 0;
        }
        /* Same meaning for a single component without '/', "." or "..". */
        int fd = openat (dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

static bool
is_root (struct moat_p9_server *s, const struct stat *st)
{
        return st->st_dev == s->root_dev && st->st_ino == s->root_ino;
}

/* One walk step from dirfd: ".", "..", or a name. Returns a new fd or -errno. */
static int
walk_step (struct moat_p9_server *s, int dirfd, const char *name)
{
        struct stat st;
        if (fstatat (dirfd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (strcmp (name, ".") == 0 || strcmp (name, "..") == 0) {
                if (!S_ISDIR (st.st_mode))
                        return -ENOTDIR;
                if (strcmp (name, ".") == 0 || is_root (s, &st)) {
                        int fd = fcntl (dirfd, F_DUPFD_CLOEXEC, 3);
                        return fd < 0 ? -errno : fd;
                }
                int fd = openat (dirfd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
                return fd < 0 ? -errno : fd;
        }
        if (!name_ok (name))
                return -EINVAL;
        if (!S_ISDIR (st.st_mode))
                return -ENOTDIR;
        return lookup_one (s, dirfd, name);
}

static int
stat_fd (int fd, struct stat *st)
{
        return fstatat (fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* The mode bits a guest may give an entry of type fmt: the permission bits,
 * and the sticky bit on a directory. Never setuid or setgid. */
static mode_t
guest_mode (mode_t fmt, uint32_t mode)
{
        return mode & (S_ISDIR (fmt) ? 01777 : 0777);
}

/* Drops S_ISUID and S_ISGID from the regular file open as fd (its stat in
 * st), before the guest changes its contents or owner. */
static int
drop_setid (int fd, const struct stat *st)
{
        if (!S_ISREG (st->st_mode) || !(st->st_mode & (S_ISUID | S_ISGID)))
                return 0;
        char path[64];
        proc_fd_path (fd, path, sizeof path);
        return chmod (path, st->st_mode & 0777) < 0 ? -errno : 0;
}

/* Looks name up below dirfd for the reply qid. */
static int
qid_at (struct moat_p9_server *s, int dirfd, const char *name, struct qid *q)
{
        struct stat st;
        if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        *q = qid_of (&st);
        return 0;
}

/* Gives a newly created entry the attaching user's uid and the gid asked
 * for, when we can (as root); otherwise it keeps ours. */
static void
set_owner (int dirfd, const char *name, uint32_t uid, uint32_t gid)
{
        if (geteuid () != 0)
                return;
        if (fchownat (dirfd, name, uid == MOAT_P9_NOFID ? (uid_t)-1 : uid, gid == MOAT_P9_NOFID ? (gid_t)-1 : gid,
                      AT_SYMLINK_NOFOLLOW) < 0)
                (void)0; /* best effort */
}

/* ---- requests ---- */

struct req {
        struct moat_p9_server *s;
        struct rd r;
        struct wr w;
};

/* A fid that must be a directory: the parent in create/mkdir/... */
static int
dir_fid (struct req *q, uint32_t id, struct fid **out)
{
        struct fid *f = fid_get (q->s, id);
        struct stat st;
        if (f == NULL)
                return -EBADF;
        int r = stat_fd (f->fd, &st);
        if (r < 0)
                return r;
        if (!S_ISDIR (st.st_mode))
                return -ENOTDIR;
        *out = f;
        return 0;
}

/* The parent directory fid and the new entry's name of a create-like
 * request, once the request is parsed. */
static int
dir_fid_name (struct req *q, uint32_t dfid, const char *name, struct fid **out)
{
        if (q->r.bad || !name_ok (name))
                return -EINVAL;
        return dir_fid (q, dfid, out);
}

/* A fid opened by Tlopen/Tlcreate. */
static int
open_fid (struct req *q, uint32_t id, struct fid **out)
{
        struct fid *f = fid_get (q->s, id);
        if (f == NULL || f->open_fd < 0)
                return -EBADF;
        *out = f;
        return 0;
}

/* A fid and what it stands for. */
static int
stat_fid (struct req *q, uint32_t id, struct fid **out, struct stat *st)
{
        struct fid *f = fid_get (q->s, id);
        if (f == NULL)
                return -EBADF;
        *out = f;
        return stat_fd (f->fd, st);
}

/* Reply of Tmkdir, Tsymlink, Tmknod: gives the new entry name below d its
 * owner and answers its qid. */
static int
reply_new_entry (struct req *q, struct fid *d, const char *name, uint32_t gid)
{
        struct qid qd = {0};
        set_owner (d->fd, name, d->uid, gid);
        int r = qid_at (q->s, d->fd, name, &qd);
        if (r < 0)
                return r;
        wr_qid (&q->w, qd);
        return 0;
}

static void
put_le32 (uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (v >> (8 * i)) & 0xff;
}

/* Reserves the count[4] field of Rread/Rreaddir (filled in later with
 * put_le32) and clamps *count to the room left after it. NULL if there is
 * no room. */
static uint8_t *
wr_count (struct wr *w, uint32_t *count)
{
        size_t room = w->cap - w->off;
        if (room < 4)
                return NULL;
        if (*count > room - 4)
                *count = room - 4;
        return wr_take (w, 4);
}

static int
h_version (struct req *q)
{
        char version[32];
        uint32_t msize = rd32 (&q->r);
        rd_str (&q->r, version, sizeof version);
        if (q->r.bad)
                return -EINVAL;
        if (msize < MOAT_P9_MIN_MSIZE)
                return -EINVAL;
        moat_p9_reset (q->s);
        if (msize > MOAT_P9_MAX_MSIZE)
                msize = MOAT_P9_MAX_MSIZE;
        bool dotl = strcmp (version, "9P2000.L") == 0;
        q->s->msize = msize;
        q->s->versioned = dotl;
        wr32 (&q->w, msize);
        wr_str (&q->w, dotl ? "9P2000.L" : "unknown");
        return 0;
}

static int
h_attach (struct req *q)
{
        char uname[256], aname[256];
        uint32_t fid = rd32 (&q->r);
        uint32_t afid = rd32 (&q->r);
        rd_str (&q->r, uname, sizeof uname);
        rd_str (&q->r, aname, sizeof aname);
        uint32_t n_uname = rd32 (&q->r);
        if (q->r.bad)
                return -EINVAL;
        if (afid != MOAT_P9_NOFID)
                return -EOPNOTSUPP;
        if (aname[0] && strcmp (aname, "/") != 0)
                return -ENOENT;
        int fd = fcntl (q->s->root_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        struct stat st;
        int r = stat_fd (fd, &st);
        if (r < 0) {
                close (fd);
                return r;
        }
        r = fid_add (q->s, fid, fd, n_uname);
        if (r < 0)
                return r;
        wr_qid (&q->w, qid_of (&st));
        return 0;
}

static int
h_walk (struct req *q)
{
        char name[NAME_MAX + 1];
        uint32_t fid = rd32 (&q->r);
        uint32_t newfid = rd32 (&q->r);
        uint16_t n = rd16 (&q->r);
        if (q->r.bad)
                return -EINVAL;
        if (n > MOAT_P9_MAX_WALK)
                return -E2BIG;
        struct fid *f = fid_get (q->s, fid);
        if (f == NULL)
                return -EBADF;
        if (newfid != fid && fid_get (q->s, newfid))
                return -EBADF;
        /* Parse every name before touching the file system. */
        char names[MOAT_P9_MAX_WALK][NAME_MAX + 1];
        for (uint16_t i = 0; i < n; i++) {
                rd_str (&q->r, name, sizeof name);
                if (q->r.bad)
                        return -EINVAL;
                memcpy (names[i], name, sizeof name);
        }
        cleanup_close int cur = fcntl (f->fd, F_DUPFD_CLOEXEC, 3);
        if (cur < 0)
                return -errno;
        struct qid qids[MOAT_P9_MAX_WALK];
        uint16_t done = 0;
        for (; done < n; done++) {
                int next = walk_step (q->s, cur, names[done]);
                if (next < 0) {
                        if (done == 0)
                                return next;
                        break;
                }
                close (cur);
                cur = next;
                struct stat st;
                int r = stat_fd (cur, &st);
                if (r < 0)
                        return r;
                qids[done] = qid_of (&st);
        }
        if (done == n) {
                if (newfid == fid) {
                        close (f->fd);
                        moat_cleanup_closep (&f->open_fd);
                        f->fd = steal_fd (&cur);
                } else {
                        int r = fid_add (q->s, newfid, steal_fd (&cur), f->uid);
                        if (r < 0)
                                return r;
                }
        }
        wr16 (&q->w, done);
        for (uint16_t i = 0; i < done; i++)
                wr_qid (&q->w, qids[i]);
        return 0;
}

/* Linux open flags the guest may pass on; the rest (O_CREAT, O_EXCL,
 * O_NOCTTY, FASYNC, O_DIRECT, O_NOFOLLOW...) are ours to decide. */
#define OPEN_FLAGS_KEPT (O_ACCMODE | O_TRUNC | O_APPEND | O_DSYNC | O_SYNC | O_NOATIME | O_DIRECTORY)

/* Finishes an open made with O_NONBLOCK: fails with EPERM (and closes fd)
 * unless it is a regular file or, if dir_ok, a directory; else clears
 * O_NONBLOCK and fills st. */
static int
check_opened (int fd, bool dir_ok, struct stat *st)
{
        int r = fstat (fd, st) < 0 ? -errno : 0;
        if (r == 0 && !S_ISREG (st->st_mode) && !(dir_ok && S_ISDIR (st->st_mode)))
                r = -EPERM;
        int fl = r == 0 ? fcntl (fd, F_GETFL) : 0;
        if (r == 0 && (fl < 0 || fcntl (fd, F_SETFL, fl & ~O_NONBLOCK) < 0))
                r = -errno;
        if (r < 0)
                close (fd);
        return r < 0 ? r : fd;
}

/* Opens the inode fd (O_PATH) stands for: a regular file or a directory. */
static int
reopen (int fd, int flags)
{
        char path[64];
        struct stat st;
        proc_fd_path (fd, path, sizeof path);
        int r = open (path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        return r < 0 ? -errno : check_opened (r, true, &st);
}

static int
h_lopen (struct req *q)
{
        uint32_t fid = rd32 (&q->r);
        uint32_t flags = rd32 (&q->r);
        if (q->r.bad)
                return -EINVAL;
        struct fid *f = fid_get (q->s, fid);
        if (f == NULL)
                return -EBADF;
        if (f->open_fd >= 0)
                return -EBADF;
        struct stat st;
        int r = stat_fd (f->fd, &st);
        if (r < 0)
                return r;
        int oflags = flags & OPEN_FLAGS_KEPT;
        if (S_ISLNK (st.st_mode))
                return -ELOOP;
        if (S_ISDIR (st.st_mode)) {
                if ((oflags & O_ACCMODE) != O_RDONLY)
                        return -EISDIR;
                oflags = O_RDONLY | O_DIRECTORY;
        } else if (!S_ISREG (st.st_mode)) {
                return -EPERM; /* device nodes, fifos, sockets are not opened on the host */
        } else if (oflags & O_DIRECTORY) {
                return -ENOTDIR;
        }
        int fd = reopen (f->fd, oflags);
        if (fd < 0)
                return fd;
        if ((oflags & O_ACCMODE) != O_RDONLY || (oflags & O_TRUNC)) {
                r = drop_setid (fd, &st);
                if (r < 0) {
                        close (fd);
                        return r;
                }
        }
        f->open_fd = fd;
        wr_qid (&q->w, qid_of (&st));
        wr32 (&q->w, 0);
        return 0;
}

static int
h_lcreate (struct req *q)
{
        char name[NAME_MAX + 1];
        uint32_t fid = rd32 (&q->r);
        rd_str (&q->r, name, sizeof name);
        uint32_t flags = rd32 (&q->r);
        uint32_t mode = rd32 (&q->r);
        uint32_t gid = rd32 (&q->r);
        struct fid *f;
        int r = dir_fid_name (q, fid, name, &f);
        if (r < 0)
                return r;
        if (f->open_fd >= 0)
                return -EBADF;
        int oflags = (flags & (OPEN_FLAGS_KEPT & ~O_DIRECTORY)) | (flags & O_EXCL) | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
                     O_NOCTTY | O_NONBLOCK;
        struct stat st;
        bool existed = false;
        /* Without O_EXCL an existing entry would be opened: look at it
         * first (a fifo would block the open, a device would be opened). */
        if (!(flags & O_EXCL)) {
                if (fstatat (f->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                        existed = true;
                        if (S_ISDIR (st.st_mode))
                                return -EISDIR;
                        if (S_ISLNK (st.st_mode))
                                return -ELOOP;
                        if (!S_ISREG (st.st_mode))
                                return -EPERM;
                } else if (errno != ENOENT) {
                        return -errno;
                }
        }
        int fd = openat (f->fd, name, oflags, guest_mode (S_IFREG, mode));
        if (fd < 0)
                return -errno;
        /* The same check on what was opened: the entry may have changed. */
        fd = check_opened (fd, false, &st);
        if (fd < 0)
                return fd;
        /* an existing file, opened to be written */
        r = (oflags & O_ACCMODE) != O_RDONLY || (oflags & O_TRUNC) ? drop_setid (fd, &st) : 0;
        if (r < 0) {
                close (fd);
                return r;
        }
        if (!existed) /* an existing file keeps its owner */
                set_owner (f->fd, name, f->uid, gid);
        int pathfd = fcntl (fd, F_DUPFD_CLOEXEC, 3);
        if (pathfd < 0) {
                r = -errno;
                close (fd);
                return r;
        }
        /* The fid now stands for the new, open file. */
        close (f->fd);
        f->fd = pathfd;
        f->open_fd = fd;
        wr_qid (&q->w, qid_of (&st));
        wr32 (&q->w, 0);
        return 0;
}

static int
h_read (struct req *q)
{
        uint32_t fid = rd32 (&q->r);
        uint64_t off = rd64 (&q->r);
        uint32_t count = rd32 (&q->r);
        if (q->r.bad)
                return -EINVAL;
        struct fid *f;
        int r = open_fid (q, fid, &f);
        if (r < 0)
                return r;
        if (off > INT64_MAX)
                return -EINVAL;
        uint8_t *cnt = wr_count (&q->w, &count);
        if (cnt == NULL)
                return -ENOBUFS;
        ssize_t n;
        do
                n = pread (f->open_fd, q->w.p + q->w.off, count, off);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        q->w.off += n;
        put_le32 (cnt, n);
        return 0;
}

static int
h_write (struct req *q)
{
        uint32_t fid = rd32 (&q->r);
        uint64_t off = rd64 (&q->r);
        uint32_t count = rd32 (&q->r);
        const uint8_t *data = rd_take (&q->r, count); /* count may not exceed the message */
        if (q->r.bad)
                return -EINVAL;
        struct fid *f;
        int r = open_fid (q, fid, &f);
        if (r < 0)
                return r;
        if (off > INT64_MAX)
                return -EINVAL;
        ssize_t n;
        do
                n = pwrite (f->open_fd, data, count, off);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        wr32 (&q->w, n);
        return 0;
}

static int
h_clunk (struct req *q)
{
        uint32_t fid = rd32 (&q->r);
        if (q->r.bad)
                return -EINVAL;
        return fid_del (q->s, fid);
}

static int
h_remove (struct req *q)
{
        /* 9P2000.L clients use Tunlinkat; Tremove still clunks the fid. */
        uint32_t fid = rd32 (&q->r);
        if (q->r.bad)
                return -EINVAL;
        int r = fid_del (q->s, fid);
        return r < 0 ? r : -EOPNOTSUPP;
}

static int
h_getattr (struct req *q)
{
        uint32_t fid = rd32 (&q->r);
        (void)rd64 (&q->r); /* request mask: we always answer the basic set */
        if (q->r.bad)
                return -EINVAL;
        struct fid *f;
        struct stat st;
        int r = stat_fid (q, fid, &f, &st);
        if (r < 0)
                return r;
        wr64 (&q->w, GETATTR_BASIC);
        wr_qid (&q->w, qid_of (&st));
        wr32 (&q->w, st.st_mode);
        wr32 (&q->w, st.st_uid);
        wr32 (&q->w, st.st_gid);
        wr64 (&q->w, st.st_nlink);
        wr64 (&q->w, st.st_rdev);
        wr64 (&q->w, st.st_size);
        wr64 (&q->w, st.st_blksize);
        wr64 (&q->w, st.st_blocks);
        wr64 (&q->w, st.st_atim.tv_sec);
        wr64 (&q->w, st.st_atim.tv_nsec);
        wr64 (&q->w, st.st_mtim.tv_sec);
        wr64 (&q->w, st.st_mtim.tv_nsec);
        wr64 (&q->w, st.st_ctim.tv_sec);
        wr64 (&q->w, st.st_ctim.tv_nsec);
        wr64 (&q->w, 0); /* btime */
        wr64 (&q->w, 0);
        wr64 (&q->w, 0); /* gen */
        wr64 (&q->w, 0); /* data_version */
        return 0;
}

static int
h_setattr (struct req *q)
{
        uint32_t fid = rd32 (&q->r);
        uint32_t valid = rd32 (&q->r);
        uint32_t mode = rd32 (&q->r);
        uint32_t uid = rd32 (&q->r);
        uint32_t gid = rd32 (&q->r);
        uint64_t size = rd64 (&q->r);
        uint64_t atime_sec = rd64 (&q->r), atime_nsec = rd64 (&q->r);
        uint64_t mtime_sec = rd64 (&q->r), mtime_nsec = rd64 (&q->r);
        if (q->r.bad)
                return -EINVAL;
        struct fid *f;
        struct stat st;
        int r = stat_fid (q, fid, &f, &st);
        if (r < 0)
                return r;
        char path[64];
        proc_fd_path (f->fd, path, sizeof path);
        bool link = S_ISLNK (st.st_mode);
        if (valid & SETATTR_MODE) {
                if (link)
                        return -EOPNOTSUPP;
                if (chmod (path, guest_mode (st.st_mode, mode)) < 0)
                        return -errno;
                st.st_mode = (st.st_mode & S_IFMT) | guest_mode (st.st_mode, mode);
        }
        if (valid & (SETATTR_UID | SETATTR_GID)) {
                uid_t u = (valid & SETATTR_UID) ? (uid_t)uid : (uid_t)-1;
                gid_t g = (valid & SETATTR_GID) ? (gid_t)gid : (gid_t)-1;
                /* The kernel drops the bits on chown too; not left to it. */
                if ((r = drop_setid (f->fd, &st)) < 0)
                        return r;
                if (fchownat (f->fd, "", u, g, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;
        }
        if (valid & SETATTR_SIZE) {
                if (S_ISDIR (st.st_mode))
                        return -EISDIR;
                if (!S_ISREG (st.st_mode))
                        return -EINVAL;
                if (size > INT64_MAX)
                        return -EFBIG;
                if ((r = drop_setid (f->fd, &st)) < 0)
                        return r;
                cleanup_close int wfd = -1;
                int fd = f->open_fd;
                if (fd < 0 || (fcntl (fd, F_GETFL) & O_ACCMODE) == O_RDONLY) {
                        wfd = reopen (f->fd, O_WRONLY);
                        if (wfd < 0)
                                return wfd;
                        fd = wfd;
                }
                if (ftruncate (fd, size) < 0)
                        return -errno;
        }
        if (valid & (SETATTR_ATIME | SETATTR_MTIME)) {
                struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
                if (valid & SETATTR_ATIME)
                        ts[0] = (valid & SETATTR_ATIME_SET) ? (struct timespec){atime_sec, atime_nsec % 1000000000}
                                                            : (struct timespec){0, UTIME_NOW};
                if (valid & SETATTR_MTIME)
                        ts[1] = (valid & SETATTR_MTIME_SET) ? (struct timespec){mtime_sec, mtime_nsec % 1000000000}
                                                            : (struct timespec){0, UTIME_NOW};
                if (utimensat (f->fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != EINVAL || link)
                                return -errno;
                        if (utimensat (AT_FDCWD, path, ts, 0) < 0)
                                return -errno;
                }
        }
        return 0;
}

struct linux_dirent64 {
        uint64_t d_ino;
        int64_t d_off;
        unsigned short d_reclen;
        unsigned char d_type;
        char d_name[];
};

static int
h_readdir (struct req *q)
{
        uint32_t fid = rd32 (&q->r);
        uint64_t off = rd64 (&q->r);
        uint32_t count = rd32 (&q->r);
        if (q->r.bad)
                return -EINVAL;
        struct fid *f;
        int r = open_fid (q, fid, &f);
        if (r < 0)
                return r;
        uint8_t *cnt = wr_count (&q->w, &count);
        if (cnt == NULL)
                return -ENOBUFS;
        if (off > INT64_MAX)
                return -EINVAL;
        if (lseek (f->open_fd, (off_t)off, SEEK_SET) < 0)
                return -errno;
        size_t bufsize = count < 4096 ? 4096 : count > 65536 ? 65536 : count;
        cleanup_free uint8_t *buf = xmalloc (bufsize);
        long n = syscall (SYS_getdents64, f->open_fd, buf, bufsize);
        if (n < 0)
                return -errno;
        size_t start = q->w.off, limit = q->w.off + count;
        for (long pos = 0; pos < n;) {
                struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + pos);
                size_t nl = strnlen (d->d_name, d->d_reclen);
                if (q->w.off + 13 + 8 + 1 + 2 + nl > limit)
                        break;
                struct qid qd = {QID_FILE, 0, d->d_ino};
                if (d->d_type == DT_DIR)
                        qd.type = QID_DIR;
                else if (d->d_type == DT_LNK)
                        qd.type = QID_SYMLINK;
                wr_qid (&q->w, qd);
                wr64 (&q->w, d->d_off);
                wr8 (&q->w, d->d_type);
                wr16 (&q->w, nl);
                memcpy (wr_take (&q->w, nl), d->d_name, nl);
                pos += d->d_reclen;
        }
        put_le32 (cnt, q->w.off - start);
        return 0;
}

static int
h_statfs (struct req *q)
{
        uint32_t fid = rd32 (&q->r);
        if (q->r.bad)
                return -EINVAL;
        struct fid *f = fid_get (q->s, fid);
        if (f == NULL)
                return -EBADF;
        struct statfs st;
        if (fstatfs (f->fd, &st) < 0)
                return -errno;
        uint64_t fsid;
        memcpy (&fsid, &st.f_fsid, sizeof fsid);
        wr32 (&q->w, st.f_type);
        wr32 (&q->w, st.f_bsize);
        wr64 (&q->w, st.f_blocks);
        wr64 (&q->w, st.f_bfree);
        wr64 (&q->w, st.f_bavail);
        wr64 (&q->w, st.f_files);
        wr64 (&q->w, st.f_ffree);
        wr64 (&q->w, fsid);
        wr32 (&q->w, st.f_namelen);
        return 0;
}

static int
h_mkdir (struct req *q)
{
        char name[NAME_MAX + 1];
        uint32_t dfid = rd32 (&q->r);
        rd_str (&q->r, name, sizeof name);
        uint32_t mode = rd32 (&q->r);
        uint32_t gid = rd32 (&q->r);
        struct fid *d;
        int r = dir_fid_name (q, dfid, name, &d);
        if (r < 0)
                return r;
        if (mkdirat (d->fd, name, guest_mode (S_IFDIR, mode)) < 0)
                return -errno;
        return reply_new_entry (q, d, name, gid);
}

static int
h_symlink (struct req *q)
{
        char name[NAME_MAX + 1];
        cleanup_free char *target = xmalloc (PATH_MAX);
        uint32_t dfid = rd32 (&q->r);
        rd_str (&q->r, name, sizeof name);
        rd_str (&q->r, target, PATH_MAX);
        uint32_t gid = rd32 (&q->r);
        if (q->r.bad || !name_ok (name) || target[0] == '\0')
                return -EINVAL;
        struct fid *d;
        int r = dir_fid (q, dfid, &d);
        if (r < 0)
                return r;
        /* The text is stored, never followed here. */
        if (symlinkat (target, d->fd, name) < 0)
                return -errno;
        return reply_new_entry (q, d, name, gid);
}

static int
h_readlink (struct req *q)
{
        uint32_t fid = rd32 (&q->r);
        if (q->r.bad)
                return -EINVAL;
        struct fid *f = fid_get (q->s, fid);
        if (f == NULL)
                return -EBADF;
        cleanup_free char *buf = xmalloc (PATH_MAX + 1);
        ssize_t n = readlinkat (f->fd, "", buf, PATH_MAX);
        if (n < 0)
                return errno == ENOENT ? -EINVAL : -errno;
        buf[n] = '\0';
        wr_str (&q->w, buf);
        return 0;
}

static int
h_mknod (struct req *q)
{
        char name[NAME_MAX + 1];
        uint32_t dfid = rd32 (&q->r);
        rd_str (&q->r, name, sizeof name);
        uint32_t mode = rd32 (&q->r);
        uint32_t major = rd32 (&q->r), minor = rd32 (&q->r);
        uint32_t gid = rd32 (&q->r);
        if (q->r.bad || !name_ok (name))
                return -EINVAL;
        (void)major;
        (void)minor;
        /* Device nodes made by a guest would be host devices: refuse. */
        if (!S_ISREG (mode) && !S_ISFIFO (mode) && !S_ISSOCK (mode))
                return -EPERM;
        struct fid *d;
        int r = dir_fid (q, dfid, &d);
        if (r < 0)
                return r;
        if (mknodat (d->fd, name, (mode & S_IFMT) | guest_mode (mode & S_IFMT, mode), 0) < 0)
                return -errno;
        return reply_new_entry (q, d, name, gid);
}

static int
h_unlinkat (struct req *q)
{
        char name[NAME_MAX + 1];
        uint32_t dfid = rd32 (&q->r);
        rd_str (&q->r, name, sizeof name);
        uint32_t flags = rd32 (&q->r);
        if (flags & ~(uint32_t)AT_REMOVEDIR)
                return -EINVAL;
        struct fid *d;
        int r = dir_fid_name (q, dfid, name, &d);
        if (r < 0)
                return r;
        return unlinkat (d->fd, name, flags) < 0 ? -errno : 0;
}

static int
h_renameat (struct req *q)
{
        char oldname[NAME_MAX + 1], newname[NAME_MAX + 1];
        uint32_t odfid = rd32 (&q->r);
        rd_str (&q->r, oldname, sizeof oldname);
        uint32_t ndfid = rd32 (&q->r);
        rd_str (&q->r, newname, sizeof newname);
        if (q->r.bad || !name_ok (oldname) || !name_ok (newname))
                return -EINVAL;
        struct fid *od, *nd;
        int r = dir_fid (q, odfid, &od);
        if (r < 0 || (r = dir_fid (q, ndfid, &nd)) < 0)
                return r;
        return renameat (od->fd, oldname, nd->fd, newname) < 0 ? -errno : 0;
}

static int
h_link (struct req *q)
{
        char name[NAME_MAX + 1];
        uint32_t dfid = rd32 (&q->r);
        uint32_t fid = rd32 (&q->r);
        rd_str (&q->r, name, sizeof name);
        if (q->r.bad || !name_ok (name))
                return -EINVAL;
        struct fid *d, *f = fid_get (q->s, fid);
        int r = dir_fid (q, dfid, &d);
        if (r < 0)
                return r;
        if (f == NULL)
                return -EBADF;
        struct stat st;
        if ((r = stat_fd (f->fd, &st)) < 0)
                return r;
        if (S_ISDIR (st.st_mode))
                return -EPERM;
        if (linkat (f->fd, "", d->fd, name, AT_EMPTY_PATH) == 0)
                return 0;
        if (errno != ENOENT && errno != EPERM)
                return -errno;
        if (S_ISLNK (st.st_mode))
                return -EPERM;
        char path[64];
        proc_fd_path (f->fd, path, sizeof path);
        return linkat (AT_FDCWD, path, d->fd, name, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
}

static int
h_fsync (struct req *q)
{
        uint32_t fid = rd32 (&q->r);
        uint32_t datasync = rd32 (&q->r);
        if (q->r.bad)
                return -EINVAL;
        struct fid *f;
        int r = open_fid (q, fid, &f);
        if (r < 0)
                return r;
        return (datasync ? fdatasync (f->open_fd) : fsync (f->open_fd)) < 0 ? -errno : 0;
}

static int
h_flush (struct req *q)
{
        (void)rd16 (&q->r); /* oldtag: requests are answered in order, nothing is pending */
        return q->r.bad ? -EINVAL : 0;
}

static int
h_xattrwalk (struct req *q)
{
        char name[256];
        uint32_t fid = rd32 (&q->r);
        (void)rd32 (&q->r);
        rd_str (&q->r, name, sizeof name);
        if (q->r.bad)
                return -EINVAL;
        if (fid_get (q->s, fid) == NULL)
                return -EBADF;
        return -EOPNOTSUPP;
}

static int
h_lock (struct req *q)
{
        char client[256];
        uint32_t fid = rd32 (&q->r);
        (void)rd8 (&q->r);  /* type */
        (void)rd32 (&q->r); /* flags */
        (void)rd64 (&q->r); /* start */
        (void)rd64 (&q->r); /* length */
        (void)rd32 (&q->r); /* proc_id */
        rd_str (&q->r, client, sizeof client);
        if (q->r.bad)
                return -EINVAL;
        if (fid_get (q->s, fid) == NULL)
                return -EBADF;
        /* One guest per share: the guest kernel arbitrates its own locks. */
        wr8 (&q->w, 0); /* P9_LOCK_SUCCESS */
        return 0;
}

static int
h_getlock (struct req *q)
{
        char client[256];
        uint32_t fid = rd32 (&q->r);
        (void)rd8 (&q->r);
        uint64_t start = rd64 (&q->r);
        uint64_t length = rd64 (&q->r);
        uint32_t proc_id = rd32 (&q->r);
        rd_str (&q->r, client, sizeof client);
        if (q->r.bad)
                return -EINVAL;
        if (fid_get (q->s, fid) == NULL)
                return -EBADF;
        wr8 (&q->w, 2); /* P9_LOCK_TYPE_UNLCK: nothing conflicts */
        wr64 (&q->w, start);
        wr64 (&q->w, length);
        wr32 (&q->w, proc_id);
        wr_str (&q->w, client);
        return 0;
}

static void
put_header (uint8_t *p, uint32_t size, uint8_t type, uint16_t tag)
{
        put_le32 (p, size);
        p[4] = type;
        p[5] = tag & 0xff;
        p[6] = tag >> 8;
}

static size_t
lerror (uint8_t *resp, size_t cap, uint16_t tag, int e)
{
        if (cap < MOAT_P9_HDR + 4)
                return 0;
        put_header (resp, MOAT_P9_HDR + 4, P9_RLERROR, tag);
        put_le32 (resp + MOAT_P9_HDR, e);
        return MOAT_P9_HDR + 4;
}

size_t
moat_p9_handle (struct moat_p9_server *s, const uint8_t *req, size_t req_len, uint8_t *resp, size_t resp_cap)
{
        if (resp_cap > s->msize)
                resp_cap = s->msize;
        if (req_len < MOAT_P9_HDR)
                return lerror (resp, resp_cap, MOAT_P9_NOTAG, EINVAL);
        uint32_t size = req[0] | req[1] << 8 | req[2] << 16 | (uint32_t)req[3] << 24;
        uint8_t type = req[4];
        uint16_t tag = req[5] | req[6] << 8;
        /* The size field must describe exactly what arrived, within msize. */
        if (size < MOAT_P9_HDR || size > req_len || size > s->msize)
                return lerror (resp, resp_cap, tag, EINVAL);
        struct req q = {
                .s = s,
                .r = {.p = req, .len = size, .off = MOAT_P9_HDR},
                .w = {.p = resp, .cap = resp_cap, .off = MOAT_P9_HDR},
        };
        if (resp_cap < MOAT_P9_HDR + 4)
                return 0;
        int (*h) (struct req *) = NULL;
        switch (type) {
        case P9_TVERSION:
                h = h_version;
                break;
        case P9_TATTACH:
                h = h_attach;
                break;
        case P9_TWALK:
                h = h_walk;
                break;
        case P9_TLOPEN:
                h = h_lopen;
                break;
        case P9_TLCREATE:
                h = h_lcreate;
                break;
        case P9_TREAD:
                h = h_read;
                break;
        case P9_TWRITE:
                h = h_write;
                break;
        case P9_TCLUNK:
                h = h_clunk;
                break;
        case P9_TREMOVE:
                h = h_remove;
                break;
        case P9_TGETATTR:
                h = h_getattr;
                break;
        case P9_TSETATTR:
                h = h_setattr;
                break;
        case P9_TREADDIR:
                h = h_readdir;
                break;
        case P9_TSTATFS:
                h = h_statfs;
                break;
        case P9_TMKDIR:
                h = h_mkdir;
                break;
        case P9_TSYMLINK:
                h = h_symlink;
                break;
        case P9_TREADLINK:
                h = h_readlink;
                break;
        case P9_TMKNOD:
                h = h_mknod;
                break;
        case P9_TUNLINKAT:
                h = h_unlinkat;
                break;
        case P9_TRENAMEAT:
                h = h_renameat;
                break;
        case P9_TLINK:
                h = h_link;
                break;
        case P9_TFSYNC:
                h = h_fsync;
                break;
        case P9_TFLUSH:
                h = h_flush;
                break;
        case P9_TXATTRWALK:
                h = h_xattrwalk;
                break;
        case P9_TLOCK:
                h = h_lock;
                break;
        case P9_TGETLOCK:
                h = h_getlock;
                break;
        default:
                break;
        }
        int r;
        if (h == NULL)
                r = -EOPNOTSUPP; /* Tauth, Txattrcreate, Trename, 9P2000 messages */
        else if (type != P9_TVERSION && !s->versioned)
                r = -EPROTO;
        else
                r = h (&q);
        if (r == 0 && q.w.full)
                r = -ENOBUFS;
        if (r < 0)
                return lerror (resp, resp_cap, tag, -r);
        put_header (resp, q.w.off, type + 1, tag);
        return q.w.off;
}

uint32_t
moat_p9_msize (const struct moat_p9_server *s)
{
        return s->msize;
}

size_t
moat_p9_nfids (const struct moat_p9_server *s)
{
        return s->nfids;
}

int
moat_p9_server_new (const char *root, struct moat_p9_server **out, moat_error_t *err)
{
        cleanup_close int fd = open (root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return moat_make_error (err, errno, "share %s", root);
        struct stat st;
        if (fstat (fd, &st) < 0)
                return moat_make_error (err, errno, "stat %s", root);
        struct moat_p9_server *s = xzalloc (sizeof *s);
        s->root_fd = steal_fd (&fd);
        s->root_dev = st.st_dev;
        s->root_ino = st.st_ino;
        s->msize = MOAT_P9_MAX_MSIZE;
        s->have_openat2 = -1;
        *out = s;
        return 0;
}

int
moat_p9_server_root_fd (const struct moat_p9_server *s)
{
        return s->root_fd;
}

void
moat_p9_server_free (struct moat_p9_server *s)
{
        if (s == NULL)
                return;
        moat_p9_reset (s);
        close (s->root_fd);
        free (s);
}
