/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "moat/hooks.h"
#include "moat/log.h"
#include "moat/util.h"

#define HOOK_OUTPUT_MAX 4096

static int
enter_ns (const struct moat_hook_ns *ns)
{
        if (ns == NULL)
                return 0;
        if (ns->mnt_fd >= 0 && setns (ns->mnt_fd, CLONE_NEWNS) < 0)
                return -1;
        return 0;
}

static int
run_one (const struct oci_hook *h, const char *kind, size_t idx, const char *state_json, const char *bundle,
         const struct moat_hook_ns *ns, moat_error_t *err)
{
        int in[2], out[2], errpipe[2];
        pid_t pid;
        char buf[HOOK_OUTPUT_MAX + 1];
        size_t blen = 0;
        int child_errno = 0, status = 0;
        int64_t deadline = h->timeout > 0 ? now_ms () + (int64_t)h->timeout * 1000 : -1;
        bool exited = false, timed_out = false;
        size_t off = 0, slen = strlen (state_json);
        const char *what = h->path;

        /* stdin is a socket so that writing to a hook that exited or does
         * not read it gives EPIPE, never SIGPIPE (MSG_NOSIGNAL) */
        if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0)
                return moat_make_error (err, errno, "socketpair");
        if (pipe2 (out, O_CLOEXEC) < 0) {
                close (in[0]);
                close (in[1]);
                return moat_make_error (err, errno, "pipe");
        }
        if (pipe2 (errpipe, O_CLOEXEC) < 0) {
                close (in[0]);
                close (in[1]);
                close (out[0]);
                close (out[1]);
                return moat_make_error (err, errno, "pipe");
        }
        pid = fork ();
        if (pid < 0) {
                int e = errno;
                close (in[0]);
                close (in[1]);
                close (out[0]);
                close (out[1]);
                close (errpipe[0]);
                close (errpipe[1]);
                return moat_make_error (err, e, "fork");
        }
        if (pid == 0) {
                sigset_t all;
                sigemptyset (&all);
                sigprocmask (SIG_SETMASK, &all, NULL);
                for (int s = 1; s < NSIG; s++)
                        signal (s, SIG_DFL);
                if (dup2 (in[0], 0) < 0 || dup2 (out[1], 1) < 0 || dup2 (out[1], 2) < 0)
                        goto fail;
                setpgid (0, 0); /* a timeout kills the hook's whole group */
                if (enter_ns (ns) < 0)
                        goto fail;
                /* like runc: cwd is the bundle, no env given means ours */
                if (bundle && chdir (bundle) < 0)
                        goto fail;
                execve (h->path, h->args ? h->args : (char *const[]){h->path, NULL}, h->env ? h->env : environ);
        fail:
                child_errno = errno;
                if (write (errpipe[1], &child_errno, sizeof child_errno) < 0) {
                }
                _exit (127);
        }
        close (in[0]);
        close (out[1]);
        close (errpipe[1]);
        set_nonblock (in[1], true);
        set_nonblock (out[0], true);

        while (!exited) {
                struct pollfd p[2];
                int n = 0, timeout = 50;
                if (in[1] >= 0)
                        p[n++] = (struct pollfd){.fd = in[1], .events = POLLOUT};
                if (out[0] >= 0)
                        p[n++] = (struct pollfd){.fd = out[0], .events = POLLIN};
                if (deadline >= 0 && deadline - now_ms () < timeout)
                        timeout = deadline - now_ms () > 0 ? deadline - now_ms () : 0;
                if (poll (p, n, timeout) < 0 && errno != EINTR)
                        break;
                if (in[1] >= 0) {
                        ssize_t w = send (in[1], state_json + off, slen - off, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (w > 0)
                                off += w;
                        if ((w < 0 && errno != EAGAIN && errno != EINTR) || off == slen) {
                                close (in[1]); /* EOF (or the hook does not read stdin) */
                                in[1] = -1;
                        }
                }
                if (out[0] >= 0) {
                        char tmp[1024];
                        ssize_t r = read (out[0], tmp, sizeof tmp);
                        if (r > 0) {
                                size_t take = (size_t)r; /* <= sizeof tmp < HOOK_OUTPUT_MAX */
                                if (blen + take > HOOK_OUTPUT_MAX) {
                                        /* keep the tail */
                                        size_t drop = blen + take - HOOK_OUTPUT_MAX;
                                        memmove (buf, buf + drop, blen - drop);
                                        blen -= drop;
                                }
                                memcpy (buf + blen, tmp, take);
                                blen += take;
                        } else if (r == 0) {
                                close (out[0]);
                                out[0] = -1;
                        }
                }
                if (waitpid (pid, &status, WNOHANG) == pid)
                        exited = true;
                else if (deadline >= 0 && now_ms () >= deadline) {
                        kill (-pid, SIGKILL);
                        kill (pid, SIGKILL);
                        waitpid (pid, &status, 0);
                        exited = timed_out = true;
                }
        }
        if (!exited)
                waitpid (pid, &status, 0);
        if (in[1] >= 0)
                close (in[1]);
        if (out[0] >= 0) {
                /* what is left (a background child may keep the pipe open: don't wait for it) */
                char tmp[1024];
                ssize_t r;
                while (blen < HOOK_OUTPUT_MAX && (r = read (out[0], tmp, sizeof tmp)) > 0) {
                        size_t take = (size_t)r < HOOK_OUTPUT_MAX - blen ? (size_t)r : HOOK_OUTPUT_MAX - blen;
                        memcpy (buf + blen, tmp, take);
                        blen += take;
                }
                close (out[0]);
        }
        buf[blen] = '\0';
        while (blen > 0 && (buf[blen - 1] == '\n' || buf[blen - 1] == '\r'))
                buf[--blen] = '\0';
        if (read (errpipe[0], &child_errno, sizeof child_errno) == sizeof child_errno) {
                close (errpipe[0]);
                return moat_make_error (err, child_errno, "%s hook %zu: exec %s", kind, idx, what);
        }
        close (errpipe[0]);
        if (timed_out)
                return moat_make_error (err, 0, "%s hook %zu (%s): timed out after %ds", kind, idx, what, h->timeout);
        if (WIFEXITED (status) && WEXITSTATUS (status) == 0) {
                if (blen)
                        moat_debug ("%s hook %zu (%s): %s", kind, idx, what, buf);
                return 0;
        }
        if (WIFSIGNALED (status))
                return moat_make_error (err, 0, "%s hook %zu (%s): killed by signal %d%s%s", kind, idx, what,
                                        WTERMSIG (status), blen ? ": " : "", buf);
        return moat_make_error (err, 0, "%s hook %zu (%s): exit status %d%s%s", kind, idx, what, WEXITSTATUS (status),
                                blen ? ": " : "", buf);
}

/* The "bundle" of the OCI state, or NULL. */
static char *
state_bundle (const char *state_json)
{
        const char *path[] = {"bundle", NULL};
        char ebuf[128];
        yajl_val t = yajl_tree_parse (state_json, ebuf, sizeof ebuf);
        yajl_val v = t ? yajl_tree_get (t, path, yajl_t_string) : NULL;
        char *r = v && *YAJL_GET_STRING (v) ? xstrdup (YAJL_GET_STRING (v)) : NULL;
        yajl_tree_free (t);
        return r;
}

int
moat_hooks_run (const struct oci_config *cfg, enum oci_hook_kind kind, const char *state_json, bool keep_going,
                const struct moat_hook_ns *ns, moat_error_t *err)
{
        const char *name = oci_hook_names[kind];
        cleanup_free char *bundle = NULL;
        if (cfg == NULL || cfg->n_hooks[kind] == 0)
                return 0;
        bundle = state_bundle (state_json);
        for (size_t i = 0; i < cfg->n_hooks[kind]; i++) {
                cleanup_error moat_error_t e = NULL;
                moat_debug ("running %s hook %zu: %s", name, i, cfg->hooks[kind][i].path);
                if (run_one (&cfg->hooks[kind][i], name, i, state_json, bundle, ns, &e) == 0)
                        continue;
                if (!keep_going) {
                        *err = e;
                        e = NULL;
                        return -1;
                }
                moat_warn ("%s", e->msg);
        }
        return 0;
}

int
moat_hooks_time_ms (const struct oci_config *cfg, enum oci_hook_kind kind)
{
        long long ms = 0;

        for (size_t i = 0; i < cfg->n_hooks[kind]; i++)
                ms += cfg->hooks[kind][i].timeout > 0 ? cfg->hooks[kind][i].timeout * 1000LL : 86400000LL;
        return ms > 86400000LL ? 86400000 : (int)ms;
}
