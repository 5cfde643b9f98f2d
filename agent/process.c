/* SPDX-License-Identifier: Apache-2.0 */
/* The container and process tables, and the reaper.
 *
 * As PID 1 the agent must reap every zombie (orphans are reparented to it),
 * and the container code needs the exit status of its own processes. One
 * thread does all the reaping: SIGCHLD is blocked in every thread (main blocks
 * it before starting any), the reaper sigtimedwait()s for it and then
 * waitpid(-1, WNOHANG) until nothing is left, recording the statuses of the
 * processes in the table and dropping the others. Nobody else calls waitpid.
 *
 * The race: a container process may exit before its spawner has put its pid
 * in the table, and its status would be dropped. Spawners therefore hold
 * agent_reap_lock from before the fork until the pid is registered, and the
 * reaper takes that lock around its waitpid loop: a child that dies early
 * stays a zombie until the table knows it.
 *
 * Lifetimes: a container being created is in the table (so the reaper sees
 * its init) but invisible to lookups until its create is done; RemoveContainer
 * frees one only when no handler holds a reference (c->refs). A process entry
 * is published (ready) once its setup succeeded: before, the API cannot see
 * it, so a failed setup may free it. A published entry holds a pidfd until
 * it is reaped, and every signal goes through that (or is ESRCH once the
 * entry is marked exited): a reaped pid that got reused is never hit. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "moat/util.h"

pthread_mutex_t agent_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t agent_cond;
pthread_mutex_t agent_reap_lock = PTHREAD_MUTEX_INITIALIZER;

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

static struct agent_container *containers;

struct agent_container *
agent_container_find_any (const char *id)
{
        for (struct agent_container *c = containers; c; c = c->next)
                if (strcmp (c->id, id) == 0)
                        return c;
        return NULL;
}

struct agent_container *
agent_container_find (const char *id)
{
        struct agent_container *c = agent_container_find_any (id);
        return c && !c->removing && !c->creating ? c : NULL;
}

void
agent_container_put (struct agent_container *c)
{
        pthread_mutex_lock (&agent_lock);
        c->refs--;
        pthread_cond_broadcast (&agent_cond);
        pthread_mutex_unlock (&agent_lock);
}

struct agent_process *
agent_process_find (struct agent_container *c, const char *exec_id)
{
        if (exec_id == NULL || *exec_id == '\0' || strcmp (exec_id, "-") == 0)
                return c->init;
        for (struct agent_process *p = c->execs; p; p = p->next)
                if (strcmp (p->exec_id, exec_id) == 0)
                        return p;
        return NULL;
}

struct agent_process *
agent_process_get (struct agent_container *c, const char *exec_id)
{
        if (exec_id == NULL || *exec_id == '\0' || strcmp (exec_id, "-") == 0)
                return c->init && c->init->ready ? c->init : NULL;
        for (struct agent_process *p = c->execs; p; p = p->next)
                if (p->ready && strcmp (p->exec_id, exec_id) == 0)
                        return p;
        return NULL;
}

void
agent_process_publish_locked (struct agent_process *p)
{
        p->pidfd = -1;
        /* Under agent_reap_lock a pid the table does not mark exited is not
         * reaped yet: it is still our child, nobody else's. */
        if (!p->exited) {
                p->pidfd = syscall (SYS_pidfd_open, p->pid, 0); /* always O_CLOEXEC */
                if (p->pidfd < 0 && errno != ENOSYS)
                        agent_log ("pidfd_open %d: %s", p->pid, strerror (errno));
        }
        p->ready = true;
}

int
agent_process_signal_locked (struct agent_process *p, int sig)
{
        if (p->exited || p->pid <= 0) {
                errno = ESRCH;
                return -1;
        }
        if (p->ready && p->pidfd >= 0)
                return syscall (SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) < 0 ? -1 : 0;
        return kill (p->pid, sig);
}

int
agent_process_kill (struct agent_process *p, int sig)
{
        int r, e;

        pthread_mutex_lock (&agent_lock);
        if (p->exited || (p->ready && p->pidfd >= 0)) {
                r = agent_process_signal_locked (p, sig);
                e = errno;
                pthread_mutex_unlock (&agent_lock);
                errno = e;
                return r;
        }
        pthread_mutex_unlock (&agent_lock);
        /* No pidfd (a kernel without pidfd_open): the pid is safe to use
         * while the reaper cannot run, i.e. under agent_reap_lock. */
        pthread_mutex_lock (&agent_reap_lock);
        pthread_mutex_lock (&agent_lock);
        r = agent_process_signal_locked (p, sig);
        e = errno;
        pthread_mutex_unlock (&agent_lock);
        pthread_mutex_unlock (&agent_reap_lock);
        errno = e;
        return r;
}

void
agent_container_add (struct agent_container *c)
{
        c->next = containers;
        containers = c;
}

void
agent_container_unlink (struct agent_container *c)
{
        for (struct agent_container **pp = &containers; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        c->next = NULL;
                        return;
                }
}

void
agent_process_free (struct agent_process *p)
{
        if (p == NULL)
                return;
        if (p->tty_master >= 0)
                close (p->tty_master);
        if (p->tty_conn >= 0)
                close (p->tty_conn);
        if (p->stdin_fd >= 0)
                close (p->stdin_fd);
        if (p->ready && p->pidfd >= 0)
                close (p->pidfd);
        free (p->exec_id);
        free (p);
}

void
agent_process_forget (struct agent_container *c, const char *exec_id)
{
        pthread_mutex_lock (&agent_lock);
        for (struct agent_process **pp = &c->execs; *pp; pp = &(*pp)->next)
                if (strcmp ((*pp)->exec_id, exec_id) == 0) {
                        struct agent_process *p = *pp;
                        *pp = p->next;
                        agent_process_free (p);
                        break;
                }
        pthread_mutex_unlock (&agent_lock);
}

void
agent_container_free (struct agent_container *c)
{
        if (c == NULL)
                return;
        agent_process_free (c->init);
        while (c->execs) {
                struct agent_process *p = c->execs;
                c->execs = p->next;
                agent_process_free (p);
        }
        if (c->sync_fd >= 0)
                close (c->sync_fd);
        oci_config_free (c->config);
        free (c->rootfs);
        free (c->cgroup_path);
        free (c->bundle);
        free (c->id);
        free (c);
}

int
agent_status_code (int st, bool *signaled, int *sig)
{
        if (signaled)
                *signaled = false;
        if (sig)
                *sig = 0;
        if (WIFEXITED (st))
                return WEXITSTATUS (st);
        if (WIFSIGNALED (st)) {
                if (signaled)
                        *signaled = true;
                if (sig)
                        *sig = WTERMSIG (st);
                return 128 + WTERMSIG (st);
        }
        return 255;
}

int
agent_process_wait_locked (struct agent_container *c, struct agent_process *p, int timeout_ms)
{
        struct timespec deadline;

        clock_gettime (CLOCK_MONOTONIC, &deadline);
        if (timeout_ms >= 0) {
                deadline.tv_sec += timeout_ms / 1000;
                deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
                if (deadline.tv_nsec >= 1000000000L) {
                        deadline.tv_sec++;
                        deadline.tv_nsec -= 1000000000L;
                }
        }
        while (!p->exited) {
                if (timeout_ms < 0)
                        pthread_cond_wait (&agent_cond, &agent_lock);
                else if (pthread_cond_timedwait (&agent_cond, &agent_lock, &deadline) == ETIMEDOUT)
                        return p->exited ? 0 : -1;
        }
        return 0;
}

static void
close_fd_field (int *fd)
{
        if (*fd >= 0)
                close (*fd);
        *fd = -1;
}

/* under agent_lock */
static void
record_exit (pid_t pid, int status)
{
        for (struct agent_container *c = containers; c; c = c->next) {
                struct agent_process *p = NULL;
                if (c->init && c->init->pid == pid && !c->init->exited)
                        p = c->init;
                for (struct agent_process *e = c->execs; p == NULL && e; e = e->next)
                        if (e->pid == pid && !e->exited)
                                p = e;
                if (p == NULL || p->exited)
                        continue;
                p->exited = true;
                p->wait_status = status;
                /* Only the status matters from now on: drop the fds, so that
                 * the entries of finished execs (kept until the container is
                 * removed) hold none. The tty relay has its own copies; every
                 * signal path answers ESRCH from p->exited, under this lock,
                 * before it would use the pidfd. */
                close_fd_field (&p->stdin_fd);
                close_fd_field (&p->tty_master);
                close_fd_field (&p->tty_conn);
                if (p->ready)
                        close_fd_field (&p->pidfd);
                if (p == c->init) {
                        c->state = CONTAINER_STOPPED;
                        if (c->sync_fd >= 0) {
                                close (c->sync_fd);
                                c->sync_fd = -1;
                        }
                }
                agent_debug ("container %s process %s (pid %d) exited with status %d", c->id, p->exec_id, pid,
                             agent_status_code (status, NULL, NULL));
                pthread_cond_broadcast (&agent_cond);
                return;
        }
        agent_debug ("reaped pid %d (status 0x%x)", pid, status);
}

static void *
reaper_main (void *arg)
{
        sigset_t set;
        struct timespec ts = {.tv_sec = 1};

        sigemptyset (&set);
        sigaddset (&set, SIGCHLD);
        for (;;) {
                /* The timeout covers a SIGCHLD consumed while we held the
                 * lock: waitpid below collects everything anyway. */
                sigtimedwait (&set, NULL, &ts);
                pthread_mutex_lock (&agent_reap_lock);
                for (;;) {
                        int status;
                        pid_t pid = waitpid (-1, &status, WNOHANG | __WALL);
                        if (pid < 0 && errno == EINTR)
                                continue;
                        if (pid <= 0)
                                break;
                        pthread_mutex_lock (&agent_lock);
                        record_exit (pid, status);
                        pthread_mutex_unlock (&agent_lock);
                }
                pthread_mutex_unlock (&agent_reap_lock);
        }
        return NULL;
}

int
agent_reaper_start (moat_error_t *err)
{
        pthread_t t;
        pthread_condattr_t ca;
        sigset_t set;
        int r;
        static bool started;

        if (started)
                return 0;
        started = true;
        pthread_condattr_init (&ca);
        pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
        pthread_cond_init (&agent_cond, &ca);
        pthread_condattr_destroy (&ca);

        /* Every thread created after this inherits the blocked SIGCHLD. */
        sigemptyset (&set);
        sigaddset (&set, SIGCHLD);
        sigaddset (&set, SIGPIPE);
        r = pthread_sigmask (SIG_BLOCK, &set, NULL);
        if (r != 0)
                return moat_make_error (err, r, "block SIGCHLD");
        r = pthread_create (&t, NULL, reaper_main, NULL);
        if (r != 0)
                return moat_make_error (err, r, "start the reaper thread");
        pthread_detach (t);
        return 0;
}
