/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "moat/log.h"

static int log_fd = -1;
static int log_json;
static int log_debug;

int
moat_log_init (const char *path, int json, int debug)
{
        log_json = json;
        log_debug = debug || getenv ("MOAT_DEBUG") != NULL;
        if (path != NULL && *path) {
                int fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (fd < 0)
                        return -1;
                if (log_fd >= 0)
                        close (log_fd);
                log_fd = fd;
        }
        return 0;
}

static void
json_escape (FILE *f, const char *s)
{
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '"' || c == '\\')
                        fprintf (f, "\\%c", c);
                else if (c == '\n')
                        fputs ("\\n", f);
                else if (c < 0x20)
                        fprintf (f, "\\u%04x", c);
                else
                        fputc (c, f);
        }
}

void
moat_log (enum moat_log_level lvl, const char *fmt, ...)
{
        static const char *names[] = {"error", "warning", "info", "debug"};
        char *msg = NULL, *line = NULL;
        size_t len = 0;
        va_list ap;
        FILE *f;
        struct timespec ts;
        struct tm tm;
        char tbuf[64];

        if (lvl == MOAT_LOG_DEBUG && !log_debug)
                return;
        if (log_fd < 0 && lvl > MOAT_LOG_WARNING && !log_debug)
                return;
        va_start (ap, fmt);
        if (vasprintf (&msg, fmt, ap) < 0) {
                va_end (ap);
                return;
        }
        va_end (ap);
        clock_gettime (CLOCK_REALTIME, &ts);
        gmtime_r (&ts.tv_sec, &tm);
        strftime (tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%S", &tm);
        f = open_memstream (&line, &len);
        if (f == NULL) {
                free (msg);
                return;
        }
        if (log_json) {
                fprintf (f, "{\"level\":\"%s\",\"msg\":\"", names[lvl]);
                json_escape (f, msg);
                fprintf (f, "\",\"time\":\"%s.%09ldZ\"}\n", tbuf, ts.tv_nsec);
        } else {
                /* logrus's text format, as runc writes it */
                fprintf (f, "time=\"%s.%09ldZ\" level=%s msg=\"", tbuf, ts.tv_nsec, names[lvl]);
                json_escape (f, msg);
                fputs ("\"\n", f);
        }
        fclose (f);
        if (log_fd >= 0) {
                if (write (log_fd, line, len) < 0) {
                }
        } else if (lvl != MOAT_LOG_ERROR) {
                /* errors are printed by moat_error_print itself */
                if (write (STDERR_FILENO, line, len) < 0) {
                }
        }
        free (line);
        free (msg);
}
