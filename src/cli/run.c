/* SPDX-License-Identifier: Apache-2.0 */
/* moat run [--bundle DIR] ID: create and start a container in a new VM, in
 * the foreground. Stdio is relayed to the container, the signals moat gets
 * are forwarded to it, and moat exits with its exit status (128+n when a
 * signal n killed it). The VM and everything on the host go away with it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "moat/agent_client.h"
#include "moat/log.h"
#include "moat/sandbox.h"
#include "moat/util.h"

#define STREAM_TIMEOUT_MS 10000
#define DRAIN_TIMEOUT_MS 2000

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

struct relay {
        int from, to;
        bool active;
        bool shut_to_on_eof; /* half-close the socket at EOF (stdin) */
        char buf[32768];
        size_t len, off;
};

struct waiter {
        struct moat_agent *a;
        const char *id;
        int status;
        int rc;
        moat_error_t err;
        int notify; /* write end of a pipe */
};

static void *
wait_thread (void *arg)
{
        struct waiter *w = arg;
        char c = 1;
        w->rc = moat_agent_wait (w->a, w->id, NULL, &w->status, &w->err);
        if (write (w->notify, &c, 1) < 0) {
        }
        return NULL;
}

static bool
boot_interrupted (void *ctx)
{
        sigset_t p;
        sigpending (&p);
        return sigismember (&p, SIGTERM) || sigismember (&p, SIGINT) || sigismember (&p, SIGHUP) ||
               sigismember (&p, SIGQUIT);
}

/* Writes all of buf to a possibly non-blocking fd (our stdout may be). */
static int
write_out (int fd, const char *buf, size_t n)
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

struct run_ctx {
        struct moat_sandbox *sb;
        const char *id;
        bool terminal;
        int fds[3]; /* stdin, stdout, stderr streams; or fds[0] = tty */
        struct termios saved_tio;
        bool tio_saved;
};

static int
open_streams (struct run_ctx *r, moat_error_t *err)
{
        static const char *const names[] = {"stdin", "stdout", "stderr"};
        if (r->terminal) {
                r->fds[0] = moat_agent_open_stream (r->sb->vsock_socket, r->id, NULL, "tty", STREAM_TIMEOUT_MS, err);
                return r->fds[0] < 0 ? -1 : 0;
        }
        for (int i = 0; i < 3; i++) {
                r->fds[i] = moat_agent_open_stream (r->sb->vsock_socket, r->id, NULL, names[i], STREAM_TIMEOUT_MS, err);
                if (r->fds[i] < 0)
                        return -1;
        }
        return 0;
}

static void
window_size (struct run_ctx *r, uint32_t *rows, uint32_t *cols)
{
        struct winsize ws;
        const struct oci_process *p = r->sb->cfg->process;
        if (ioctl (STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) {
                *rows = ws.ws_row;
                *cols = ws.ws_col;
        } else if (p->has_console_size) {
                *rows = p->console_height;
                *cols = p->console_width;
        } else {
                *rows = 24;
                *cols = 80;
        }
}

static void
raw_mode (struct run_ctx *r)
{
        struct termios t;
        if (!isatty (STDIN_FILENO) || tcgetattr (STDIN_FILENO, &r->saved_tio) < 0)
                return;
        r->tio_saved = true;
        t = r->saved_tio;
        cfmakeraw (&t);
        tcsetattr (STDIN_FILENO, TCSANOW, &t);
}

static void
restore_tty (struct run_ctx *r)
{
        if (r->tio_saved)
                tcsetattr (STDIN_FILENO, TCSANOW, &r->saved_tio);
        r->tio_saved = false;
}

static void
forward_signal (struct run_ctx *r, int sig)
{
        cleanup_error moat_error_t e = NULL;
        if (sig == SIGWINCH) {
                uint32_t rows, cols;
                if (!r->terminal)
                        return;
                window_size (r, &rows, &cols);
                if (moat_agent_tty_resize (r->sb->agent, r->id, NULL, rows, cols, &e) < 0)
                        moat_debug ("resize: %s", e->msg);
                return;
        }
        moat_debug ("forwarding signal %d to %s", sig, r->id);
        if (moat_agent_signal (r->sb->agent, r->id, NULL, sig, false, &e) < 0)
                moat_warn ("forward signal %d to %s: %s", sig, r->id, e->msg);
}

/* Moves data until the process exits and its output is drained. Returns
 * the exit status or -1 with *err. */
static int
relay_loop (struct run_ctx *r, int sfd, struct waiter *w, int wait_rd, moat_error_t *err)
{
        struct relay rl[3];
        int nrl = 0;
        bool exited = false, vm_gone = false;
        int64_t drain_deadline = 0, vm_gone_at = 0;

        memset (rl, 0, sizeof rl);
        if (r->terminal) {
                rl[nrl++] = (struct relay){.from = STDIN_FILENO, .to = r->fds[0], .active = true};
                rl[nrl++] = (struct relay){.from = r->fds[0], .to = STDOUT_FILENO, .active = true};
        } else {
                rl[nrl++] =
                        (struct relay){.from = STDIN_FILENO, .to = r->fds[0], .active = true, .shut_to_on_eof = true};
                rl[nrl++] = (struct relay){.from = r->fds[1], .to = STDOUT_FILENO, .active = true};
                rl[nrl++] = (struct relay){.from = r->fds[2], .to = STDERR_FILENO, .active = true};
        }
        set_nonblock (r->fds[0], true);
        if (!r->terminal) {
                set_nonblock (r->fds[1], true);
                set_nonblock (r->fds[2], true);
        }

        for (;;) {
                struct pollfd p[8];
                int idx[8];
                int n = 0, timeout = -1;
                bool outputs_open = false;

                for (int i = 1; i < nrl; i++)
                        outputs_open |= rl[i].active;
                if (exited && (!outputs_open || now_ms () >= drain_deadline))
                        return w->status;
                if (vm_gone && !exited && now_ms () - vm_gone_at > 2000) {
                        cleanup_free char *tail = moat_sandbox_console_tail (r->sb, 15);
                        return moat_make_error (err, 0, "the VM exited unexpectedly (%s)", tail);
                }

                p[n] = (struct pollfd){.fd = sfd, .events = POLLIN};
                idx[n++] = -1;
                if (!exited) {
                        p[n] = (struct pollfd){.fd = wait_rd, .events = POLLIN};
                        idx[n++] = -2;
                }
                for (int i = 0; i < nrl; i++) {
                        if (!rl[i].active || (i == 0 && exited))
                                continue;
                        if (rl[i].len > 0)
                                p[n] = (struct pollfd){.fd = rl[i].to, .events = POLLOUT};
                        else
                                p[n] = (struct pollfd){.fd = rl[i].from, .events = POLLIN};
                        idx[n++] = i;
                }
                if (exited)
                        timeout = drain_deadline - now_ms ();
                else if (vm_gone)
                        timeout = 100;
                if (timeout < 0 && (exited || vm_gone))
                        timeout = 0;
                if (poll (p, n, timeout) < 0) {
                        if (errno == EINTR)
                                continue;
                        return moat_make_error (err, errno, "poll");
                }
                for (int k = 0; k < n; k++) {
                        if (p[k].revents == 0)
                                continue;
                        if (idx[k] == -1) {
                                struct signalfd_siginfo si;
                                while (read (sfd, &si, sizeof si) == sizeof si) {
                                        if (si.ssi_signo == SIGCHLD) {
                                                if (!vm_gone && moat_sandbox_vm_exited (r->sb, NULL)) {
                                                        vm_gone = true;
                                                        vm_gone_at = now_ms ();
                                                }
                                        } else if (!exited)
                                                forward_signal (r, si.ssi_signo);
                                }
                                continue;
                        }
                        if (idx[k] == -2) {
                                char c;
                                if (read (wait_rd, &c, 1) < 0) {
                                }
                                exited = true;
                                if (w->rc < 0) {
                                        cleanup_free char *tail = moat_sandbox_console_tail (r->sb, 15);
                                        int st;
                                        bool gone = moat_sandbox_vm_exited (r->sb, &st);
                                        return moat_make_error (err, 0, "wait for the container: %s%s (%s)",
                                                                w->err->msg, gone ? " (the VM exited)" : "", tail);
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
                        ssize_t rd = read (x->from, x->buf, sizeof x->buf);
                        if (rd < 0 && (errno == EAGAIN || errno == EINTR))
                                continue;
                        if (rd <= 0) {
                                x->active = false;
                                if (x->shut_to_on_eof)
                                        shutdown (x->to, SHUT_WR);
                                continue;
                        }
                        if (x->to == STDOUT_FILENO || x->to == STDERR_FILENO) {
                                if (write_out (x->to, x->buf, rd) < 0)
                                        moat_debug ("write to fd %d: %s", x->to, strerror (errno));
                        } else {
                                x->len = rd;
                                x->off = 0;
                        }
                }
        }
}

static void
print_error (const char *id, moat_error_t *err)
{
        moat_error_wrap (err, "run %s", id);
        moat_error_print (err, "moat");
}

int
moat_cmd_run (struct moat_global *g, int argc, char **argv)
{
        static const struct option opts[] = {
                {"bundle", required_argument, NULL, 'b'}, {"pid-file", required_argument, NULL, 'p'},
                {"detach", no_argument, NULL, 'd'},       {"console-socket", required_argument, NULL, 'c'},
                {"no-pivot", no_argument, NULL, 'P'},     {"no-new-keyring", no_argument, NULL, 'K'},
                {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
        };
        const char *bundle = ".", *pid_file = NULL;
        cleanup_error moat_error_t err = NULL;
        struct moat_sandbox_opts so = {0};
        struct run_ctx r = {.fds = {-1, -1, -1}};
        struct waiter w = {0};
        sigset_t mask;
        cleanup_close int sfd = -1;
        int wait_pipe[2] = {-1, -1};
        pthread_t th;
        bool thread_started = false;
        struct moat_stdio_spec stdio = {0};
        int c, status = -1;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long (argc, argv, "+b:dh", opts, NULL)) != -1) {
                switch (c) {
                case 'b':
                        bundle = optarg;
                        break;
                case 'p':
                        pid_file = optarg;
                        break;
                case 'd':
                        fprintf (stderr, "moat: run: --detach is not supported yet (use create + start)\n");
                        return 1;
                case 'c':
                        fprintf (stderr, "moat: run: --console-socket is not supported yet\n");
                        return 1;
                case 'P':
                case 'K':
                        break;
                case 'h':
                        printf ("Usage: moat run [--bundle|-b DIR] [--pid-file FILE] ID\n");
                        return 0;
                default:
                        fprintf (stderr, "moat: run: unknown option %s\n", argv[optind - 1]);
                        return 1;
                }
        }
        if (optind + 1 != argc) {
                fprintf (stderr, "moat: run: expected exactly one container ID (usage: moat run [-b DIR] ID)\n");
                return 1;
        }
        r.id = argv[optind];

        /* Signals stay pending until the container runs, then are forwarded. */
        sigemptyset (&mask);
        for (size_t i = 0; i < ARRAY_SIZE (forwarded); i++)
                sigaddset (&mask, forwarded[i]);
        sigaddset (&mask, SIGWINCH);
        sigaddset (&mask, SIGCHLD);
        sigprocmask (SIG_BLOCK, &mask, NULL);
        signal (SIGPIPE, SIG_IGN);
        sfd = signalfd (-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                moat_make_error (&err, errno, "signalfd");
                print_error (r.id, &err);
                return 1;
        }

        so.root = g->root;
        so.id = r.id;
        so.bundle = bundle;
        so.debug = g->debug;
        so.die_with_parent = true;
        so.interrupted = boot_interrupted;
        if (moat_sandbox_create (&so, &r.sb, &err) < 0) {
                print_error (r.id, &err);
                return 1;
        }
        if (pid_file) {
                char buf[32];
                int len = snprintf (buf, sizeof buf, "%d", getpid ());
                if (write_file (pid_file, buf, len, 0644, &err) < 0)
                        goto fail;
        }
        r.terminal = r.sb->cfg->process->terminal;
        if (open_streams (&r, &err) < 0)
                goto fail;
        stdio.terminal = r.terminal;
        stdio.in = stdio.out = stdio.err = !r.terminal;
        if (r.terminal)
                window_size (&r, &stdio.rows, &stdio.cols);
        if (moat_agent_create_container (r.sb->agent, r.id, r.sb->guest_config, &stdio, NULL, &err) < 0)
                goto fail;
        if (moat_agent_dup (r.sb->agent, &w.a, &err) < 0)
                goto fail;
        if (pipe2 (wait_pipe, O_CLOEXEC) < 0) {
                moat_make_error (&err, errno, "pipe");
                goto fail;
        }
        if (r.terminal)
                raw_mode (&r);
        if (moat_agent_start_container (r.sb->agent, r.id, &err) < 0)
                goto fail;
        free (r.sb->state.status);
        r.sb->state.status = xstrdup ("running");
        if (moat_sandbox_save_state (r.sb, &err) < 0)
                goto fail;
        w.id = r.id;
        w.notify = wait_pipe[1];
        if (pthread_create (&th, NULL, wait_thread, &w) != 0) {
                moat_make_error (&err, EAGAIN, "start the wait thread");
                goto fail;
        }
        thread_started = true;
        status = relay_loop (&r, sfd, &w, wait_pipe[0], &err);

fail:
        restore_tty (&r);
        if (err)
                print_error (r.id, &err);
        if (thread_started) {
                /* unblock the Wait if it is still running (VM died) */
                if (w.a && w.rc == 0 && moat_agent_fd (w.a) >= 0)
                        shutdown (moat_agent_fd (w.a), SHUT_RDWR);
                pthread_join (th, NULL);
        }
        moat_error_release (&w.err);
        moat_agent_free (w.a);
        if (r.sb && r.sb->agent && !moat_sandbox_vm_exited (r.sb, NULL)) {
                cleanup_error moat_error_t e = NULL;
                if (moat_agent_remove_container (r.sb->agent, r.id, true, &e) < 0)
                        moat_debug ("remove %s: %s", r.id, e->msg);
        }
        for (int i = 0; i < 3; i++)
                if (r.fds[i] >= 0)
                        close (r.fds[i]);
        if (wait_pipe[0] >= 0) {
                close (wait_pipe[0]);
                close (wait_pipe[1]);
        }
        moat_sandbox_destroy (r.sb);
        return status < 0 ? 1 : status;
}
