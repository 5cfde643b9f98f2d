/* SPDX-License-Identifier: Apache-2.0 */
/* A task's stdio as containerd hands it over: fifo paths that containerd
 * has already opened on its side, "file:///path" (stdout and stderr
 * appended to one file), "binary:///path?k=v" (a logging program gets the
 * read ends of stdout and stderr as fds 3 and 4 and closes fd 5 when
 * ready), or "" for none. The stand-in that libmoat forks for the process
 * gets plain fds:
 * - stdin: the read end of a pipe that a thread fills from the fifo. The
 *   fifo is opened in that thread (a blocking open waits for containerd's
 *   writer, and a read never sees a spurious EOF before it came); CloseIO
 *   or the fifo's EOF closes the pipe, which is EOF for the process;
 * - stdout, stderr: the fifos' write ends themselves. We also hold a read
 *   end of each fifo, so a containerd that restarts never makes the
 *   process's writes fail with EPIPE.
 * With a terminal, the stand-in sends the pty's master to a console
 * socket of ours; threads copy the stdin fifo into it and it into the
 * stdout fifo. shim_io_drain returns once every byte has been written:
 * the exit is reported after that, so no log line is lost. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "moat/log.h"
#include "moat/util.h"
#include "shim_io.h"

static void
closep (int *fd)
{
        if (*fd >= 0)
                close (*fd);
        *fd = -1;
}

/* --- stdin ------------------------------------------------------------------ */

/* fifo -> to, until EOF or the close event; then closes to */
struct pump {
        struct shim_io *io;
        char *fifo; /* opened here (blocking) when from < 0 */
        int from, to;
        int stop; /* eventfd: stop now (CloseIO, teardown) */
        bool to_tty;
};

static void *
pump_in (void *arg)
{
        struct pump *p = arg;
        char buf[16384];
        if (p->from < 0) {
                /* waits for containerd's writer; CloseIO and teardown open
                 * a writer themselves to release it. Through the O_PATH fd:
                 * the fifo's name may be gone by then. */
                char path[64];
                snprintf (path, sizeof path, "/proc/self/fd/%d", p->io->stdin_path);
                p->from = open (path, O_RDONLY | O_CLOEXEC);
                if (p->from < 0)
                        moat_debug ("open stdin %s: %s", p->fifo, strerror (errno));
        }
        while (p->from >= 0) {
                struct pollfd f[2] = {{.fd = p->from, .events = POLLIN}, {.fd = p->stop, .events = POLLIN}};
                if (poll (f, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (f[1].revents)
                        break;
                ssize_t n = read (p->from, buf, sizeof buf);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0)
                        break;
                if (write_all (p->to, buf, n) != n)
                        break;
        }
        if (p->to_tty) {
                /* a terminal has no half-close: send ^D, as a user would */
                char eot = 4;
                if (write (p->to, &eot, 1) < 0) {
                }
        } else {
                closep (&p->to);
        }
        closep (&p->from);
        return NULL;
}

/* --- output ----------------------------------------------------------------- */

static void *
pump_out (void *arg)
{
        struct pump *p = arg;
        char buf[16384];
        for (;;) {
                ssize_t n = read (p->from, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) /* EIO: the last slave holder (the stand-in) is gone */
                        break;
                if (write_all (p->to, buf, n) != n)
                        break;
        }
        return NULL;
}

/* --- opening what containerd gave ------------------------------------------ */

static int
open_fifo_out (const char *path, int *wr, int *rd, moat_error_t *err)
{
        *rd = open (path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (*rd < 0)
                return moat_make_error (err, errno, "open %s", path);
        *wr = open (path, O_WRONLY | O_CLOEXEC);
        if (*wr < 0)
                return moat_make_error (err, errno, "open %s", path);
        return 0;
}

/* binary:///path?k=v&k2=v2 -> path, then "k" "v" "k2" "v2" */
static int
start_logger (struct shim_io *io, const char *uri, const char *id, const char *ns, int out_r, int err_r,
              moat_error_t *err)
{
        cleanup_free char *s = xstrdup (uri + strlen ("binary://"));
        char *q = strchr (s, '?');
        const char *argv[64];
        int n = 0, ready[2];
        pid_t pid;
        if (q)
                *q++ = '\0';
        if (*s != '/')
                return moat_make_error (err, EINVAL, "logging binary %s: not an absolute path", uri);
        argv[n++] = s;
        while (q && *q && n < 60) {
                char *amp = strchr (q, '&'), *eq;
                if (amp)
                        *amp = '\0';
                eq = strchr (q, '=');
                if (eq)
                        *eq = '\0';
                argv[n++] = q;
                if (eq && eq[1])
                        argv[n++] = eq + 1;
                q = amp ? amp + 1 : NULL;
        }
        argv[n] = NULL;
        if (pipe2 (ready, O_CLOEXEC) < 0)
                return moat_make_error (err, errno, "pipe");
        pid = fork ();
        if (pid < 0) {
                close (ready[0]);
                close (ready[1]);
                return moat_make_error (err, errno, "fork the logging binary");
        }
        if (pid == 0) {
                int null = open ("/dev/null", O_RDWR);
                /* fds 3, 4, 5 in that order, whatever numbers they have now */
                int o = fcntl (out_r, F_DUPFD_CLOEXEC, 10), e = fcntl (err_r, F_DUPFD_CLOEXEC, 10),
                    r = fcntl (ready[1], F_DUPFD_CLOEXEC, 10);
                if (null < 0 || o < 0 || e < 0 || r < 0 || dup2 (null, 0) < 0 || dup2 (null, 1) < 0 ||
                    dup2 (o, 3) < 0 || dup2 (e, 4) < 0 || dup2 (r, 5) < 0)
                        _exit (127);
                setenv ("CONTAINER_ID", id, 1);
                setenv ("CONTAINER_NAMESPACE", ns, 1);
                execv (argv[0], (char **)argv);
                _exit (127);
        }
        close (ready[1]);
        /* ready: fd 5 closed, or one byte */
        struct pollfd p = {.fd = ready[0], .events = POLLIN};
        char c;
        int r = poll (&p, 1, 10000);
        if (r == 1)
                r = read (ready[0], &c, 1) < 0 ? -1 : 1;
        close (ready[0]);
        io->logger = pid;
        if (r != 1)
                return moat_make_error (err, ETIMEDOUT, "logging binary %s did not get ready", s);
        return 0;
}

static int
open_console (struct shim_io *io, moat_error_t *err)
{
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        char tmpl[] = "/tmp/moat-shim-console.XXXXXX";
        if (mkdtemp (tmpl) == NULL)
                return moat_make_error (err, errno, "mkdtemp");
        io->console_dir = xstrdup (tmpl);
        io->console_path = xasprintf_r ("%s/console.sock", tmpl);
        snprintf (sun.sun_path, sizeof sun.sun_path, "%s", io->console_path);
        io->console_lfd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (io->console_lfd < 0 || bind (io->console_lfd, (struct sockaddr *)&sun, sizeof sun) < 0 ||
            listen (io->console_lfd, 1) < 0)
                return moat_make_error (err, errno, "console socket %s", io->console_path);
        return 0;
}

int
shim_io_open (struct shim_io *io, const char *id, const char *ns, const char *in, const char *out, const char *errp,
              bool terminal, moat_error_t *err)
{
        memset (io, 0, sizeof *io);
        for (int i = 0; i < 3; i++)
                io->fds[i] = io->keep[i] = -1;
        io->console_lfd = io->master = io->stdin_w = io->stdin_path = -1;
        io->stop = eventfd (0, EFD_CLOEXEC);
        io->terminal = terminal;
        if (io->stop < 0)
                return moat_make_error (err, errno, "eventfd");
        if (in && *in) {
                io->stdin_fifo = xstrdup (in);
                io->stdin_path = open (in, O_PATH | O_CLOEXEC);
                if (io->stdin_path < 0)
                        return moat_make_error (err, errno, "open %s", in);
                if (!terminal) {
                        int p[2];
                        if (pipe2 (p, O_CLOEXEC) < 0)
                                return moat_make_error (err, errno, "pipe");
                        io->fds[0] = p[0];
                        io->stdin_w = p[1];
                }
        }
        if (out && strncmp (out, "file://", 7) == 0) {
                int fd = open (out + 7, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
                if (fd < 0)
                        return moat_make_error (err, errno, "open %s", out);
                io->fds[1] = fd;
                io->fds[2] = terminal ? -1 : fcntl (fd, F_DUPFD_CLOEXEC, 3);
        } else if (out && strncmp (out, "binary://", 9) == 0) {
                int o[2], e[2];
                if (pipe2 (o, O_CLOEXEC) < 0)
                        return moat_make_error (err, errno, "pipe");
                if (pipe2 (e, O_CLOEXEC) < 0) {
                        close (o[0]);
                        close (o[1]);
                        return moat_make_error (err, errno, "pipe");
                }
                io->fds[1] = o[1];
                io->fds[2] = e[1];
                int r = start_logger (io, out, id, ns, o[0], e[0], err);
                close (o[0]);
                close (e[0]);
                if (r < 0)
                        return -1;
                if (terminal)
                        closep (&io->fds[2]);
        } else {
                if (out && *out && open_fifo_out (out, &io->fds[1], &io->keep[1], err) < 0)
                        return -1;
                if (!terminal && errp && *errp && open_fifo_out (errp, &io->fds[2], &io->keep[2], err) < 0)
                        return -1;
        }
        if (terminal && open_console (io, err) < 0)
                return -1;
        return 0;
}

static struct pump *
pump_new (struct shim_io *io, int from, int to, bool to_tty)
{
        struct pump *p = xzalloc (sizeof *p);
        *p = (struct pump){.io = io, .from = from, .to = to, .stop = io->stop, .to_tty = to_tty};
        return p;
}

int
shim_io_started (struct shim_io *io, moat_error_t *err)
{
        /* the stand-in holds its own copies now */
        if (!io->terminal) {
                closep (&io->fds[0]);
                closep (&io->fds[1]);
                closep (&io->fds[2]);
        }
        if (io->stdin_fifo && !io->terminal) {
                io->in_pump = pump_new (io, -1, io->stdin_w, false);
                io->in_pump->fifo = io->stdin_fifo;
                io->stdin_w = -1; /* the pump closes it */
                if (pthread_create (&io->in_thread, NULL, pump_in, io->in_pump) != 0)
                        return moat_make_error (err, EAGAIN, "start the stdin thread");
                io->in_started = true;
        }
        return 0;
}

int
shim_io_take_console (struct shim_io *io, int timeout_ms, moat_error_t *err)
{
        struct pollfd p = {.fd = io->console_lfd, .events = POLLIN};
        char buf[256], cbuf[CMSG_SPACE (sizeof (int))];
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
        cleanup_close int c = -1;
        struct cmsghdr *cm;

        if (poll (&p, 1, timeout_ms) != 1)
                return moat_make_error (err, ETIMEDOUT, "no terminal came on the console socket");
        c = accept4 (io->console_lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0 || recvmsg (c, &m, MSG_CMSG_CLOEXEC) < 0)
                return moat_make_error (err, errno, "receive the terminal");
        cm = CMSG_FIRSTHDR (&m);
        if (cm == NULL || cm->cmsg_type != SCM_RIGHTS)
                return moat_make_error (err, EPROTO, "the console socket got no terminal");
        memcpy (&io->master, CMSG_DATA (cm), sizeof (int));
        closep (&io->console_lfd);
        unlink (io->console_path);
        rmdir (io->console_dir);
        if (io->fds[1] >= 0) {
                io->out_pump = pump_new (io, io->master, io->fds[1], false);
                if (pthread_create (&io->out_thread, NULL, pump_out, io->out_pump) != 0)
                        return moat_make_error (err, EAGAIN, "start the terminal thread");
                io->out_started = true;
        }
        if (io->stdin_fifo) {
                io->in_pump = pump_new (io, -1, io->master, true);
                io->in_pump->fifo = io->stdin_fifo;
                if (pthread_create (&io->in_thread, NULL, pump_in, io->in_pump) != 0)
                        return moat_make_error (err, EAGAIN, "start the stdin thread");
                io->in_started = true;
        }
        return 0;
}

int
shim_io_resize (struct shim_io *io, unsigned rows, unsigned cols)
{
        struct winsize ws = {.ws_row = rows, .ws_col = cols};
        if (io->master < 0)
                return -1;
        return ioctl (io->master, TIOCSWINSZ, &ws);
}

void
shim_io_close_stdin (struct shim_io *io)
{
        uint64_t one = 1;
        if (!io->in_started) {
                /* CloseIO before the process started: nothing to copy */
                closep (&io->stdin_w);
                return;
        }
        if (write (io->stop, &one, sizeof one) < 0) {
        }
        /* a pump still waiting in open() for a writer: be that writer */
        if (io->stdin_path >= 0) {
                char path[64];
                snprintf (path, sizeof path, "/proc/self/fd/%d", io->stdin_path);
                int w = open (path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
                if (w >= 0)
                        close (w);
        }
}

void
shim_io_drain (struct shim_io *io)
{
        if (io->out_started) {
                pthread_join (io->out_thread, NULL);
                io->out_started = false;
        }
        closep (&io->fds[1]);
        closep (&io->fds[2]);
}

void
shim_io_free (struct shim_io *io)
{
        shim_io_close_stdin (io);
        if (io->in_started) {
                pthread_join (io->in_thread, NULL);
                io->in_started = false;
        }
        shim_io_drain (io);
        for (int i = 0; i < 3; i++) {
                closep (&io->fds[i]);
                closep (&io->keep[i]);
        }
        closep (&io->stdin_w);
        closep (&io->stdin_path);
        closep (&io->master);
        closep (&io->console_lfd);
        closep (&io->stop);
        if (io->console_path) {
                unlink (io->console_path);
                rmdir (io->console_dir);
        }
        if (io->logger > 0) {
                /* it ends at EOF on its pipes */
                int st;
                for (int i = 0; i < 50 && waitpid (io->logger, &st, WNOHANG) == 0; i++)
                        usleep (20000);
                if (waitpid (io->logger, &st, WNOHANG) == 0) {
                        kill (io->logger, SIGKILL);
                        waitpid (io->logger, &st, 0);
                }
        }
        free (io->in_pump);
        free (io->out_pump);
        free (io->stdin_fifo);
        free (io->console_path);
        free (io->console_dir);
}
