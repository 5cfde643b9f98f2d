/* SPDX-License-Identifier: Apache-2.0 */
/* Error objects threaded through calls: a function that fails fills *err and
 * returns a negative value; callers add context with moat_error_wrap(). */
#ifndef MOAT_ERROR_H
#define MOAT_ERROR_H

#include <stdarg.h>

typedef struct moat_error_s {
        int errno_; /* errno at the root cause, 0 if none */
        char *msg;  /* full message, context first */
} * moat_error_t;

/* Sets *err to "fmt...: strerror(errno_)" (errno_ 0: no suffix). Returns -1. */
int moat_make_error (moat_error_t *err, int errno_, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));
/* Prefixes "fmt...: " to an existing error. Returns -1. */
int moat_error_wrap (moat_error_t *err, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
void moat_error_release (moat_error_t *err);
/* Prints "moat: <msg>" to stderr (and the log) and releases it. */
void moat_error_print (moat_error_t *err, const char *prog);

static inline void
moat_cleanup_error (moat_error_t *err)
{
        moat_error_release (err);
}
#define cleanup_error __attribute__ ((cleanup (moat_cleanup_error)))

#endif
