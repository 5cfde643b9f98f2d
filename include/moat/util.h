/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by every moat program: cleanup attributes, allocation
 * that aborts on OOM, and fd I/O that retries on EINTR. */
#ifndef MOAT_UTIL_H
#define MOAT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "moat/error.h"

void moat_cleanup_freep (void *p);
void moat_cleanup_closep (int *fd);
void moat_cleanup_fclosep (FILE **f);
void moat_cleanup_strv (char ***v);

#define cleanup_free __attribute__ ((cleanup (moat_cleanup_freep)))
#define cleanup_close __attribute__ ((cleanup (moat_cleanup_closep)))
#define cleanup_file __attribute__ ((cleanup (moat_cleanup_fclosep)))
#define cleanup_strv __attribute__ ((cleanup (moat_cleanup_strv)))

/* Hands ownership out of a cleanup variable. */
#define steal_pointer(pp)                                                                                              \
        ({                                                                                                             \
                __typeof__ (*(pp)) _p = *(pp);                                                                         \
                *(pp) = NULL;                                                                                          \
                _p;                                                                                                    \
        })
static inline int
steal_fd (int *fd)
{
        int r = *fd;
        *fd = -1;
        return r;
}

#define ARRAY_SIZE(a) (sizeof (a) / sizeof ((a)[0]))

void *xmalloc (size_t n);
void *xzalloc (size_t n);
void *xrealloc (void *p, size_t n);
char *xstrdup (const char *s);
char *xstrndup (const char *s, size_t n);
int xasprintf (char **out, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
char *xasprintf_r (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
/* A peer's text made fit for a terminal and an error message: bytes outside
 * printable ASCII (but newlines and tabs) become \xNN, and past max bytes of input the rest is cut
 * and counted ("... (N more bytes)"). len is s's length (strlen if -1). */
char *moat_printable (const char *s, ssize_t len, size_t max);
#define MOAT_PEER_TEXT_MAX 2048 /* what an error message keeps of a peer's text */
void strv_free (char **v);
size_t strv_len (char *const *v);

/* Full reads/writes, retrying on EINTR and short transfers. read_all returns
 * bytes read (less than n only at EOF) or -1. */
ssize_t read_all (int fd, void *buf, size_t n);
ssize_t write_all (int fd, const void *buf, size_t n);
/* write_all for a socket: a peer that went away is EPIPE, never SIGPIPE */
ssize_t send_all (int fd, const void *buf, size_t n);

/* Reads a whole file into a NUL-terminated buffer. */
int read_file (const char *path, char **out, size_t *len, moat_error_t *err);
int write_file (const char *path, const char *data, size_t len, int mode, moat_error_t *err);
/* mkdir -p */
int mkdir_p (const char *path, int mode, moat_error_t *err);
/* rm -rf that never crosses into another filesystem: a mount point (found by
 * mount ID, not st_dev, which overlayfs does not keep uniform) is an error. */
int rm_rf (const char *path, moat_error_t *err);

int set_cloexec (int fd, bool on);
int set_nonblock (int fd, bool on);

/* Monotonic clock in milliseconds. */
int64_t now_ms (void);

#endif
