/* SPDX-License-Identifier: Apache-2.0 */
/* Stdio connections (vsock port 1025) and the pty relay.
 *
 * The host opens one connection per stream and writes
 * "STDIO <container_id> <exec_id> <stream>\n"; we answer "OK\n" (or
 * "ERR <message>\n") and park the fd until CreateContainer/ExecProcess
 * claims it. The header is read one byte at a time so no stream data that
 * follows it is swallowed. Parked connections nobody claims are dropped
 * after a minute.
 *
 * --preserve-fds: stream "fd<N>:<r|w|rw>" carries the host's fd N; the
 * spawn takes every such stream of its (container, exec) and gives the
 * process a pipe relayed to it (r, w) or the stream itself (rw). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "moat/util.h"

#define PARK_TTL_MS 60000

enum { S_STDIN, S_STDOUT, S_STDERR, S_TTY, S_N };
static const char *const stream_names[S_N] = {"stdin", "stdout", "stderr", "tty"};
/* a preserved fd N is stream S_FD0 + N */
#define S_FD0 64
#define EXTRA_MAX 256

struct parked {
        struct parked *next;
        char *cid, *exec_id;
        int stream;
        int mode; /* preserved fds: O_RDONLY, O_WRONLY or O_RDWR */
        int fd;
        int64_t since;
};

static const char *
stream_label (int s, char buf[16])
{
        if (s >= 0 && s < S_N)
                return stream_names[s];
        snprintf (buf, 16, "fd%d", s - S_FD0);
        return buf;
}

/* "fd<N>:<r|w|rw>", 3 <= N < 3 + EXTRA_MAX: the stream number and mode */
static int
parse_fd_stream (const char *name, int *mode)
{
        char *end;
        long n;
        if (strncmp (name, "fd", 2) != 0 || name[2] < '0' || name[2] > '9')
                return -1;
        n = strtol (name + 2, &end, 10);
        if (n < 3 || n >= 3 + EXTRA_MAX || *end != ':')
                return -1;
        if (strcmp (end + 1, "r") == 0)
                *mode = O_RDONLY;
        else if (strcmp (end + 1, "w") == 0)
                *mode = O_WRONLY;
        else if (strcmp (end + 1, "rw") == 0)
                *mode = O_RDWR;
        else
                return -1;
        return S_FD0 + n;
}

static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static struct parked *parked;

static void
expire_locked (void)
{
        int64_t now = now_ms ();
        for (struct parked **pp = &parked; *pp;) {
                struct parked *p = *pp;
                if (now - p->since > PARK_TTL_MS) {
                        char b[16];
                        agent_log ("dropping unclaimed %s stream of %s/%s", stream_label (p->stream, b), p->cid,
                                   p->exec_id);
                        *pp = p->next;
                        close (p->fd);
                        free (p->cid);
                        free (p->exec_id);
                        free (p);
                } else
                        pp = &p->next;
        }
}

static void
reply (int fd, const char *msg)
{
        if (write_all (fd, msg, strlen (msg)) < 0)
                agent_debug ("stdio: reply: %s", strerror (errno));
}

static void *
handshake_thread (void *arg)
{
        int fd = (int)(intptr_t)arg;
        char line[600], cid[260], eid[260], stream[16], extra[2];
        size_t n = 0;
        struct timeval tv = {.tv_sec = 10};
        int s, mode = 0;

        setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        while (n < sizeof line - 1) {
                ssize_t r = read (fd, line + n, 1);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0) {
                        close (fd);
                        return NULL;
                }
                if (line[n] == '\n')
                        break;
                n++;
        }
        line[n] = '\0';
        tv.tv_sec = 0;
        setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (n >= sizeof line - 1 || sscanf (line, "STDIO %259s %259s %15s %1s", cid, eid, stream, extra) != 3) {
                reply (fd, "ERR malformed header, expected \"STDIO <container_id> <exec_id> <stream>\"\n");
                close (fd);
                return NULL;
        }
        for (s = 0; s < S_N; s++)
                if (strcmp (stream, stream_names[s]) == 0)
                        break;
        if (s == S_N)
                s = parse_fd_stream (stream, &mode);
        if (s < 0) {
                reply (fd, "ERR unknown stream (stdin, stdout, stderr, tty or fd<N>:<r|w|rw>)\n");
                close (fd);
                return NULL;
        }
        pthread_mutex_lock (&park_lock);
        expire_locked ();
        for (struct parked *p = parked; p; p = p->next)
                if (p->stream == s && strcmp (p->cid, cid) == 0 && strcmp (p->exec_id, eid) == 0) {
                        pthread_mutex_unlock (&park_lock);
                        reply (fd, "ERR this stream is already connected\n");
                        close (fd);
                        return NULL;
                }
        {
                struct parked *p = xzalloc (sizeof *p);
                p->cid = xstrdup (cid);
                p->exec_id = xstrdup (eid);
                p->stream = s;
                p->mode = mode;
                p->fd = fd;
                p->since = now_ms ();
                p->next = parked;
                parked = p;
        }
        /* answer before anyone can claim (and hand the fd to a process) */
        reply (fd, "OK\n");
        pthread_cond_broadcast (&park_cond);
        pthread_mutex_unlock (&park_lock);
        agent_debug ("stdio: parked %s of %s/%s", stream, cid, eid);
        return NULL;
}

int
agent_stdio_serve (int listen_fd)
{
        for (;;) {
                pthread_t t;
                int fd = agent_accept (listen_fd, "stdio");
                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        agent_log ("stdio: accept: %s", strerror (errno));
                        sleep (1);
                        continue;
                }
                if (pthread_create (&t, NULL, handshake_thread, (void *)(intptr_t)fd) != 0) {
                        reply (fd, "ERR agent out of threads\n");
                        close (fd);
                        continue;
                }
                pthread_detach (t);
        }
        return 0;
}

static struct parked *
take_locked (const char *cid, const char *eid, int s)
{
        for (struct parked **pp = &parked; *pp; pp = &(*pp)->next)
                if ((*pp)->stream == s && strcmp ((*pp)->cid, cid) == 0 && strcmp ((*pp)->exec_id, eid) == 0) {
                        struct parked *p = *pp;
                        *pp = p->next;
                        return p;
                }
        return NULL;
}

static bool
have_locked (const char *cid, const char *eid, int s)
{
        for (struct parked *p = parked; p; p = p->next)
                if (p->stream == s && strcmp (p->cid, cid) == 0 && strcmp (p->exec_id, eid) == 0)
                        return true;
        return false;
}

int
agent_stdio_claim (const char *cid, const char *eid, bool terminal, bool want_in, bool want_out, bool want_err,
                   int fds[4], moat_error_t *err)
{
        bool want[S_N] = {!terminal && want_in, !terminal && want_out, !terminal && want_err, terminal};
        struct timespec deadline;

        for (int i = 0; i < S_N; i++)
                fds[i] = -1;
        if (eid == NULL || *eid == '\0')
                eid = "-";
        clock_gettime (CLOCK_REALTIME, &deadline);
        deadline.tv_sec += AGENT_STDIO_WAIT_MS / 1000;
        pthread_mutex_lock (&park_lock);
        for (;;) {
                int missing = -1;
                for (int i = 0; i < S_N && missing < 0; i++)
                        if (want[i] && !have_locked (cid, eid, i))
                                missing = i;
                if (missing < 0)
                        break;
                if (pthread_cond_timedwait (&park_cond, &park_lock, &deadline) == ETIMEDOUT) {
                        bool ready = true;
                        for (int i = 0; i < S_N; i++)
                                if (want[i] && !have_locked (cid, eid, i))
                                        ready = false;
                        if (ready)
                                break;
                        pthread_mutex_unlock (&park_lock);
                        return moat_make_error (err, ETIMEDOUT, "the %s stream of %s/%s did not connect within %d s",
                                                stream_names[missing], cid, eid, AGENT_STDIO_WAIT_MS / 1000);
                }
        }
        for (int i = 0; i < S_N; i++) {
                struct parked *p;
                if (!want[i])
                        continue;
                p = take_locked (cid, eid, i);
                fds[i] = p->fd;
                free (p->cid);
                free (p->exec_id);
                free (p);
        }
        pthread_mutex_unlock (&park_lock);
        return 0;
}

/* --- pty relay: master <-> the "tty" connection --- */

struct relay {
        int master, conn; /* our own duplicates, closed at the end */
};

static void *
relay_thread (void *arg)
{
        struct relay *rl = arg;
        int master = rl->master, conn = rl->conn;
        bool in_open = true;
        char buf[16384];

        for (;;) {
                struct pollfd pf[2] = {{.fd = master, .events = POLLIN}, {.fd = in_open ? conn : -1, .events = POLLIN}};
                int r = poll (pf, 2, -1);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        break;
                if (pf[0].revents) {
                        ssize_t n = read (master, buf, sizeof buf);
                        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (n <= 0) /* EIO: every slave fd is closed */
                                break;
                        if (write_all (conn, buf, n) < 0)
                                break;
                }
                if (in_open && pf[1].revents) {
                        ssize_t n = read (conn, buf, sizeof buf);
                        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (n <= 0) {
                                /* The host half-closed stdin, or CloseStdin
                                 * shut our read side: the terminal gets its
                                 * EOF character (^D unless changed), which a
                                 * canonical-mode reader sees as end of file. */
                                struct termios t;
                                char eof = 4;
                                in_open = false;
                                if (tcgetattr (master, &t) == 0 && t.c_cc[VEOF])
                                        eof = t.c_cc[VEOF];
                                if (write_all (master, &eof, 1) < 0)
                                        break;
                                continue;
                        }
                        if (write_all (master, buf, n) < 0)
                                break;
                }
        }
        /* output drained: let the host see EOF */
        shutdown (conn, SHUT_RDWR);
        close (conn);
        close (master);
        free (rl);
        return NULL;
}

int
agent_tty_relay_start (struct agent_process *p, moat_error_t *err)
{
        struct relay *rl = xzalloc (sizeof *rl);
        pthread_t t;
        int r;

        rl->master = fcntl (p->tty_master, F_DUPFD_CLOEXEC, 3);
        rl->conn = fcntl (p->tty_conn, F_DUPFD_CLOEXEC, 3);
        if (rl->master < 0 || rl->conn < 0) {
                int e = errno;
                if (rl->master >= 0)
                        close (rl->master);
                if (rl->conn >= 0)
                        close (rl->conn);
                free (rl);
                return moat_make_error (err, e, "dup the tty fds");
        }
        r = pthread_create (&t, NULL, relay_thread, rl);
        if (r != 0) {
                close (rl->master);
                close (rl->conn);
                free (rl);
                return moat_make_error (err, r, "start the tty relay");
        }
        pthread_detach (t);
        return 0;
}

/* --- preserved fds --- */

static int
count_extra_locked (const char *cid, const char *eid)
{
        int n = 0;
        while (n < EXTRA_MAX && have_locked (cid, eid, S_FD0 + 3 + n))
                n++;
        return n;
}

int
agent_stdio_wait_extra (const char *cid, const char *eid, unsigned n, moat_error_t *err)
{
        struct timespec deadline;

        if (eid == NULL || *eid == '\0')
                eid = "-";
        if (n > EXTRA_MAX)
                return moat_make_error (err, EINVAL, "%u preserved fds: at most %d", n, EXTRA_MAX);
        clock_gettime (CLOCK_REALTIME, &deadline);
        deadline.tv_sec += AGENT_STDIO_WAIT_MS / 1000;
        pthread_mutex_lock (&park_lock);
        while ((unsigned)count_extra_locked (cid, eid) < n) {
                if (pthread_cond_timedwait (&park_cond, &park_lock, &deadline) == ETIMEDOUT &&
                    (unsigned)count_extra_locked (cid, eid) < n) {
                        int have = count_extra_locked (cid, eid);
                        pthread_mutex_unlock (&park_lock);
                        return moat_make_error (err, ETIMEDOUT, "the fd%d stream of %s/%s did not connect within %d s",
                                                3 + have, cid, eid, AGENT_STDIO_WAIT_MS / 1000);
                }
        }
        pthread_mutex_unlock (&park_lock);
        return 0;
}

int
agent_stdio_take_extra (const char *cid, const char *eid, struct agent_extra_fd **out, size_t *n_out, moat_error_t *err)
{
        struct agent_extra_fd *x = NULL;
        int n, stray = -1;

        *out = NULL;
        *n_out = 0;
        if (eid == NULL || *eid == '\0')
                eid = "-";
        pthread_mutex_lock (&park_lock);
        n = count_extra_locked (cid, eid);
        for (struct parked *p = parked; p && stray < 0; p = p->next)
                if (p->stream >= S_FD0 + 3 + n && strcmp (p->cid, cid) == 0 && strcmp (p->exec_id, eid) == 0)
                        stray = p->stream - S_FD0;
        if (stray >= 0) {
                pthread_mutex_unlock (&park_lock);
                return moat_make_error (err, EINVAL, "preserved fd %d of %s/%s came without fd %d", stray, cid, eid,
                                        3 + n);
        }
        if (n > 0)
                x = xzalloc (n * sizeof *x);
        for (int i = 0; i < n; i++) {
                struct parked *p = take_locked (cid, eid, S_FD0 + 3 + i);
                x[i].fd = p->fd;
                x[i].mode = p->mode;
                free (p->cid);
                free (p->exec_id);
                free (p);
        }
        pthread_mutex_unlock (&park_lock);
        *out = x;
        *n_out = n;
        return 0;
}

struct fd_relay {
        int from, to;
        bool to_pipe;
};

static void *
fd_relay_thread (void *arg)
{
        struct fd_relay *rl = arg;
        char buf[16384];

        for (;;) {
                ssize_t n = read (rl->from, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (write_all (rl->to, buf, n) < 0) {
                        /* the reader went away: so does the writer's stream
                         * (its writes fail like a pipe's without a reader) */
                        shutdown (rl->from, SHUT_RDWR);
                        break;
                }
        }
        /* EOF (or an error) goes along: a pipe's write end closes, a
         * stream is half-closed toward the host */
        if (!rl->to_pipe)
                shutdown (rl->to, SHUT_WR);
        close (rl->to);
        close (rl->from);
        free (rl);
        return NULL;
}

int
agent_fd_relay_start (int from, int to, bool to_pipe, moat_error_t *err)
{
        struct fd_relay *rl = xzalloc (sizeof *rl);
        pthread_t t;
        int r;

        rl->from = from;
        rl->to = to;
        rl->to_pipe = to_pipe;
        r = pthread_create (&t, NULL, fd_relay_thread, rl);
        if (r != 0) {
                close (from);
                close (to);
                free (rl);
                return moat_make_error (err, r, "start a preserved-fd relay");
        }
        pthread_detach (t);
        return 0;
}
