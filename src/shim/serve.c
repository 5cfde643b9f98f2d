/* SPDX-License-Identifier: Apache-2.0 */
/* The shim daemon: containerd.task.v2.Task over ttrpc on the socket that
 * `start` made (fd 3). containerd opens one connection per task and calls
 * concurrently (a Wait stays open for a container's life), so each
 * connection has its own thread and blocking calls their own
 * (ttrpc_serve). Connect answers at once whatever else runs: containerd
 * uses it as the liveness probe. Shutdown ends the daemon once no task is
 * left.
 * The tasks themselves are task.c's. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "moat/log.h"
#include "moat/ttrpc.h"
#include "moat/util.h"
#include "shim.h"
#include "shim_task.h"
#include "task.pb-c.h"

#define TASK_SERVICE "containerd.task.v2.Task"

#define NEW_MSG(type, init)                                                                                            \
        ({                                                                                                             \
                type *_m = xmalloc (sizeof (type));                                                                    \
                init (_m);                                                                                             \
                _m;                                                                                                    \
        })

static int
h_connect (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        Containerd__Task__V2__ConnectResponse *r =
                NEW_MSG (Containerd__Task__V2__ConnectResponse, containerd__task__v2__connect_response__init);
        struct shim *s = ctx;
        const char *id = shim_req_str (req, "id");
        r->shim_pid = getpid ();
        r->task_pid = 0;
        /* never waits behind a Create: the table lock is only held briefly */
        pthread_mutex_lock (&s->lock);
        for (struct shim_task *t = s->tasks; t; t = t->next)
                if (strcmp (t->id, id) == 0)
                        r->task_pid = t->init.pid;
        pthread_mutex_unlock (&s->lock);
        r->version = xstrdup (MOAT_VERSION);
        *resp = &r->base;
        return 0;
}

static int
h_shutdown (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        struct shim *s = ctx;
        char c = 1;
        /* a shim that still holds tasks stays (containerd sends Shutdown
         * after every task's Delete) */
        if (shim_task_count (s) == 0 && !atomic_exchange (&s->stopping, true)) {
                moat_debug ("shutdown: no task left");
                shim_leave_pod_cgroup (s);
                if (write (s->wake[1], &c, 1) < 0) {
                }
        }
        *resp = (ProtobufCMessage *)NEW_MSG (Containerd__Task__V2__Empty, containerd__task__v2__empty__init);
        return 0;
}

static int
h_checkpoint (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        return moat_make_error (err, ENOSYS, "checkpoint %s: not supported by moat", shim_req_str (req, "id"));
}

#define M(name, msg, fn, blocking)                                                                                     \
        {                                                                                                              \
                name, &containerd__task__v2__##msg##__descriptor, fn, blocking                                         \
        }
static const struct ttrpc_method task_methods[] = {
        M ("State", state_request, shim_h_state, 0),
        M ("Create", create_task_request, shim_h_create, 1),
        M ("Start", start_request, shim_h_start, 1),
        M ("Delete", delete_request, shim_h_delete, 1),
        M ("Pids", pids_request, shim_h_pids, 1),
        M ("Pause", pause_request, shim_h_pause, 1),
        M ("Resume", resume_request, shim_h_resume, 1),
        M ("Checkpoint", checkpoint_task_request, h_checkpoint, 0),
        M ("Kill", kill_request, shim_h_kill, 1),
        M ("Exec", exec_process_request, shim_h_exec, 0),
        M ("ResizePty", resize_pty_request, shim_h_resize, 0),
        M ("CloseIO", close_iorequest, shim_h_close_io, 0),
        M ("Update", update_task_request, shim_h_update, 1),
        M ("Wait", wait_request, shim_h_wait, 1),
        M ("Stats", stats_request, shim_h_stats, 1),
        M ("Connect", connect_request, h_connect, 0),
        M ("Shutdown", shutdown_request, h_shutdown, 0),
};
static const struct ttrpc_service task_service = {TASK_SERVICE, task_methods,
                                                  sizeof task_methods / sizeof task_methods[0]};

struct conn {
        struct shim *s;
        int fd;
};

static void *
conn_thread (void *arg)
{
        struct conn *c = arg;
        cleanup_error moat_error_t e = NULL;
        if (ttrpc_serve (c->fd, &task_service, 1, c->s, &e) < 0)
                moat_debug ("connection: %s", e->msg);
        atomic_fetch_sub (&c->s->n_conns, 1);
        free (c);
        return NULL;
}

/* Only containerd (our own uid) may talk to us. */
static bool
peer_allowed (int fd)
{
        struct ucred cr;
        socklen_t l = sizeof cr;
        return getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0 && cr.uid == geteuid ();
}

/* stderr goes to the bundle's "log" fifo, which containerd reads into its
 * own log; without it (run by hand), /dev/null stays. */
static void
open_log (void)
{
        int fd = open ("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return;
        set_nonblock (fd, false);
        dup2 (fd, STDERR_FILENO);
        close (fd);
}

static int
listen_path (const char *path, moat_error_t *err)
{
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        cleanup_close int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (strlen (path) >= sizeof sun.sun_path)
                return moat_make_error (err, ENAMETOOLONG, "socket path %s", path);
        strcpy (sun.sun_path, path);
        unlink (path);
        if (fd < 0 || bind (fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen (fd, 128) < 0)
                return moat_make_error (err, errno, "listen on %s", path);
        return steal_fd (&fd);
}

int
shim_serve (const struct shim_opts *o, int lfd, moat_error_t *err)
{
        struct shim s = {.o = o, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
        struct sockaddr_un sun;
        socklen_t sl = sizeof sun;
        char path[sizeof sun.sun_path + 1] = "";

        signal (SIGPIPE, SIG_IGN);
        open_log ();
        moat_log_init (NULL, 0, o->debug);
        if (lfd < 0 && (lfd = listen_path (o->socket, err)) < 0)
                return -1;
        set_cloexec (lfd, true);
        if (getsockname (lfd, (struct sockaddr *)&sun, &sl) == 0 && sl > offsetof (struct sockaddr_un, sun_path))
                snprintf (path, sizeof path, "%s", sun.sun_path);
        if (pipe2 (s.wake, O_CLOEXEC) < 0)
                return moat_make_error (err, errno, "pipe");
        /* libmoat's state for this namespace, apart from the CLI's */
        s.root = xasprintf_r ("%s/%s", SHIM_STATE_ROOT, *o->namespace_ ? o->namespace_ : "default");
        if (shim_reaper_start (&s, err) < 0)
                return -1;
        s.events = shim_events_new (getenv ("TTRPC_ADDRESS"), o->namespace_);
        moat_debug ("serving %s for %s in namespace %s", path, o->id, o->namespace_);
        for (;;) {
                struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = s.wake[0], .events = POLLIN}};
                if (poll (p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return moat_make_error (err, errno, "poll");
                }
                if (p[1].revents)
                        break;
                if (!(p[0].revents & POLLIN))
                        continue;
                int fd = accept4 (lfd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        continue;
                if (!peer_allowed (fd)) {
                        moat_warn ("refused a connection from another user");
                        close (fd);
                        continue;
                }
                struct conn *c = xmalloc (sizeof *c);
                pthread_t t;
                *c = (struct conn){.s = &s, .fd = fd};
                atomic_fetch_add (&s.n_conns, 1);
                if (pthread_create (&t, NULL, conn_thread, c) != 0) {
                        atomic_fetch_sub (&s.n_conns, 1);
                        close (fd);
                        free (c);
                        continue;
                }
                pthread_detach (t);
        }
        /* the socket goes with us: a later start must not find it */
        if (*path)
                unlink (path);
        close (lfd);
        /* let the Shutdown reply go out: containerd closes its connections
         * once it has it (at most 1 s) */
        for (int i = 0; i < 100 && atomic_load (&s.n_conns) > 0; i++)
                usleep (10000);
        /* the last events (a delete) before we go */
        shim_events_close (s.events, 5000);
        /* the namespace's state root goes once no shim of it has a task */
        if (rmdir (s.root) < 0 && errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT)
                moat_debug ("remove %s: %s", s.root, strerror (errno));
        free (s.root);
        return 0;
}
