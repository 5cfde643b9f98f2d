/* SPDX-License-Identifier: Apache-2.0 */
/* Starting a container process.
 *
 *   agent thread ──fork()──> P1 (single-threaded copy of the agent)
 *                              joins the cgroup, setns() to namespace paths,
 *                              unshare(CLONE_NEWTIME), then
 *                            ──clone(CLONE_NEW* | CLONE_PARENT)──> G
 *                              sends G's pid, exits
 *   G (the container process, a child of the agent thanks to CLONE_PARENT)
 *     waits for GO (uid/gid maps written), builds the rootfs, switches
 *     user, sends READY, waits for START, loads seccomp, execve()s.
 *
 * fork() first, because the agent is multithreaded and a raw clone() could
 * copy a malloc lock held by another thread; P1 is single-threaded and may
 * clone freely (and setns() into a user namespace needs that too).
 * Parent and children talk over a SOCK_SEQPACKET pair: one message per
 * struct sync_msg, the pty master travels with SCM_RIGHTS, and a successful
 * execve() closes G's end (it is O_CLOEXEC), which the parent sees as EOF. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "mounts.h"
#include "moat/util.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

enum { MSG_PID = 1, MSG_GO, MSG_PTY, MSG_READY, MSG_START, MSG_ERROR };

struct sync_msg {
        int type;
        int value; /* pid, or errno for MSG_ERROR */
        char text[2048];
};

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SETUP_TIMEOUT_MS 120000

static int
send_msg (int fd, int type, int value, const char *text, int pass_fd)
{
        struct sync_msg m = {.type = type, .value = value};
        struct iovec iov = {.iov_base = &m, .iov_len = sizeof m};
        union {
                char buf[CMSG_SPACE (sizeof (int))];
                struct cmsghdr align;
        } u;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

        if (text)
                snprintf (m.text, sizeof m.text, "%s", text);
        if (pass_fd >= 0) {
                struct cmsghdr *c;
                memset (&u, 0, sizeof u);
                mh.msg_control = u.buf;
                mh.msg_controllen = sizeof u.buf;
                c = CMSG_FIRSTHDR (&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN (sizeof (int));
                memcpy (CMSG_DATA (c), &pass_fd, sizeof (int));
        }
        for (;;) {
                ssize_t r = sendmsg (fd, &mh, MSG_NOSIGNAL);
                if (r < 0 && errno == EINTR)
                        continue;
                return r < 0 ? -1 : 0;
        }
}

/* Returns 1 with a message, 0 at EOF, -1 on error (ETIMEDOUT after timeout_ms, <0: none). */
static int
recv_msg (int fd, struct sync_msg *m, int *got_fd, int timeout_ms)
{
        union {
                char buf[CMSG_SPACE (sizeof (int))];
                struct cmsghdr align;
        } u;
        struct iovec iov = {.iov_base = m, .iov_len = sizeof *m};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
        ssize_t r;

        if (got_fd)
                *got_fd = -1;
        if (timeout_ms >= 0) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int pr;
                do
                        pr = poll (&p, 1, timeout_ms);
                while (pr < 0 && errno == EINTR);
                if (pr == 0) {
                        errno = ETIMEDOUT;
                        return -1;
                }
        }
        do
                r = recvmsg (fd, &mh, MSG_CMSG_CLOEXEC);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return -1;
        if (r == 0)
                return 0;
        if ((size_t)r < offsetof (struct sync_msg, text)) {
                errno = EPROTO;
                return -1;
        }
        m->text[sizeof m->text - 1] = '\0';
        for (struct cmsghdr *c = CMSG_FIRSTHDR (&mh); c; c = CMSG_NXTHDR (&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        int f;
                        memcpy (&f, CMSG_DATA (c), sizeof f);
                        if (got_fd)
                                *got_fd = f;
                        else
                                close (f);
                }
        return 1;
}

/* Child side: report err to the parent and exit. */
static void __attribute__ ((noreturn)) child_fail (int sk, moat_error_t *err, int code)
{
        send_msg (sk, MSG_ERROR, (*err) ? (*err)->errno_ : 0, (*err) ? (*err)->msg : "unknown error", -1);
        _exit (code);
}

/* An error the child reported: its text already carries strerror. */
static int
child_error (moat_error_t *err, const struct sync_msg *m)
{
        moat_make_error (err, 0, "%s", m->text);
        (*err)->errno_ = m->value;
        return -1;
}

static int
cmp_int (const void *a, const void *b)
{
        return *(const int *)a - *(const int *)b;
}

/* Closes every fd >= 3 that is not in keep[] (after fork: no malloc). */
static void
close_fds_except (int *keep, size_t n)
{
        int sorted[n + 1];
        size_t m = 0;
        unsigned lo = 3;

        for (size_t i = 0; i < n; i++)
                if (keep[i] >= 3)
                        sorted[m++] = keep[i];
        qsort (sorted, m, sizeof (int), cmp_int);
        for (size_t i = 0; i < m; i++) {
                if ((unsigned)sorted[i] > lo)
                        syscall (SYS_close_range, lo, sorted[i] - 1, 0);
                lo = sorted[i] + 1;
        }
        syscall (SYS_close_range, lo, ~0U, 0);
}

static const struct {
        const char *name;
        int flag;
} ns_files[] = {
        /* order matters when joining: user last (its owner rights cover the rest) */
        {"pid", CLONE_NEWPID},       {"ipc", CLONE_NEWIPC},   {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET},
        {"cgroup", CLONE_NEWCGROUP}, {"time", CLONE_NEWTIME}, {"mnt", CLONE_NEWNS},  {"user", CLONE_NEWUSER},
};

/* Opens namespace file `path` of type ns_files[k] for joining: *fd -1
 * when we are in it already (setns() into our own user namespace fails). */
static int
open_ns (const char *path, size_t k, int *fd, moat_error_t *err)
{
        char self[64];
        struct stat a, b;

        *fd = open (path, O_RDONLY | O_CLOEXEC);
        if (*fd < 0)
                return moat_make_error (err, errno, "open namespace %s", path);
        snprintf (self, sizeof self, "/proc/self/ns/%s", ns_files[k].name);
        if (fstat (*fd, &a) == 0 && stat (self, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
                close (*fd);
                *fd = -1;
        }
        return 0;
}

/* Joins every namespace opened in nsfd (indexed as ns_files, so user goes
 * last) and closes them. All are opened before any is joined: once in
 * another mount or pid namespace, a /proc path may name another process. */
static int
join_opened (int *nsfd, const char *const *what, moat_error_t *err)
{
        int rc = 0;
        for (size_t i = 0; i < ARRAY_SIZE (ns_files); i++) {
                if (nsfd[i] < 0)
                        continue;
                if (rc == 0 && setns (nsfd[i], ns_files[i].flag) < 0)
                        rc = moat_make_error (err, errno, "join namespace %s", what[i]);
                close (nsfd[i]);
                nsfd[i] = -1;
        }
        return rc;
}

static int
find_ns (struct oci_config *cfg, int flag, struct oci_namespace **out)
{
        for (size_t i = 0; cfg->linux_ && i < cfg->linux_->n_namespaces; i++)
                if (cfg->linux_->namespaces[i].clone_flag == flag) {
                        *out = &cfg->linux_->namespaces[i];
                        return 1;
                }
        return 0;
}

/* Resolves args[0] the way execvp would, with PATH from the process env. */
static int
resolve_exec (char **env, const char *arg0, char **out, moat_error_t *err)
{
        const char *path = DEFAULT_PATH;
        struct stat st;

        if (strchr (arg0, '/')) {
                if (stat (arg0, &st) < 0)
                        return moat_make_error (err, errno, "exec: \"%s\": stat %s", arg0, arg0);
                if (S_ISDIR (st.st_mode))
                        return moat_make_error (err, EACCES, "exec: \"%s\": is a directory", arg0);
                if (access (arg0, X_OK) < 0)
                        return moat_make_error (err, errno, "exec: \"%s\"", arg0);
                *out = xstrdup (arg0);
                return 0;
        }
        for (size_t i = 0; env && env[i]; i++)
                if (strncmp (env[i], "PATH=", 5) == 0)
                        path = env[i] + 5;
        for (const char *s = path; *s;) {
                size_t l = strcspn (s, ":");
                cleanup_free char *cand = xasprintf_r ("%.*s/%s", (int)l, l ? s : ".", arg0);
                if (stat (cand, &st) == 0 && S_ISREG (st.st_mode) && access (cand, X_OK) == 0) {
                        *out = steal_pointer (&cand);
                        return 0;
                }
                s += l;
                if (*s == ':')
                        s++;
        }
        return moat_make_error (err, ENOENT, "exec: \"%s\": executable file not found in $PATH", arg0);
}

struct child_args {
        struct spawn_request *r;
        int sk;
        bool userns; /* a new user namespace was created */
        const char *bundle_dir;
        const int *extra; /* --preserve-fds: they become fds 3, 4... */
        size_t n_extra;
};

/* Puts the preserved fds at 3 .. 3+n-1 without close-on-exec; the sync
 * socket moves above them. */
static int
place_extra_fds (struct child_args *a, moat_error_t *err)
{
        int base = 3 + (int)a->n_extra;
        int tmp[a->n_extra + 1];
        int sk;

        if (a->n_extra == 0)
                return 0;
        sk = fcntl (a->sk, F_DUPFD_CLOEXEC, base);
        if (sk < 0)
                return moat_make_error (err, errno, "move the sync socket above the preserved fds");
        a->sk = sk; /* the old one is close-on-exec, or replaced below */
        for (size_t i = 0; i < a->n_extra; i++) {
                tmp[i] = fcntl (a->extra[i], F_DUPFD_CLOEXEC, base);
                if (tmp[i] < 0)
                        return moat_make_error (err, errno, "preserved fd %zu", 3 + i);
        }
        for (size_t i = 0; i < a->n_extra; i++)
                if (dup2 (tmp[i], 3 + i) < 0)
                        return moat_make_error (err, errno, "preserved fd %zu", 3 + i);
        return 0;
}

/* Everything from the user switch on; shared by init and exec processes. */
static void __attribute__ ((noreturn)) child_finish (struct child_args *a, int tty_slave)
{
        struct spawn_request *r = a->r;
        struct oci_process *p = r->process;
        struct oci_seccomp *sc = r->config->linux_ ? r->config->linux_->seccomp : NULL;
        moat_error_t err = NULL;
        cleanup_free char *exe = NULL;
        struct sync_msg m;
        char **env = p->env;
        char *empty_env[] = {NULL};
        int stdio[3];
        sigset_t none;

        for (size_t i = 0; i < p->n_rlimits; i++) {
                struct rlimit rl = {.rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard};
                if (setrlimit (p->rlimits[i].resource, &rl) < 0) {
                        moat_make_error (&err, errno, "process.rlimits %s", p->rlimits[i].type);
                        child_fail (a->sk, &err, 1);
                }
        }
        if (p->has_oom_score_adj) {
                char buf[32];
                int fd = open ("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
                snprintf (buf, sizeof buf, "%d", p->oom_score_adj);
                if (fd < 0 || write (fd, buf, strlen (buf)) < 0) {
                        moat_make_error (&err, errno, "process.oomScoreAdj %d", p->oom_score_adj);
                        child_fail (a->sk, &err, 1);
                }
                close (fd);
        }
        /* Root may not be able to enter cwd in a user namespace: try again below. */
        bool cwd_done = chdir (p->cwd ? p->cwd : "/") == 0;

        if (r->hook_path)
                sc = NULL; /* hooks are the runtime's, not the container's */
        if (!p->no_new_privileges && agent_seccomp_load (sc, &err) < 0)
                child_fail (a->sk, &err, 1);
        if (agent_caps_drop_bounding (p->caps, &err) < 0)
                child_fail (a->sk, &err, 1);
        if (p->caps && prctl (PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) {
                moat_make_error (&err, errno, "PR_SET_KEEPCAPS");
                child_fail (a->sk, &err, 1);
        }
        {
                gid_t *groups = xmalloc ((p->user.n_additional_gids + 1) * sizeof (gid_t));
                for (size_t i = 0; i < p->user.n_additional_gids; i++)
                        groups[i] = p->user.additional_gids[i];
                if (setgroups (p->user.n_additional_gids, groups) < 0 && !(a->userns && errno == EPERM)) {
                        moat_make_error (&err, errno, "setgroups");
                        child_fail (a->sk, &err, 1);
                }
                free (groups);
        }
        if (setresgid (p->user.gid, p->user.gid, p->user.gid) < 0) {
                moat_make_error (&err, errno, "setgid %u", p->user.gid);
                child_fail (a->sk, &err, 1);
        }
        if (setresuid (p->user.uid, p->user.uid, p->user.uid) < 0) {
                moat_make_error (&err, errno, "setuid %u", p->user.uid);
                child_fail (a->sk, &err, 1);
        }
        if (agent_caps_apply (p->caps, &err) < 0)
                child_fail (a->sk, &err, 1);
        prctl (PR_SET_KEEPCAPS, 0, 0, 0, 0);
        if (!cwd_done && chdir (p->cwd ? p->cwd : "/") < 0) {
                moat_make_error (&err, errno, "chdir to process.cwd %s", p->cwd ? p->cwd : "/");
                child_fail (a->sk, &err, 1);
        }
        if (p->no_new_privileges && prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
                moat_make_error (&err, errno, "process.noNewPrivileges");
                child_fail (a->sk, &err, 1);
        }
        umask (p->user.has_umask ? p->user.umask : 022);
        if (env == NULL)
                env = empty_env;
        if (resolve_exec (env, r->hook_path ? r->hook_path : p->args[0], &exe, &err) < 0)
                child_fail (a->sk, &err, 127);

        /* stdio last: from here on, fd 2 is the container's. */
        if (tty_slave >= 0) {
                stdio[0] = stdio[1] = stdio[2] = tty_slave;
        } else {
                for (int i = 0; i < 3; i++) {
                        int src = r->stdio ? r->stdio->fd[i] : -1;
                        if (src < 0)
                                src = open ("/dev/null", O_RDWR | O_CLOEXEC);
                        if (src < 0) {
                                moat_make_error (&err, errno, "open /dev/null");
                                child_fail (a->sk, &err, 1);
                        }
                        stdio[i] = fcntl (src, F_DUPFD_CLOEXEC, 10);
                }
        }
        for (int i = 0; i < 3; i++) {
                int fd = tty_slave >= 0 ? tty_slave : stdio[i];
                if (fd < 0 || dup2 (fd, i) < 0) {
                        moat_make_error (&err, errno, "set up stdio fd %d", i);
                        child_fail (a->sk, &err, 1);
                }
        }
        if (tty_slave >= 0 && ioctl (0, TIOCSCTTY, 0) < 0) {
                moat_make_error (&err, errno, "make the pty the controlling terminal");
                child_fail (a->sk, &err, 1);
        }
        if (place_extra_fds (a, &err) < 0)
                child_fail (a->sk, &err, 1);
        /* Everything else closes at execve (the sync socket included). */
        syscall (SYS_close_range, 3 + a->n_extra, ~0U, CLOSE_RANGE_CLOEXEC);

        if (send_msg (a->sk, MSG_READY, 0, NULL, -1) < 0)
                _exit (1);
        /* Always wait for START (sent at once for exec processes): an unread
         * message in our queue would turn the parent's EOF into ECONNRESET. */
        {
                int rr = recv_msg (a->sk, &m, NULL, -1);
                if (rr <= 0 || m.type != MSG_START)
                        _exit (1); /* the agent gave up on us */
        }
        if (p->no_new_privileges && agent_seccomp_load (sc, &err) < 0)
                child_fail (a->sk, &err, 1);
        sigemptyset (&none);
        sigprocmask (SIG_SETMASK, &none, NULL);
        execve (exe, p->args, env);
        moat_make_error (&err, errno, "exec: \"%s\"", p->args[0]);
        child_fail (a->sk, &err, errno == ENOENT ? 127 : 126);
}

/* G: the container's init (create) or exec process. */
static void __attribute__ ((noreturn)) child_main (struct child_args *a)
{
        struct spawn_request *r = a->r;
        moat_error_t err = NULL;
        struct sync_msg m;
        int tty_slave = -1;
        cleanup_free char *pts_name = NULL;

        if (recv_msg (a->sk, &m, NULL, -1) <= 0 || m.type != MSG_GO)
                _exit (1);
        if (a->userns) {
                /* root in the new namespace, when the mapping has it */
                if (setresgid (0, 0, 0) < 0 || setresuid (0, 0, 0) < 0)
                        agent_debug ("uid 0 is not mapped in the user namespace");
        }
        if (setsid () < 0) {
                moat_make_error (&err, errno, "setsid");
                child_fail (a->sk, &err, 1);
        }
        if (r->join_pid == 0) {
                struct mount_ctx mc = {.rootfs = r->rootfs,
                                       .bundle_dir = a->bundle_dir,
                                       .cgroup_path = r->cgroup_path,
                                       .userns = a->userns,
                                       .rootfd = -1,
                                       .container_id = r->container_id,
                                       .host_bundle = r->host_bundle};
                struct oci_namespace *ns;
                if (!find_ns (r->config, CLONE_NEWNS, &ns)) {
                        moat_make_error (&err, EINVAL, "linux.namespaces: a mount namespace is required");
                        child_fail (a->sk, &err, 1);
                }
                if (agent_rootfs_setup (&mc, r->config, &err) < 0)
                        child_fail (a->sk, &err, 1);
        }
        if (r->stdio && r->stdio->terminal) {
                unsigned rows = r->stdio->rows, cols = r->stdio->cols;
                if ((rows == 0 || cols == 0) && r->process->has_console_size) {
                        /* the host did not say: process.consoleSize */
                        rows = r->process->console_height;
                        cols = r->process->console_width;
                }
                int master = agent_open_pty (&tty_slave, &pts_name, rows, cols, &err);
                if (master < 0)
                        child_fail (a->sk, &err, 1);
                if (send_msg (a->sk, MSG_PTY, 0, NULL, master) < 0)
                        _exit (1);
                close (master);
                if (r->join_pid == 0 && agent_bind_console (pts_name, &err) < 0)
                        child_fail (a->sk, &err, 1);
        }
        if (r->join_pid == 0) {
                struct oci_namespace *ns;
                if (r->config->hostname && *r->config->hostname &&
                    sethostname (r->config->hostname, strlen (r->config->hostname)) < 0) {
                        moat_make_error (&err, errno, "set hostname %s", r->config->hostname);
                        if (!find_ns (r->config, CLONE_NEWUTS, &ns))
                                moat_error_wrap (&err, "no uts namespace");
                        child_fail (a->sk, &err, 1);
                }
                if (r->config->domainname && *r->config->domainname &&
                    setdomainname (r->config->domainname, strlen (r->config->domainname)) < 0) {
                        moat_make_error (&err, errno, "set domainname %s", r->config->domainname);
                        child_fail (a->sk, &err, 1);
                }
                if (agent_rootfs_finish (r->config, &err) < 0)
                        child_fail (a->sk, &err, 1);
        }
        child_finish (a, tty_slave);
}

/* P1: namespaces we join or create, then clone G. */
static void __attribute__ ((noreturn))
intermediate_main (struct spawn_request *r, int sk, const char *bundle_dir, const int *extra, size_t n_extra)
{
        moat_error_t err = NULL;
        int flags = CLONE_PARENT | SIGCHLD;
        struct child_args a = {.r = r, .sk = sk, .bundle_dir = bundle_dir, .extra = extra, .n_extra = n_extra};
        int keep[4 + n_extra];
        pid_t g;

        keep[0] = sk;
        for (int i = 0; i < 3; i++)
                keep[i + 1] = r->stdio ? r->stdio->fd[i] : -1;
        for (size_t i = 0; i < n_extra; i++)
                keep[4 + i] = extra[i];
        close_fds_except (keep, 4 + n_extra);

        if (r->cgroup_path && agent_cgroup_enter (r->cgroup_path, 0, &err) < 0)
                child_fail (sk, &err, 1);
        {
                int nsfd[ARRAY_SIZE (ns_files)];
                const char *what[ARRAY_SIZE (ns_files)];
                char paths[ARRAY_SIZE (ns_files)][64];

                for (size_t i = 0; i < ARRAY_SIZE (ns_files); i++) {
                        nsfd[i] = -1;
                        what[i] = "";
                }
                if (r->join_pid) {
                        /* exec: every namespace of the init */
                        for (size_t i = 0; i < ARRAY_SIZE (ns_files); i++) {
                                char self[64];
                                snprintf (paths[i], sizeof paths[i], "/proc/%d/ns/%s", r->join_pid, ns_files[i].name);
                                snprintf (self, sizeof self, "/proc/self/ns/%s", ns_files[i].name);
                                what[i] = paths[i];
                                if (access (paths[i], F_OK) < 0 && errno == ENOENT) {
                                        if (access (self, F_OK) < 0 && errno == ENOENT)
                                                continue; /* not supported by this kernel */
                                        moat_make_error (&err, ESRCH, "join %s: the container is not running",
                                                         paths[i]);
                                        child_fail (sk, &err, 1);
                                }
                                if (open_ns (paths[i], i, &nsfd[i], &err) < 0)
                                        child_fail (sk, &err, 1);
                        }
                } else {
                        /* create: the config's namespace paths, new ones for the rest */
                        for (size_t k = 0; k < ARRAY_SIZE (ns_files); k++)
                                for (size_t i = 0; r->config->linux_ && i < r->config->linux_->n_namespaces; i++) {
                                        struct oci_namespace *ns = &r->config->linux_->namespaces[i];
                                        if (ns->clone_flag != ns_files[k].flag)
                                                continue;
                                        if (ns->path && *ns->path) {
                                                what[k] = ns->path;
                                                if (open_ns (ns->path, k, &nsfd[k], &err) < 0)
                                                        child_fail (sk, &err, 1);
                                        } else if (ns->clone_flag == CLONE_NEWTIME) {
                                                /* clone() has no room for it: children of P1 get it */
                                                if (unshare (CLONE_NEWTIME) < 0) {
                                                        moat_make_error (&err, errno, "create the time namespace");
                                                        child_fail (sk, &err, 1);
                                                }
                                        } else {
                                                flags |= ns->clone_flag;
                                                if (ns->clone_flag == CLONE_NEWUSER)
                                                        a.userns = true;
                                        }
                                }
                }
                if (join_opened (nsfd, what, &err) < 0)
                        child_fail (sk, &err, 1);
        }
        g = syscall (SYS_clone, (unsigned long)flags, NULL, NULL, NULL, 0);
        if (g < 0) {
                moat_make_error (&err, errno, "clone the container process");
                child_fail (sk, &err, 1);
        }
        if (g == 0)
                child_main (&a);
        send_msg (sk, MSG_PID, g, NULL, -1);
        _exit (0);
}

static int
write_id_map (pid_t pid, const char *file, struct oci_id_map *maps, size_t n, moat_error_t *err)
{
        cleanup_free char *buf = xstrdup ("");
        cleanup_free char *path = xasprintf_r ("/proc/%d/%s", pid, file);
        cleanup_close int fd = -1;

        for (size_t i = 0; i < n; i++) {
                char *nb = xasprintf_r ("%s%u %u %u\n", buf, maps[i].container_id, maps[i].host_id, maps[i].size);
                free (buf);
                buf = nb;
        }
        fd = open (path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write (fd, buf, strlen (buf)) < 0)
                return moat_make_error (err, errno, "write %s", path);
        return 0;
}

/* Forgets a process whose setup failed (it was killed). */
static void
unregister (struct agent_container *c, pid_t g)
{
        pthread_mutex_lock (&agent_lock);
        if (c->init && c->init->pid == g) {
                agent_process_free (c->init);
                c->init = NULL;
        }
        for (struct agent_process **pp = &c->execs; *pp; pp = &(*pp)->next)
                if ((*pp)->pid == g) {
                        struct agent_process *p = *pp;
                        *pp = p->next;
                        agent_process_free (p);
                        break;
                }
        pthread_mutex_unlock (&agent_lock);
}

static int
spawn_failed (struct agent_container *c, pid_t g, int pty)
{
        /* by pid, so only while the reaper cannot run and the table says
         * g is not reaped: never a reused pid */
        pthread_mutex_lock (&agent_reap_lock);
        pthread_mutex_lock (&agent_lock);
        {
                struct agent_process *p = c->init && c->init->pid == g ? c->init : NULL;
                for (struct agent_process *q = c->execs; q && p == NULL; q = q->next)
                        if (q->pid == g)
                                p = q;
                if (p && !p->exited)
                        kill (g, SIGKILL);
        }
        pthread_mutex_unlock (&agent_lock);
        pthread_mutex_unlock (&agent_reap_lock);
        if (pty >= 0)
                close (pty);
        unregister (c, g);
        return -1;
}

/* --preserve-fds: the process's end of each preserved fd (a pipe whose
 * other end a relay thread connects to the stream, or the stream itself
 * when read-write). *child (malloc'd) holds our copies. */
static int
prepare_extra_fds (struct agent_container *c, const char *exec_id, int **child, size_t *n, moat_error_t *err)
{
        struct agent_extra_fd *x = NULL;
        size_t nx = 0;
        int *fds;

        *child = NULL;
        *n = 0;
        if (agent_stdio_take_extra (c->id, exec_id, &x, &nx, err) < 0)
                return -1;
        if (nx == 0)
                return 0;
        fds = xmalloc (nx * sizeof *fds);
        for (size_t i = 0; i < nx; i++)
                fds[i] = -1;
        for (size_t i = 0; i < nx; i++) {
                int pf[2];
                if (x[i].mode == O_RDWR) {
                        fds[i] = steal_fd (&x[i].fd);
                        continue;
                }
                if (pipe2 (pf, O_CLOEXEC) < 0) {
                        moat_make_error (err, errno, "pipe for preserved fd %zu", 3 + i);
                        goto fail;
                }
                if (x[i].mode == O_RDONLY) { /* host -> process */
                        fds[i] = pf[0];
                        if (agent_fd_relay_start (steal_fd (&x[i].fd), pf[1], true, err) < 0)
                                goto fail;
                } else { /* process -> host */
                        fds[i] = pf[1];
                        if (agent_fd_relay_start (pf[0], steal_fd (&x[i].fd), false, err) < 0)
                                goto fail;
                }
        }
        free (x);
        *child = fds;
        *n = nx;
        return 0;
fail:
        for (size_t i = 0; i < nx; i++) {
                if (fds[i] >= 0)
                        close (fds[i]);
                if (x[i].fd >= 0)
                        close (x[i].fd);
        }
        free (fds);
        free (x);
        return moat_error_wrap (err, "--preserve-fds");
}

int
agent_spawn (struct spawn_request *r, struct agent_container *c, const char *exec_id, pid_t *pid_out, int *sync_fd,
             int *tty_master, moat_error_t *err)
{
        cleanup_close int sk0 = -1;
        int sk[2];
        pid_t p1, g = -1;
        struct sync_msg m;
        struct agent_process *proc;
        struct oci_namespace *userns = NULL;
        int rr, pty = -1;
        int *extra = NULL, fork_errno;
        size_t n_extra = 0;

        *tty_master = -1;
        if (sync_fd)
                *sync_fd = -1;
        if (prepare_extra_fds (c, exec_id, &extra, &n_extra, err) < 0)
                return -1;
        if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sk) < 0) {
                for (size_t i = 0; i < n_extra; i++)
                        close (extra[i]);
                free (extra);
                return moat_make_error (err, errno, "socketpair");
        }
        sk0 = sk[0];

        pthread_mutex_lock (&agent_reap_lock);
        p1 = fork ();
        fork_errno = errno;
        if (p1 == 0) {
                close (sk[0]);
                intermediate_main (r, sk[1], r->bundle_dir, extra, n_extra);
        }
        /* the helper has its copies (or there is no helper) */
        for (size_t i = 0; i < n_extra; i++)
                close (extra[i]);
        free (extra);
        if (p1 < 0) {
                int e = fork_errno;
                pthread_mutex_unlock (&agent_reap_lock);
                close (sk[1]);
                return moat_make_error (err, e, "fork");
        }
        close (sk[1]);
        rr = recv_msg (sk0, &m, NULL, SETUP_TIMEOUT_MS);
        if (rr == 1 && m.type == MSG_PID) {
                g = m.value;
                proc = xzalloc (sizeof *proc);
                proc->exec_id = xstrdup (exec_id);
                proc->pid = g;
                proc->tty_master = proc->tty_conn = proc->stdin_fd = -1;
                pthread_mutex_lock (&agent_lock);
                if (strcmp (exec_id, "-") == 0)
                        c->init = proc;
                else {
                        proc->next = c->execs;
                        c->execs = proc;
                }
                pthread_mutex_unlock (&agent_lock);
        }
        if (rr <= 0) {
                /* timed out or failed: do not leave the helper behind (the reaper collects it) */
                int e = rr < 0 ? errno : EIO;
                kill (p1, SIGKILL);
                pthread_mutex_unlock (&agent_reap_lock);
                if (rr < 0)
                        return moat_make_error (err, e, "start the container process");
                return moat_make_error (err, e, "start the container process: the helper died");
        }
        pthread_mutex_unlock (&agent_reap_lock);
        if (m.type == MSG_ERROR)
                return child_error (err, &m);
        if (m.type != MSG_PID)
                return moat_make_error (err, EPROTO, "start the container process: unexpected message %d", m.type);

        if (r->join_pid == 0 && find_ns (r->config, CLONE_NEWUSER, &userns) && !(userns->path && *userns->path)) {
                struct oci_linux *l = r->config->linux_;
                if (write_id_map (g, "uid_map", l->uid_mappings, l->n_uid_mappings, err) < 0 ||
                    write_id_map (g, "gid_map", l->gid_mappings, l->n_gid_mappings, err) < 0) {
                        spawn_failed (c, g, -1);
                        return moat_error_wrap (err, "user namespace mappings");
                }
        }
        if (send_msg (sk0, MSG_GO, 0, NULL, -1) < 0) {
                spawn_failed (c, g, -1);
                return moat_make_error (err, errno, "container process died during setup");
        }
        for (;;) {
                int fd = -1;
                rr = recv_msg (sk0, &m, &fd, SETUP_TIMEOUT_MS);
                if (rr <= 0) {
                        int e = rr < 0 ? errno : EIO;
                        spawn_failed (c, g, pty);
                        return moat_make_error (err, e, "container process setup%s",
                                                rr == 0 ? ": it died without a word" : "");
                }
                if (m.type == MSG_PTY && fd >= 0) {
                        pty = fd;
                        continue;
                }
                if (fd >= 0)
                        close (fd);
                if (m.type == MSG_ERROR) {
                        spawn_failed (c, g, pty);
                        return child_error (err, &m);
                }
                if (m.type == MSG_READY)
                        break;
        }
        *pid_out = g;
        *tty_master = pty;
        if (r->hold) {
                *sync_fd = steal_fd (&sk0);
                return 0;
        }
        if (agent_spawn_release (steal_fd (&sk0), err) < 0) {
                *tty_master = -1;
                return spawn_failed (c, g, pty);
        }
        return 0;
}

int
agent_spawn_release (int sync_fd, moat_error_t *err)
{
        cleanup_close int fd = sync_fd;
        struct sync_msg m;
        int rr;

        if (send_msg (fd, MSG_START, 0, NULL, -1) < 0)
                return moat_make_error (err, errno, "the container process is gone");
        rr = recv_msg (fd, &m, NULL, SETUP_TIMEOUT_MS);
        if (rr == 0)
                return 0; /* execve closed the socket */
        if (rr < 0)
                return moat_make_error (err, errno, "wait for the container process to exec");
        if (m.type == MSG_ERROR)
                return child_error (err, &m);
        return moat_make_error (err, EPROTO, "unexpected message %d from the container process", m.type);
}
