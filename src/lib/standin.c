/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "moat/log.h"
#include "moat/paths.h"
#include "moat/standin.h"
#include "moat/state.h"
#include "moat/util.h"

#define DRAIN_TIMEOUT_MS 2000
#define CONNECT_TIMEOUT_MS 10000

/* Signals that are the stand-in's own business, never forwarded. */
static bool
own_signal (int sig)
{
        return sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
               sig == SIGTRAP || sig == SIGSYS;
}

static void
forward_mask (sigset_t *m)
{
        sigemptyset (m);
        for (int s = 1; s < NSIG; s++)
                if (!own_signal (s) && (s < 32 || s >= SIGRTMIN))
                        sigaddset (m, s);
}

void
moat_standin_block_signals (void)
{
        sigset_t m;
        forward_mask (&m);
        sigprocmask (SIG_BLOCK, &m, NULL);
}

struct waiter {
        const char *sock, *id, *exec_id;
        struct moat_agent *a;
        struct moat_exit ex;
        int rc;
        moat_error_t err;
        int notify;
};

static void *
wait_thread (void *arg)
{
        struct waiter *w = arg;
        char c = 1;
        w->rc = moat_agent_wait_exit (w->a, w->id, w->exec_id, &w->ex, &w->err);
        if (write (w->notify, &c, 1) < 0) {
        }
        return NULL;
}

struct relay {
        int from, to;
        bool active;
        bool shut_to_on_eof;   /* half-close `to` at EOF (stdin, a preserved fd, toward the guest) */
        bool to_host;          /* `to` is a host fd we do not own (blocking writes) */
        bool close_to_on_eof;  /* a write-only preserved fd: close our copy, its reader gets EOF */
        bool shut_from_on_err; /* a preserved fd whose reader went away: the guest's writer gets EPIPE */
        char buf[16384];
        size_t len, off;
};

static int
write_host (int fd, const char *buf, size_t n)
{
        while (n > 0) {
                ssize_t r = write (fd, buf, n);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0 && errno == EAGAIN) {
                        struct pollfd p = {.fd = fd, .events = POLLOUT};
                        poll (&p, 1, 1000);
                        continue;
                }
                if (r < 0)
                        return -1;
                buf += r;
                n -= r;
        }
        return 0;
}

static void
resize (struct moat_standin *s, struct moat_agent *ctl)
{
        struct winsize ws;
        cleanup_error moat_error_t e = NULL;
        if (s->winsize_fd < 0 || ctl == NULL || ioctl (s->winsize_fd, TIOCGWINSZ, &ws) < 0 || ws.ws_row == 0)
                return;
        if (moat_agent_tty_resize (ctl, s->id, s->exec_id, ws.ws_row, ws.ws_col, &e) < 0)
                moat_debug ("resize %s: %s", s->id, e->msg);
}

int
moat_standin_run (struct moat_standin *s, struct moat_exit *ex, moat_error_t *err)
{
        struct relay *rl = xzalloc ((3 + 2 * s->n_extra) * sizeof *rl);
        struct pollfd *p = xmalloc ((2 + 3 + 2 * s->n_extra) * sizeof *p);
        int *idx = xmalloc ((2 + 3 + 2 * s->n_extra) * sizeof *idx);
        int nrl = 0, rc = -1;
        sigset_t mask;
        cleanup_close int sfd = -1;
        int wpipe[2] = {-1, -1};
        struct waiter w = {.sock = s->vsock_socket, .id = s->id, .exec_id = s->exec_id};
        struct moat_agent *ctl = NULL;
        pthread_t th;
        bool thread = false, exited = false;
        int64_t drain_deadline = 0, next_vm_check = now_ms () + 1000;
        int64_t next_clock_sync = now_ms () + MOAT_CLOCK_SYNC_INTERVAL_MS;
        struct termios saved;
        bool tio_saved = false;

        prctl (PR_SET_NAME, MOAT_STANDIN_COMM);
        forward_mask (&mask);
        sigprocmask (SIG_BLOCK, &mask, NULL);
        sfd = signalfd (-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                moat_make_error (err, errno, "signalfd");
                goto out;
        }
        if (s->go_fd >= 0) {
                char c;
                ssize_t n;
                do
                        n = read (s->go_fd, &c, 1);
                while (n < 0 && errno == EINTR);
                if (n != 1) {
                        rc = 1;
                        goto out;
                }
        }
        if (moat_agent_open (s->vsock_socket, CONNECT_TIMEOUT_MS, &ctl, err) < 0 ||
            moat_agent_open (s->vsock_socket, CONNECT_TIMEOUT_MS, &w.a, err) < 0) {
                moat_error_wrap (err, "connect to the agent");
                goto out;
        }
        if (pipe2 (wpipe, O_CLOEXEC) < 0) {
                moat_make_error (err, errno, "pipe");
                goto out;
        }
        w.notify = wpipe[1];
        if (pthread_create (&th, NULL, wait_thread, &w) != 0) {
                moat_make_error (err, EAGAIN, "start the wait thread");
                goto out;
        }
        thread = true;

        if (s->terminal) {
                if (s->in_fd >= 0)
                        rl[nrl++] = (struct relay){.from = s->in_fd, .to = s->streams[0], .active = true};
                if (s->out_fd >= 0)
                        rl[nrl++] =
                                (struct relay){.from = s->streams[0], .to = s->out_fd, .active = true, .to_host = true};
                set_nonblock (s->streams[0], true);
                if (s->raw_in && s->in_fd >= 0 && isatty (s->in_fd) && tcgetattr (s->in_fd, &saved) == 0) {
                        struct termios t = saved;
                        cfmakeraw (&t);
                        tcsetattr (s->in_fd, TCSANOW, &t);
                        tio_saved = true;
                }
                resize (s, ctl);
        } else {
                int host[3] = {s->in_fd, s->out_fd, s->err_fd};
                for (int i = 0; i < 3; i++) {
                        if (s->streams[i] < 0)
                                continue;
                        set_nonblock (s->streams[i], true);
                        if (i == 0 && host[0] >= 0)
                                rl[nrl++] = (struct relay){
                                        .from = host[0], .to = s->streams[0], .active = true, .shut_to_on_eof = true};
                        else if (i == 0)
                                shutdown (s->streams[0], SHUT_WR);
                        else if (host[i] >= 0)
                                rl[nrl++] = (struct relay){
                                        .from = s->streams[i], .to = host[i], .active = true, .to_host = true};
                }
        }
        /* --preserve-fds: host -> guest like stdin, guest -> host like
         * stdout, and the half-close goes along (a read-write socket) */
        for (size_t i = 0; i < s->n_extra; i++) {
                struct moat_preserved_fd *x = &s->extra[i];
                if (x->stream < 0)
                        continue;
                set_nonblock (x->stream, true);
                if (x->mode != O_WRONLY)
                        rl[nrl++] = (struct relay){
                                .from = x->host_fd, .to = x->stream, .active = true, .shut_to_on_eof = true};
                if (x->mode != O_RDONLY)
                        rl[nrl++] = (struct relay){.from = x->stream,
                                                   .to = x->host_fd,
                                                   .active = true,
                                                   .to_host = true,
                                                   .shut_to_on_eof = x->mode == O_RDWR,
                                                   .close_to_on_eof = x->mode == O_WRONLY,
                                                   .shut_from_on_err = true};
        }

        for (;;) {
                int n = 0, timeout = 1000;
                bool outputs_open = false;

                for (int i = 0; i < nrl; i++)
                        if (rl[i].to_host)
                                outputs_open |= rl[i].active;
                if (exited && (!outputs_open || now_ms () >= drain_deadline))
                        break;
                p[n] = (struct pollfd){.fd = sfd, .events = POLLIN};
                idx[n++] = -1;
                if (!exited) {
                        p[n] = (struct pollfd){.fd = wpipe[0], .events = POLLIN};
                        idx[n++] = -2;
                }
                for (int i = 0; i < nrl; i++) {
                        if (!rl[i].active || (!rl[i].to_host && exited))
                                continue;
                        if (rl[i].len > 0)
                                p[n] = (struct pollfd){.fd = rl[i].to, .events = POLLOUT};
                        else
                                p[n] = (struct pollfd){.fd = rl[i].from, .events = POLLIN};
                        idx[n++] = i;
                }
                if (exited) {
                        timeout = drain_deadline - now_ms ();
                        if (timeout < 0)
                                timeout = 0;
                }
                if (poll (p, n, timeout) < 0) {
                        if (errno == EINTR)
                                continue;
                        moat_make_error (err, errno, "poll");
                        goto out;
                }
                if (!exited && now_ms () >= next_vm_check) {
                        next_vm_check = now_ms () + 1000;
                        if (s->vmm_pid > 0 && !moat_pid_alive (s->vmm_pid, s->vmm_start)) {
                                /* the Wait would fail anyway once moat-vsock notices */
                                shutdown (moat_agent_fd (w.a), SHUT_RDWR);
                        }
                }
                /* the stand-in of the VM's first container (the one that
                 * powers it off: a pod's sandbox, not its app containers)
                 * keeps the guest's clock on the host's for as long as it
                 * runs (drift under TCG, a host clock that was stepped) */
                if (!exited && s->exec_id == NULL && s->power_off && now_ms () >= next_clock_sync) {
                        cleanup_error moat_error_t e = NULL;
                        next_clock_sync = now_ms () + MOAT_CLOCK_SYNC_INTERVAL_MS;
                        if (moat_agent_sync_clock (ctl, false, NULL, &e) < 0)
                                moat_debug ("%s: %s", s->id, e->msg);
                }
                for (int k = 0; k < n; k++) {
                        if (p[k].revents == 0)
                                continue;
                        if (idx[k] == -1) {
                                struct signalfd_siginfo si;
                                while (read (sfd, &si, sizeof si) == sizeof si) {
                                        int sig = si.ssi_signo;
                                        cleanup_error moat_error_t e = NULL;
                                        if (sig == SIGCHLD || exited)
                                                continue;
                                        if (sig == SIGWINCH) {
                                                if (s->terminal)
                                                        resize (s, ctl);
                                                continue;
                                        }
                                        if (sig == SIGPIPE && (pid_t)si.ssi_pid == getpid ())
                                                continue; /* our own broken pipe */
                                        moat_debug ("forwarding signal %d to %s", sig, s->id);
                                        if (moat_agent_signal (ctl, s->id, s->exec_id, sig, false, &e) < 0)
                                                moat_warn ("forward signal %d to %s: %s", sig, s->id, e->msg);
                                }
                                continue;
                        }
                        if (idx[k] == -2) {
                                char c;
                                if (read (wpipe[0], &c, 1) < 0) {
                                }
                                exited = true;
                                if (w.rc < 0) {
                                        /* a killed VMM's sockets close before the
                                         * process is gone: give it a moment */
                                        bool gone = false;
                                        for (int i = 0; s->vmm_pid > 0 && i < 40 && !gone; i++) {
                                                gone = !moat_pid_alive (s->vmm_pid, s->vmm_start);
                                                if (!gone)
                                                        usleep (50000);
                                        }
                                        moat_make_error (err, 0, "wait for the container: %s%s", w.err->msg,
                                                         gone ? " (the VM exited)" : "");
                                        goto out;
                                }
                                drain_deadline = now_ms () + DRAIN_TIMEOUT_MS;
                                continue;
                        }
                        struct relay *x = &rl[idx[k]];
                        if (x->len > 0) {
                                ssize_t wr = write (x->to, x->buf + x->off, x->len);
                                if (wr < 0 && (errno == EAGAIN || errno == EINTR))
                                        continue;
                                if (wr < 0) {
                                        x->active = false; /* the process closed its stdin */
                                        continue;
                                }
                                x->off += wr;
                                x->len -= wr;
                                if (x->len == 0)
                                        x->off = 0;
                                continue;
                        }
                        ssize_t r = read (x->from, x->buf, sizeof x->buf);
                        if (r < 0 && (errno == EAGAIN || errno == EINTR))
                                continue;
                        if (r <= 0) {
                                x->active = false;
                                if (x->shut_to_on_eof)
                                        shutdown (x->to, SHUT_WR); /* ENOTSOCK: nothing to do */
                                if (x->close_to_on_eof) {
                                        close (x->to);
                                        x->to = -1;
                                }
                                continue;
                        }
                        if (x->to_host) {
                                if (write_host (x->to, x->buf, r) < 0) {
                                        moat_debug ("write to fd %d: %s", x->to, strerror (errno));
                                        x->active = false;
                                        if (x->shut_from_on_err)
                                                shutdown (x->from, SHUT_RDWR);
                                }
                        } else {
                                x->len = r;
                                x->off = 0;
                        }
                }
        }
        *ex = w.ex;
        rc = 0;

out:
        /* once the container's Wait returned, whether it failed or not, the
         * VM goes: state must not say stopped while it runs */
        if (exited && s->power_off && ctl) {
                cleanup_error moat_error_t e = NULL;
                if (moat_agent_destroy_sandbox (ctl, &e) < 0)
                        moat_debug ("power off: %s", e->msg);
        }
        if (tio_saved)
                tcsetattr (s->in_fd, TCSANOW, &saved);
        if (thread) {
                if (!exited && w.a)
                        shutdown (moat_agent_fd (w.a), SHUT_RDWR);
                pthread_join (th, NULL);
        }
        moat_error_release (&w.err);
        moat_agent_free (w.a);
        moat_agent_free (ctl);
        if (wpipe[0] >= 0) {
                close (wpipe[0]);
                close (wpipe[1]);
        }
        for (int i = 0; i < 3; i++)
                if (s->streams[i] >= 0) {
                        close (s->streams[i]);
                        s->streams[i] = -1;
                }
        moat_preserved_fds_close_streams (s->extra, s->n_extra);
        free (rl);
        free (p);
        free (idx);
        return rc;
}

static const char *
mode_name (int mode)
{
        return mode == O_RDONLY ? "r" : mode == O_WRONLY ? "w" : "rw";
}

int
moat_preserved_fds_check (int n, struct moat_preserved_fd **out, moat_error_t *err)
{
        cleanup_free struct moat_preserved_fd *p = NULL;

        *out = NULL;
        if (n <= 0)
                return 0;
        if (n > MOAT_PRESERVE_FDS_MAX)
                return moat_make_error (err, 0, "--preserve-fds %d: at most %d fds can be relayed into the VM", n,
                                        MOAT_PRESERVE_FDS_MAX);
        p = xzalloc (n * sizeof *p);
        for (int i = 0; i < n; i++) {
                int fd = 3 + i, fdfl = fcntl (fd, F_GETFD), fl, v = 0;
                socklen_t len = sizeof v;

                /* moat's own fds are close-on-exec: an inherited one is not */
                if (fdfl < 0 || (fdfl & FD_CLOEXEC))
                        return moat_make_error (err, 0, "--preserve-fds %d: fd %d is not open", n, fd);
                fl = fcntl (fd, F_GETFL);
                if (fl < 0)
                        return moat_make_error (err, errno, "--preserve-fds: fd %d", fd);
                if (fl & O_PATH)
                        return moat_make_error (err, 0,
                                                "--preserve-fds: fd %d is an O_PATH descriptor; cannot be relayed into "
                                                "the VM (only its bytes can)",
                                                fd);
                if (getsockopt (fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v)
                        return moat_make_error (err, 0,
                                                "--preserve-fds: fd %d is a listening socket; cannot be relayed into "
                                                "the VM",
                                                fd);
                p[i] = (struct moat_preserved_fd){.host_fd = fd, .mode = fl & O_ACCMODE, .stream = -1};
                if (p[i].mode != O_RDONLY && p[i].mode != O_WRONLY)
                        p[i].mode = O_RDWR;
        }
        *out = steal_pointer (&p);
        return 0;
}

int
moat_preserved_fds_open (const char *vsock_socket, const char *id, const char *exec_id, struct moat_preserved_fd *p,
                         size_t n, int timeout_ms, moat_error_t *err)
{
        for (size_t i = 0; i < n; i++) {
                char name[32];
                snprintf (name, sizeof name, "fd%d:%s", p[i].host_fd, mode_name (p[i].mode));
                p[i].stream = moat_agent_open_stream (vsock_socket, id, exec_id, name, timeout_ms, err);
                if (p[i].stream < 0)
                        return moat_error_wrap (err, "--preserve-fds: fd %d", p[i].host_fd);
        }
        return 0;
}

void
moat_preserved_fds_close_streams (struct moat_preserved_fd *p, size_t n)
{
        for (size_t i = 0; p && i < n; i++)
                if (p[i].stream >= 0) {
                        close (p[i].stream);
                        p[i].stream = -1;
                }
}

void
moat_standin_exit (const struct moat_exit *ex)
{
        /* a stop signal would stop the stand-in (the agent's word for what
         * killed the process cannot be trusted to be a killing one) */
        bool stops = ex->signal == SIGSTOP || ex->signal == SIGTSTP || ex->signal == SIGTTIN || ex->signal == SIGTTOU;
        if (ex->signaled && ex->signal > 0 && ex->signal < NSIG && !stops) {
                struct rlimit none = {0, 0};
                sigset_t m;
                setrlimit (RLIMIT_CORE, &none);
                prctl (PR_SET_DUMPABLE, 0);
                signal (ex->signal, SIG_DFL);
                sigemptyset (&m);
                sigaddset (&m, ex->signal);
                sigprocmask (SIG_UNBLOCK, &m, NULL);
                raise (ex->signal);
                /* a signal whose default is to ignore */
        }
        _exit (ex->status & 0xff);
}

int
moat_send_console (const char *socket_path, int fd, const char *name, moat_error_t *err)
{
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        char path[sizeof sun.sun_path];
        int dirfd = -1;
        cleanup_close int s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        union {
                char buf[CMSG_SPACE (sizeof (int))];
                struct cmsghdr align;
        } u;
        struct iovec iov = {.iov_base = (void *)name, .iov_len = strlen (name)};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
        struct cmsghdr *c;
        int r;

        if (s < 0)
                return moat_make_error (err, errno, "socket");
        if (moat_unix_path (socket_path, path, sizeof path, &dirfd, err) < 0)
                return moat_error_wrap (err, "console socket %s", socket_path);
        strcpy (sun.sun_path, path);
        r = connect (s, (struct sockaddr *)&sun, sizeof sun);
        if (dirfd >= 0)
                close (dirfd);
        if (r < 0)
                return moat_make_error (err, errno, "connect to console socket %s", socket_path);
        memset (u.buf, 0, sizeof u.buf);
        c = CMSG_FIRSTHDR (&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN (sizeof (int));
        memcpy (CMSG_DATA (c), &fd, sizeof fd);
        do
                r = sendmsg (s, &msg, MSG_NOSIGNAL);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return moat_make_error (err, errno, "send the pty to console socket %s", socket_path);
        return 0;
}

int
moat_open_pty (int *master, int *slave, unsigned rows, unsigned cols, moat_error_t *err)
{
        cleanup_close int m = posix_openpt (O_RDWR | O_NOCTTY | O_CLOEXEC);
        cleanup_close int sl = -1;
        char name[64];
        struct termios t;

        if (m < 0)
                return moat_make_error (err, errno, "open /dev/ptmx");
        if (grantpt (m) < 0 || unlockpt (m) < 0)
                return moat_make_error (err, errno, "unlock pty");
        if (ptsname_r (m, name, sizeof name) != 0)
                return moat_make_error (err, errno, "ptsname");
        sl = open (name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (sl < 0)
                return moat_make_error (err, errno, "open %s", name);
        /* The guest's pty does the line discipline; this one only carries
         * bytes (no echo, no CR/LF translation: it would happen twice). */
        if (tcgetattr (sl, &t) == 0) {
                cfmakeraw (&t);
                tcsetattr (sl, TCSANOW, &t);
        }
        if (rows && cols) {
                struct winsize ws = {.ws_row = rows, .ws_col = cols};
                ioctl (sl, TIOCSWINSZ, &ws);
        }
        *master = steal_fd (&m);
        *slave = steal_fd (&sl);
        return 0;
}
