/* SPDX-License-Identifier: Apache-2.0 */
/* The 9P2000.L server (src/p9/server.c) over a real share directory, with a
 * canary directory beside it. The input is a sequence of requests, each a
 * type and a list of typed fields (integers, fids, names from a small
 * dictionary that knows the share's entries and the usual ways out, raw
 * strings and bytes), or a raw message. After each input:
 *   - anything created, changed or removed in the canary, or created or
 *     removed beside the share, is a crash (inotify);
 *   - a reply carrying the canary file's secret is a crash (a read escape);
 *   - a reply whose size field does not match its length, or that is
 *     neither R(type) nor Rlerror, is a crash.
 * The share is rebuilt for every input. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <dirent.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "moat/log.h"
#include "moat/p9.h"
#include "moat/util.h"

#define SECRET "moat-fuzz-canary-secret-2f9c1e"
#define NFIDS 8

static char top[64], share[96], canary[96];
static int ino = -1;
static uint8_t req[65536 + 64];
static uint8_t resp[MOAT_P9_MAX_MSIZE];

static void
put_file (const char *dirpath, const char *name, const char *text)
{
        char p[256];
        snprintf (p, sizeof p, "%s/%s", dirpath, name);
        int fd = open (p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write (fd, text, strlen (text)) < 0)
                abort ();
        close (fd);
}

static void
build_share (void)
{
        moat_error_t err = NULL;
        char p[256];
        chmod (share, 0755);
        if (rm_rf (share, &err) < 0) {
                fprintf (stderr, "rm_rf %s: %s\n", share, err->msg);
                abort ();
        }
        if (mkdir (share, 0755) < 0)
                abort ();
        put_file (share, "file", "hello, 9p\n");
        snprintf (p, sizeof p, "%s/dir", share);
        mkdir (p, 0755);
        put_file (p, "inner", "inner\n");
        /* ways out that must stay closed */
        snprintf (p, sizeof p, "%s/link", share);
        if (symlink ("../canary/secret", p) < 0)
                abort ();
        snprintf (p, sizeof p, "%s/abs", share);
        if (symlink (canary, p) < 0)
                abort ();
        snprintf (p, sizeof p, "%s/dir/up", share);
        if (symlink ("../..", p) < 0)
                abort ();
}

/* libFuzzer ends with exit(): the temporary directory goes with it. */
static void
remove_tmp (void)
{
        moat_error_t err = NULL;
        if (rm_rf (top, &err) < 0)
                moat_error_release (&err);
}

static void
init (void)
{
        char p[256];
        moat_log_init ("/dev/null", 0, 1);
        strcpy (top, "/tmp/moat-fuzz-p9.XXXXXX");
        if (mkdtemp (top) == NULL)
                abort ();
        atexit (remove_tmp);
        snprintf (share, sizeof share, "%s/share", top);
        snprintf (canary, sizeof canary, "%s/canary", top);
        if (mkdir (share, 0755) < 0 || mkdir (canary, 0755) < 0)
                abort ();
        put_file (canary, "secret", SECRET "\n");
        snprintf (p, sizeof p, "%s/sub", canary);
        mkdir (p, 0755);
        put_file (p, "deep", SECRET "\n");
        ino = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
        uint32_t changes = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE |
                           IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF;
        if (ino < 0 || inotify_add_watch (ino, canary, changes) < 0 || inotify_add_watch (ino, p, changes) < 0)
                abort ();
        snprintf (p, sizeof p, "%s/secret", canary);
        if (inotify_add_watch (ino, p, changes) < 0)
                abort ();
        /* beside the share: names created or removed (the share itself is rebuilt under it) */
        if (inotify_add_watch (ino, top, IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF) < 0)
                abort ();
}

static void
check_canary (void)
{
        union {
                struct inotify_event ev;
                char buf[4096];
        } u;
        ssize_t n = read (ino, u.buf, sizeof u.buf);
        if (n > 0) {
                fprintf (stderr, "fuzz_p9: the canary beside the share changed (mask 0x%x, name '%s')\n", u.ev.mask,
                         u.ev.len ? u.ev.name : "");
                abort ();
        }
        /* names beside the share other than share/ and canary/ */
        char p[256];
        snprintf (p, sizeof p, "%s", top);
        DIR *d = opendir (p);
        struct dirent *de;
        while (d && (de = readdir (d)) != NULL)
                if (strcmp (de->d_name, ".") && strcmp (de->d_name, "..") && strcmp (de->d_name, "share") &&
                    strcmp (de->d_name, "canary")) {
                        fprintf (stderr, "fuzz_p9: '%s' appeared beside the share\n", de->d_name);
                        abort ();
                }
        if (d)
                closedir (d);
}

static const char *const names[] = {"file", "dir",    "inner",  "link", "abs", "up",    "..", ".",
                                    "new",  "canary", "secret", "",     "a/b", "share", "/",  "new2"};

struct msg {
        size_t n;
};

static void
put (struct msg *m, uint64_t v, int bytes)
{
        for (int i = 0; i < bytes && m->n < sizeof req; i++, v >>= 8)
                req[m->n++] = v & 0xff;
}

static void
put_str (struct msg *m, const void *s, size_t len)
{
        if (m->n + 2 + len > sizeof req)
                return;
        put (m, len, 2);
        memcpy (req + m->n, s, len);
        m->n += len;
}

static void
check_reply (uint8_t type, size_t n)
{
        if (n < MOAT_P9_HDR || n > sizeof resp) {
                fprintf (stderr, "fuzz_p9: reply of %zu bytes\n", n);
                abort ();
        }
        uint32_t size = resp[0] | resp[1] << 8 | resp[2] << 16 | (uint32_t)resp[3] << 24;
        if (size != n) {
                fprintf (stderr, "fuzz_p9: reply size field %u, length %zu\n", size, n);
                abort ();
        }
        if (resp[4] != P9_RLERROR && resp[4] != (uint8_t)(type + 1)) {
                fprintf (stderr, "fuzz_p9: reply type %u to request type %u\n", resp[4], type);
                abort ();
        }
        if (memmem (resp, n, SECRET, strlen (SECRET)) != NULL) {
                fprintf (stderr, "fuzz_p9: a reply holds the canary's secret\n");
                abort ();
        }
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        struct fz f = {data, size};
        struct moat_p9_server *s = NULL;
        moat_error_t err = NULL;

        if (ino < 0)
                init ();
        build_share ();
        if (moat_p9_server_new (share, &s, &err) < 0) {
                fprintf (stderr, "moat_p9_server_new: %s\n", err->msg);
                abort ();
        }
        for (int steps = 0; fz_more (&f) && steps < 64; steps++) {
                struct msg m = {0};
                uint8_t type = fz_u8 (&f);
                uint8_t mode = fz_u8 (&f);
                put (&m, 0, 4);
                put (&m, type, 1);
                put (&m, fz_u8 (&f), 2); /* tag */
                if (mode & 0x80) {       /* raw body */
                        size_t n;
                        const uint8_t *p = fz_chunk (&f, 65536, &n);
                        memcpy (req + m.n, p, n);
                        m.n += n;
                } else {
                        int nfields = mode & 15;
                        for (int i = 0; i < nfields; i++) {
                                uint8_t k = fz_u8 (&f);
                                switch (k % 8) {
                                case 0:
                                        put (&m, fz_u8 (&f), 1);
                                        break;
                                case 1:
                                        put (&m, fz_u16 (&f), 2);
                                        break;
                                case 2:
                                        put (&m, fz_u32 (&f), 4);
                                        break;
                                case 3:
                                        put (&m, fz_u64 (&f), 8);
                                        break;
                                case 4: /* a fid: a few, or NOFID */
                                        put (&m, (k & 0x80) ? MOAT_P9_NOFID : fz_u8 (&f) % NFIDS, 4);
                                        break;
                                case 5: {
                                        const char *nm = names[fz_u8 (&f) % (sizeof names / sizeof names[0])];
                                        put_str (&m, nm, strlen (nm));
                                        break;
                                }
                                case 6: {
                                        size_t n;
                                        const uint8_t *p = fz_chunk (&f, 300, &n);
                                        put_str (&m, p, n);
                                        break;
                                }
                                case 7: { /* Twrite-sized data */
                                        size_t n;
                                        const uint8_t *p = fz_chunk (&f, 8192, &n);
                                        put (&m, n, 4);
                                        memcpy (req + m.n, p, n);
                                        m.n += n;
                                        break;
                                }
                                }
                        }
                }
                uint32_t sz = (mode & 0x40) ? fz_u32 (&f) : (uint32_t)m.n;
                req[0] = sz & 0xff;
                req[1] = (sz >> 8) & 0xff;
                req[2] = (sz >> 16) & 0xff;
                req[3] = sz >> 24;
                size_t cap = (mode & 0x20) ? fz_u16 (&f) : sizeof resp;
                size_t n = moat_p9_handle (s, req, m.n, resp, cap);
                if (n == 0 && cap >= 11) {
                        fprintf (stderr, "fuzz_p9: no reply with %zu bytes of room\n", cap);
                        abort ();
                }
                if (n > cap) {
                        fprintf (stderr, "fuzz_p9: reply of %zu bytes for %zu of room\n", n, cap);
                        abort ();
                }
                if (n > 0)
                        check_reply (type, n);
                if (mode & 0x10 && (type & 7) == 7)
                        moat_p9_reset (s);
        }
        moat_p9_server_free (s);
        check_canary ();
        return 0;
}
