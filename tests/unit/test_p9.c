/* SPDX-License-Identifier: Apache-2.0 */
/* The 9P2000.L server core fed raw messages over a temporary share: the
 * file operations, every way out of the share we know of, and malformed
 * messages (which must get Rlerror, never a crash). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <cmocka.h>

#include "moat/p9.h"
#include "moat/util.h"

#define BUF (1u << 17)

static char tmp[64], share[96], secret[128];
static struct moat_p9_server *srv;
static uint8_t resp[BUF];
static size_t resp_len;

/* ---- a tiny 9P client ---- */
struct msg {
        uint8_t b[BUF];
        size_t n;
};
static struct msg m;

static void
put (uint64_t v, int n)
{
        for (int i = 0; i < n; i++, v >>= 8)
                m.b[m.n++] = v & 0xff;
}
static void
put_s (const char *s)
{
        size_t n = strlen (s);
        put (n, 2);
        memcpy (m.b + m.n, s, n);
        m.n += n;
}
static void
begin (uint8_t type)
{
        m.n = 0;
        put (0, 4);
        put (type, 1);
        put (1, 2);
}
static uint64_t
get (size_t off, int n)
{
        uint64_t v = 0;
        for (int i = n - 1; i >= 0; i--)
                v = (v << 8) | resp[off + i];
        return v;
}
/* Sends the message built; returns the reply type. */
static uint8_t
send_raw (size_t len)
{
        resp_len = moat_p9_handle (srv, m.b, len, resp, sizeof resp);
        assert_true (resp_len >= 7);
        assert_int_equal (get (0, 4), resp_len);
        return resp[4];
}
static uint8_t
send (void)
{
        m.b[0] = m.n & 0xff;
        m.b[1] = (m.n >> 8) & 0xff;
        m.b[2] = (m.n >> 16) & 0xff;
        m.b[3] = m.n >> 24;
        return send_raw (m.n);
}
/* 0 on success (reply type T+1), else the Rlerror errno. */
static int
rpc (void)
{
        uint8_t want = m.b[4] + 1;
        uint8_t t = send ();
        if (t == P9_RLERROR) {
                assert_int_equal (resp_len, 11);
                return (int)get (7, 4);
        }
        assert_int_equal (t, want);
        return 0;
}

static int
t_version (uint32_t msize, const char *v)
{
        begin (P9_TVERSION);
        put (msize, 4);
        put_s (v);
        return rpc ();
}
static int
t_attach (uint32_t fid)
{
        begin (P9_TATTACH);
        put (fid, 4);
        put (MOAT_P9_NOFID, 4);
        put_s ("root");
        put_s ("");
        put (0, 4);
        return rpc ();
}
/* Walks NULL-terminated names; returns errno or 0, *nq = qids returned. */
static int
t_walk (uint32_t fid, uint32_t newfid, int *nq, ...)
{
        const char *names[32];
        int n = 0;
        va_list ap;
        va_start (ap, nq);
        while ((names[n] = va_arg (ap, const char *)) != NULL)
                n++;
        va_end (ap);
        begin (P9_TWALK);
        put (fid, 4);
        put (newfid, 4);
        put (n, 2);
        for (int i = 0; i < n; i++)
                put_s (names[i]);
        int r = rpc ();
        if (r == 0 && nq)
                *nq = get (7, 2);
        return r;
}
static int
t_lopen (uint32_t fid, uint32_t flags)
{
        begin (P9_TLOPEN);
        put (fid, 4);
        put (flags, 4);
        return rpc ();
}
static int
t_clunk (uint32_t fid)
{
        begin (P9_TCLUNK);
        put (fid, 4);
        return rpc ();
}
static int
t_read (uint32_t fid, uint64_t off, uint32_t count)
{
        begin (P9_TREAD);
        put (fid, 4);
        put (off, 8);
        put (count, 4);
        return rpc ();
}
static int
t_write (uint32_t fid, uint64_t off, const char *data)
{
        begin (P9_TWRITE);
        put (fid, 4);
        put (off, 8);
        put (strlen (data), 4);
        memcpy (m.b + m.n, data, strlen (data));
        m.n += strlen (data);
        return rpc ();
}
static int
t_lcreate (uint32_t fid, const char *name, uint32_t flags, uint32_t mode)
{
        begin (P9_TLCREATE);
        put (fid, 4);
        put_s (name);
        put (flags, 4);
        put (mode, 4);
        put (0, 4);
        return rpc ();
}
static int
t_mkdir (uint32_t dfid, const char *name)
{
        begin (P9_TMKDIR);
        put (dfid, 4);
        put_s (name);
        put (0755, 4);
        put (0, 4);
        return rpc ();
}
static int
t_renameat (uint32_t od, const char *on, uint32_t nd, const char *nn)
{
        begin (P9_TRENAMEAT);
        put (od, 4);
        put_s (on);
        put (nd, 4);
        put_s (nn);
        return rpc ();
}
static int
t_unlinkat (uint32_t d, const char *name, uint32_t flags)
{
        begin (P9_TUNLINKAT);
        put (d, 4);
        put_s (name);
        put (flags, 4);
        return rpc ();
}
static int
t_getattr (uint32_t fid)
{
        begin (P9_TGETATTR);
        put (fid, 4);
        put (0x7ff, 8);
        return rpc ();
}
static uint32_t
attr_mode (void)
{
        return get (7 + 8 + 13, 4);
}
static uint64_t
attr_size (void)
{
        return get (7 + 8 + 13 + 12 + 16, 8);
}
static uint64_t
qid_path (size_t off)
{
        return get (off + 5, 8);
}

static int
t_mknod (uint32_t dfid, const char *name, uint32_t mode)
{
        begin (P9_TMKNOD);
        put (dfid, 4);
        put_s (name);
        put (mode, 4);
        put (1, 4);
        put (3, 4);
        put (0, 4);
        return rpc ();
}
static int
t_setattr (uint32_t fid, uint32_t valid, uint32_t mode, uint32_t uid, uint64_t size)
{
        begin (P9_TSETATTR);
        put (fid, 4);
        put (valid, 4);
        put (mode, 4);
        put (uid, 4);
        put (0, 4);
        put (size, 8);
        for (int i = 0; i < 4; i++)
                put (0, 8);
        return rpc ();
}
static mode_t
host_mode (const char *rel)
{
        char p[256];
        struct stat st;
        snprintf (p, sizeof p, "%s/%s", share, rel);
        assert_int_equal (lstat (p, &st), 0);
        return st.st_mode;
}
static void
host_chmod (const char *rel, mode_t mode)
{
        char p[256];
        snprintf (p, sizeof p, "%s/%s", share, rel);
        assert_int_equal (chmod (p, mode), 0);
}

static void
write_host (const char *rel, const char *data)
{
        char p[256];
        snprintf (p, sizeof p, "%s/%s", share, rel);
        int fd = open (p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true (fd >= 0);
        assert_int_equal (write (fd, data, strlen (data)), (ssize_t)strlen (data));
        close (fd);
}
static char *
read_host (const char *path)
{
        static char buf[4096];
        int fd = open (path, O_RDONLY);
        if (fd < 0)
                return NULL;
        ssize_t n = read (fd, buf, sizeof buf - 1);
        close (fd);
        buf[n < 0 ? 0 : n] = 0;
        return buf;
}
static bool
host_exists (const char *path)
{
        struct stat st;
        return lstat (path, &st) == 0;
}

static int
setup (void **state)
{
        strcpy (tmp, "/tmp/moat-p9-XXXXXX");
        assert_non_null (mkdtemp (tmp));
        snprintf (share, sizeof share, "%s/share", tmp);
        snprintf (secret, sizeof secret, "%s/secret", tmp);
        assert_int_equal (mkdir (share, 0755), 0);
        int fd = open (secret, O_WRONLY | O_CREAT, 0600);
        assert_int_equal (write (fd, "top secret", 10), 10);
        close (fd);
        char p[256];
        snprintf (p, sizeof p, "%s/sub", share);
        assert_int_equal (mkdir (p, 0755), 0);
        write_host ("hello.txt", "hello from the host\n");
        write_host ("sub/inner.txt", "inner");
        snprintf (p, sizeof p, "%s/etc", share);
        assert_int_equal (symlink ("/etc", p), 0);
        snprintf (p, sizeof p, "%s/up", share);
        assert_int_equal (symlink ("../../../../../..", p), 0);
        snprintf (p, sizeof p, "%s/sub/leak", share);
        assert_int_equal (symlink ("../../secret", p), 0);
        moat_error_t err = NULL;
        assert_int_equal (moat_p9_server_new (share, &srv, &err), 0);
        assert_int_equal (t_version (65536, "9P2000.L"), 0);
        assert_int_equal (t_attach (1), 0);
        return 0;
}

static int
teardown (void **state)
{
        moat_p9_server_free (srv);
        srv = NULL;
        moat_error_t err = NULL;
        assert_int_equal (rm_rf (tmp, &err), 0);
        return 0;
}

/* ---- behaviour ---- */

static void
test_version (void **state)
{
        assert_int_equal (t_version (8192, "9P2000.L"), 0);
        assert_int_equal (get (7, 4), 8192);
        assert_int_equal (moat_p9_msize (srv), 8192);
        assert_int_equal (moat_p9_nfids (srv), 0); /* Tversion ends the session */
        assert_int_equal (t_version (64u << 20, "9P2000.L"), 0);
        assert_int_equal (get (7, 4), MOAT_P9_MAX_MSIZE);
        assert_int_equal (t_version (100, "9P2000.L"), EINVAL);
        /* Another dialect: answered "unknown", and nothing else is served. */
        assert_int_equal (t_version (8192, "9P2000.u"), 0);
        assert_int_equal (get (11, 2), 7);
        assert_memory_equal (resp + 13, "unknown", 7);
        assert_int_equal (t_attach (1), EPROTO);
        assert_int_equal (t_version (8192, "9P2000.L"), 0);
        assert_int_equal (t_attach (1), 0);
        assert_int_equal (t_attach (1), EBADF); /* fid in use */
        begin (P9_TATTACH);
        put (2, 4);
        put (MOAT_P9_NOFID, 4);
        put_s ("root");
        put_s ("/elsewhere");
        put (0, 4);
        assert_int_equal (rpc (), ENOENT);
}

static void
test_walk_open_read (void **state)
{
        int nq = -1;
        assert_int_equal (t_walk (1, 2, &nq, "hello.txt", NULL), 0);
        assert_int_equal (nq, 1);
        assert_int_equal (t_lopen (2, O_RDONLY), 0);
        assert_int_equal (t_read (2, 0, 4096), 0);
        assert_int_equal (get (7, 4), 20);
        assert_memory_equal (resp + 11, "hello from the host\n", 20);
        assert_int_equal (t_read (2, 6, 4), 0);
        assert_memory_equal (resp + 11, "from", 4);
        assert_int_equal (t_lopen (2, O_RDONLY), EBADF); /* already open */
        assert_int_equal (t_clunk (2), 0);
        assert_int_equal (t_clunk (2), EBADF);
        /* multi-element walk, clone, partial walk */
        assert_int_equal (t_walk (1, 3, &nq, "sub", "inner.txt", NULL), 0);
        assert_int_equal (nq, 2);
        assert_int_equal (t_walk (3, 4, &nq, NULL), 0);
        assert_int_equal (nq, 0);
        assert_int_equal (t_walk (1, 5, &nq, "sub", "nope", NULL), 0);
        assert_int_equal (nq, 1); /* partial: newfid not made */
        assert_int_equal (t_getattr (5), EBADF);
        assert_int_equal (t_walk (1, 5, &nq, "nope", NULL), ENOENT);
        assert_int_equal (t_walk (4, 4, &nq, NULL), 0); /* same fid, no names */
        assert_int_equal (t_getattr (4), 0);
        assert_int_equal (attr_size (), 5);
        assert_true (S_ISREG (attr_mode ()));
        /* reading a directory fid that is not open, writing a read-only one */
        assert_int_equal (t_read (1, 0, 10), EBADF);
        assert_int_equal (t_lopen (4, O_RDONLY), 0);
        assert_int_equal (t_write (4, 0, "x"), EBADF);
        assert_int_equal (t_lopen (3, O_WRONLY | O_DIRECTORY), ENOTDIR);
}

static void
test_create_write (void **state)
{
        int nq;
        char p[256];
        assert_int_equal (t_walk (1, 2, &nq, NULL), 0);
        assert_int_equal (t_lcreate (2, "new.txt", O_RDWR | O_CREAT, 0640), 0);
        assert_int_equal (get (7, 1), 0); /* qid type file */
        assert_int_equal (t_write (2, 0, "written by the guest"), 0);
        assert_int_equal (get (7, 4), 20);
        assert_int_equal (t_write (2, 8, "BY"), 0);
        snprintf (p, sizeof p, "%s/new.txt", share);
        assert_string_equal (read_host (p), "written BY the guest");
        struct stat st;
        assert_int_equal (stat (p, &st), 0);
        assert_int_equal (st.st_mode & 0777, 0640);
        /* the fid now stands for the new file */
        assert_int_equal (t_getattr (2), 0);
        assert_int_equal (attr_size (), 20);
        assert_int_equal (t_lcreate (1, "new.txt", O_RDWR | O_CREAT | O_EXCL, 0640), EEXIST);
        /* setattr: truncate and chmod */
        begin (P9_TSETATTR);
        put (2, 4);
        put (0x1 | 0x8, 4);
        put (0600, 4);
        put (0, 4);
        put (0, 4);
        put (7, 8);
        for (int i = 0; i < 4; i++)
                put (0, 8);
        assert_int_equal (rpc (), 0);
        assert_string_equal (read_host (p), "written");
        assert_int_equal (stat (p, &st), 0);
        assert_int_equal (st.st_mode & 0777, 0600);
        begin (P9_TFSYNC);
        put (2, 4);
        put (0, 4);
        assert_int_equal (rpc (), 0);
        /* statfs */
        begin (P9_TSTATFS);
        put (1, 4);
        assert_int_equal (rpc (), 0);
        assert_int_equal (resp_len, 7 + 4 + 4 + 8 * 6 + 4);
}

static void
test_mkdir_readdir (void **state)
{
        int nq;
        assert_int_equal (t_mkdir (1, "d"), 0);
        assert_int_equal (get (7, 1), 0x80);
        assert_int_equal (t_mkdir (1, "d"), EEXIST);
        assert_int_equal (t_walk (1, 2, &nq, "d", NULL), 0);
        for (int i = 0; i < 30; i++) {
                char n[32];
                snprintf (n, sizeof n, "file-%02d", i);
                assert_int_equal (t_walk (2, 3, &nq, NULL), 0);
                assert_int_equal (t_lcreate (3, n, O_WRONLY | O_CREAT, 0644), 0);
                assert_int_equal (t_clunk (3), 0);
        }
        assert_int_equal (t_lopen (2, O_RDONLY), 0);
        /* small counts force several Treaddir rounds through the offsets */
        uint64_t off = 0;
        int seen = 0, rounds = 0, files = 0;
        for (;;) {
                begin (P9_TREADDIR);
                put (2, 4);
                put (off, 8);
                put (200, 4);
                assert_int_equal (rpc (), 0);
                uint32_t cnt = get (7, 4);
                assert_true (cnt <= 200);
                if (cnt == 0)
                        break;
                rounds++;
                size_t p = 11;
                while (p < 11 + cnt) {
                        off = get (p + 13, 8);
                        uint16_t nl = get (p + 22, 2);
                        if (nl == 7 && memcmp (resp + p + 24, "file-", 5) == 0)
                                files++;
                        seen++;
                        p += 24 + nl;
                }
                assert_int_equal (p, 11 + cnt);
        }
        assert_int_equal (files, 30);
        assert_int_equal (seen, 32); /* with . and .. */
        assert_true (rounds > 3);
        /* readdir on an unopened fid */
        begin (P9_TREADDIR);
        put (1, 4);
        put (0, 8);
        put (200, 4);
        assert_int_equal (rpc (), EBADF);
}

static void
test_unlink_rename_link (void **state)
{
        int nq;
        char a[256], b[256];
        assert_int_equal (t_walk (1, 2, &nq, "sub", NULL), 0);
        assert_int_equal (t_renameat (1, "hello.txt", 2, "moved.txt"), 0);
        snprintf (a, sizeof a, "%s/hello.txt", share);
        snprintf (b, sizeof b, "%s/sub/moved.txt", share);
        assert_false (host_exists (a));
        assert_string_equal (read_host (b), "hello from the host\n");
        assert_int_equal (t_walk (2, 3, &nq, "moved.txt", NULL), 0);
        begin (P9_TLINK);
        put (1, 4);
        put (3, 4);
        put_s ("hard");
        assert_int_equal (rpc (), 0);
        snprintf (a, sizeof a, "%s/hard", share);
        assert_string_equal (read_host (a), "hello from the host\n");
        assert_int_equal (t_unlinkat (2, "moved.txt", 0), 0);
        assert_false (host_exists (b));
        assert_int_equal (t_unlinkat (1, "sub", 0), EISDIR);
        assert_int_equal (t_unlinkat (1, "sub", 0x200), ENOTEMPTY);
        assert_int_equal (t_unlinkat (2, "inner.txt", 0), 0);
        assert_int_equal (t_unlinkat (2, "leak", 0), 0);
        assert_int_equal (t_unlinkat (1, "sub", 0x200), 0);
        assert_int_equal (t_unlinkat (1, "sub", 0x200), ENOENT);
        /* symlink + readlink, mknod fifo */
        begin (P9_TSYMLINK);
        put (1, 4);
        put_s ("lnk");
        put_s ("hard");
        put (0, 4);
        assert_int_equal (rpc (), 0);
        assert_int_equal (get (7, 1), 0x02);
        assert_int_equal (t_walk (1, 4, &nq, "lnk", NULL), 0);
        begin (P9_TREADLINK);
        put (4, 4);
        assert_int_equal (rpc (), 0);
        assert_int_equal (get (7, 2), 4);
        assert_memory_equal (resp + 9, "hard", 4);
        begin (P9_TMKNOD);
        put (1, 4);
        put_s ("fifo");
        put (S_IFIFO | 0644, 4);
        put (0, 4);
        put (0, 4);
        put (0, 4);
        assert_int_equal (rpc (), 0);
        struct stat st;
        snprintf (a, sizeof a, "%s/fifo", share);
        assert_int_equal (lstat (a, &st), 0);
        assert_true (S_ISFIFO (st.st_mode));
        /* locks: simple answers */
        begin (P9_TLOCK);
        put (3, 4);
        put (1, 1);
        put (0, 4);
        put (0, 8);
        put (0, 8);
        put (42, 4);
        put_s ("guest");
        assert_int_equal (rpc (), 0);
        assert_int_equal (resp[7], 0);
        begin (P9_TGETLOCK);
        put (3, 4);
        put (1, 1);
        put (0, 8);
        put (10, 8);
        put (42, 4);
        put_s ("guest");
        assert_int_equal (rpc (), 0);
        assert_int_equal (resp[7], 2);
        begin (P9_TXATTRWALK);
        put (3, 4);
        put (9, 4);
        put_s ("user.x");
        assert_int_equal (rpc (), EOPNOTSUPP);
        begin (P9_TFLUSH);
        put (5, 2);
        assert_int_equal (rpc (), 0);
}

/* ---- escapes ---- */

static void
test_escape_dotdot (void **state)
{
        int nq;
        assert_int_equal (t_getattr (1), 0);
        uint64_t root = qid_path (7 + 8);
        /* ".." at the root is the root */
        assert_int_equal (t_walk (1, 2, &nq, "..", NULL), 0);
        assert_int_equal (qid_path (9), root);
        assert_int_equal (t_walk (1, 3, &nq, "..", "..", "..", NULL), 0);
        assert_int_equal (nq, 3);
        assert_int_equal (qid_path (9 + 26), root);
        assert_int_equal (t_walk (1, 4, &nq, "..", "secret", NULL), 0);
        assert_int_equal (nq, 1); /* stopped at "secret": not found in the share */
        assert_int_equal (t_getattr (4), EBADF);
        assert_int_equal (t_walk (1, 4, &nq, "sub", "..", "..", "..", "secret", NULL), 0);
        assert_int_equal (nq, 4);
        assert_int_equal (t_walk (1, 4, &nq, "sub", "..", NULL), 0);
        assert_int_equal (qid_path (9 + 13), root);
        /* ".." from the root fid itself, replacing it */
        assert_int_equal (t_walk (4, 4, &nq, "..", NULL), 0);
        assert_int_equal (qid_path (9), root);
        /* a name with a slash, ".." inside a name, absolute names */
        assert_int_equal (t_walk (1, 5, &nq, "../secret", NULL), EINVAL);
        assert_int_equal (t_walk (1, 5, &nq, "/etc", NULL), EINVAL);
        assert_int_equal (t_walk (1, 5, &nq, "sub/../..", NULL), EINVAL);
        assert_int_equal (t_walk (1, 5, &nq, "", NULL), EINVAL);
        /* creation with such names */
        assert_int_equal (t_mkdir (1, ".."), EINVAL);
        assert_int_equal (t_mkdir (1, "../evil"), EINVAL);
        assert_int_equal (t_mkdir (1, "/tmp/evil"), EINVAL);
        assert_int_equal (t_lcreate (1, "../evil", O_RDWR | O_CREAT, 0644), EINVAL);
        char p[256];
        snprintf (p, sizeof p, "%s/evil", tmp);
        assert_false (host_exists (p));
}

static void
test_escape_symlinks (void **state)
{
        int nq;
        /* absolute symlink: walking onto it gives the link, through it fails */
        assert_int_equal (t_walk (1, 2, &nq, "etc", NULL), 0);
        assert_int_equal (get (9, 1), 0x02);
        assert_int_equal (t_walk (1, 3, &nq, "etc", "passwd", NULL), 0);
        assert_int_equal (nq, 1);
        assert_int_equal (t_walk (2, 3, &nq, "passwd", NULL), ENOTDIR);
        assert_int_equal (t_lopen (2, O_RDONLY), ELOOP);
        assert_int_equal (t_getattr (2), 0);
        assert_true (S_ISLNK (attr_mode ()));
        begin (P9_TREADLINK);
        put (2, 4);
        assert_int_equal (rpc (), 0);
        assert_memory_equal (resp + 9, "/etc", 4);
        /* creating inside the symlink's target */
        assert_int_equal (t_lcreate (2, "moat-p9-evil", O_RDWR | O_CREAT, 0644), ENOTDIR);
        assert_int_equal (t_mkdir (2, "moat-p9-evil"), ENOTDIR);
        assert_false (host_exists ("/etc/moat-p9-evil"));
        /* chmod / truncate through the symlink fid must not touch /etc */
        struct stat before, after;
        assert_int_equal (stat ("/etc", &before), 0);
        begin (P9_TSETATTR);
        put (2, 4);
        put (0x1, 4);
        put (0777, 4);
        put (0, 4);
        put (0, 4);
        put (0, 8);
        for (int i = 0; i < 4; i++)
                put (0, 8);
        assert_int_equal (rpc (), EOPNOTSUPP);
        assert_int_equal (stat ("/etc", &after), 0);
        assert_int_equal (before.st_mode, after.st_mode);
        /* relative "../../.." chain */
        assert_int_equal (t_walk (1, 4, &nq, "up", "secret", NULL), 0);
        assert_int_equal (nq, 1);
        assert_int_equal (t_walk (1, 4, &nq, "sub", "leak", NULL), 0);
        assert_int_equal (t_lopen (4, O_RDONLY), ELOOP);
        assert_int_equal (t_getattr (4), 0);
        assert_true (S_ISLNK (attr_mode ()));
        assert_int_equal (attr_size (), strlen ("../../secret"));
        /* hard link of a symlink is the symlink, not its target */
        begin (P9_TLINK);
        put (1, 4);
        put (4, 4);
        put_s ("leak2");
        int r = rpc ();
        if (r == 0) {
                char p[256];
                struct stat st;
                snprintf (p, sizeof p, "%s/leak2", share);
                assert_int_equal (lstat (p, &st), 0);
                assert_true (S_ISLNK (st.st_mode));
        }
        assert_string_equal (read_host (secret), "top secret");
}

static void
test_escape_rename_and_devices (void **state)
{
        int nq;
        char p[256];
        assert_int_equal (t_renameat (1, "hello.txt", 1, "../stolen"), EINVAL);
        assert_int_equal (t_renameat (1, "hello.txt", 1, "/tmp/stolen"), EINVAL);
        assert_int_equal (t_renameat (1, "../secret", 1, "mine"), EINVAL);
        assert_int_equal (t_renameat (1, "..", 1, "x"), EINVAL);
        /* into the absolute symlink "etc" as a directory */
        assert_int_equal (t_walk (1, 2, &nq, "etc", NULL), 0);
        assert_int_equal (t_renameat (1, "hello.txt", 2, "moat-p9-stolen"), ENOTDIR);
        /* a rename of a symlink moves the link only */
        assert_int_equal (t_renameat (1, "etc", 1, "etc2"), 0);
        snprintf (p, sizeof p, "%s/hello.txt", share);
        assert_true (host_exists (p));
        snprintf (p, sizeof p, "%s/stolen", tmp);
        assert_false (host_exists (p));
        assert_false (host_exists ("/etc/moat-p9-stolen"));
        assert_int_equal (t_unlinkat (1, "../secret", 0), EINVAL);
        assert_true (host_exists (secret));
        /* no device nodes from the guest; none opened on the host */
        begin (P9_TMKNOD);
        put (1, 4);
        put_s ("null");
        put (S_IFCHR | 0666, 4);
        put (1, 4);
        put (3, 4);
        put (0, 4);
        assert_int_equal (rpc (), EPERM);
        snprintf (p, sizeof p, "%s/hostnull", share);
        if (mknod (p, S_IFCHR | 0666, makedev (1, 3)) == 0) {
                assert_int_equal (t_walk (1, 3, &nq, "hostnull", NULL), 0);
                assert_int_equal (t_lopen (3, O_RDWR), EPERM);
        }
}

/* ---- nothing but regular files and directories is opened ---- */

/* A hang here is the bug: the alarm turns it into a failure. */
static void
on_alarm (int sig)
{
        static const char msg[] = "# a 9P request blocked the server\n";
        (void)sig;
        if (write (2, msg, sizeof msg - 1) < 0)
                _exit (99);
        _exit (99);
}

/* IN_OPEN events of the share directory (inotify fd) that name `name`. */
static int
opened (int in, const char *name)
{
        char buf[4096] __attribute__ ((aligned (8)));
        int n = 0;
        ssize_t len;
        while ((len = read (in, buf, sizeof buf)) > 0)
                for (char *p = buf; p < buf + len;) {
                        struct inotify_event *e = (struct inotify_event *)p;
                        if ((e->mask & IN_OPEN) && e->len && strcmp (e->name, name) == 0)
                                n++;
                        p += sizeof *e + e->len;
                }
        return n;
}

static void
test_fifo_and_devices_not_opened (void **state)
{
        int nq;
        signal (SIGALRM, on_alarm);
        alarm (10);
        /* the reproducer: a fifo made by the guest, then Tlcreate of it */
        assert_int_equal (t_mknod (1, "f", S_IFIFO | 0644), 0);
        assert_int_equal (t_walk (1, 2, &nq, NULL), 0);
        assert_int_equal (t_lcreate (2, "f", O_RDONLY, 0644), EPERM);
        assert_int_equal (t_lcreate (2, "f", O_WRONLY, 0644), EPERM);
        assert_int_equal (t_lcreate (2, "f", O_RDWR | O_TRUNC, 0644), EPERM);
        assert_int_equal (t_lcreate (2, "f", O_RDONLY | O_EXCL, 0644), EEXIST);
        assert_int_equal (t_walk (1, 3, &nq, "f", NULL), 0);
        assert_int_equal (t_lopen (3, O_RDONLY), EPERM);
        assert_int_equal (t_lopen (3, O_WRONLY), EPERM);
        /* a socket the guest made, and other kinds of entry */
        assert_int_equal (t_mknod (1, "sock", S_IFSOCK | 0644), 0);
        assert_true (S_ISSOCK (host_mode ("sock")));
        assert_int_equal (t_lcreate (2, "sock", O_RDWR, 0644), EPERM);
        assert_int_equal (t_lcreate (2, "sub", O_RDONLY, 0644), EISDIR);
        assert_int_equal (t_lcreate (2, "etc", O_RDONLY, 0644), ELOOP);
        /* an existing regular file is still opened, not truncated */
        assert_int_equal (t_lcreate (2, "hello.txt", O_RDONLY, 0644), 0);
        assert_int_equal (t_read (2, 0, 5), 0);
        assert_memory_equal (resp + 11, "hello", 5);
        alarm (0);

        /* device nodes and fifos the host put in the share are never opened
         * on the host, whatever the request: inotify sees every open */
        char p[256];
        int in = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
        assert_true (in >= 0);
        assert_true (inotify_add_watch (in, share, IN_OPEN) >= 0);
        snprintf (p, sizeof p, "%s/hostnull", share);
        bool dev = mknod (p, S_IFCHR | 0666, makedev (1, 3)) == 0;
        snprintf (p, sizeof p, "%s/hostfifo", share);
        assert_int_equal (mkfifo (p, 0666), 0);
        const char *names[] = {"hostfifo", dev ? "hostnull" : NULL};
        for (size_t i = 0; i < 2 && names[i]; i++) {
                assert_int_equal (t_walk (1, 4, &nq, NULL), 0);
                assert_int_equal (t_lcreate (4, names[i], O_RDWR, 0644), EPERM);
                assert_int_equal (t_lcreate (4, names[i], O_RDWR | O_TRUNC, 0644), EPERM);
                assert_int_equal (t_walk (1, 5, &nq, names[i], NULL), 0);
                assert_int_equal (t_lopen (5, O_RDWR), EPERM);
                assert_int_equal (t_setattr (5, 0x8, 0, 0, 0), EINVAL);
                assert_int_equal (t_clunk (4), 0);
                assert_int_equal (t_clunk (5), 0);
                assert_int_equal (opened (in, names[i]), 0);
        }
        /* the check itself works: an open of a regular file is seen */
        assert_int_equal (t_walk (1, 4, &nq, NULL), 0);
        assert_int_equal (t_lcreate (4, "hello.txt", O_RDONLY, 0644), 0);
        assert_int_equal (opened (in, "hello.txt"), 1);
        close (in);
}

/* ---- no setuid or setgid file, no device node from the guest ---- */

static void
test_guest_modes (void **state)
{
        int nq;
        /* creation: the permission bits (and a directory's sticky bit) only */
        assert_int_equal (t_mknod (1, "suid", S_IFREG | 06777), 0);
        assert_int_equal (host_mode ("suid") & 07000, 0);
        assert_true (S_ISREG (host_mode ("suid")));
        assert_int_equal (t_mknod (1, "sticky", S_IFREG | 01644), 0);
        assert_int_equal (host_mode ("sticky") & 07777, 0644);
        assert_int_equal (t_mknod (1, "ff", S_IFIFO | 04666), 0);
        assert_int_equal (host_mode ("ff") & 07000, 0);
        assert_int_equal (t_walk (1, 2, &nq, NULL), 0);
        assert_int_equal (t_lcreate (2, "created", O_RDWR | O_CREAT, 06755), 0);
        assert_int_equal (host_mode ("created") & 07777, 0755);
        begin (P9_TMKDIR);
        put (1, 4);
        put_s ("d");
        put (07755, 4);
        put (0, 4);
        assert_int_equal (rpc (), 0);
        assert_int_equal (host_mode ("d") & 07777, 01755);
        /* no device nodes of any kind */
        assert_int_equal (t_mknod (1, "blk", S_IFBLK | 0600), EPERM);
        assert_int_equal (t_mknod (1, "chr", S_IFCHR | 0600), EPERM);
        assert_int_equal (t_mknod (1, "none", 0600), EPERM);
        char p[256];
        snprintf (p, sizeof p, "%s/blk", share);
        assert_false (host_exists (p));

        /* chmod: the same bits */
        assert_int_equal (t_walk (1, 3, &nq, "created", NULL), 0);
        assert_int_equal (t_setattr (3, 0x1, 04755, 0, 0), 0);
        assert_int_equal (host_mode ("created") & 07777, 0755);
        assert_int_equal (t_setattr (3, 0x1, 03711, 0, 0), 0);
        assert_int_equal (host_mode ("created") & 07777, 0711);
        assert_int_equal (t_walk (1, 4, &nq, "d", NULL), 0);
        assert_int_equal (t_setattr (4, 0x1, 06777, 0, 0), 0);
        assert_int_equal (host_mode ("d") & 07777, 0777);
        assert_int_equal (t_setattr (4, 0x1, 01700, 0, 0), 0);
        assert_int_equal (host_mode ("d") & 07777, 01700);
        assert_int_equal (t_clunk (3), 0);
        assert_int_equal (t_clunk (4), 0);

        /* a setuid file already in the share (the image's) keeps its bits
         * while only read, and loses them once the guest writes it,
         * truncates it or gives it to someone else */
        const char *which[] = {"w", "trunc", "size", "chown", "lcreate"};
        for (size_t i = 0; i < ARRAY_SIZE (which); i++) {
                write_host (which[i], "#!/bin/sh\n");
                host_chmod (which[i], 06755);
        }
        assert_int_equal (t_walk (1, 3, &nq, "w", NULL), 0);
        assert_int_equal (t_lopen (3, O_RDONLY), 0);
        assert_int_equal (host_mode ("w") & 07777, 06755);
        assert_int_equal (t_clunk (3), 0);
        assert_int_equal (t_walk (1, 3, &nq, "w", NULL), 0);
        assert_int_equal (t_lopen (3, O_WRONLY), 0);
        assert_int_equal (host_mode ("w") & 07777, 0755);
        assert_int_equal (t_write (3, 0, "evil"), 0);
        assert_int_equal (host_mode ("w") & 07777, 0755);
        assert_int_equal (t_walk (1, 4, &nq, "trunc", NULL), 0);
        assert_int_equal (t_lopen (4, O_RDONLY | O_TRUNC), 0);
        assert_int_equal (host_mode ("trunc") & 07000, 0);
        assert_int_equal (t_walk (1, 5, &nq, "size", NULL), 0);
        assert_int_equal (t_setattr (5, 0x8, 0, 0, 1), 0);
        assert_int_equal (host_mode ("size") & 07000, 0);
        assert_int_equal (t_walk (1, 6, &nq, "chown", NULL), 0);
        assert_int_equal (t_setattr (6, 0x2, 0, geteuid (), 0), 0);
        assert_int_equal (host_mode ("chown") & 07777, 0755);
        assert_int_equal (t_walk (1, 7, &nq, NULL), 0);
        assert_int_equal (t_lcreate (7, "lcreate", O_RDONLY, 0644), 0);
        assert_int_equal (host_mode ("lcreate") & 07777, 06755); /* only read */
        assert_int_equal (t_walk (1, 8, &nq, NULL), 0);
        assert_int_equal (t_lcreate (8, "lcreate", O_WRONLY, 0644), 0);
        assert_int_equal (host_mode ("lcreate") & 07777, 0755);
        /* ownership is the guest's to choose */
        if (geteuid () == 0) {
                assert_int_equal (t_walk (1, 9, &nq, "created", NULL), 0);
                assert_int_equal (t_setattr (9, 0x2, 0, 1234, 0), 0);
                snprintf (p, sizeof p, "%s/created", share);
                struct stat st;
                assert_int_equal (stat (p, &st), 0);
                assert_int_equal (st.st_uid, 1234);
        }
}

/* ---- malformed messages ---- */

static void
test_malformed (void **state)
{
        int nq;
        /* shorter than a header */
        m.n = 0;
        put (5, 4);
        assert_int_equal (send_raw (5), P9_RLERROR);
        assert_int_equal (get (5, 2), MOAT_P9_NOTAG);
        /* size field larger than what arrived */
        begin (P9_TGETATTR);
        put (1, 4);
        put (0, 8);
        m.b[0] = 200;
        assert_int_equal (send_raw (m.n), P9_RLERROR);
        assert_int_equal (get (7, 4), EINVAL);
        /* size field below the header / beyond msize */
        m.b[0] = 3;
        assert_int_equal (send_raw (m.n), P9_RLERROR);
        /* truncated body */
        begin (P9_TWALK);
        put (1, 4);
        assert_int_equal (rpc (), EINVAL);
        /* string longer than the message */
        begin (P9_TWALK);
        put (1, 4);
        put (2, 4);
        put (1, 2);
        put (60000, 2);
        put (0x41414141, 4);
        assert_int_equal (rpc (), EINVAL);
        /* NUL inside a name */
        begin (P9_TWALK);
        put (1, 4);
        put (2, 4);
        put (1, 2);
        put (3, 2);
        memcpy (m.b + m.n, "a\0b", 3);
        m.n += 3;
        assert_int_equal (rpc (), EINVAL);
        /* name longer than NAME_MAX */
        char longname[300];
        memset (longname, 'a', sizeof longname - 1);
        longname[299] = 0;
        assert_int_equal (t_walk (1, 2, &nq, longname, NULL), EINVAL);
        /* walk deeper than 16 */
        begin (P9_TWALK);
        put (1, 4);
        put (2, 4);
        put (17, 2);
        for (int i = 0; i < 17; i++)
                put_s ("sub");
        assert_int_equal (rpc (), E2BIG);
        /* bad fids */
        assert_int_equal (t_getattr (77), EBADF);
        assert_int_equal (t_walk (77, 78, &nq, NULL), EBADF);
        assert_int_equal (t_walk (1, MOAT_P9_NOFID, &nq, NULL), EBADF);
        assert_int_equal (t_clunk (77), EBADF);
        assert_int_equal (t_mkdir (77, "x"), EBADF);
        /* write count larger than the message */
        assert_int_equal (t_walk (1, 2, &nq, NULL), 0);
        assert_int_equal (t_lcreate (2, "w", O_RDWR | O_CREAT, 0644), 0);
        begin (P9_TWRITE);
        put (2, 4);
        put (0, 8);
        put (0xffffffff, 4);
        put (0, 4);
        assert_int_equal (rpc (), EINVAL);
        /* huge read count is clamped to msize */
        char big[60000];
        memset (big, 'z', sizeof big - 1);
        big[sizeof big - 1] = 0;
        assert_int_equal (t_write (2, 0, big), 0);
        assert_int_equal (t_version (8192, "9P2000.L"), 0);
        assert_int_equal (t_attach (1), 0);
        assert_int_equal (t_walk (1, 2, &nq, "w", NULL), 0);
        assert_int_equal (t_lopen (2, O_RDONLY), 0);
        assert_int_equal (t_read (2, 0, 0xffffffff), 0);
        assert_int_equal (resp_len, 8192);
        assert_int_equal (get (7, 4), 8192 - 11);
        assert_int_equal (t_read (2, UINT64_MAX, 10), EINVAL);
        /* a request larger than msize */
        begin (P9_TWRITE);
        put (2, 4);
        put (0, 8);
        put (9000, 4);
        memset (m.b + m.n, 'q', 9000);
        m.n += 9000;
        assert_int_equal (rpc (), EINVAL);
        /* unknown and unsupported types */
        begin (200);
        assert_int_equal (rpc (), EOPNOTSUPP);
        begin (P9_TAUTH);
        put (5, 4);
        put_s ("u");
        put_s ("a");
        put (0, 4);
        assert_int_equal (rpc (), EOPNOTSUPP);
        /* reply buffer too small for anything */
        begin (P9_TGETATTR);
        put (1, 4);
        put (0, 8);
        m.b[0] = m.n;
        assert_int_equal (moat_p9_handle (srv, m.b, m.n, resp, 10), 0);
        /* reply that does not fit: Rlerror */
        assert_int_equal (moat_p9_handle (srv, m.b, m.n, resp, 40), 11);
        assert_int_equal (resp[4], P9_RLERROR);
}

/* Valid messages with random bytes flipped and random truncation: the
 * server answers each one and keeps its fid count bounded. */
static void
test_fuzz (void **state)
{
        uint32_t seed = 12345;
        struct msg seeds[8];
        int nseeds = 0;
#define SEED(build)                                                                                                    \
        do {                                                                                                           \
                build;                                                                                                 \
                m.b[0] = m.n;                                                                                          \
                m.b[1] = m.n >> 8;                                                                                     \
                seeds[nseeds++] = m;                                                                                   \
        } while (0)
        SEED ((begin (P9_TWALK), put (1, 4), put (2, 4), put (2, 2), put_s ("sub"), put_s ("inner.txt")));
        SEED ((begin (P9_TLCREATE), put (1, 4), put_s ("f"), put (2, 4), put (0644, 4), put (0, 4)));
        SEED ((begin (P9_TREAD), put (2, 4), put (0, 8), put (100, 4)));
        SEED ((begin (P9_TWRITE), put (2, 4), put (0, 8), put (3, 4), put ('a', 1), put ('b', 1), put ('c', 1)));
        SEED ((begin (P9_TREADDIR), put (1, 4), put (0, 8), put (500, 4)));
        SEED ((begin (P9_TSETATTR), put (2, 4), put (0x8, 4), put (0, 12), put (5, 8), put (0, 32)));
        SEED ((begin (P9_TRENAMEAT), put (1, 4), put_s ("f"), put (1, 4), put_s ("g")));
        SEED ((begin (P9_TLOPEN), put (2, 4), put (0, 4)));
        for (int i = 0; i < 20000; i++) {
                m = seeds[i % nseeds];
                int flips = 1 + (seed = seed * 1103515245 + 12345) % 4;
                for (int k = 0; k < flips; k++) {
                        seed = seed * 1103515245 + 12345;
                        size_t pos = (seed >> 8) % m.n;
                        m.b[pos] ^= 1u << ((seed >> 4) % 8);
                }
                seed = seed * 1103515245 + 12345;
                size_t len = (seed >> 16) % 8 == 0 ? (seed >> 3) % (m.n + 1) : m.n;
                size_t n = moat_p9_handle (srv, m.b, len, resp, sizeof resp);
                assert_true (n >= 7);
                assert_int_equal (get (0, 4), n);
                assert_true (moat_p9_nfids (srv) < 64);
        }
        assert_string_equal (read_host (secret), "top secret");
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown (test_version, setup, teardown),
                cmocka_unit_test_setup_teardown (test_walk_open_read, setup, teardown),
                cmocka_unit_test_setup_teardown (test_create_write, setup, teardown),
                cmocka_unit_test_setup_teardown (test_mkdir_readdir, setup, teardown),
                cmocka_unit_test_setup_teardown (test_unlink_rename_link, setup, teardown),
                cmocka_unit_test_setup_teardown (test_escape_dotdot, setup, teardown),
                cmocka_unit_test_setup_teardown (test_escape_symlinks, setup, teardown),
                cmocka_unit_test_setup_teardown (test_escape_rename_and_devices, setup, teardown),
                cmocka_unit_test_setup_teardown (test_fifo_and_devices_not_opened, setup, teardown),
                cmocka_unit_test_setup_teardown (test_guest_modes, setup, teardown),
                cmocka_unit_test_setup_teardown (test_malformed, setup, teardown),
                cmocka_unit_test_setup_teardown (test_fuzz, setup, teardown),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}
