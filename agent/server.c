/* SPDX-License-Identifier: Apache-2.0 */
/* The agent API (proto/agent.proto) on AF_VSOCK port 1024, ttrpc, one thread
 * per connection; stdio connections on port 1025 (stdio.c).
 * For tests without a VM, MOAT_AGENT_UNIX_DIR=DIR serves the same on the
 * Unix sockets DIR/agent.sock and DIR/stdio.sock, and MOAT_AGENT_SHARE_DIR
 * replaces /run/moat/share. */
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "agent.pb-c.h"
#include "moat/ttrpc.h"
#include "moat/util.h"

#define NEW_MSG(type, init)                                                                                            \
        ({                                                                                                             \
                type *_m = xmalloc (sizeof (type));                                                                    \
                init (_m);                                                                                             \
                _m;                                                                                                    \
        })
#define EMPTY() ((ProtobufCMessage *)NEW_MSG (Moat__Agent__V1__Empty, moat__agent__v1__empty__init))

static const char *
share_dir (void)
{
        const char *d = getenv ("MOAT_AGENT_SHARE_DIR");
        return d && *d ? d : MOAT_GUEST_SHARE;
}

/* Looks a container up and takes a reference (agent_put releases it). */
static struct agent_container *
agent_get (const char *id, moat_error_t *err)
{
        struct agent_container *c;
        bool creating = false;

        if (id == NULL)
                id = "";
        pthread_mutex_lock (&agent_lock);
        c = agent_container_find (id);
        if (c)
                c->refs++;
        else {
                struct agent_container *any = agent_container_find_any (id);
                creating = any && any->creating;
        }
        pthread_mutex_unlock (&agent_lock);
        if (c == NULL && creating)
                moat_make_error (err, EBUSY, "container %s is still being created", id);
        else if (c == NULL)
                moat_make_error (err, ENOENT, "container %s not found", id);
        return c;
}

static void
agent_put (struct agent_container *c)
{
        agent_container_put (c);
}

static const char *
exec_name (const char *exec_id)
{
        return exec_id == NULL || *exec_id == '\0' ? "-" : exec_id;
}

static int
h_check (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        Moat__Agent__V1__CheckResponse *r =
                NEW_MSG (Moat__Agent__V1__CheckResponse, moat__agent__v1__check_response__init);
        struct utsname u;
        uname (&u);
        r->version = xstrdup (MOAT_VERSION);
        r->kernel_release = xstrdup (u.release);
        *resp = &r->base;
        return 0;
}

static void
close_fds (int fds[4])
{
        for (int i = 0; i < 4; i++)
                if (fds[i] >= 0) {
                        close (fds[i]);
                        fds[i] = -1;
                }
}

/* Claims the streams spec asks for and fills st; the caller owns fds[]. */
static int
claim_stdio (const char *cid, const char *eid, const Moat__Agent__V1__StdioSpec *spec, struct agent_stdio *st,
             int fds[4], moat_error_t *err)
{
        memset (st, 0, sizeof *st);
        st->fd[0] = st->fd[1] = st->fd[2] = -1;
        for (int i = 0; i < 4; i++)
                fds[i] = -1;
        if (spec == NULL)
                return 0;
        if (agent_stdio_claim (cid, eid, spec->terminal, spec->stdin, spec->stdout, spec->stderr, fds, err) < 0)
                return -1;
        /* the preserved fds' streams (--preserve-fds), taken at spawn */
        if (spec->extra_fds && agent_stdio_wait_extra (cid, eid, spec->extra_fds, err) < 0) {
                close_fds (fds);
                return -1;
        }
        st->terminal = spec->terminal;
        st->rows = spec->rows;
        st->cols = spec->cols;
        for (int i = 0; i < 3; i++)
                st->fd[i] = fds[i];
        return 0;
}

/* After a successful spawn: keep what CloseStdin / the tty relay need, drop
 * the rest (the process has its own copies). */
static void
adopt_stdio (struct agent_process *p, int fds[4], int tty_master)
{
        moat_error_t err = NULL;

        pthread_mutex_lock (&agent_lock);
        if (fds[0] >= 0 && !p->exited) { /* after the exit, record_exit would not close it any more */
                p->stdin_fd = fds[0];
                fds[0] = -1;
        }
        if (tty_master >= 0) {
                p->tty_master = tty_master;
                p->tty_conn = fds[3];
                fds[3] = -1;
                if (p->tty_conn >= 0 && agent_tty_relay_start (p, &err) < 0) {
                        agent_log ("%s", err->msg);
                        moat_error_release (&err);
                }
                if (p->exited) { /* reaped already: the relay has its copies, record_exit closed none */
                        close (p->tty_master);
                        p->tty_master = -1;
                        if (p->tty_conn >= 0)
                                close (p->tty_conn);
                        p->tty_conn = -1;
                }
        }
        pthread_mutex_unlock (&agent_lock);
        close_fds (fds);
}

/* The held init's network namespace, pinned: opened by pid, then the
 * init's pidfd proves it was still that process (not a reused pid). */
static int
init_netns (struct agent_container *c, int *nsfd, moat_error_t *err)
{
        char path[64];

        snprintf (path, sizeof path, "/proc/%d/ns/net", (int)c->init->pid);
        *nsfd = open (path, O_RDONLY | O_CLOEXEC);
        if (*nsfd < 0)
                return moat_make_error (err, errno, "the container's network namespace: open %s", path);
        if (agent_process_kill (c->init, 0) < 0)
                return moat_make_error (err, ESRCH, "the container's process exited during its create");
        return 0;
}

/* A pod container joined the sandbox's init by pid: if that init exited
 * meanwhile, the pid may have named another process. */
static bool
pod_join_lost (const struct agent_pod_join *join, moat_error_t *err)
{
        if (agent_pod_join_valid (join))
                return false;
        moat_make_error (err, ESRCH, "sandbox container %s exited during the create", join->sandbox_id);
        return true;
}

static int
h_create (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Moat__Agent__V1__CreateContainerRequest *q = (const void *)req;
        cleanup_free char *bundle = xasprintf_r ("%s/%s", share_dir (), q->container_id);
        struct agent_container *c = NULL;
        struct agent_stdio st;
        int fds[4], tty = -1;
        cleanup_close int nsfd = -1;
        Moat__Agent__V1__CreateContainerResponse *r;

        struct agent_pod_join join = {
                .sandbox_id = q->sandbox_id, .types = q->join_namespaces, .n_types = q->n_join_namespaces};

        if (agent_set_hostname (q->host_hostname, err) < 0)
                return moat_error_wrap (err, "create %s", q->container_id);
        if (claim_stdio (q->container_id, "-", q->stdio, &st, fds, err) < 0)
                return moat_error_wrap (err, "create %s", q->container_id);
        if (agent_container_create (q->container_id, q->config_json, bundle, q->bundle, &join, &st, &c, &tty, err) <
            0) {
                close_fds (fds);
                return -1;
        }
        /* c comes with a reference: a RemoveContainer from now on waits for it */
        adopt_stdio (c->init, fds, tty);
        /* its network, before its process runs; a failure stops it (the
         * host then destroys the sandbox, or removes the container) */
        if (pod_join_lost (&join, err) || init_netns (c, &nsfd, err) < 0 ||
            agent_net_setup (nsfd, q->interfaces, q->n_interfaces, err) < 0) {
                cleanup_error moat_error_t e = NULL;
                if (agent_container_kill_all (c, SIGKILL, &e) < 0)
                        agent_log ("create %s: %s", q->container_id, e->msg);
                agent_put (c);
                return moat_error_wrap (err, "create %s", q->container_id);
        }
        r = NEW_MSG (Moat__Agent__V1__CreateContainerResponse, moat__agent__v1__create_container_response__init);
        r->pid = c->init->pid;
        agent_put (c);
        *resp = &r->base;
        return 0;
}

static int
h_start (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Moat__Agent__V1__StartContainerRequest *q = (const void *)req;
        struct agent_container *c = agent_get (q->container_id, err);
        int r;
        if (c == NULL)
                return -1;
        r = agent_container_start (c, err);
        agent_put (c);
        if (r < 0)
                return -1;
        *resp = EMPTY ();
        return 0;
}

static int
h_exec (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Moat__Agent__V1__ExecProcessRequest *q = (const void *)req;
        struct agent_container *c = agent_get (q->container_id, err);
        struct agent_process *p;
        struct agent_stdio st;
        int fds[4], tty = -1;
        pid_t pid;
        Moat__Agent__V1__ExecProcessResponse *r;

        if (c == NULL)
                return -1;
        if (claim_stdio (q->container_id, exec_name (q->exec_id), q->stdio, &st, fds, err) < 0) {
                agent_put (c);
                return moat_error_wrap (err, "exec %s in %s", exec_name (q->exec_id), q->container_id);
        }
        if (agent_container_exec (c, q->exec_id, q->process_json, &st, &pid, &tty, err) < 0) {
                close_fds (fds);
                agent_put (c);
                return -1;
        }
        pthread_mutex_lock (&agent_lock);
        p = agent_process_get (c, q->exec_id);
        pthread_mutex_unlock (&agent_lock);
        if (p)
                adopt_stdio (p, fds, tty);
        else {
                close_fds (fds);
                if (tty >= 0)
                        close (tty);
        }
        agent_put (c);
        r = NEW_MSG (Moat__Agent__V1__ExecProcessResponse, moat__agent__v1__exec_process_response__init);
        r->pid = pid;
        *resp = &r->base;
        return 0;
}

static int
h_signal (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Moat__Agent__V1__SignalProcessRequest *q = (const void *)req;
        struct agent_container *c;
        struct agent_process *p;
        int r = 0, e = 0;

        if (q->signal == 0 || q->signal > 64)
                return moat_make_error (err, EINVAL, "signal %u is not valid", q->signal);
        c = agent_get (q->container_id, err);
        if (c == NULL)
                return -1;
        if (q->all) {
                r = agent_container_kill_all (c, q->signal, err);
                agent_put (c);
                if (r < 0)
                        return -1;
                *resp = EMPTY ();
                return 0;
        }
        pthread_mutex_lock (&agent_lock);
        p = agent_process_get (c, q->exec_id);
        pthread_mutex_unlock (&agent_lock);
        /* through the pidfd: an exited (even reaped) process is ESRCH, never
         * whoever got its pid next */
        if (p) {
                r = agent_process_kill (p, q->signal);
                e = errno;
        }
        agent_put (c);
        if (p == NULL)
                return moat_make_error (err, ENOENT, "process %s of %s not found", exec_name (q->exec_id),
                                        q->container_id);
        if (r < 0 && e == ESRCH)
                return moat_make_error (err, ESRCH, "signal process %s of %s: not running", exec_name (q->exec_id),
                                        q->container_id);
        if (r < 0)
                return moat_make_error (err, e, "signal %u to process %s of %s", q->signal, exec_name (q->exec_id),
                                        q->container_id);
        *resp = EMPTY ();
        return 0;
}

static int
h_wait (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Moat__Agent__V1__WaitProcessRequest *q = (const void *)req;
        struct agent_container *c = agent_get (q->container_id, err);
        struct agent_process *p;
        Moat__Agent__V1__WaitProcessResponse *r;
        bool signaled;
        int sig, code;

        if (c == NULL)
                return -1;
        pthread_mutex_lock (&agent_lock);
        p = agent_process_get (c, q->exec_id);
        if (p == NULL) {
                c->refs--;
                pthread_cond_broadcast (&agent_cond);
                pthread_mutex_unlock (&agent_lock);
                return moat_make_error (err, ENOENT, "process %s of %s not found", exec_name (q->exec_id),
                                        q->container_id);
        }
        agent_process_wait_locked (c, p, -1);
        code = agent_status_code (p->wait_status, &signaled, &sig);
        c->refs--;
        pthread_cond_broadcast (&agent_cond);
        pthread_mutex_unlock (&agent_lock);
        r = NEW_MSG (Moat__Agent__V1__WaitProcessResponse, moat__agent__v1__wait_process_response__init);
        r->status = code;
        r->signaled = signaled;
        r->signal = sig;
        *resp = &r->base;
        return 0;
}

/* agent_lock held: every process of c exited and no handler uses c */
static bool
remove_done_locked (struct agent_container *c)
{
        if (c->refs > 0 || (c->init && !c->init->exited))
                return false;
        for (struct agent_process *p = c->execs; p; p = p->next)
                if (p->pid > 0 && !p->exited)
                        return false;
        return true;
}

#define REMOVE_TIMEOUT_MS 9000 /* under the host's 10 s for the call */

static int
h_remove (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Moat__Agent__V1__RemoveContainerRequest *q = (const void *)req;
        struct agent_container *c;
        moat_error_t e = NULL;
        bool clean = false, paused;
        int64_t deadline = now_ms () + REMOVE_TIMEOUT_MS;

        pthread_mutex_lock (&agent_lock);
        c = agent_container_find_any (q->container_id);
        if (c == NULL || c->removing) {
                pthread_mutex_unlock (&agent_lock);
                return moat_make_error (err, ENOENT, "container %s not found%s", q->container_id,
                                        c ? " (it is being removed)" : "");
        }
        if (c->creating) {
                /* its create still owns it: CreateContainer fails or returns first */
                pthread_mutex_unlock (&agent_lock);
                return moat_make_error (err, EBUSY,
                                        "container %s is still being created: remove it after its create returns",
                                        q->container_id);
        }
        if (!q->force && c->state == CONTAINER_RUNNING && c->init && !c->init->exited) {
                pthread_mutex_unlock (&agent_lock);
                return moat_make_error (err, EBUSY, "container %s is running (use force)", q->container_id);
        }
        c->removing = true;    /* no new users from here; the reaper still sees it */
        if (c->sync_fd >= 0) { /* a held init gives up when this closes */
                close (c->sync_fd);
                c->sync_fd = -1;
        }
        paused = c->paused;
        pthread_mutex_unlock (&agent_lock);

        if (paused && c->cgroup_path && agent_cgroup_freeze (c->cgroup_path, false, &e) < 0)
                moat_error_release (&e);
        /* Wait for the processes and for the handlers that still hold c
         * (WaitProcess returns once its process is gone; an ExecProcess or a
         * StartContainer in flight fails on `removing`). Kill again on every
         * round: a process spawned meanwhile dies too. */
        for (;;) {
                int64_t left;
                if (agent_container_kill_all (c, SIGKILL, &e) < 0) {
                        agent_log ("remove %s: %s", c->id, e->msg);
                        moat_error_release (&e);
                }
                pthread_mutex_lock (&agent_lock);
                clean = remove_done_locked (c);
                left = deadline - now_ms ();
                if (!clean && left > 0) {
                        struct timespec ts;
                        clock_gettime (CLOCK_MONOTONIC, &ts);
                        left = left < 200 ? left : 200;
                        ts.tv_nsec += left * 1000000L;
                        ts.tv_sec += ts.tv_nsec / 1000000000L;
                        ts.tv_nsec %= 1000000000L;
                        pthread_cond_timedwait (&agent_cond, &agent_lock, &ts);
                        clean = remove_done_locked (c);
                }
                if (clean)
                        agent_container_unlink (c);
                else if (left <= 0)
                        c->removing = false; /* give up: visible again, RemoveContainer may be retried */
                pthread_mutex_unlock (&agent_lock);
                if (clean || left <= 0)
                        break;
        }
        if (!clean) {
                agent_log ("remove %s: processes did not exit in time", q->container_id);
                return moat_make_error (err, ETIMEDOUT,
                                        "remove %s: its processes did not exit after SIGKILL (or a request still "
                                        "uses it); try again",
                                        q->container_id);
        }
        if (c->cgroup_path && agent_cgroup_destroy (c->cgroup_path, &e) < 0) {
                agent_log ("remove %s: %s", c->id, e->msg);
                moat_error_release (&e);
        }
        agent_log ("container %s removed", c->id);
        agent_container_free (c);
        *resp = EMPTY ();
        return 0;
}

/* agent_lock held: a process of c is being spawned (an unpublished entry,
 * or the startContainer hooks). Freezing the cgroup under its setup would
 * stall the spawner for its whole timeout, and the reaper with it. */
static bool
spawning_locked (struct agent_container *c)
{
        if (c->starting)
                return true;
        for (struct agent_process *p = c->execs; p; p = p->next)
                if (!p->ready && !p->exited)
                        return true;
        return false;
}

static int
pause_resume (const char *id, bool pause, moat_error_t *err)
{
        struct agent_container *c = agent_get (id, err);
        bool was = false;
        int r;
        if (c == NULL)
                return -1;
        if (c->cgroup_path == NULL) {
                agent_put (c);
                return moat_make_error (err, ENOTSUP, "container %s has no cgroup to freeze", id);
        }
        if (pause) {
                /* paused from before the freeze on: ExecProcess refuses from here */
                pthread_mutex_lock (&agent_lock);
                if (spawning_locked (c)) {
                        pthread_mutex_unlock (&agent_lock);
                        agent_put (c);
                        return moat_make_error (err, EBUSY,
                                                "pause %s: a process of the container is starting, try again", id);
                }
                was = c->paused;
                c->paused = true;
                pthread_mutex_unlock (&agent_lock);
        }
        r = agent_cgroup_freeze (c->cgroup_path, pause, err);
        if (r == 0 || pause) {
                pthread_mutex_lock (&agent_lock);
                c->paused = r == 0 ? pause : was;
                pthread_mutex_unlock (&agent_lock);
        }
        agent_put (c);
        return r < 0 ? moat_error_wrap (err, "%s %s", pause ? "pause" : "resume", id) : 0;
}

static int
h_pause (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Moat__Agent__V1__PauseContainerRequest *q = (const void *)req;
        if (pause_resume (q->container_id, true, err) < 0)
                return -1;
        *resp = EMPTY ();
        return 0;
}

static int
h_resume (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Moat__Agent__V1__ResumeContainerRequest *q = (const void *)req;
        if (pause_resume (q->container_id, false, err) < 0)
                return -1;
        *resp = EMPTY ();
        return 0;
}

static int
h_stats (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Moat__Agent__V1__StatsContainerRequest *q = (const void *)req;
        struct agent_container *c = agent_get (q->container_id, err);
        Moat__Agent__V1__StatsContainerResponse *r;
        const char *cg;
        pid_t *pids = NULL;
        size_t n = 0;

        if (c == NULL)
                return -1;
        cg = c->cgroup_path;
        if (cg == NULL) {
                agent_put (c);
                return moat_make_error (err, ENOTSUP, "container %s has no cgroup", q->container_id);
        }
        r = NEW_MSG (Moat__Agent__V1__StatsContainerResponse, moat__agent__v1__stats_container_response__init);
        /* limits that are "max" read as 0: no limit */
        agent_cgroup_read_u64 (cg, "memory.current", NULL, &r->memory_usage);
        agent_cgroup_read_u64 (cg, "memory.max", NULL, &r->memory_limit);
        agent_cgroup_read_u64 (cg, "memory.peak", NULL, &r->memory_max_usage);
        agent_cgroup_read_u64 (cg, "cpu.stat", "usage_usec", &r->cpu_usage_usec);
        agent_cgroup_read_u64 (cg, "cpu.stat", "user_usec", &r->cpu_user_usec);
        agent_cgroup_read_u64 (cg, "cpu.stat", "system_usec", &r->cpu_system_usec);
        agent_cgroup_read_u64 (cg, "pids.current", NULL, &r->pids_current);
        agent_cgroup_read_u64 (cg, "pids.max", NULL, &r->pids_limit);
        if (agent_cgroup_pids (cg, &pids, &n, err) < 0) {
                agent_put (c);
                ttrpc_free_response (&r->base);
                return moat_error_wrap (err, "stats %s", q->container_id);
        }
        agent_put (c);
        r->n_pids = n;
        r->pids = xmalloc ((n ? n : 1) * sizeof (uint32_t));
        for (size_t i = 0; i < n; i++)
                r->pids[i] = pids[i];
        free (pids);
        if (r->pids_current == 0)
                r->pids_current = n;
        *resp = &r->base;
        return 0;
}

static int
h_update (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Moat__Agent__V1__UpdateContainerRequest *q = (const void *)req;
        struct agent_container *c = agent_get (q->container_id, err);
        struct oci_resources *res = NULL;
        int r;

        if (c == NULL)
                return -1;
        if (c->cgroup_path == NULL) {
                agent_put (c);
                return moat_make_error (err, ENOTSUP, "container %s has no cgroup", q->container_id);
        }
        if (oci_resources_parse (q->resources_json, "resources", &res, err) < 0) {
                agent_put (c);
                return moat_error_wrap (err, "update %s", q->container_id);
        }
        r = agent_cgroup_apply (c->cgroup_path, res, err);
        oci_resources_free (res);
        agent_put (c);
        if (r < 0)
                return moat_error_wrap (err, "update %s", q->container_id);
        *resp = EMPTY ();
        return 0;
}

static int
h_resize (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Moat__Agent__V1__TtyWinResizeRequest *q = (const void *)req;
        struct agent_container *c = agent_get (q->container_id, err);
        struct agent_process *p;
        struct winsize ws = {.ws_row = q->rows, .ws_col = q->cols};
        int r = -1, e = ENOTTY;

        if (c == NULL)
                return -1;
        pthread_mutex_lock (&agent_lock);
        p = agent_process_get (c, q->exec_id);
        if (p && p->exited)
                r = 0; /* too late to matter (its pty is closed): not an error */
        else if (p && p->tty_master >= 0) {
                r = ioctl (p->tty_master, TIOCSWINSZ, &ws);
                e = errno;
        }
        pthread_mutex_unlock (&agent_lock);
        agent_put (c);
        if (p == NULL)
                return moat_make_error (err, ENOENT, "process %s of %s not found", exec_name (q->exec_id),
                                        q->container_id);
        if (r < 0)
                return moat_make_error (err, e, "resize the terminal of %s/%s", q->container_id,
                                        exec_name (q->exec_id));
        *resp = EMPTY ();
        return 0;
}

/* CloseStdin: shuts down our read side of the process's stdin connection.
 * Without a terminal the process holds that very socket, so its reads see
 * EOF (the host may also just half-close; both are fine). With a terminal
 * the relay sees EOF and writes the terminal's EOF character (VEOF, ^D) to
 * the pty master, once. */
static int
h_close_stdin (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Moat__Agent__V1__CloseStdinRequest *q = (const void *)req;
        struct agent_container *c = agent_get (q->container_id, err);
        struct agent_process *p;

        if (c == NULL)
                return -1;
        pthread_mutex_lock (&agent_lock);
        p = agent_process_get (c, q->exec_id);
        if (p && p->stdin_fd >= 0)
                shutdown (p->stdin_fd, SHUT_RD);
        if (p && p->tty_conn >= 0)
                shutdown (p->tty_conn, SHUT_RD);
        pthread_mutex_unlock (&agent_lock);
        agent_put (c);
        if (p == NULL)
                return moat_make_error (err, ENOENT, "process %s of %s not found", exec_name (q->exec_id),
                                        q->container_id);
        *resp = EMPTY ();
        return 0;
}

static void *
poweroff_thread (void *arg)
{
        usleep (200000); /* let the response reach the host */
        agent_poweroff (arg != NULL);
        return NULL;
}

static int
h_destroy (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Moat__Agent__V1__DestroySandboxRequest *q = (const void *)req;
        pthread_t t;
        int r = pthread_create (&t, NULL, poweroff_thread, q->reboot ? (void *)1 : NULL);
        if (r != 0)
                return moat_make_error (err, r, "start the power-off thread");
        pthread_detach (t);
        *resp = EMPTY ();
        return 0;
}

static int
h_sync_clock (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Moat__Agent__V1__SyncClockRequest *q = (const void *)req;
        Moat__Agent__V1__SyncClockResponse *r;
        int64_t off;
        bool stepped;
        /* the entropy first: a container may run right after this call */
        if (q->entropy.len > 0 && agent_reseed (q->entropy.data, q->entropy.len, err) < 0)
                return -1;
        if (agent_clock_sync (q->realtime_sec, q->realtime_nsec, q->step, &off, &stepped, err) < 0)
                return -1;
        if (stepped || off > 10000000 || off < -10000000)
                agent_debug ("clock: host minus guest %lld ns, %s", (long long)off, stepped ? "stepped" : "slewing");
        r = NEW_MSG (Moat__Agent__V1__SyncClockResponse, moat__agent__v1__sync_clock_response__init);
        r->offset_ns = off;
        r->stepped = stepped;
        *resp = &r->base;
        return 0;
}

#define METHOD(name, msg, fn, blocking)                                                                                \
        {                                                                                                              \
                name, &moat__agent__v1__##msg##__descriptor, fn, blocking                                              \
        }
static const struct ttrpc_method methods[] = {
        METHOD ("Check", check_request, h_check, 0),
        METHOD ("CreateContainer", create_container_request, h_create, 1),
        METHOD ("StartContainer", start_container_request, h_start, 0),
        METHOD ("ExecProcess", exec_process_request, h_exec, 1),
        METHOD ("SignalProcess", signal_process_request, h_signal, 0),
        METHOD ("WaitProcess", wait_process_request, h_wait, 1),
        METHOD ("RemoveContainer", remove_container_request, h_remove, 1),
        METHOD ("PauseContainer", pause_container_request, h_pause, 0),
        METHOD ("ResumeContainer", resume_container_request, h_resume, 0),
        METHOD ("StatsContainer", stats_container_request, h_stats, 0),
        METHOD ("UpdateContainer", update_container_request, h_update, 0),
        METHOD ("TtyWinResize", tty_win_resize_request, h_resize, 0),
        METHOD ("CloseStdin", close_stdin_request, h_close_stdin, 0),
        METHOD ("DestroySandbox", destroy_sandbox_request, h_destroy, 0),
        METHOD ("SyncClock", sync_clock_request, h_sync_clock, 0),
};
static const struct ttrpc_service service = {MOAT_AGENT_SERVICE, methods, ARRAY_SIZE (methods)};

static void *
conn_thread (void *arg)
{
        int fd = (int)(intptr_t)arg;
        moat_error_t err = NULL;
        agent_debug ("ttrpc connection %d opened", fd);
        if (ttrpc_serve (fd, &service, 1, NULL, &err) < 0) {
                agent_log ("ttrpc connection: %s", err->msg);
                moat_error_release (&err);
        }
        agent_debug ("ttrpc connection %d closed", fd);
        return NULL;
}

static int
listen_on (int port, const char *unix_dir, moat_error_t *err)
{
        int fd;
        if (unix_dir) {
                struct sockaddr_un sa = {.sun_family = AF_UNIX};
                snprintf (sa.sun_path, sizeof sa.sun_path, "%s/%s", unix_dir,
                          port == MOAT_AGENT_PORT ? "agent.sock" : "stdio.sock");
                unlink (sa.sun_path);
                fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || bind (fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen (fd, 64) < 0) {
                        int e = errno;
                        if (fd >= 0)
                                close (fd);
                        return moat_make_error (err, e, "listen on %s", sa.sun_path);
                }
                return fd;
        }
        {
                struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
                fd = socket (AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || bind (fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen (fd, 64) < 0) {
                        int e = errno;
                        if (fd >= 0)
                                close (fd);
                        return moat_make_error (err, e, "listen on vsock port %d", port);
                }
        }
        return fd;
}

static int
listen_retry (int port, const char *unix_dir)
{
        moat_error_t err = NULL;
        for (int tries = 0;; tries++) {
                int fd = listen_on (port, unix_dir, &err);
                if (fd >= 0) {
                        agent_log ("listening on %s port %d", unix_dir ? "unix" : "vsock", port);
                        return fd;
                }
                if (tries == 0 || tries % 60 == 0)
                        agent_log ("%s (is the vsock device missing? retrying)", err->msg);
                moat_error_release (&err);
                sleep (1);
        }
}

int
agent_accept (int lfd, const char *what)
{
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd;

        memset (&ss, 0, sizeof ss);
        fd = accept4 (lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
        if (fd < 0)
                return -1;
        /* vsock loopback lets the guest (a container) connect too: only the host may drive the agent.
         * The test mode listens on Unix sockets, which have no CID. */
        if (ss.ss_family == AF_VSOCK) {
                struct sockaddr_vm *svm = (struct sockaddr_vm *)&ss;
                if (svm->svm_cid != VMADDR_CID_HOST) {
                        agent_log ("%s: refused a connection from vsock cid %u (not the host)", what, svm->svm_cid);
                        close (fd);
                        errno = ECONNABORTED;
                        return -1;
                }
        }
        return fd;
}

static void *
stdio_thread (void *arg)
{
        agent_stdio_serve ((int)(intptr_t)arg);
        return NULL;
}

int
agent_server_run (moat_error_t *err)
{
        const char *unix_dir = getenv ("MOAT_AGENT_UNIX_DIR");
        int lfd, sfd, r;
        pthread_t t;

        if (unix_dir && !*unix_dir)
                unix_dir = NULL;
        lfd = listen_retry (MOAT_AGENT_PORT, unix_dir);
        sfd = listen_retry (MOAT_STDIO_PORT, unix_dir);
        r = pthread_create (&t, NULL, stdio_thread, (void *)(intptr_t)sfd);
        if (r != 0)
                return moat_make_error (err, r, "start the stdio listener");
        pthread_detach (t);
        for (;;) {
                int fd = agent_accept (lfd, "ttrpc");
                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        agent_log ("accept: %s", strerror (errno));
                        sleep (1);
                        continue;
                }
                r = pthread_create (&t, NULL, conn_thread, (void *)(intptr_t)fd);
                if (r != 0) {
                        agent_log ("no thread for a ttrpc connection: %s", strerror (r));
                        close (fd);
                        continue;
                }
                pthread_detach (t);
        }
        return 0;
}
