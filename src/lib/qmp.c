/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal QMP client: one command at a time, one reply line each. QMP
 * sends every message as one line of JSON; a reply is the first line
 * holding "return" or "error" at its top level, events come between. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "moat/qmp.h"
#include "moat/util.h"

#define QMP_LINE_MAX (64 * 1024)

/* One line (without its newline) into buf; -1 with err on timeout, EOF,
 * or a line longer than QMP_LINE_MAX. */
static int
read_line (int fd, char *buf, int64_t deadline_ms, moat_error_t *err)
{
        size_t n = 0;
        for (;;) {
                int left = (int)(deadline_ms - now_ms ());
                struct pollfd p = {.fd = fd, .events = POLLIN};
                char c;
                if (left <= 0)
                        return moat_make_error (err, ETIMEDOUT, "qmp: no answer from QEMU");
                int r = poll (&p, 1, left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return moat_make_error (err, errno, "qmp: poll");
                if (r == 0)
                        continue;
                ssize_t k = read (fd, &c, 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return moat_make_error (err, errno, "qmp: read");
                if (k == 0)
                        return moat_make_error (err, ECONNRESET, "qmp: QEMU closed the monitor");
                if (c == '\n') {
                        buf[n] = '\0';
                        return 0;
                }
                if (n + 1 >= QMP_LINE_MAX)
                        return moat_make_error (err, E2BIG, "qmp: reply longer than %d bytes", QMP_LINE_MAX);
                buf[n++] = c;
        }
}

int
moat_qmp_cmd (int fd, const char *json, int64_t deadline_ms, char **reply, moat_error_t *err)
{
        cleanup_free char *line = xmalloc (QMP_LINE_MAX);
        if (send_all (fd, json, strlen (json)) < 0 || send_all (fd, "\n", 1) < 0)
                return moat_make_error (err, errno, "qmp: send %s", json);
        for (;;) {
                if (read_line (fd, line, deadline_ms, err) < 0)
                        return moat_error_wrap (err, "%s", json);
                if (strncmp (line, "{\"return\"", 9) == 0) {
                        if (reply)
                                *reply = steal_pointer (&line);
                        return 0;
                }
                if (strncmp (line, "{\"error\"", 8) == 0)
                        return moat_make_error (err, 0, "qmp: %s: %s", json, line);
                /* an event, or the greeting */
        }
}

int
moat_qmp_open (const char *path, int64_t deadline_ms, moat_error_t *err)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        cleanup_close int fd = -1;
        cleanup_free char *line = xmalloc (QMP_LINE_MAX);

        if (strlen (path) >= sizeof sa.sun_path)
                return moat_make_error (err, ENAMETOOLONG, "qmp socket %s", path);
        strcpy (sa.sun_path, path);
        for (;;) {
                fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return moat_make_error (err, errno, "qmp: socket");
                if (connect (fd, (struct sockaddr *)&sa, sizeof sa) == 0)
                        break;
                int e = errno;
                close (fd);
                fd = -1;
                if ((e != ENOENT && e != ECONNREFUSED) || now_ms () >= deadline_ms)
                        return moat_make_error (err, e, "qmp: connect %s", path);
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep (&ts, NULL);
        }
        if (read_line (fd, line, deadline_ms, err) < 0)
                return moat_error_wrap (err, "qmp greeting");
        if (strncmp (line, "{\"QMP\"", 6) != 0)
                return moat_make_error (err, EPROTO, "qmp: unexpected greeting %.80s", line);
        if (moat_qmp_cmd (fd, "{\"execute\":\"qmp_capabilities\"}", deadline_ms, NULL, err) < 0)
                return -1;
        return steal_fd (&fd);
}
