/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "moat/process.h"
#include "moat/util.h"

/* Closes every fd >= lowest except keep and keep2 (-1: none); after fork,
 * so only async-signal-safe calls. */
static void
close_from (int lowest, int keep, int keep2)
{
        int k[2] = {keep < keep2 ? keep : keep2, keep < keep2 ? keep2 : keep};
        unsigned int from = lowest;

        for (int i = 0; i <= 2; i++) {
                unsigned int to = i < 2 ? (unsigned int)k[i] - 1 : ~0U;
                if (i < 2 && (k[i] < lowest || (unsigned int)k[i] < from))
                        continue;
                if (from <= to && close_range (from, to, 0) < 0) {
                        long max = sysconf (_SC_OPEN_MAX);
                        for (long fd = from; fd <= (long)to && fd < (max > 0 ? max : 65536); fd++)
                                close ((int)fd);
                }
                if (i < 2)
                        from = (unsigned int)k[i] + 1;
        }
}

int
moat_spawn (char *const argv[], const struct moat_spawn_opts *o, pid_t *pid, moat_error_t *err)
{
        int errpipe[2];
        pid_t parent = getpid ();
        pid_t p;
        int child_errno = 0;
        ssize_t n;

        if (pipe2 (errpipe, O_CLOEXEC) < 0)
                return moat_make_error (err, errno, "pipe");
        p = fork ();
        if (p < 0) {
                close (errpipe[0]);
                close (errpipe[1]);
                return moat_make_error (err, errno, "fork");
        }
        if (p == 0) {
                sigset_t all;
                int fd;

                close (errpipe[0]);
                sigemptyset (&all);
                sigprocmask (SIG_SETMASK, &all, NULL);
                for (int s = 1; s < NSIG; s++)
                        signal (s, SIG_DFL);
                if (o->die_with_parent) {
                        prctl (PR_SET_PDEATHSIG, SIGKILL);
                        if (getppid () != parent)
                                _exit (127);
                }
                setsid ();
                if (o->workdir && chdir (o->workdir) < 0)
                        goto fail;
                fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fd < 0 || dup2 (fd, 0) < 0)
                        goto fail;
                if (o->log)
                        fd = open (o->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                else
                        fd = open ("/dev/null", O_WRONLY | O_CLOEXEC);
                if (fd < 0 || dup2 (fd, 1) < 0 || dup2 (fd, 2) < 0)
                        goto fail;
                if (o->pass_fd >= 0) {
                        if (o->pass_fd == o->pass_fd_as)
                                set_cloexec (o->pass_fd, false);
                        else if (dup2 (o->pass_fd, o->pass_fd_as) < 0)
                                goto fail;
                }
                /* nothing else of the caller's (e.g. a runtime's preserved
                 * fds) lives on in the VMM; errpipe is CLOEXEC */
                close_from (3, o->pass_fd >= 0 ? o->pass_fd_as : -1, errpipe[1]);
                execv (argv[0], argv);
        fail:
                child_errno = errno;
                if (write (errpipe[1], &child_errno, sizeof child_errno) < 0) {
                }
                _exit (127);
        }
        close (errpipe[1]);
        do
                n = read (errpipe[0], &child_errno, sizeof child_errno);
        while (n < 0 && errno == EINTR);
        close (errpipe[0]);
        if (n == sizeof child_errno) {
                waitpid (p, NULL, 0);
                return moat_make_error (err, child_errno, "exec %s", argv[0]);
        }
        *pid = p;
        return 0;
}

int
moat_wait_pid (pid_t pid, int timeout_ms, int *status)
{
        int64_t deadline = now_ms () + timeout_ms;
        for (;;) {
                pid_t r = waitpid (pid, status, timeout_ms < 0 ? 0 : WNOHANG);
                if (r == pid)
                        return 1;
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -1;
                if (timeout_ms >= 0 && now_ms () >= deadline)
                        return 0;
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep (&ts, NULL);
        }
}

void
moat_stop_pid (pid_t pid, int sig, int timeout_ms)
{
        int status;
        if (pid <= 0)
                return;
        if (kill (pid, sig) < 0 && errno == ESRCH) {
                waitpid (pid, &status, WNOHANG);
                return;
        }
        if (moat_wait_pid (pid, timeout_ms, &status) != 0)
                return;
        kill (pid, SIGKILL);
        moat_wait_pid (pid, 5000, &status);
}

char *
moat_file_tail (const char *path, int lines)
{
        cleanup_free char *data = NULL;
        size_t len = 0;
        const char *p;
        int n = 0;

        if (read_file (path, &data, &len, NULL) < 0 || len == 0)
                return xstrdup ("");
        while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
                data[--len] = '\0';
        for (p = data + len; p > data; p--)
                if (p[-1] == '\n' && ++n == lines)
                        break;
        /* drop carriage returns from the serial console */
        char *out = xstrdup (p), *w = out;
        for (const char *r = out; *r; r++)
                if (*r != '\r')
                        *w++ = *r;
        *w = '\0';
        return out;
}
