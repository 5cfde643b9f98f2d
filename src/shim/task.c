/* SPDX-License-Identifier: Apache-2.0 */
/* The task service's tasks: one per container (the init process and its
 * execs), each backed by libmoat through an internal child (internal.c)
 * and watched through its stand-in, a child of ours once the internal
 * child has exited (we are a child subreaper). One reaper thread is the
 * only waiter of children in this process: it records every exit, and a
 * stand-in's exit is reported (Wait, State, TaskExit) once its output is
 * drained. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroups.pb-c.h"
#include "events.pb-c.h"
#include "moat/log.h"
#include "moat/util.h"
#include "shim.h"
#include "shim_task.h"

/* --- children ---------------------------------------------------------------- */

struct child_exit {
        struct child_exit *next;
        pid_t pid;
        int status;
};

static void *
reaper (void *arg)
{
        struct shim *s = arg;
        sigset_t m;
        sigemptyset (&m);
        sigaddset (&m, SIGCHLD);
        for (;;) {
                int sig;
                sigwait (&m, &sig);
                for (;;) {
                        int st;
                        pid_t pid = waitpid (-1, &st, WNOHANG);
                        if (pid <= 0)
                                break;
                        pthread_mutex_lock (&s->lock);
                        struct shim_proc *p = shim_find_proc_by_pid_locked (s, pid);
                        if (p) {
                                shim_proc_exited_locked (s, p, st);
                        } else {
                                /* an internal child (its call waits for it), a
                                 * stand-in whose pid its Create does not know
                                 * yet, or a VMM: kept, the oldest dropped */
                                struct child_exit *e = xzalloc (sizeof *e), **x;
                                int n = 0;
                                e->pid = pid;
                                e->status = st;
                                e->next = s->exits;
                                s->exits = e;
                                for (x = &s->exits; *x && n < 256; x = &(*x)->next)
                                        n++;
                                while (*x) {
                                        struct child_exit *old = *x;
                                        *x = old->next;
                                        free (old);
                                }
                        }
                        pthread_cond_broadcast (&s->cond);
                        pthread_mutex_unlock (&s->lock);
                }
        }
        return NULL;
}

int
shim_reaper_start (struct shim *s, moat_error_t *err)
{
        pthread_t t;
        sigset_t m;
        /* orphans of our children (the stand-ins) come to us */
        if (prctl (PR_SET_CHILD_SUBREAPER, 1) < 0)
                return moat_make_error (err, errno, "become a child subreaper");
        /* SIGCHLD is taken by sigwait alone: blocked in every thread, which
         * all start after this */
        sigemptyset (&m);
        sigaddset (&m, SIGCHLD);
        pthread_sigmask (SIG_BLOCK, &m, NULL);
        if (pthread_create (&t, NULL, reaper, s) != 0)
                return moat_make_error (err, EAGAIN, "start the reaper");
        pthread_detach (t);
        return 0;
}

/* The recorded exit of a child, waiting for it (lock held). */
static int
wait_child_locked (struct shim *s, pid_t pid)
{
        for (;;) {
                for (struct child_exit **e = &s->exits; *e; e = &(*e)->next)
                        if ((*e)->pid == pid) {
                                struct child_exit *x = *e;
                                int st = x->status;
                                *e = x->next;
                                free (x);
                                return st;
                        }
                pthread_cond_wait (&s->cond, &s->lock);
        }
}

int
shim_call (struct shim *s, const char *id, const char *verb, const char *const *args, const int stdio[3], char **value,
           moat_error_t *err)
{
        const char *argv[32];
        int n = 0, res[2];
        pid_t pid;
        char buf[8192];
        size_t len = 0;

        argv[n++] = SHIM_NAME;
        argv[n++] = "-id";
        argv[n++] = id;
        argv[n++] = "-namespace";
        argv[n++] = s->o->namespace_;
        if (s->o->debug)
                argv[n++] = "-debug";
        argv[n++] = "internal";
        argv[n++] = s->root;
        argv[n++] = verb;
        for (int i = 0; args && args[i] && n < 30; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        if (pipe2 (res, O_CLOEXEC) < 0)
                return moat_make_error (err, errno, "pipe");
        pid = fork ();
        if (pid < 0) {
                close (res[0]);
                close (res[1]);
                return moat_make_error (err, errno, "fork");
        }
        if (pid == 0) {
                int null = open ("/dev/null", O_RDWR);
                int fds[3];
                sigset_t none;
                for (int i = 0; i < 3; i++)
                        fds[i] = stdio && stdio[i] >= 0 ? fcntl (stdio[i], F_DUPFD_CLOEXEC, 10)
                                                        : fcntl (null, F_DUPFD_CLOEXEC, 10);
                int r = fcntl (res[1], F_DUPFD_CLOEXEC, 10);
                int log = fcntl (STDERR_FILENO, F_DUPFD_CLOEXEC, 10);
                for (int i = 0; i < 3; i++)
                        if (fds[i] < 0 || dup2 (fds[i], i) < 0)
                                _exit (127);
                /* libmoat's messages go to our log, not to the process's stderr */
                if (r < 0 || dup2 (r, SHIM_RESULT_FD) < 0 || log < 0 || dup2 (log, SHIM_LOG_FD) < 0)
                        _exit (127);
                sigemptyset (&none);
                sigprocmask (SIG_SETMASK, &none, NULL);
                execv ("/proc/self/exe", (char **)argv);
                _exit (127);
        }
        close (res[1]);
        /* one line: not EOF, as the stand-in that a create or an exec
         * forks inherits the pipe */
        for (;;) {
                ssize_t r = read (res[0], buf + len, sizeof buf - 1 - len);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        break;
                len += r;
                if (memchr (buf, '\n', len) || len == sizeof buf - 1)
                        break;
        }
        close (res[0]);
        buf[len] = '\0';
        pthread_mutex_lock (&s->lock);
        int st = wait_child_locked (s, pid);
        pthread_mutex_unlock (&s->lock);
        buf[strcspn (buf, "\n")] = '\0';
        if (strncmp (buf, "OK", 2) == 0) {
                if (value)
                        *value = xstrdup (buf[2] == ' ' ? buf + 3 : "");
                return 0;
        }
        if (strncmp (buf, "ERR ", 4) == 0) {
                char *msg = NULL;
                long e = strtol (buf + 4, &msg, 10);
                moat_make_error (err, 0, "%s", msg && *msg == ' ' ? msg + 1 : "failed");
                (*err)->errno_ = e > 0 ? (int)e : EIO;
                return -1;
        }
        return moat_make_error (err, EIO, "%s: the internal call died (status %d)", verb, st);
}

/* --- the task table -------------------------------------------------------------- */

#define NEW_MSG(type, init)                                                                                            \
        ({                                                                                                             \
                type *_m = xzalloc (sizeof (type));                                                                    \
                init (_m);                                                                                             \
                _m;                                                                                                    \
        })
#define EMPTY() ((ProtobufCMessage *)NEW_MSG (Containerd__Task__V2__Empty, containerd__task__v2__empty__init))

static struct shim_task *
find_locked (struct shim *s, const char *id)
{
        for (struct shim_task *t = s->tasks; t; t = t->next)
                if (strcmp (t->id, id) == 0)
                        return t;
        return NULL;
}

static struct shim_proc *
find_proc (struct shim_task *t, const char *exec_id)
{
        if (exec_id == NULL || *exec_id == '\0')
                return &t->init;
        for (struct shim_proc *p = t->init.next; p; p = p->next)
                if (strcmp (p->exec_id, exec_id) == 0)
                        return p;
        return NULL;
}

struct shim_proc *
shim_find_proc_by_pid_locked (struct shim *s, pid_t pid)
{
        for (struct shim_task *t = s->tasks; t; t = t->next)
                for (struct shim_proc *p = &t->init; p; p = p->next)
                        if (p->pid == pid && !p->reaped)
                                return p;
        return NULL;
}

int
shim_task_count (struct shim *s)
{
        int n = 0;
        pthread_mutex_lock (&s->lock);
        for (struct shim_task *t = s->tasks; t; t = t->next)
                n++;
        pthread_mutex_unlock (&s->lock);
        return n;
}

static void
set_ts (Containerd__Task__V2__Timestamp *ts, const struct timespec *t)
{
        containerd__task__v2__timestamp__init (ts);
        ts->seconds = t->tv_sec;
        ts->nanos = t->tv_nsec;
}

static Containerd__Task__V2__Timestamp *
new_ts (const struct timespec *t)
{
        Containerd__Task__V2__Timestamp *ts = xzalloc (sizeof *ts);
        set_ts (ts, t);
        return ts;
}

/* Queues an event; the publisher keeps the order of the calls. */
static void
publish (struct shim *s, const char *topic, const char *type, const ProtobufCMessage *m)
{
        size_t n = protobuf_c_message_get_packed_size (m);
        cleanup_free uint8_t *buf = xmalloc (n ? n : 1);
        protobuf_c_message_pack (m, buf);
        shim_events_publish (s->events, topic, type, buf, n);
}

struct finish {
        struct shim *s;
        struct shim_proc *p;
};

/* After a stand-in exited: the output drained, then the exit reported. */
static void *
finish_thread (void *arg)
{
        struct finish *f = arg;
        struct shim *s = f->s;
        struct shim_proc *p = f->p;
        Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
        Containerd__Task__V2__Timestamp ts;

        free (f);
        shim_io_drain (&p->io);
        pthread_mutex_lock (&s->lock);
        /* a Start still publishing its event goes first */
        while (p->starting)
                pthread_cond_wait (&s->cond, &s->lock);
        p->exited = true;
        p->status = CONTAINERD__TASK__V2__STATUS__STATUS_STOPPED;
        ev.container_id = p->task->id;
        ev.id = p->exec_id ? p->exec_id : p->task->id;
        ev.pid = p->pid;
        ev.exit_status = p->exit_status;
        set_ts (&ts, &p->exited_at);
        ev.exited_at = &ts;
        publish (s, "/tasks/exit", "containerd.events.TaskExit", &ev.base);
        pthread_cond_broadcast (&s->cond);
        p->task->busy--;
        pthread_mutex_unlock (&s->lock);
        return NULL;
}

void
shim_proc_exited_locked (struct shim *s, struct shim_proc *p, int st)
{
        struct finish *f = xmalloc (sizeof *f);
        pthread_t t;
        p->reaped = true;
        p->exit_status = WIFEXITED (st) ? WEXITSTATUS (st) : WIFSIGNALED (st) ? 128 + WTERMSIG (st) : 255;
        clock_gettime (CLOCK_REALTIME, &p->exited_at);
        *f = (struct finish){.s = s, .p = p};
        p->task->busy++;
        if (pthread_create (&t, NULL, finish_thread, f) != 0) {
                /* no thread: report now, output may be cut */
                p->exited = true;
                p->status = CONTAINERD__TASK__V2__STATUS__STATUS_STOPPED;
                p->task->busy--;
                free (f);
                return;
        }
        pthread_detach (t);
}

/* The stand-in's pid is known: an exit the reaper saw before is applied. */
static void
set_pid_locked (struct shim *s, struct shim_proc *p, pid_t pid)
{
        p->pid = pid;
        for (struct child_exit **e = &s->exits; *e; e = &(*e)->next)
                if ((*e)->pid == pid) {
                        struct child_exit *x = *e;
                        *e = x->next;
                        shim_proc_exited_locked (s, p, x->status);
                        free (x);
                        return;
                }
}

static void
proc_free (struct shim_proc *p)
{
        if (p->io_open)
                shim_io_free (&p->io);
        if (p->spec_file)
                unlink (p->spec_file);
        free (p->spec_file);
        free (p->exec_id);
        free (p->in);
        free (p->out);
        free (p->errp);
}

/* Takes t out of the table once nothing uses it (lock held); the caller
 * frees it with task_free after unlocking (that joins the stdio threads). */
static void
task_unlink_locked (struct shim *s, struct shim_task *t)
{
        for (struct shim_task **x = &s->tasks; *x; x = &(*x)->next)
                if (*x == t) {
                        *x = t->next;
                        break;
                }
        while (t->busy > 0)
                pthread_cond_wait (&s->cond, &s->lock);
        pthread_cond_broadcast (&s->cond);
}

static void
task_free (struct shim_task *t)
{
        for (struct shim_proc *p = t->init.next, *n; p; p = n) {
                n = p->next;
                proc_free (p);
                free (p);
        }
        for (struct shim_proc *p = t->dead, *n; p; p = n) {
                n = p->next;
                proc_free (p);
                free (p);
        }
        proc_free (&t->init);
        free (t->id);
        free (t->bundle);
        free (t);
}

const char *
shim_req_str (const ProtobufCMessage *req, const char *field)
{
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name (req->descriptor, field);
        if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING)
                return "";
        const char *v = *(const char *const *)((const char *)req + f->offset);
        return v ? v : "";
}

/* Looks the process up and takes a reference on its task (lock held on
 * return when it succeeds). */
static struct shim_proc *
get_proc (struct shim *s, const ProtobufCMessage *req, moat_error_t *err)
{
        const char *id = shim_req_str (req, "id"), *eid = shim_req_str (req, "exec_id");
        struct shim_task *t;
        struct shim_proc *p;
        pthread_mutex_lock (&s->lock);
        t = find_locked (s, id);
        p = t ? find_proc (t, eid) : NULL;
        if (p == NULL) {
                pthread_mutex_unlock (&s->lock);
                if (t == NULL)
                        moat_make_error (err, ENOENT, "task %s not found", id);
                else
                        moat_make_error (err, ENOENT, "process %s of task %s not found", eid, id);
                return NULL;
        }
        t->busy++;
        return p;
}

static void
put_proc_locked (struct shim *s, struct shim_proc *p)
{
        p->task->busy--;
        pthread_cond_broadcast (&s->cond);
        pthread_mutex_unlock (&s->lock);
}

/* --- rootfs ---------------------------------------------------------------------- */

static int
mount_rootfs (const char *bundle, Containerd__Task__V2__Mount **mounts, size_t n, moat_error_t *err)
{
        static const struct {
                const char *name;
                bool clear;
                unsigned long flag;
        } opts[] = {
                {"ro", false, MS_RDONLY},           {"rw", true, MS_RDONLY},         {"nosuid", false, MS_NOSUID},
                {"suid", true, MS_NOSUID},          {"nodev", false, MS_NODEV},      {"dev", true, MS_NODEV},
                {"noexec", false, MS_NOEXEC},       {"exec", true, MS_NOEXEC},       {"bind", false, MS_BIND},
                {"rbind", false, MS_BIND | MS_REC}, {"noatime", false, MS_NOATIME},  {"relatime", false, MS_RELATIME},
                {"sync", false, MS_SYNCHRONOUS},    {"async", true, MS_SYNCHRONOUS},
        };
        cleanup_free char *target = xasprintf_r ("%s/rootfs", bundle);
        for (size_t i = 0; i < n; i++) {
                Containerd__Task__V2__Mount *m = mounts[i];
                unsigned long flags = 0;
                cleanup_free char *data = xstrdup ("");
                for (size_t k = 0; k < m->n_options; k++) {
                        bool known = false;
                        for (size_t j = 0; j < sizeof opts / sizeof opts[0]; j++)
                                if (strcmp (m->options[k], opts[j].name) == 0) {
                                        flags = opts[j].clear ? flags & ~opts[j].flag : flags | opts[j].flag;
                                        known = true;
                                }
                        if (!known) {
                                char *d = xasprintf_r ("%s%s%s", data, *data ? "," : "", m->options[k]);
                                free (data);
                                data = d;
                        }
                }
                if (mkdir (target, 0755) < 0 && errno != EEXIST)
                        return moat_make_error (err, errno, "mkdir %s", target);
                if (mount (m->source, target, m->type, flags & ~MS_RDONLY, *data ? data : NULL) < 0)
                        return moat_make_error (err, errno, "mount the rootfs (%s %s) on %s", m->type, m->source,
                                                target);
                if ((flags & MS_RDONLY) &&
                    mount (NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | (flags & ~MS_REC), NULL) < 0 &&
                    (flags & MS_BIND))
                        return moat_make_error (err, errno, "remount %s read-only", target);
        }
        return 0;
}

static void
unmount_rootfs (const char *bundle)
{
        cleanup_free char *target = xasprintf_r ("%s/rootfs", bundle);
        for (int i = 0; i < 8 && umount2 (target, MNT_DETACH) == 0; i++) {
        }
}

/* --- handlers ------------------------------------------------------------------- */

static const char *
or_dash (const char *s)
{
        return s && *s ? s : "-";
}

int
shim_h_create (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        struct shim *s = ctx;
        const Containerd__Task__V2__CreateTaskRequest *q = (const void *)req;
        Containerd__Task__V2__CreateTaskResponse *r;
        Containerd__Events__TaskCreate ev = CONTAINERD__EVENTS__TASK_CREATE__INIT;
        Containerd__Events__TaskIO eio = CONTAINERD__EVENTS__TASK_IO__INIT;
        cleanup_free char *value = NULL;
        cleanup_free char *sandbox = NULL;
        struct shim_task *t;
        struct shim_proc *p;

        if (q->checkpoint && *q->checkpoint)
                return moat_make_error (err, ENOSYS, "create %s from a checkpoint: not supported by moat", q->id);
        {
                /* a pod's app container joins the VM of the pod's sandbox
                 * container, which this shim runs (start groups a pod's
                 * containers by the sandbox id) */
                cleanup_free char *type = shim_annotation (q->bundle, SHIM_CONTAINER_TYPE_ANNOTATION, err);
                if (type == NULL)
                        return moat_error_wrap (err, "create %s", q->id);
                if (strcmp (type, "container") == 0) {
                        sandbox = shim_annotation (q->bundle, SHIM_SANDBOX_ID_ANNOTATION, err);
                        if (sandbox == NULL)
                                return moat_error_wrap (err, "create %s", q->id);
                        if (*sandbox == '\0')
                                return moat_make_error (err, EINVAL,
                                                        "create %s: container-type \"container\" without a "
                                                        "sandbox id (%s)",
                                                        q->id, SHIM_SANDBOX_ID_ANNOTATION);
                }
        }
        pthread_mutex_lock (&s->lock);
        if (find_locked (s, q->id)) {
                pthread_mutex_unlock (&s->lock);
                return moat_make_error (err, EEXIST, "task %s already exists", q->id);
        }
        t = xzalloc (sizeof *t);
        t->id = xstrdup (q->id);
        t->bundle = xstrdup (q->bundle);
        t->busy = 1;
        p = &t->init;
        p->task = t;
        p->in = xstrdup (q->stdin);
        p->out = xstrdup (q->stdout);
        p->errp = xstrdup (q->stderr);
        p->terminal = q->terminal;
        p->status = CONTAINERD__TASK__V2__STATUS__STATUS_UNKNOWN;
        t->next = s->tasks;
        s->tasks = t;
        pthread_mutex_unlock (&s->lock);

        if (q->n_rootfs > 0) {
                if (mount_rootfs (q->bundle, q->rootfs, q->n_rootfs, err) < 0)
                        goto fail;
                t->rootfs_mounted = true;
        }
        if (shim_io_open (&p->io, q->id, s->o->namespace_, q->stdin, q->stdout, q->stderr, q->terminal, err) < 0)
                goto fail;
        p->io_open = true;
        {
                const char *args[] = {q->bundle, or_dash (p->io.console_path), or_dash (sandbox), NULL};
                if (shim_call (s, q->id, "create", args, q->terminal ? NULL : p->io.fds, &value, err) < 0)
                        goto fail;
        }
        if ((q->terminal ? shim_io_take_console (&p->io, 10000, err) : shim_io_started (&p->io, err)) < 0) {
                cleanup_error moat_error_t e = NULL;
                shim_call (s, q->id, "delete", NULL, NULL, NULL, &e);
                goto fail;
        }
        if (value == NULL || atoi (value) <= 0) {
                cleanup_error moat_error_t e = NULL;
                moat_make_error (err, EPROTO, "the create call gave no stand-in pid");
                shim_call (s, q->id, "delete", NULL, NULL, NULL, &e);
                goto fail;
        }
        pthread_mutex_lock (&s->lock);
        p->status = CONTAINERD__TASK__V2__STATUS__STATUS_CREATED;
        set_pid_locked (s, p, atoi (value));
        ev.container_id = t->id;
        ev.bundle = t->bundle;
        ev.n_rootfs = q->n_rootfs;
        ev.rootfs = q->rootfs;
        eio.stdin = p->in;
        eio.stdout = p->out;
        eio.stderr = p->errp;
        eio.terminal = p->terminal;
        ev.io = &eio;
        ev.pid = p->pid;
        publish (s, "/tasks/create", "containerd.events.TaskCreate", &ev.base);
        r = NEW_MSG (Containerd__Task__V2__CreateTaskResponse, containerd__task__v2__create_task_response__init);
        r->pid = p->pid;
        t->busy--;
        pthread_cond_broadcast (&s->cond);
        pthread_mutex_unlock (&s->lock);
        if (sandbox == NULL)
                shim_enter_pod_cgroup (s, q->id); /* a pod's sandbox: the shim joins the pod */
        *resp = &r->base;
        return 0;
fail:
        if (t->rootfs_mounted)
                unmount_rootfs (q->bundle);
        pthread_mutex_lock (&s->lock);
        t->busy--;
        task_unlink_locked (s, t);
        pthread_mutex_unlock (&s->lock);
        task_free (t);
        return moat_error_wrap (err, "create %s", q->id);
}

/* The process JSON of an exec, from the Any containerd sends
 * (types.containerd.io/opencontainers/runtime-spec/1/Process, JSON). */
static char *
write_spec (struct shim *s, const char *id, const char *eid, const Containerd__Task__V2__Any *spec, moat_error_t *err)
{
        char *path;
        if (spec == NULL || spec->value.len == 0) {
                moat_make_error (err, EINVAL, "exec %s in %s: no process", eid, id);
                return NULL;
        }
        if (mkdir_p (s->root, 0700, err) < 0)
                return NULL;
        path = xasprintf_r ("%s/.exec-%s-%s.json", s->root, id, eid);
        if (write_file (path, (const char *)spec->value.data, spec->value.len, 0600, err) < 0) {
                free (path);
                return NULL;
        }
        return path;
}

int
shim_h_start (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        struct shim *s = ctx;
        struct shim_proc *p = get_proc (s, req, err);
        Containerd__Task__V2__StartResponse *r;
        cleanup_free char *value = NULL;
        const char *id;
        int rc;

        if (p == NULL)
                return -1;
        id = p->task->id;
        if (p->status != CONTAINERD__TASK__V2__STATUS__STATUS_CREATED || p->starting) {
                put_proc_locked (s, p);
                return moat_make_error (err, EBUSY, "start %s: the process is not created", id);
        }
        p->starting = true;
        pthread_mutex_unlock (&s->lock);
        if (p->exec_id == NULL) {
                rc = shim_call (s, id, "start", NULL, NULL, NULL, err);
        } else {
                rc = shim_io_open (&p->io, id, s->o->namespace_, p->in, p->out, p->errp, p->terminal, err);
                if (rc == 0) {
                        const char *args[] = {p->exec_id, p->spec_file, or_dash (p->io.console_path), NULL};
                        p->io_open = true;
                        rc = shim_call (s, id, "exec", args, p->terminal ? NULL : p->io.fds, &value, err);
                }
                if (rc == 0)
                        rc = p->terminal ? shim_io_take_console (&p->io, 10000, err) : shim_io_started (&p->io, err);
        }
        pthread_mutex_lock (&s->lock);
        if (rc == 0) {
                if (value)
                        set_pid_locked (s, p, atoi (value));
                if (!p->reaped)
                        p->status = CONTAINERD__TASK__V2__STATUS__STATUS_RUNNING;
                if (p->exec_id == NULL) {
                        Containerd__Events__TaskStart ev = CONTAINERD__EVENTS__TASK_START__INIT;
                        ev.container_id = (char *)id;
                        ev.pid = p->pid;
                        publish (s, "/tasks/start", "containerd.events.TaskStart", &ev.base);
                } else {
                        Containerd__Events__TaskExecStarted ev = CONTAINERD__EVENTS__TASK_EXEC_STARTED__INIT;
                        ev.container_id = (char *)id;
                        ev.exec_id = p->exec_id;
                        ev.pid = p->pid;
                        publish (s, "/tasks/exec-started", "containerd.events.TaskExecStarted", &ev.base);
                }
        } else if (p->exec_id) {
                /* a failed exec ends at once: its Waits return 255 */
                p->exit_status = 255;
                clock_gettime (CLOCK_REALTIME, &p->exited_at);
                p->exited = true;
                p->status = CONTAINERD__TASK__V2__STATUS__STATUS_STOPPED;
        }
        p->starting = false;
        uint32_t pid = p->pid;
        put_proc_locked (s, p);
        if (rc < 0)
                return moat_error_wrap (err, "start %s", id);
        r = NEW_MSG (Containerd__Task__V2__StartResponse, containerd__task__v2__start_response__init);
        r->pid = pid;
        *resp = &r->base;
        return 0;
}

int
shim_h_state (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        struct shim *s = ctx;
        struct shim_proc *p = get_proc (s, req, err);
        Containerd__Task__V2__StateResponse *r;
        if (p == NULL)
                return -1;
        r = NEW_MSG (Containerd__Task__V2__StateResponse, containerd__task__v2__state_response__init);
        r->id = xstrdup (p->task->id);
        r->bundle = xstrdup (p->task->bundle);
        r->pid = p->pid;
        r->status = p->status;
        r->stdin = xstrdup (p->in);
        r->stdout = xstrdup (p->out);
        r->stderr = xstrdup (p->errp);
        r->terminal = p->terminal;
        r->exit_status = p->exit_status;
        if (p->exited)
                r->exited_at = new_ts (&p->exited_at);
        r->exec_id = xstrdup (p->exec_id ? p->exec_id : "");
        put_proc_locked (s, p);
        *resp = &r->base;
        return 0;
}

int
shim_h_wait (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        struct shim *s = ctx;
        struct shim_proc *p = get_proc (s, req, err);
        Containerd__Task__V2__WaitResponse *r;
        if (p == NULL)
                return -1;
        while (!p->exited)
                pthread_cond_wait (&s->cond, &s->lock);
        r = NEW_MSG (Containerd__Task__V2__WaitResponse, containerd__task__v2__wait_response__init);
        r->exit_status = p->exit_status;
        r->exited_at = new_ts (&p->exited_at);
        put_proc_locked (s, p);
        *resp = &r->base;
        return 0;
}

int
shim_h_kill (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        struct shim *s = ctx;
        const Containerd__Task__V2__KillRequest *q = (const void *)req;
        struct shim_proc *p = get_proc (s, req, err);
        char sig[16];
        int rc;
        if (p == NULL)
                return -1;
        if (p->reaped || p->exited || (p->exec_id && p->pid == 0)) {
                put_proc_locked (s, p);
                return moat_make_error (err, ENOENT, "kill %s: process already finished", q->id);
        }
        pthread_mutex_unlock (&s->lock);
        snprintf (sig, sizeof sig, "%u", q->signal);
        {
                const char *args[] = {or_dash (p->exec_id), sig, q->all ? "all" : "one", NULL};
                rc = shim_call (s, q->id, "kill", args, NULL, NULL, err);
        }
        pthread_mutex_lock (&s->lock);
        put_proc_locked (s, p);
        return rc < 0 ? moat_error_wrap (err, "kill %s", q->id) : (*resp = EMPTY (), 0);
}

int
shim_h_delete (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        struct shim *s = ctx;
        const Containerd__Task__V2__DeleteRequest *q = (const void *)req;
        struct shim_proc *p = get_proc (s, req, err);
        Containerd__Task__V2__DeleteResponse *r;
        struct shim_task *t;
        if (p == NULL)
                return -1;
        t = p->task;
        if (!p->exited && p->status != CONTAINERD__TASK__V2__STATUS__STATUS_CREATED) {
                put_proc_locked (s, p);
                return moat_make_error (err, EBUSY, "delete %s: the process is still running", q->id);
        }
        if (p->exec_id == NULL && t->deleting) {
                put_proc_locked (s, p);
                return moat_make_error (err, ENOENT, "task %s not found (being deleted)", q->id);
        }
        r = NEW_MSG (Containerd__Task__V2__DeleteResponse, containerd__task__v2__delete_response__init);
        if (p->exec_id) {
                /* an exec that never started or has exited */
                for (struct shim_proc **x = &t->init.next; *x; x = &(*x)->next)
                        if (*x == p) {
                                *x = p->next;
                                break;
                        }
                r->pid = p->pid;
                r->exit_status = p->exit_status;
                r->exited_at = new_ts (&p->exited_at);
                /* an exec deleted before it started: its Waits return */
                if (!p->exited) {
                        clock_gettime (CLOCK_REALTIME, &p->exited_at);
                        p->exited = true;
                        p->status = CONTAINERD__TASK__V2__STATUS__STATUS_STOPPED;
                        r->exited_at->seconds = p->exited_at.tv_sec;
                        r->exited_at->nanos = p->exited_at.tv_nsec;
                        pthread_cond_broadcast (&s->cond);
                }
                /* freed with the task: a Wait that just woke may still read it */
                p->next = t->dead;
                t->dead = p;
                put_proc_locked (s, p);
                *resp = &r->base;
                return 0;
        }
        t->deleting = true;
        pthread_mutex_unlock (&s->lock);
        /* the VM, the share, the host cgroup and the state go */
        if (shim_call (s, t->id, "delete", NULL, NULL, NULL, err) < 0) {
                pthread_mutex_lock (&s->lock);
                t->deleting = false;
                put_proc_locked (s, p);
                free (r);
                return moat_error_wrap (err, "delete %s", q->id);
        }
        if (t->rootfs_mounted)
                unmount_rootfs (t->bundle);
        pthread_mutex_lock (&s->lock);
        /* a created task's stand-in was killed: its exit first */
        while (p->pid > 0 && !p->exited)
                pthread_cond_wait (&s->cond, &s->lock);
        if (!p->exited) {
                clock_gettime (CLOCK_REALTIME, &p->exited_at);
                p->exit_status = 137;
                p->exited = true;
        }
        r->pid = p->pid;
        r->exit_status = p->exit_status;
        r->exited_at = new_ts (&p->exited_at);
        {
                Containerd__Events__TaskDelete ev = CONTAINERD__EVENTS__TASK_DELETE__INIT;
                Containerd__Task__V2__Timestamp ts;
                ev.container_id = t->id;
                ev.pid = p->pid;
                ev.exit_status = p->exit_status;
                set_ts (&ts, &p->exited_at);
                ev.exited_at = &ts;
                publish (s, "/tasks/delete", "containerd.events.TaskDelete", &ev.base);
        }
        t->busy--;
        task_unlink_locked (s, t);
        pthread_mutex_unlock (&s->lock);
        task_free (t);
        *resp = &r->base;
        return 0;
}

int
shim_h_exec (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        struct shim *s = ctx;
        const Containerd__Task__V2__ExecProcessRequest *q = (const void *)req;
        Containerd__Events__TaskExecAdded ev = CONTAINERD__EVENTS__TASK_EXEC_ADDED__INIT;
        struct shim_task *t;
        struct shim_proc *p;
        char *spec;

        for (const char *c = q->exec_id; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
                      *c == '_' || *c == '.'))
                        return moat_make_error (err, EINVAL, "exec id %s: only letters, digits, '-', '_' and '.'",
                                                q->exec_id);
        if (*q->exec_id == '\0' || strlen (q->exec_id) > 128)
                return moat_make_error (err, EINVAL, "exec id: 1 to 128 characters");
        spec = write_spec (s, q->id, q->exec_id, q->spec, err);
        if (spec == NULL)
                return -1;
        pthread_mutex_lock (&s->lock);
        t = find_locked (s, q->id);
        if (t == NULL || find_proc (t, q->exec_id)) {
                pthread_mutex_unlock (&s->lock);
                unlink (spec);
                free (spec);
                return t ? moat_make_error (err, EEXIST, "exec %s already exists in task %s", q->exec_id, q->id)
                         : moat_make_error (err, ENOENT, "task %s not found", q->id);
        }
        p = xzalloc (sizeof *p);
        p->task = t;
        p->exec_id = xstrdup (q->exec_id);
        p->in = xstrdup (q->stdin);
        p->out = xstrdup (q->stdout);
        p->errp = xstrdup (q->stderr);
        p->terminal = q->terminal;
        p->spec_file = spec;
        p->status = CONTAINERD__TASK__V2__STATUS__STATUS_CREATED;
        p->next = t->init.next;
        t->init.next = p;
        ev.container_id = t->id;
        ev.exec_id = p->exec_id;
        publish (s, "/tasks/exec-added", "containerd.events.TaskExecAdded", &ev.base);
        pthread_mutex_unlock (&s->lock);
        *resp = EMPTY ();
        return 0;
}

int
shim_h_resize (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        struct shim *s = ctx;
        const Containerd__Task__V2__ResizePtyRequest *q = (const void *)req;
        struct shim_proc *p = get_proc (s, req, err);
        if (p == NULL)
                return -1;
        /* the stand-in holds the other side: SIGWINCH tells it */
        if (p->io_open && p->io.master >= 0)
                shim_io_resize (&p->io, q->height, q->width);
        put_proc_locked (s, p);
        *resp = EMPTY ();
        return 0;
}

int
shim_h_close_io (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        struct shim *s = ctx;
        const Containerd__Task__V2__CloseIORequest *q = (const void *)req;
        struct shim_proc *p = get_proc (s, req, err);
        if (p == NULL)
                return -1;
        if (q->stdin && p->io_open)
                shim_io_close_stdin (&p->io);
        put_proc_locked (s, p);
        *resp = EMPTY ();
        return 0;
}

/* The numbers internal.c's stats prints. */
struct stats {
        unsigned long long mem, mem_limit, mem_max, cpu, cpu_user, cpu_sys, pids, pids_limit;
        uint32_t *list;
        size_t n;
};

static int
get_stats (struct shim *s, const char *id, struct stats *st, moat_error_t *err)
{
        cleanup_free char *value = NULL;
        char *p, *e;
        memset (st, 0, sizeof *st);
        if (shim_call (s, id, "stats", NULL, NULL, &value, err) < 0)
                return -1;
        if (sscanf (value, "%llu %llu %llu %llu %llu %llu %llu %llu", &st->mem, &st->mem_limit, &st->mem_max, &st->cpu,
                    &st->cpu_user, &st->cpu_sys, &st->pids, &st->pids_limit) != 8)
                return moat_make_error (err, EPROTO, "stats %s: bad answer", id);
        p = value;
        for (int i = 0; i < 8 && p; i++) {
                p = strchr (p, ' ');
                if (p)
                        p++;
        }
        while (p && *p && st->n < 65536) {
                unsigned long v = strtoul (p, &e, 10);
                if (e == p)
                        break;
                st->list = xrealloc (st->list, (st->n + 1) * sizeof *st->list);
                st->list[st->n++] = v;
                p = e;
        }
        return 0;
}

int
shim_h_pids (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        struct shim *s = ctx;
        const Containerd__Task__V2__PidsRequest *q = (const void *)req;
        Containerd__Task__V2__PidsResponse *r;
        struct stats st;
        if (get_stats (s, q->id, &st, err) < 0)
                return moat_error_wrap (err, "pids %s", q->id);
        r = NEW_MSG (Containerd__Task__V2__PidsResponse, containerd__task__v2__pids_response__init);
        r->processes = xzalloc ((st.n ? st.n : 1) * sizeof *r->processes);
        for (size_t i = 0; i < st.n; i++) {
                Containerd__Task__V2__ProcessInfo *pi =
                        NEW_MSG (Containerd__Task__V2__ProcessInfo, containerd__task__v2__process_info__init);
                pi->pid = st.list[i]; /* guest pids: the processes live in the VM */
                r->processes[r->n_processes++] = pi;
        }
        free (st.list);
        *resp = &r->base;
        return 0;
}

static int
pause_resume (struct shim *s, const char *id, bool pause, moat_error_t *err)
{
        if (shim_call (s, id, pause ? "pause" : "resume", NULL, NULL, NULL, err) < 0)
                return moat_error_wrap (err, "%s %s", pause ? "pause" : "resume", id);
        pthread_mutex_lock (&s->lock);
        struct shim_task *t = find_locked (s, id);
        if (t && !t->init.exited)
                t->init.status = pause ? CONTAINERD__TASK__V2__STATUS__STATUS_PAUSED
                                       : CONTAINERD__TASK__V2__STATUS__STATUS_RUNNING;
        if (pause) {
                Containerd__Events__TaskPaused ev = CONTAINERD__EVENTS__TASK_PAUSED__INIT;
                ev.container_id = (char *)id;
                publish (s, "/tasks/paused", "containerd.events.TaskPaused", &ev.base);
        } else {
                Containerd__Events__TaskResumed ev = CONTAINERD__EVENTS__TASK_RESUMED__INIT;
                ev.container_id = (char *)id;
                publish (s, "/tasks/resumed", "containerd.events.TaskResumed", &ev.base);
        }
        pthread_mutex_unlock (&s->lock);
        return 0;
}

int
shim_h_pause (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        if (pause_resume (ctx, ((const Containerd__Task__V2__PauseRequest *)req)->id, true, err) < 0)
                return -1;
        *resp = EMPTY ();
        return 0;
}

int
shim_h_resume (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        if (pause_resume (ctx, ((const Containerd__Task__V2__ResumeRequest *)req)->id, false, err) < 0)
                return -1;
        *resp = EMPTY ();
        return 0;
}

int
shim_h_update (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        struct shim *s = ctx;
        const Containerd__Task__V2__UpdateTaskRequest *q = (const void *)req;
        cleanup_free char *path = NULL;
        int rc;
        if (q->resources == NULL || q->resources->value.len == 0)
                return moat_make_error (err, EINVAL, "update %s: no resources", q->id);
        if (strstr (q->resources->type_url, "LinuxResources") == NULL)
                return moat_make_error (err, EINVAL, "update %s: resources of type %s", q->id, q->resources->type_url);
        if (mkdir_p (s->root, 0700, err) < 0)
                return -1;
        path = xasprintf_r ("%s/.update-%s-%d.json", s->root, q->id, (int)gettid ());
        if (write_file (path, (const char *)q->resources->value.data, q->resources->value.len, 0600, err) < 0)
                return -1;
        {
                const char *args[] = {path, NULL};
                rc = shim_call (s, q->id, "update", args, NULL, NULL, err);
        }
        unlink (path);
        if (rc < 0)
                return moat_error_wrap (err, "update %s", q->id);
        *resp = EMPTY ();
        return 0;
}

/* containerd's CRI decodes the metrics of the host's cgroup mode */
static bool
host_cgroup2 (void)
{
        struct statfs f;
        return statfs ("/sys/fs/cgroup", &f) == 0 && f.f_type == CGROUP2_SUPER_MAGIC;
}

int
shim_h_stats (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        struct shim *s = ctx;
        const Containerd__Task__V2__StatsRequest *q = (const void *)req;
        Containerd__Task__V2__StatsResponse *r;
        Containerd__Task__V2__Any *any;
        struct stats st;
        const ProtobufCMessage *m;
        Containerd__Cgroups__V1Metrics v1 = CONTAINERD__CGROUPS__V1_METRICS__INIT;
        Containerd__Cgroups__V1PidsStat v1p = CONTAINERD__CGROUPS__V1_PIDS_STAT__INIT;
        Containerd__Cgroups__V1CPUStat v1c = CONTAINERD__CGROUPS__V1_CPUSTAT__INIT;
        Containerd__Cgroups__V1CPUUsage v1u = CONTAINERD__CGROUPS__V1_CPUUSAGE__INIT;
        Containerd__Cgroups__V1MemoryStat v1m = CONTAINERD__CGROUPS__V1_MEMORY_STAT__INIT;
        Containerd__Cgroups__V1MemoryEntry v1e = CONTAINERD__CGROUPS__V1_MEMORY_ENTRY__INIT;
        Containerd__Cgroups__V2Metrics v2 = CONTAINERD__CGROUPS__V2_METRICS__INIT;
        Containerd__Cgroups__V2PidsStat v2p = CONTAINERD__CGROUPS__V2_PIDS_STAT__INIT;
        Containerd__Cgroups__V2CPUStat v2c = CONTAINERD__CGROUPS__V2_CPUSTAT__INIT;
        Containerd__Cgroups__V2MemoryStat v2m = CONTAINERD__CGROUPS__V2_MEMORY_STAT__INIT;
        bool two = host_cgroup2 ();

        if (get_stats (s, q->id, &st, err) < 0)
                return moat_error_wrap (err, "stats %s", q->id);
        free (st.list);
        if (two) {
                v2p.current = st.pids;
                v2p.limit = st.pids_limit;
                v2c.usage_usec = st.cpu;
                v2c.user_usec = st.cpu_user;
                v2c.system_usec = st.cpu_sys;
                v2m.usage = st.mem;
                v2m.usage_limit = st.mem_limit;
                v2m.max_usage = st.mem_max;
                v2.pids = &v2p;
                v2.cpu = &v2c;
                v2.memory = &v2m;
                m = &v2.base;
        } else {
                v1p.current = st.pids;
                v1p.limit = st.pids_limit;
                v1u.total = st.cpu * 1000;
                v1u.user = st.cpu_user * 1000;
                v1u.kernel = st.cpu_sys * 1000;
                v1c.usage = &v1u;
                v1e.usage = st.mem;
                v1e.limit = st.mem_limit;
                v1e.max = st.mem_max;
                v1m.usage = &v1e;
                v1.pids = &v1p;
                v1.cpu = &v1c;
                v1.memory = &v1m;
                m = &v1.base;
        }
        any = NEW_MSG (Containerd__Task__V2__Any, containerd__task__v2__any__init);
        any->type_url = xstrdup (two ? "io.containerd.cgroups.v2.Metrics" : "io.containerd.cgroups.v1.Metrics");
        any->value.len = protobuf_c_message_get_packed_size (m);
        any->value.data = xmalloc (any->value.len ? any->value.len : 1);
        protobuf_c_message_pack (m, any->value.data);
        r = NEW_MSG (Containerd__Task__V2__StatsResponse, containerd__task__v2__stats_response__init);
        r->stats = any;
        *resp = &r->base;
        return 0;
}
