/* SPDX-License-Identifier: Apache-2.0 */
/* moat run [create options] [--detach|-d] [--keep] ID: create and start a
 * container in a new VM.
 *
 * In the foreground (the default) it is create + start + wait + delete:
 * the stand-in is our child and relays our stdio; the signals moat gets
 * are passed to it (it forwards them to the container); moat exits with
 * the container's status (128+n when a signal n killed it), and the VM and
 * everything on the host go away with it (--keep leaves the stopped
 * container for `moat delete`). With --detach it is create + start and
 * moat exits at once, leaving the stand-in, like runc run -d. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "moat/log.h"
#include "moat/standin.h"
#include "moat/util.h"

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat run [options] ID\n\n"
                    "Create and start a container in a new VM. In the foreground, relay stdio, forward\n"
                    "signals, exit with the container's status and delete it.\n\n"
                    "Options:\n"
                    "  -b, --bundle DIR          bundle directory (default: the current directory)\n"
                    "  -d, --detach              return once the container runs (the stand-in stays)\n"
                    "      --keep                do not delete the container when it exits\n"
                    "      --pid-file FILE       write the stand-in's pid to FILE\n"
                    "      --console-socket SOCK send the pty master to the Unix socket SOCK\n"
                    "      --preserve-fds N      pass fds 3..3+N-1 to the process (relayed into the VM\n"
                    "                            as byte streams; see docs/limits.md)\n"
                    "      --no-pivot            accepted (the guest always uses pivot_root)\n"
                    "      --no-new-keyring      accepted\n"
                    "  -h, --help                this help\n");
}

static void
print_error (const char *id, moat_error_t *err)
{
        moat_error_wrap (err, "run %s", id);
        moat_error_print (err, "moat");
}

static void
force_delete (const struct moat_context *ctx, const char *id)
{
        cleanup_error moat_error_t e = NULL;
        if (moat_container_delete (ctx, id, true, &e) < 0)
                print_error (id, &e);
}

/* Waits for the stand-in, passing it every signal we get. Returns its
 * waitpid status; *msg gets the error it reported, if any. */
static int
wait_standin (pid_t child, int sync, int sfd, char **msg)
{
        int status = 0;
        for (;;) {
                struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = sync, .events = POLLIN}};
                pid_t r = waitpid (child, &status, WNOHANG);
                if (r == child)
                        break;
                if (poll (p, sync >= 0 ? 2 : 1, 200) < 0 && errno != EINTR)
                        break;
                if (p[0].revents) {
                        struct signalfd_siginfo si;
                        while (read (sfd, &si, sizeof si) == sizeof si)
                                if (si.ssi_signo != SIGCHLD)
                                        kill (child, si.ssi_signo);
                }
                if (sync >= 0 && p[1].revents) {
                        char buf[4096];
                        ssize_t n = recv (sync, buf, sizeof buf - 1, MSG_DONTWAIT);
                        if (n > 1 && buf[0] == 'E' && *msg == NULL) {
                                buf[n] = '\0';
                                *msg = xstrdup (buf + 1);
                        }
                        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                                close (sync);
                                sync = -1;
                        }
                }
        }
        if (sync >= 0)
                close (sync);
        return status;
}

int
moat_cmd_run (struct moat_global *g, int argc, char **argv)
{
        struct moat_container_create_opts o = {0};
        struct moat_context ctx = moat_cli_context (g);
        cleanup_error moat_error_t err = NULL;
        cleanup_free char *msg = NULL;
        bool detach = false, keep = false;
        pid_t child = -1;
        int sync = -1, status, rc;
        sigset_t mask;
        cleanup_close int sfd = -1;

        rc = moat_parse_create_opts ("run", argc, argv, &o, &detach, &keep);
        if (rc == 2) {
                usage (stdout);
                return 0;
        }
        if (rc)
                return 1;

        if (detach) {
                if (moat_container_create (&ctx, &o, &err) < 0) {
                        print_error (o.id, &err);
                        return 1;
                }
                if (moat_container_start (&ctx, o.id, &err) < 0) {
                        print_error (o.id, &err);
                        force_delete (&ctx, o.id);
                        return 1;
                }
                return 0;
        }

        /* Every signal we get goes to the stand-in (pending ones, from
         * the boot, too); SIGINT/SIGTERM during the boot abort it. */
        moat_standin_block_signals ();
        sigemptyset (&mask);
        for (int s = 1; s < 32; s++)
                if (s != SIGKILL && s != SIGSTOP && s != SIGSEGV && s != SIGBUS && s != SIGILL && s != SIGFPE &&
                    s != SIGTRAP && s != SIGSYS)
                        sigaddset (&mask, s);
        for (int s = SIGRTMIN; s <= SIGRTMAX; s++)
                sigaddset (&mask, s);
        sigprocmask (SIG_BLOCK, &mask, NULL);
        sfd = signalfd (-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                moat_make_error (&err, errno, "signalfd");
                print_error (o.id, &err);
                return 1;
        }
        o.foreground = true;
        o.standin_pid = &child;
        o.standin_sync = &sync;
        if (moat_container_create (&ctx, &o, &err) < 0) {
                print_error (o.id, &err);
                return 1;
        }
        if (moat_container_start (&ctx, o.id, &err) < 0) {
                print_error (o.id, &err);
                kill (child, SIGKILL);
                waitpid (child, NULL, 0);
                close (sync);
                force_delete (&ctx, o.id);
                return 1;
        }
        status = wait_standin (child, sync, sfd, &msg);
        if (msg) {
                moat_make_error (&err, 0, "%s", msg);
                print_error (o.id, &err);
                rc = 1;
        } else if (WIFSIGNALED (status))
                rc = 128 + WTERMSIG (status);
        else
                rc = WEXITSTATUS (status);
        if (!keep)
                force_delete (&ctx, o.id);
        return rc;
}
