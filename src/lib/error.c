/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/error.h"
#include "moat/log.h"

int
moat_make_error (moat_error_t *err, int errno_, const char *fmt, ...)
{
        va_list ap;
        char *m = NULL;
        struct moat_error_s *e;

        if (err == NULL)
                return -1;
        va_start (ap, fmt);
        if (vasprintf (&m, fmt, ap) < 0)
                m = NULL;
        va_end (ap);
        e = calloc (1, sizeof (*e));
        if (e == NULL)
                abort ();
        e->errno_ = errno_;
        if (errno_ != 0 && m != NULL) {
                char *full = NULL;
                if (asprintf (&full, "%s: %s", m, strerror (errno_)) >= 0) {
                        free (m);
                        m = full;
                }
        }
        e->msg = m ? m : strdup ("out of memory");
        moat_error_release (err);
        *err = e;
        return -1;
}

int
moat_error_wrap (moat_error_t *err, const char *fmt, ...)
{
        va_list ap;
        char *ctx = NULL, *full = NULL;

        if (err == NULL || *err == NULL)
                return -1;
        va_start (ap, fmt);
        if (vasprintf (&ctx, fmt, ap) < 0)
                ctx = NULL;
        va_end (ap);
        if (ctx != NULL && asprintf (&full, "%s: %s", ctx, (*err)->msg) >= 0) {
                free ((*err)->msg);
                (*err)->msg = full;
        }
        free (ctx);
        return -1;
}

void
moat_error_release (moat_error_t *err)
{
        if (err == NULL || *err == NULL)
                return;
        free ((*err)->msg);
        free (*err);
        *err = NULL;
}

void
moat_error_print (moat_error_t *err, const char *prog)
{
        if (err == NULL || *err == NULL)
                return;
        moat_log (MOAT_LOG_ERROR, "%s", (*err)->msg);
        fprintf (stderr, "%s: %s\n", prog ? prog : "moat", (*err)->msg);
        moat_error_release (err);
}
