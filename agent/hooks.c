/* SPDX-License-Identifier: Apache-2.0 */
/* The OCI hooks that belong in the container namespace, run in the guest:
 *
 *   createContainer  by the held init (spawn.c) in the container's fresh
 *                    namespaces, after the mounts and before pivot_root.
 *                    The path resolves in the runtime namespace, the
 *                    host's: the host lends a view of its root in the share
 *                    (<share>/<id>/host, see src/lib/share.c) and the hook
 *                    runs chrooted there, its cwd the bundle. Without a
 *                    view (the standalone mode), in the guest's root.
 *   startContainer   by the agent at StartContainer, before the init is
 *                    released: a process that joins every namespace of the
 *                    init (like an exec), so the path resolves in the
 *                    container's root. Root with the full capability set, no
 *                    seccomp filter.
 *
 * Each hook gets the state on stdin, runs with its args (or just its path)
 * and env (or none), and is killed after its timeout. Its stdout and stderr
 * are collected for the error message. A failing hook stops at once: the
 * caller fails the create, or stops the container and fails the start
 * (runtime.md, Lifecycle steps 5 and 7).
 *
 * The state: ociVersion, id, status ("creating" for createContainer,
 * "created" for startContainer), pid as seen in the container's pid
 * namespace (1 for an init with its own; both hook kinds run in that
 * namespace), bundle (the host's bundle path, CreateContainerRequest.bundle;
 * the guest share directory when the host did not say), annotations. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "agent.h"
#include "moat/util.h"
#include "moat/json_gen.h"

#define HOOK_OUTPUT_MAX 1024

char *
agent_hook_state_json (const char *id, const char *status, pid_t pid, const char *bundle, struct oci_config *cfg)
{
        yajl_gen g = yajl_gen_alloc (NULL);
        const unsigned char *buf;
        size_t len;
        char *out;

        yajl_gen_map_open (g);
        moat_gen_str (g, "ociVersion");
        moat_gen_str (g, "1.0.2");
        moat_gen_str (g, "id");
        moat_gen_str (g, id);
        moat_gen_str (g, "status");
        moat_gen_str (g, status);
        if (pid > 0) {
                moat_gen_str (g, "pid");
                yajl_gen_integer (g, pid);
        }
        moat_gen_str (g, "bundle");
        moat_gen_str (g, bundle ? bundle : "");
        if (cfg && cfg->n_annotations) {
                moat_gen_str (g, "annotations");
                yajl_gen_map_open (g);
                for (size_t i = 0; i < cfg->n_annotations; i++) {
                        moat_gen_str (g, cfg->annotation_keys[i]);
                        moat_gen_str (g, cfg->annotation_values[i]);
                }
                yajl_gen_map_close (g);
        }
        yajl_gen_map_close (g);
        yajl_gen_get_buf (g, &buf, &len);
        out = xstrndup ((const char *)buf, len);
        yajl_gen_free (g);
        return out;
}

/* A pipe whose read end holds the whole state: written before the hook runs. */
static int
state_pipe (const char *state, int *rd, moat_error_t *err)
{
        int p[2];
        size_t len = strlen (state);

        if (pipe2 (p, O_CLOEXEC) < 0)
                return moat_make_error (err, errno, "pipe");
        if (len >= 65536 && fcntl (p[1], F_SETPIPE_SZ, (int)len + 1) < 0) {
                close (p[0]);
                close (p[1]);
                return moat_make_error (err, errno, "the state (%zu bytes) does not fit a pipe", len);
        }
        if (write_all (p[1], state, len) < 0) {
                close (p[0]);
                close (p[1]);
                return moat_make_error (err, errno, "write the state for the hook");
        }
        close (p[1]);
        *rd = p[0];
        return 0;
}

static long long
hook_now_ms (void)
{
        struct timespec ts;
        clock_gettime (CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* How the waiter learns that the hook exited. */
struct hook_waiter {
        bool (*exited) (struct hook_waiter *w, int *status);
        pid_t pid;
        struct agent_container *c; /* in_container */
        struct agent_process *p;
};

static bool
child_exited (struct hook_waiter *w, int *status)
{
        pid_t r;
        do
                r = waitpid (w->pid, status, WNOHANG);
        while (r < 0 && errno == EINTR);
        return r == w->pid || (r < 0 && errno == ECHILD);
}

static bool
table_exited (struct hook_waiter *w, int *status)
{
        bool done;
        pthread_mutex_lock (&agent_lock);
        done = w->p->exited;
        *status = w->p->wait_status;
        pthread_mutex_unlock (&agent_lock);
        return done;
}

/* Collects the output and the exit status, killing the hook at the deadline. */
static int
hook_wait (struct hook_waiter *w, int out_rd, const struct oci_hook *h, const char *what, moat_error_t *err)
{
        char out[HOOK_OUTPUT_MAX + 1];
        size_t olen = 0;
        long long deadline = h->timeout > 0 ? hook_now_ms () + h->timeout * 1000LL : -1;
        bool eof = false, timed_out = false;
        int status = 0;

        long long exited_at = -1;

        for (;;) {
                struct pollfd pf = {.fd = out_rd, .events = POLLIN};
                int pr = eof ? 0 : poll (&pf, 1, 50);
                if (eof)
                        usleep (20000);
                if (pr > 0) {
                        char buf[4096];
                        ssize_t n = read (out_rd, buf, sizeof buf);
                        if (n <= 0 && !(n < 0 && errno == EINTR))
                                eof = true;
                        else if (n > 0 && olen < HOOK_OUTPUT_MAX) {
                                size_t k = (size_t)n < HOOK_OUTPUT_MAX - olen ? (size_t)n : HOOK_OUTPUT_MAX - olen;
                                memcpy (out + olen, buf, k);
                                olen += k;
                        }
                }
                if (exited_at < 0 && w->exited (w, &status))
                        exited_at = hook_now_ms ();
                /* Exited: done once the pipe is drained. A child the hook
                 * left behind may hold the pipe open, or keep writing: do
                 * not wait for it more than a moment. */
                if (exited_at >= 0 && (eof || pr == 0 || hook_now_ms () - exited_at > 500))
                        break;
                if (!timed_out && exited_at < 0 && deadline >= 0 && hook_now_ms () > deadline) {
                        timed_out = true;
                        /* a table entry may be reaped by now: its pidfd
                         * keeps the signal off a reused pid; our own
                         * child is not reaped until child_exited says so */
                        if (w->p)
                                agent_process_kill (w->p, SIGKILL);
                        else
                                kill (w->pid, SIGKILL);
                }
        }
        out[olen] = '\0';
        while (olen > 0 && (out[olen - 1] == '\n' || out[olen - 1] == ' '))
                out[--olen] = '\0';
        /* errno 0 while formatting: the hook's output ends the message */
        if (timed_out)
                moat_make_error (err, 0, "%s (%s): killed after its timeout of %d s%s%s", what, h->path, h->timeout,
                                 olen ? ": " : "", out);
        else if (WIFEXITED (status) && WEXITSTATUS (status) == 0) {
                if (olen)
                        agent_debug ("%s (%s): %s", what, h->path, out);
                return 0;
        } else if (WIFSIGNALED (status))
                moat_make_error (err, 0, "%s (%s): killed by signal %d%s%s", what, h->path, WTERMSIG (status),
                                 olen ? ": " : "", out);
        else
                moat_make_error (err, 0, "%s (%s): exit status %d%s%s", what, h->path, WEXITSTATUS (status),
                                 olen ? ": " : "", out);
        (*err)->errno_ = timed_out ? ETIMEDOUT : ECANCELED;
        return -1;
}

static char **
hook_argv (const struct oci_hook *h, char *fallback[2])
{
        if (h->args && h->args[0])
                return h->args;
        fallback[0] = h->path;
        fallback[1] = NULL;
        return fallback;
}

/* The host's view lent for createContainer hooks (src/lib/share.c): its
 * root, without /proc, /sys or /dev of its own. The guest's are mounted
 * there while the hooks run (a fresh proc of the container's pid
 * namespace, the guest's /dev and /sys). These mounts are in the
 * container's mount namespace, under the old root that pivot_root
 * detaches; they are also undone right after the hooks. */
static const char *const view_mounts[] = {"proc", "dev", "sys"};

static void
view_release (const char *view)
{
        for (size_t i = ARRAY_SIZE (view_mounts); i > 0; i--) {
                cleanup_free char *t = xasprintf_r ("%s/%s", view, view_mounts[i - 1]);
                umount2 (t, MNT_DETACH);
        }
}

static int
view_prepare (const char *view, moat_error_t *err)
{
        for (size_t i = 0; i < ARRAY_SIZE (view_mounts); i++) {
                cleanup_free char *t = xasprintf_r ("%s/%s", view, view_mounts[i]);
                int r = i == 0 ? mount ("proc", t, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)
                               : mount (i == 1 ? "/dev" : "/sys", t, NULL, MS_BIND | MS_REC, NULL);
                if (r < 0) {
                        moat_make_error (err, errno, "mount the guest's /%s in the host view", view_mounts[i]);
                        view_release (view);
                        return -1;
                }
        }
        return 0;
}

/* After the createContainer hooks: nothing may keep a way into the view
 * once the host withdraws it (a detached mount stays reachable through
 * whatever still holds it, and a 9p server may keep a file open per fid).
 * Processes a hook left behind hold their root, cwd or files there: in the
 * container's own pid namespace, whose init we are, they all die. Then the
 * guest's unused dentries are evicted, which clunks their 9p fids, so the
 * server closes everything it opened in the view. */
static void
view_close (const char *view)
{
        view_release (view);
        if (getpid () == 1) {
                long long deadline = hook_now_ms () + 2000;
                kill (-1, SIGKILL);
                while (hook_now_ms () < deadline) {
                        pid_t r = waitpid (-1, NULL, __WALL | WNOHANG);
                        if (r < 0 && errno != EINTR)
                                break; /* ECHILD: all reaped */
                        if (r == 0)
                                usleep (10000);
                }
        }
        {
                cleanup_close int fd = open ("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
                if (fd < 0 || write (fd, "2\n", 2) != 2)
                        agent_debug ("hooks: drop the dentry cache: %s", strerror (errno));
        }
}

/* Whether h->path names an executable in the view, symlinks resolved
 * inside it (as they will be once the hook is chrooted there). */
static int
view_access (const char *view, const char *path)
{
        struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
        cleanup_close int root = open (view, O_PATH | O_DIRECTORY | O_CLOEXEC);
        cleanup_close int fd = -1;

        if (root < 0)
                return -1;
        fd = syscall (SYS_openat2, root, path, &how, sizeof how);
        if (fd < 0)
                return -1;
        return faccessat (fd, "", X_OK, AT_EMPTY_PATH);
}

/* One hook as our child, in our namespaces; chrooted into `view` (cwd the
 * bundle) when there is one. */
static int
run_here (const struct oci_hook *h, const char *state, const char *view, const char *bundle, const char *what,
          moat_error_t *err)
{
        cleanup_close int in_rd = -1;
        cleanup_close int out_rd = -1;
        char *fallback[2], *empty_env[] = {NULL};
        struct hook_waiter w = {.exited = child_exited};
        int op[2];
        pid_t pid;

        if ((view ? view_access (view, h->path) : access (h->path, X_OK)) < 0) {
                int e = errno;
                if (view)
                        moat_make_error (err, 0, "%s: %s: %s (on the host)", what, h->path, strerror (e));
                else
                        moat_make_error (err, 0, "%s: %s: %s (no host view was lent to the VM)", what, h->path,
                                         strerror (e));
                (*err)->errno_ = e;
                return -1;
        }
        if (state_pipe (state, &in_rd, err) < 0)
                return moat_error_wrap (err, "%s", what);
        if (pipe2 (op, O_CLOEXEC) < 0)
                return moat_make_error (err, errno, "%s: pipe", what);
        out_rd = op[0];
        pid = fork ();
        if (pid < 0) {
                close (op[1]);
                return moat_make_error (err, errno, "%s: fork", what);
        }
        if (pid == 0) {
                sigset_t none;
                sigemptyset (&none);
                sigprocmask (SIG_SETMASK, &none, NULL);
                if (dup2 (in_rd, 0) < 0 || dup2 (op[1], 1) < 0 || dup2 (op[1], 2) < 0)
                        _exit (126);
                syscall (SYS_close_range, 3, ~0U, 0);
                if (view) {
                        if (chroot (view) < 0) {
                                dprintf (2, "chroot into the host view: %s", strerror (errno));
                                _exit (127);
                        }
                        if (bundle == NULL || chdir (bundle) < 0)
                                (void)!chdir ("/");
                }
                execve (h->path, hook_argv (h, fallback), h->env ? h->env : empty_env);
                dprintf (2, "exec %s: %s", h->path, strerror (errno));
                _exit (127);
        }
        close (op[1]);
        w.pid = pid;
        return hook_wait (&w, out_rd, h, what, err);
}

int
agent_hooks_run_here (struct oci_config *cfg, int kind, const char *id, const char *bundle, moat_error_t *err)
{
        cleanup_free char *state = NULL;
        cleanup_free char *view = NULL;
        struct stat st;
        int ret = 0;

        if (cfg->n_hooks[kind] == 0)
                return 0;
        state = agent_hook_state_json (id, kind == OCI_HOOK_CREATE_CONTAINER ? "creating" : "created", getpid (),
                                       bundle, cfg);
        if (kind == OCI_HOOK_CREATE_CONTAINER && *id) {
                view = xasprintf_r ("%s/%s/host", MOAT_GUEST_SHARE, id);
                if (stat (view, &st) < 0 || !S_ISDIR (st.st_mode)) {
                        free (view);
                        view = NULL;
                } else if (view_prepare (view, err) < 0)
                        return moat_error_wrap (err, "hooks.%s", oci_hook_names[kind]);
        }
        for (size_t i = 0; i < cfg->n_hooks[kind] && ret == 0; i++) {
                char what[64];
                snprintf (what, sizeof what, "hooks.%s[%zu]", oci_hook_names[kind], i);
                ret = run_here (&cfg->hooks[kind][i], state, view, bundle, what, err);
        }
        if (view)
                view_close (view);
        return ret;
}

/* The pid of `pid` in its innermost pid namespace (NSpid's last field). */
static pid_t
pid_in_container (pid_t pid)
{
        cleanup_free char *path = xasprintf_r ("/proc/%d/status", (int)pid);
        cleanup_free char *buf = NULL;
        moat_error_t e = NULL;
        char *line;

        if (read_file (path, &buf, NULL, &e) < 0) {
                moat_error_release (&e);
                return pid;
        }
        line = strstr (buf, "\nNSpid:");
        if (line == NULL)
                return pid;
        line += strlen ("\nNSpid:");
        line[strcspn (line, "\n")] = '\0';
        {
                char *last = strrchr (line, '\t');
                long v = strtol (last ? last + 1 : line, NULL, 10);
                return v > 0 ? (pid_t)v : pid;
        }
}

int
agent_hooks_run_in_container (struct agent_container *c, int kind, moat_error_t *err)
{
        struct oci_config *cfg = c->config;
        cleanup_free char *state = NULL;
        pid_t init;

        if (cfg->n_hooks[kind] == 0)
                return 0;
        pthread_mutex_lock (&agent_lock);
        init = c->init && !c->init->exited ? c->init->pid : 0;
        pthread_mutex_unlock (&agent_lock);
        if (init == 0)
                return moat_make_error (err, ESRCH, "hooks.%s: the container process is gone", oci_hook_names[kind]);
        state = agent_hook_state_json (c->id, "created", pid_in_container (init), c->bundle, cfg);

        for (size_t i = 0; i < cfg->n_hooks[kind]; i++) {
                const struct oci_hook *h = &cfg->hooks[kind][i];
                char what[64], exec_id[80];
                char *fallback[2];
                cleanup_close int in_rd = -1;
                cleanup_close int out_rd = -1;
                cleanup_close int out_wr = -1;
                struct oci_process proc = {0};
                struct spawn_request req = {0};
                struct agent_stdio st = {.fd = {-1, -1, -1}};
                struct hook_waiter w = {.exited = table_exited, .c = c};
                int op[2], tty = -1, r;
                pid_t pid;

                snprintf (what, sizeof what, "hooks.%s[%zu]", oci_hook_names[kind], i);
                /* never a valid exec id (it has a '/'): cannot clash with one */
                snprintf (exec_id, sizeof exec_id, "hook/%s/%zu", oci_hook_names[kind], i);
                if (state_pipe (state, &in_rd, err) < 0)
                        return moat_error_wrap (err, "%s", what);
                if (pipe2 (op, O_CLOEXEC) < 0)
                        return moat_make_error (err, errno, "%s: pipe", what);
                out_rd = op[0];
                out_wr = op[1];
                proc.args = hook_argv (h, fallback);
                proc.env = h->env;
                proc.cwd = (char *)"/";
                st.fd[0] = in_rd;
                st.fd[1] = st.fd[2] = out_wr;
                req.config = cfg;
                req.process = &proc;
                req.rootfs = c->rootfs;
                req.cgroup_path = c->cgroup_path;
                req.join_pid = init;
                req.stdio = &st;
                req.hook_path = h->path;
                r = agent_spawn (&req, c, exec_id, &pid, NULL, &tty, err);
                if (r < 0)
                        return moat_error_wrap (err, "%s (%s)", what, h->path);
                close (steal_fd (&out_wr)); /* EOF once the hook is done */
                pthread_mutex_lock (&agent_lock);
                w.p = agent_process_find (c, exec_id);
                pthread_mutex_unlock (&agent_lock);
                w.pid = pid;
                r = w.p ? hook_wait (&w, out_rd, h, what, err) : 0;
                agent_process_forget (c, exec_id);
                if (r < 0)
                        return -1;
        }
        return 0;
}
