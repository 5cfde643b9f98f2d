/* SPDX-License-Identifier: Apache-2.0 */
/* The container API (include/moat/container.h): the orchestration every
 * front end shares, one function per verb, over the sandbox (sandbox.c),
 * the agent client (agent_client.c), the share, the host cgroup, the
 * network, the hooks and the stand-in.
 *
 * create's decisions:
 * - The share's bind mounts are made in a private mount namespace (slave
 *   of the host's) that the VMM, moat-vsock and the stand-in keep alive:
 *   they are invisible on the host and vanish with those processes.
 * - The config's network namespace on the host (the one at its path, or a
 *   new one made here) exists before the VM boots; the stand-in joins it.
 *   Unless it is the host's own, the VM gets a tap in it, and once the
 *   prestart/createRuntime hooks ran its first interface is connected to
 *   the tap with tc and described to the agent, which gives it to the
 *   container (docs/architecture.md, Networking). Every namespace path is
 *   checked to be a namespace of its type before the VM boots, and removed
 *   from the guest config (the guest makes new namespaces: host ones cannot
 *   be joined).
 * - Hooks: prestart and createRuntime run here, in that order, before
 *   CreateContainer; createContainer runs in the guest, in the container's
 *   namespaces, chrooted into a view of the host's root that the
 *   share lends until CreateContainer returns (its path resolves on the
 *   host, as config.md requires); startContainer runs in the guest at
 *   start; poststart in start; poststop in delete. A failing
 *   prestart/createRuntime/createContainer hook fails create and runs the
 *   poststop hooks.
 * - The VMM, moat-vsock and the stand-in go into the host cgroup
 *   (cgroupsPath in every hierarchy; with systemd_cgroup or a
 *   slice:prefix:name value, its cgroupfs path: systemd is not called).
 * - Once the container's process exits, its stand-in powers the VM off
 *   (the memory is freed at once); state then says stopped and delete
 *   cleans the rest.
 * - preserve_fds N: the caller's fds 3..3+N-1 stay with the stand-in,
 *   which relays each over a vsock stream of its own; the process gets a
 *   pipe (or, for a read-write fd, the stream) as the same fd number.
 *   create closes its own copies once the stand-in has them. A listening
 *   socket is refused before the VM boots.
 *
 * exec: the process is described by the container's own process (env,
 * cwd, user, capabilities... of the config saved at create) with the
 * command line and the options applied, or by a process.json. It gets its
 * own stand-in: when detached a child that outlives the call (its pid goes
 * to pid_file; conmon and containerd-shim wait on it), else the caller,
 * which relays stdio and signals until the process exits. As runc: user
 * and gids change the container's user (uid, gid when given; the gids are
 * appended to its additionalGids), and a process file is used as it is.
 * The stand-in is recorded in the state directory while the process runs
 * (moat/execrec.h), for `moat ps --format json`. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/nsfs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "moat/agent_client.h"
#include "moat/container.h"
#include "moat/execrec.h"
#include "moat/hooks.h"
#include "moat/hostcgroup.h"
#include "moat/hypervisor.h"
#include "moat/json_gen.h"
#include "moat/log.h"
#include "moat/net.h"
#include "moat/oci.h"
#include "moat/process.h"
#include "moat/resources.h"
#include "moat/sandbox.h"
#include "moat/standin.h"
#include "moat/state.h"
#include "moat/util.h"

#define STREAM_TIMEOUT_MS 10000
#define STANDIN_READY_TIMEOUT_MS 10000
#define LOCK_TIMEOUT_MS 10000
#define CONNECT_TIMEOUT_MS 5000

/* ---- state, lock and agent of an existing container ---- */

int
moat_container_lock (const char *root, const char *id, int timeout_ms, int *lock_fd, moat_error_t *err)
{
        cleanup_free char *dir = NULL;
        cleanup_free char *path = NULL;
        cleanup_close int fd = -1;
        struct stat st;
        int64_t deadline = now_ms () + timeout_ms;

        if (moat_state_validate_id (id, err) < 0)
                return -1;
        dir = moat_state_dir (root, id);
        if (stat (dir, &st) < 0) {
                if (errno == ENOENT) {
                        moat_make_error (err, 0, "container \"%s\" does not exist", id);
                        (*err)->errno_ = ENOENT;
                        return -1;
                }
                return moat_make_error (err, errno, "stat %s", dir);
        }
        path = xasprintf_r ("%s/lock", dir);
        fd = open (path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT) { /* deleted meanwhile */
                        moat_make_error (err, 0, "container \"%s\" does not exist", id);
                        (*err)->errno_ = ENOENT;
                        return -1;
                }
                return moat_make_error (err, errno, "open %s", path);
        }
        for (;;) {
                if (flock (fd, LOCK_EX | LOCK_NB) == 0)
                        break;
                if (errno != EWOULDBLOCK && errno != EINTR)
                        return moat_make_error (err, errno, "lock %s", path);
                if (now_ms () >= deadline) {
                        moat_make_error (err, 0, "container \"%s\" is busy (another moat command holds its lock)", id);
                        (*err)->errno_ = EWOULDBLOCK;
                        return -1;
                }
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep (&ts, NULL);
        }
        *lock_fd = steal_fd (&fd);
        return 0;
}

static int
connect_agent (const struct moat_state *st, int timeout_ms, struct moat_agent **out, moat_error_t *err)
{
        if (st->vsock_socket == NULL || *st->vsock_socket == '\0')
                return moat_make_error (err, 0, "container \"%s\" has no agent socket in its state", st->id);
        if (moat_agent_open (st->vsock_socket, timeout_ms, out, err) < 0)
                return moat_error_wrap (err, "connect to the agent of %s", st->id);
        return 0;
}

/* Loads the state of a container that must be created, running or paused
 * (live status) and connects to its agent. */
static int
open_running (const char *root, const char *id, struct moat_state **out, struct moat_agent **a, moat_error_t *err)
{
        struct moat_state *st = NULL;
        const char *status;

        if (moat_state_load (root, id, &st, err) < 0)
                return -1;
        status = moat_state_live_status (st);
        if (strcmp (status, "running") != 0 && strcmp (status, "paused") != 0 && strcmp (status, "created") != 0) {
                moat_make_error (err, 0, "container \"%s\" is not running (status: %s)", id, status);
                (*err)->errno_ = EINVAL;
                moat_state_free (st);
                return -1;
        }
        if (connect_agent (st, CONNECT_TIMEOUT_MS, a, err) < 0) {
                moat_state_free (st);
                return -1;
        }
        *out = st;
        return 0;
}

int
moat_container_expect_status (const struct moat_context *ctx, const char *id, const char *allowed, const char *want,
                              moat_error_t *err)
{
        struct moat_state *st = NULL;
        const char *status;
        size_t n;
        int r = -1;

        if (moat_state_load (ctx->root, id, &st, err) < 0)
                return -1;
        status = moat_state_live_status (st);
        n = strlen (status);
        for (const char *p = allowed; *p;) {
                size_t len = strcspn (p, " ");
                if (len == n && strncmp (p, status, n) == 0) {
                        r = 0;
                        break;
                }
                p += len;
                p += strspn (p, " ");
        }
        if (r < 0)
                moat_make_error (err, 0, "container not %s (status: %s)", want, status);
        moat_state_free (st);
        return r;
}

/* ---- create ---- */

/* The stdio streams of a process (exec_id NULL: the init): one "tty", or
 * stdin, stdout and stderr. */
static int
open_streams (const char *sock, const char *id, const char *eid, bool terminal, int fds[3], moat_error_t *err)
{
        static const char *const names[] = {"stdin", "stdout", "stderr"};
        if (terminal) {
                fds[0] = moat_agent_open_stream (sock, id, eid, "tty", STREAM_TIMEOUT_MS, err);
                return fds[0] < 0 ? -1 : 0;
        }
        for (int i = 0; i < 3; i++) {
                fds[i] = moat_agent_open_stream (sock, id, eid, names[i], STREAM_TIMEOUT_MS, err);
                if (fds[i] < 0)
                        return -1;
        }
        return 0;
}

int
moat_write_pid_file (const char *path, pid_t pid, moat_error_t *err)
{
        cleanup_free char *tmp = NULL;
        char buf[32];
        int n = snprintf (buf, sizeof buf, "%d", (int)pid);
        const char *slash = strrchr (path, '/');

        /* in the same directory, so the rename is atomic */
        if (slash)
                tmp = xasprintf_r ("%.*s/.%s.moat-tmp", (int)(slash - path), path, slash + 1);
        else
                tmp = xasprintf_r (".%s.moat-tmp", path);
        if (write_file (tmp, buf, n, 0644, err) < 0)
                return moat_error_wrap (err, "pid file %s", path);
        if (rename (tmp, path) < 0) {
                int e = errno;
                unlink (tmp);
                return moat_make_error (err, e, "pid file %s", path);
        }
        return 0;
}

static bool
boot_interrupted (void *ctx)
{
        sigset_t p;
        sigpending (&p);
        return sigismember (&p, SIGTERM) || sigismember (&p, SIGINT) || sigismember (&p, SIGHUP) ||
               sigismember (&p, SIGQUIT);
}

/* The stand-in joins the sandbox's network namespace (the config's path,
 * or the new one create made before the VM booted: see moat_net_sandbox_ns),
 * so prestart hooks (Docker's networking) find it at
 * /proc/<state.pid>/ns/net. The guest has its own kernel: nothing of the
 * container runs in it. */
static int
standin_namespaces (int netns_fd, moat_error_t *err)
{
        if (netns_fd >= 0 && setns (netns_fd, CLONE_NEWNET) < 0)
                return moat_make_error (err, errno, "linux.namespaces: network: join the sandbox network namespace");
        return 0;
}

/* Namespace paths name host namespaces: each must be one of its type
 * (the guest gets new ones; the stand-in joins the network one). */
static int
check_namespace_paths (const struct oci_config *cfg, moat_error_t *err)
{
        for (size_t i = 0; cfg->linux_ && i < cfg->linux_->n_namespaces; i++) {
                const struct oci_namespace *ns = &cfg->linux_->namespaces[i];
                cleanup_close int fd = -1;
                int type;
                if (ns->path == NULL || *ns->path == '\0')
                        continue;
                fd = open (ns->path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return moat_make_error (err, errno, "linux.namespaces[%zu] (%s): %s", i, ns->type_name,
                                                ns->path);
                type = ioctl (fd, NS_GET_NSTYPE);
                if (type < 0 || type != ns->clone_flag)
                        return moat_make_error (err, 0, "linux.namespaces[%zu]: %s is not a %s namespace", i, ns->path,
                                                ns->type_name);
        }
        return 0;
}

struct standin_args {
        struct moat_sandbox *sb;
        struct moat_standin s;
        int slave;    /* terminal: the pty slave, else -1 */
        int sync;     /* our end of the socketpair */
        int close_fd; /* create's fd of the host mount namespace */
        int netns_fd; /* the sandbox network namespace, -1: none */
};

/* In the stand-in: moves the slave above 2 if it is there, then points 0, 1
 * and 2 at /dev/null. */
static int
stdio_to_null (struct standin_args *a, moat_error_t *err)
{
        int null_fd;

        if (a->slave <= STDERR_FILENO) {
                int fd = fcntl (a->slave, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
                if (fd < 0)
                        return moat_make_error (err, errno, "dup the pty slave");
                if (a->s.in_fd == a->slave)
                        a->s.in_fd = fd;
                if (a->s.out_fd == a->slave)
                        a->s.out_fd = fd;
                if (a->s.winsize_fd == a->slave)
                        a->s.winsize_fd = fd;
                a->slave = fd;
        }
        null_fd = open ("/dev/null", O_RDWR | O_CLOEXEC);
        if (null_fd < 0)
                return moat_make_error (err, errno, "open /dev/null");
        for (int i = STDIN_FILENO; i <= STDERR_FILENO; i++)
                if (null_fd != i && dup2 (null_fd, i) < 0) {
                        int e = errno;
                        close (null_fd);
                        return moat_make_error (err, e, "dup2 /dev/null to fd %d", i);
                }
        if (null_fd > STDERR_FILENO)
                close (null_fd);
        return 0;
}

/* In the child: report setup errors on sync as text, "ok" when ready;
 * then wait for "g" (the container exists) and stand in for it. */
static void __attribute__ ((noreturn)) standin_main (struct standin_args *a)
{
        cleanup_error moat_error_t err = NULL;
        struct moat_exit ex = {.status = 255};
        int rc, net_ifindex = 0;
        char net_name[16] = "";

        if (a->sb->lock_fd >= 0) /* the flock belongs to create, not to us */
                close (a->sb->lock_fd);
        if (a->close_fd >= 0)
                close (a->close_fd);
        setsid ();
        if (a->slave >= 0) {
                if (ioctl (a->slave, TIOCSCTTY, 0) < 0) {
                        moat_make_error (&err, errno, "make the pty our controlling terminal");
                        goto fail;
                }
                /* don't keep create's stdio (a pipe its caller reads to EOF, like
                 * go-runc's): the stand-in relays through the slave only */
                if (stdio_to_null (a, &err) < 0)
                        goto fail;
        }
        if (standin_namespaces (a->netns_fd, &err) < 0)
                goto fail;
        if (a->netns_fd >= 0)
                close (a->netns_fd);
        /* signals that come before "g" are forwarded once the process runs */
        moat_standin_block_signals ();
        if (write (a->sync, "ok", 2) != 2)
                _exit (1);
        /* "g", or "g<ifindex> <name>": the interface create connected to the
         * VM with tc, which we disconnect once the VM is gone */
        {
                char go[64];
                ssize_t n;
                do
                        n = read (a->sync, go, sizeof go - 1);
                while (n < 0 && errno == EINTR);
                if (n <= 0 || go[0] != 'g')
                        _exit (1); /* create failed after all */
                go[n] = '\0';
                if (n > 1 && sscanf (go + 1, "%d %15s", &net_ifindex, net_name) != 2)
                        net_ifindex = 0;
        }
        a->s.go_fd = -1;
        rc = moat_standin_run (&a->s, &ex, &err);
        if (net_ifindex > 0) {
                cleanup_error moat_error_t e = NULL;
                if (moat_net_disconnect (-1, net_ifindex, net_name, &e) < 0)
                        moat_log (MOAT_LOG_WARNING, "%s: disconnect %s: %s", a->sb->id, net_name, e->msg);
        }
        if (rc < 0) {
                char *m = xasprintf_r ("E%s", err->msg);
                /* the foreground run reports it; a detached one logs it */
                if (send (a->sync, m, strlen (m), MSG_NOSIGNAL) < 0) {
                        moat_error_wrap (&err, "stand-in of %s", a->sb->id);
                        moat_log (MOAT_LOG_ERROR, "%s", err->msg);
                }
                _exit (255);
        }
        moat_standin_exit (&ex);
fail:
        if (write (a->sync, err->msg, strlen (err->msg)) < 0) {
        }
        _exit (1);
}

/* Copies the bundle's config.json into the state dir: poststop hooks and
 * exec use the config as it was at create time. */
static int
save_config (struct moat_sandbox *sb, moat_error_t *err)
{
        cleanup_free char *src = xasprintf_r ("%s/config.json", sb->bundle);
        cleanup_free char *dst = xasprintf_r ("%s/config.json", sb->dir);
        cleanup_free char *data = NULL;
        size_t len = 0;
        if (read_file (src, &data, &len, err) < 0)
                return -1;
        return write_file (dst, data, len, 0600, err);
}

static int
wait_ready (int fd, pid_t child, moat_error_t *err)
{
        char buf[2048];
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;
        int r;
        do
                r = poll (&p, 1, STANDIN_READY_TIMEOUT_MS);
        while (r < 0 && errno == EINTR);
        if (r == 0)
                return moat_make_error (err, ETIMEDOUT, "the stand-in did not get ready");
        n = read (fd, buf, sizeof buf - 1);
        if (n == 2 && memcmp (buf, "ok", 2) == 0)
                return 0;
        if (n <= 0)
                return moat_make_error (err, 0, "the stand-in (pid %d) died during setup", (int)child);
        buf[n] = '\0';
        return moat_make_error (err, 0, "%s", buf);
}

/* moat_sandbox_destroy's callback on create's failure path (see there). */
static void
run_poststop (struct moat_sandbox *sb, void *ctx)
{
        cleanup_free char *sj = NULL;
        cleanup_error moat_error_t e = NULL;
        sb->state.pid = 0;
        sj = moat_state_to_oci_json (&sb->state, "stopped", 0);
        moat_hooks_run (sb->cfg, OCI_HOOK_POSTSTOP, sj, true, ctx, &e);
}

/* The namespaces a pod's container shares with its sandbox: the types its
 * config gives a path (CRI points them at the sandbox task's
 * /proc/<pid>/ns/...), among those a container in the VM can share. */
static size_t
pod_join_types (const struct oci_config *cfg, const char *join[4])
{
        static const char *const shareable[] = {"network", "ipc", "uts", "pid"};
        size_t n = 0;
        for (size_t i = 0; cfg->linux_ && i < cfg->linux_->n_namespaces; i++) {
                const struct oci_namespace *ns = &cfg->linux_->namespaces[i];
                if (ns->path == NULL || *ns->path == '\0')
                        continue;
                for (size_t k = 0; k < ARRAY_SIZE (shareable) && n < 4; k++)
                        if (strcmp (ns->type_name, shareable[k]) == 0)
                                join[n++] = shareable[k];
        }
        return n;
}

/* moat_container_create and moat_container_create_in: a sandbox of its own
 * (sandbox_id NULL) or a container added to the running sandbox. */
static int
create_container (const struct moat_context *ctx, const struct moat_container_create_opts *o, const char *sandbox_id,
                  moat_error_t *err)
{
        struct moat_sandbox_opts so = {0};
        struct moat_sandbox *sb = NULL;
        struct moat_stdio_spec stdio = {0};
        struct standin_args a = {.slave = -1, .sync = -1, .close_fd = -1, .netns_fd = -1};
        int fds[3] = {-1, -1, -1};
        int master = -1, sp[2] = {-1, -1};
        pid_t child = -1;
        bool terminal, own_tty, hooks_ran = false;
        cleanup_free char *cgpath = NULL;
        cleanup_oci_config struct oci_config *cfg = NULL;
        cleanup_free char *state_json = NULL;
        cleanup_close int host_mnt = -1;
        struct moat_hook_ns hns = {.mnt_fd = -1};
        cleanup_free struct moat_preserved_fd *extra = NULL;
        cleanup_close int netns_fd = -1;
        struct moat_net_iface *ifs = NULL;
        size_t n_ifs = 0;
        bool net_tap = false;
        size_t n_extra = o->preserve_fds > 0 ? o->preserve_fds : 0;
        sigset_t mask;

        /* ^C / SIGTERM during the boot abort it cleanly */
        sigemptyset (&mask);
        sigaddset (&mask, SIGTERM);
        sigaddset (&mask, SIGINT);
        sigaddset (&mask, SIGHUP);
        sigaddset (&mask, SIGQUIT);
        sigprocmask (SIG_BLOCK, &mask, NULL);
        signal (SIGPIPE, SIG_IGN);

        /* before anything opens an fd that could take one of their numbers */
        if (moat_preserved_fds_check (o->preserve_fds, &extra, err) < 0)
                return -1;

        so.root = ctx->root;
        so.id = o->id;
        so.bundle = o->bundle;
        so.debug = ctx->debug;
        so.die_with_parent = o->foreground;
        so.interrupted = boot_interrupted;

        /* what can be checked without a VM is checked first, on the
         * config moat_sandbox_create then takes over (it reports a
         * config that does not load, with the bundle's context) */
        if (oci_config_load (o->bundle, &cfg, err) == 0) {
                bool t = cfg->process && cfg->process->terminal;
                if (t && o->console_socket == NULL && !o->foreground)
                        return moat_make_error (
                                err, 0, "process.terminal is true: --console-socket is needed to hand out the pty");
                if (!t && o->console_socket)
                        return moat_make_error (err, 0, "--console-socket given but process.terminal is false");
                if (moat_hostcg_resolve (cfg->linux_ ? cfg->linux_->cgroups_path : NULL, ctx->root, o->id,
                                         ctx->systemd_cgroup, &cgpath, err) < 0)
                        return -1;
                if (check_namespace_paths (cfg, err) < 0)
                        return -1;
                /* the sandbox network namespace exists before the VM
                 * boots: its tap is made in it (a pod's container shares
                 * the sandbox's, in the VM) */
                if (sandbox_id == NULL && moat_net_sandbox_ns (cfg, &netns_fd, &net_tap, err) < 0)
                        return -1;
        } else
                moat_error_release (err);

        /* The share's bind mounts live in a mount namespace of their own,
         * which the VMM, moat-vsock and the stand-in keep alive: the host
         * never sees them (the container's rootfs is not "mounted on the
         * host") and they vanish with the last of those processes, even
         * if nobody runs delete. Hooks run in the host's namespace. */
        host_mnt = open ("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        if (host_mnt < 0)
                return moat_make_error (err, errno, "open /proc/self/ns/mnt");
        hns.mnt_fd = host_mnt;
        a.close_fd = host_mnt;
        so.net_tap = net_tap;
        so.netns_fd = netns_fd;
        so.cfg = cfg;
        cfg = NULL;
        if (sandbox_id) {
                /* a pod's container: the sandbox VMM's mount namespace,
                 * which moat_sandbox_join stages it in */
                if (moat_sandbox_join (&so, sandbox_id, &sb, err) < 0)
                        return -1;
        } else {
                if (unshare (CLONE_NEWNS) < 0) {
                        oci_config_free (so.cfg);
                        return moat_make_error (err, errno, "unshare the mount namespace");
                }
                if (mount (NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0) {
                        oci_config_free (so.cfg);
                        return moat_make_error (err, errno, "make / a slave mount");
                }
                if (moat_sandbox_create (&so, &sb, err) < 0)
                        return -1;
        }
        terminal = sb->cfg->process->terminal;
        own_tty = terminal && o->console_socket == NULL; /* foreground run on our terminal */
        if (save_config (sb, err) < 0)
                goto fail;

        /* host cgroup: VMM and moat-vsock now, the stand-in below (a
         * config that only loaded the second time: resolved now) */
        if (cgpath == NULL && moat_hostcg_resolve (sb->cfg->linux_ ? sb->cfg->linux_->cgroups_path : NULL, ctx->root,
                                                   o->id, ctx->systemd_cgroup, &cgpath, err) < 0)
                goto fail;
        sb->state.cgroup = xstrdup (cgpath);
        /* recorded before it exists: a create killed from here on leaves
         * a cgroup that delete knows */
        if (moat_sandbox_save_state (sb, err) < 0)
                goto fail;
        {
                /* a pod's container has only its stand-in here, without
                 * limits: the VM is the sandbox's, in the sandbox's cgroup */
                pid_t pids[3] = {0, 0, 0};
                struct moat_hostcg_limits lim;
                if (sandbox_id == NULL) {
                        pids[0] = sb->vmm_pid;
                        pids[1] = sb->vsockd_pid > 0 ? sb->vsockd_pid : 0;
                }
                moat_vm_host_limits (sb->cfg, sb->state.hypervisor, &lim);
                if ((sandbox_id ? moat_hostcg_enter (cgpath, pids, err)
                                : moat_hostcg_enter_limited (cgpath, &lim, pids, err)) < 0)
                        goto fail;
        }

        /* terminal: a host pty; the master goes to the console socket */
        if (terminal && !own_tty) {
                const struct oci_process *p = sb->cfg->process;
                if (moat_open_pty (&master, &a.slave, p->has_console_size ? p->console_height : 0,
                                   p->has_console_size ? p->console_width : 0, err) < 0)
                        goto fail;
                if (moat_send_console (o->console_socket, master, "/dev/ptmx", err) < 0)
                        goto fail;
                close (master);
                master = -1;
        }
        if (open_streams (sb->vsock_socket, o->id, NULL, terminal, fds, err) < 0)
                goto fail;
        if (moat_preserved_fds_open (sb->vsock_socket, o->id, NULL, extra, n_extra, STREAM_TIMEOUT_MS, err) < 0)
                goto fail;
        stdio.extra_fds = n_extra;

        /* the stand-in */
        if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
                moat_make_error (err, errno, "socketpair");
                goto fail;
        }
        a.sb = sb;
        a.sync = sp[1];
        a.netns_fd = netns_fd;
        a.s = (struct moat_standin){
                .vsock_socket = sb->vsock_socket,
                .id = sb->id,
                .exec_id = NULL,
                .terminal = terminal,
                .streams = {fds[0], fds[1], fds[2]},
                .in_fd = a.slave >= 0 ? a.slave : STDIN_FILENO,
                .out_fd = a.slave >= 0 ? a.slave : STDOUT_FILENO,
                .err_fd = terminal ? -1 : STDERR_FILENO,
                .winsize_fd = a.slave >= 0 ? a.slave : (own_tty && isatty (STDIN_FILENO) ? STDIN_FILENO : -1),
                .raw_in = own_tty,
                .go_fd = -1,
                .power_off = sandbox_id == NULL, /* a pod's VM goes with its sandbox */
                .vmm_pid = sb->vmm_pid,
                .vmm_start = sb->state.vmm_start,
                .extra = extra,
                .n_extra = n_extra,
        };
        child = fork ();
        if (child < 0) {
                moat_make_error (err, errno, "fork the stand-in");
                goto fail;
        }
        if (child == 0) {
                close (sp[0]);
                standin_main (&a);
        }
        close (sp[1]);
        sp[1] = -1;
        for (int i = 0; i < 3; i++)
                if (fds[i] >= 0) {
                        close (fds[i]);
                        fds[i] = -1;
                }
        if (a.slave >= 0) {
                close (a.slave);
                a.slave = -1;
        }
        /* the stand-in has the preserved fds: their readers see EOF when
         * it (and the container) are done, not when `run` is */
        moat_preserved_fds_close_streams (extra, n_extra);
        for (size_t i = 0; i < n_extra; i++)
                close (extra[i].host_fd);
        if (wait_ready (sp[0], child, err) < 0)
                goto fail;
        sb->state.pid = child;
        sb->state.pid_start = moat_pid_start_time (child);
        if (moat_hostcg_add (cgpath, child, err) < 0)
                goto fail;
        if (moat_sandbox_save_state (sb, err) < 0)
                goto fail;

        /* prestart (deprecated, still what Docker 20.10 uses) and
         * createRuntime: in our namespaces, state "creating" */
        state_json = moat_state_to_oci_json (&sb->state, "creating", 0);
        hooks_ran = true;
        if (moat_hooks_run (sb->cfg, OCI_HOOK_PRESTART, state_json, false, &hns, err) < 0 ||
            moat_hooks_run (sb->cfg, OCI_HOOK_CREATE_RUNTIME, state_json, false, &hns, err) < 0)
                goto fail;
        /* the hooks made the network (Docker's veth); connect the interface
         * to the VM's tap */
        if (sb->tap[0] && moat_net_connect (netns_fd, sb->tap, &ifs, &n_ifs, err) < 0)
                goto fail;
        /* the container, held; the agent runs the createContainer hooks in
         * its namespaces, in the host view the share lends for that */
        stdio.terminal = terminal;
        stdio.in = stdio.out = stdio.err = !terminal;
        if (terminal) {
                const struct oci_process *p = sb->cfg->process;
                struct winsize ws;
                stdio.rows = p->has_console_size ? p->console_height : 24;
                stdio.cols = p->has_console_size ? p->console_width : 80;
                if (own_tty && ioctl (STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) {
                        stdio.rows = ws.ws_row;
                        stdio.cols = ws.ws_col;
                }
        }
        moat_agent_set_hooks_time (sb->agent, moat_hooks_time_ms (sb->cfg, OCI_HOOK_CREATE_CONTAINER));
        {
                const char *join[4];
                struct moat_agent_pod pod = {.sandbox_id = sandbox_id, .join = join};
                if (sandbox_id)
                        pod.n_join = pod_join_types (sb->cfg, join);
                if (moat_agent_create_container_net (sb->agent, o->id, sb->guest_config, sb->bundle, &stdio, ifs, n_ifs,
                                                     sandbox_id ? &pod : NULL, NULL, err) < 0)
                        goto fail;
        }
        if (moat_share_drop_host_view (&sb->share, err) < 0)
                goto fail;
        free (sb->state.status);
        sb->state.status = xstrdup ("created");
        if (moat_sandbox_save_state (sb, err) < 0)
                goto fail;
        if (o->pid_file && moat_write_pid_file (o->pid_file, child, err) < 0)
                goto fail;
        {
                cleanup_free char *go = n_ifs ? xasprintf_r ("g%d %s", ifs[0].ifindex, ifs[0].name) : xstrdup ("g");
                if (write (sp[0], go, strlen (go)) != (ssize_t)strlen (go)) {
                        moat_make_error (err, errno, "the stand-in (pid %d) died", (int)child);
                        goto fail;
                }
        }
        moat_net_ifaces_free (ifs, n_ifs);
        ifs = NULL;
        n_ifs = 0;
        if (o->standin_sync)
                *o->standin_sync = sp[0];
        else
                close (sp[0]);
        if (o->standin_pid)
                *o->standin_pid = child;
        /* The VM, moat-vsock and the stand-in stay. sb is not destroyed:
         * that would tear them down; the process exits now. */
        if (sb->lock_fd >= 0)
                close (sb->lock_fd);
        return 0;

fail:
        if (n_ifs) {
                cleanup_error moat_error_t e = NULL;
                if (moat_net_disconnect (netns_fd, ifs[0].ifindex, ifs[0].name, &e) < 0)
                        moat_warn ("%s: disconnect %s: %s", o->id, ifs[0].name, e->msg);
        }
        moat_net_ifaces_free (ifs, n_ifs);
        if (sp[0] >= 0)
                close (sp[0]); /* the stand-in reads EOF and exits */
        if (sp[1] >= 0)
                close (sp[1]);
        if (master >= 0)
                close (master);
        if (a.slave >= 0)
                close (a.slave);
        for (int i = 0; i < 3; i++)
                if (fds[i] >= 0)
                        close (fds[i]);
        moat_preserved_fds_close_streams (extra, n_extra);
        if (child > 0) {
                int st;
                if (moat_wait_pid (child, 2000, &st) == 0) {
                        kill (child, SIGKILL);
                        waitpid (child, &st, 0);
                }
        }
        if (hooks_ran) {
                /* runtime.md: after a failing prestart/createRuntime hook
                 * the lifecycle continues with delete and poststop: the
                 * poststop hooks run once the VM, the share and the host
                 * cgroup are gone, before the state dir is removed */
                sb->on_destroyed = run_poststop;
                sb->on_destroyed_ctx = &hns;
        }
        moat_sandbox_destroy (sb, NULL); /* removes sb->state.cgroup too */
        return -1;
}

int
moat_container_create (const struct moat_context *ctx, const struct moat_container_create_opts *o, moat_error_t *err)
{
        return create_container (ctx, o, NULL, err);
}

int
moat_container_create_in (const struct moat_context *ctx, const char *sandbox_id,
                          const struct moat_container_create_opts *o, moat_error_t *err)
{
        if (sandbox_id == NULL || *sandbox_id == '\0')
                return moat_make_error (err, EINVAL, "create %s: no sandbox id", o->id);
        return create_container (ctx, o, sandbox_id, err);
}

/* ---- start, kill, wait, delete ---- */

/* The config as it was at create time (saved in the state dir). */
static int
load_saved_config (const char *root, const char *id, struct oci_config **cfg, moat_error_t *err)
{
        cleanup_free char *dir = moat_state_dir (root, id);
        return oci_config_load (dir, cfg, err);
}

int
moat_container_start (const struct moat_context *ctx, const char *id, moat_error_t *err)
{
        cleanup_close int lock = -1;
        struct moat_state *st = NULL;
        struct moat_agent *a = NULL;
        cleanup_oci_config struct oci_config *cfg = NULL;
        cleanup_free char *sj = NULL;
        const char *status;
        int rc = -1;

        if (moat_state_validate_id (id, err) < 0 || moat_state_lock (ctx->root, id, &lock, err) < 0)
                return -1;
        /* reload under the lock: a delete may have won the race */
        if (moat_state_load (ctx->root, id, &st, err) < 0)
                return -1;
        status = moat_state_live_status (st);
        if (strcmp (status, "created") != 0) {
                if (strcmp (status, "running") == 0 || strcmp (status, "paused") == 0)
                        moat_make_error (err, 0, "cannot start an already %s container", status);
                else if (strcmp (status, "stopped") == 0)
                        moat_make_error (err, 0, "cannot start a container that has stopped");
                else
                        moat_make_error (err, 0, "cannot start a container that is %s", status);
                goto out;
        }
        if (load_saved_config (ctx->root, id, &cfg, err) < 0)
                goto out;
        if (moat_agent_open (st->vsock_socket, CONNECT_TIMEOUT_MS, &a, err) < 0) {
                moat_error_wrap (err, "connect to the agent");
                goto out;
        }
        moat_agent_set_hooks_time (a, moat_hooks_time_ms (cfg, OCI_HOOK_START_CONTAINER));
        if (moat_agent_start_container (a, id, err) < 0) {
                /* a failing startContainer hook: the process must not run
                 * and the container ends up stopped */
                cleanup_error moat_error_t e = NULL;
                if (moat_agent_signal (a, id, NULL, SIGKILL, true, &e) < 0)
                        moat_debug ("kill %s after the failed start: %s", id, e->msg);
                goto out;
        }
        free (st->status);
        st->status = xstrdup ("running");
        if (moat_state_save (ctx->root, st, err) < 0) {
                /* a start that cannot record it (a full disk) must not leave
                 * the process running behind a state that says created */
                cleanup_error moat_error_t e = NULL;
                if (moat_agent_signal (a, id, NULL, SIGKILL, true, &e) < 0)
                        moat_debug ("kill %s after the start it could not record: %s", id, e->msg);
                goto out;
        }
        sj = moat_state_to_oci_json (st, "running", 0);
        if (moat_hooks_run (cfg, OCI_HOOK_POSTSTART, sj, false, NULL, err) < 0) {
                /* runtime-spec 1.3: a failing poststart hook is an error
                 * and the container is stopped */
                cleanup_error moat_error_t e = NULL;
                if (moat_agent_signal (a, id, NULL, SIGKILL, true, &e) < 0)
                        moat_debug ("kill %s after the failed poststart hook: %s", id, e->msg);
                goto out;
        }
        rc = 0;
out:
        moat_agent_free (a);
        moat_state_free (st);
        return rc;
}

int
moat_container_kill (const struct moat_context *ctx, const char *id, int sig, bool all, moat_error_t *err)
{
        return moat_container_kill_process (ctx, id, NULL, sig, all, err);
}

int
moat_container_kill_process (const struct moat_context *ctx, const char *id, const char *exec_id, int sig, bool all,
                             moat_error_t *err)
{
        struct moat_state *st = NULL;
        struct moat_agent *a = NULL;
        const char *status;
        int rc = -1;

        if (moat_state_load (ctx->root, id, &st, err) < 0)
                return -1;
        status = moat_state_live_status (st);
        if (strcmp (status, "created") != 0 && strcmp (status, "running") != 0 && strcmp (status, "paused") != 0) {
                /* as runc: --all on a stopped container has nothing left to
                 * signal and succeeds (containerd's shim may send it after
                 * the init process exited). "container not running" is the text
                 * containerd and podman match on. */
                if (all && strcmp (status, "stopped") == 0)
                        rc = 0;
                else
                        moat_make_error (err, 0, "container not running (%s)", status);
                goto out;
        }
        if (sig == 0) {
                /* the stand-in and the VM are alive (live status) */
                rc = 0;
                goto out;
        }
        if (moat_agent_open (st->vsock_socket, CONNECT_TIMEOUT_MS, &a, err) < 0) {
                moat_error_wrap (err, "connect to the agent");
                goto out;
        }
        if (moat_agent_signal (a, id, exec_id, sig, exec_id ? false : all, err) < 0)
                goto out;
        rc = 0;
out:
        moat_agent_free (a);
        moat_state_free (st);
        return rc;
}

int
moat_container_wait (const struct moat_context *ctx, const char *id, const char *exec_id, struct moat_exit *ex,
                     moat_error_t *err)
{
        struct moat_state *st = NULL;
        struct moat_agent *a = NULL;
        int rc;

        if (moat_state_load (ctx->root, id, &st, err) < 0)
                return -1;
        rc = connect_agent (st, CONNECT_TIMEOUT_MS, &a, err);
        if (rc == 0)
                rc = moat_agent_wait_exit (a, id, exec_id, ex, err);
        moat_agent_free (a);
        moat_state_free (st);
        return rc;
}

int
moat_container_delete (const struct moat_context *ctx, const char *id, bool force, moat_error_t *err)
{
        cleanup_close int lock = -1;
        struct moat_state *st = NULL;
        struct moat_sandbox *sb = NULL;
        cleanup_free char *dir = NULL;
        const char *status;

        if (moat_state_validate_id (id, err) < 0)
                return -1;
        dir = moat_state_dir (ctx->root, id);
        if (moat_state_lock (ctx->root, id, &lock, err) < 0) {
                /* --force: a create killed between making the directory
                 * and its lock left an empty directory; nothing else is
                 * there (a create still that far fails on its own) */
                if (force && (*err)->errno_ == ENOENT && access (dir, F_OK) == 0) {
                        moat_error_release (err);
                        return moat_state_remove (ctx->root, id, err);
                }
                goto missing;
        }
        if (moat_state_load (ctx->root, id, &st, err) < 0) {
                /* a create that died before writing its state leaves a
                 * directory with the lock only: --force removes it */
                if (force && (*err)->errno_ == ENOENT) {
                        moat_error_release (err);
                        return moat_state_remove (ctx->root, id, err);
                }
                goto missing;
        }
        /* "creating" counts as stopped here: we hold the lock, so the
         * create that wrote it is gone */
        status = moat_state_live_status (st);
        if (strcmp (status, "stopped") != 0 && !force) {
                moat_make_error (err, 0, "cannot delete a container that is not stopped (%s); use --force", status);
                moat_state_free (st);
                return -1;
        }
        /* everything on the host (VM, stand-in, moat-vsock, strays,
         * mounts, cgroup), the poststop hooks, the state last: the id is
         * free once it is gone (a failure keeps the state: delete can
         * retry) */
        if (moat_sandbox_load (ctx->root, st, &sb, err) < 0)
                return -1;
        sb->on_destroyed = run_poststop;
        return moat_sandbox_destroy (sb, err);
missing:
        if (force && (*err)->errno_ == ENOENT) {
                moat_error_release (err);
                return 0;
        }
        return -1;
}

/* ---- exec ---- */

static void
gen_strv (yajl_gen g, yajl_val base, char **extra, size_t n_extra)
{
        yajl_gen_array_open (g);
        if (base && YAJL_IS_ARRAY (base))
                for (size_t i = 0; i < YAJL_GET_ARRAY (base)->len; i++)
                        moat_gen_value (g, YAJL_GET_ARRAY (base)->values[i]);
        for (size_t i = 0; i < n_extra; i++)
                moat_gen_str (g, extra[i]);
        yajl_gen_array_close (g);
}

static int
parse_user (const char *s, long *uid, long *gid, moat_error_t *err)
{
        char *end;
        *uid = strtol (s, &end, 10);
        *gid = -1;
        if (end == s || *uid < 0 || (*end && *end != ':'))
                return moat_make_error (err, 0, "--user \"%s\": expected UID[:GID] (numbers)", s);
        if (*end == ':') {
                const char *gs = end + 1;
                *gid = strtol (gs, &end, 10);
                if (end == gs || *end || *gid < 0)
                        return moat_make_error (err, 0, "--user \"%s\": expected UID[:GID] (numbers)", s);
        }
        return 0;
}

/* "user": the container's, with --user's uid (and gid) and the
 * --additional-gids appended to its additionalGids, as runc does. */
static void
gen_user (yajl_gen g, yajl_val base, const struct moat_container_exec_opts *o, long uid, long gid)
{
        static const char *const up[] = {"user", NULL};
        yajl_val bu = base ? oci_tree_get (base, (const char *const *)up) : NULL;
        yajl_val bgids = NULL;
        bool have_uid = false, have_gid = false;

        moat_gen_str (g, "user");
        yajl_gen_map_open (g);
        for (size_t i = 0; bu && YAJL_IS_OBJECT (bu) && i < YAJL_GET_OBJECT (bu)->len; i++) {
                const char *k = YAJL_GET_OBJECT (bu)->keys[i];
                if (strcmp (k, "additionalGids") == 0) {
                        bgids = YAJL_GET_OBJECT (bu)->values[i];
                        continue;
                }
                if ((strcmp (k, "uid") == 0 && uid >= 0) || (strcmp (k, "gid") == 0 && gid >= 0))
                        continue;
                have_uid |= strcmp (k, "uid") == 0;
                have_gid |= strcmp (k, "gid") == 0;
                moat_gen_str (g, k);
                moat_gen_value (g, YAJL_GET_OBJECT (bu)->values[i]);
        }
        if (uid >= 0 || !have_uid) {
                moat_gen_str (g, "uid");
                yajl_gen_integer (g, uid >= 0 ? uid : 0);
        }
        if (gid >= 0 || !have_gid) {
                moat_gen_str (g, "gid");
                yajl_gen_integer (g, gid >= 0 ? gid : 0);
        }
        if ((bgids && YAJL_IS_ARRAY (bgids)) || o->n_gids) {
                moat_gen_str (g, "additionalGids");
                yajl_gen_array_open (g);
                for (size_t i = 0; bgids && YAJL_IS_ARRAY (bgids) && i < YAJL_GET_ARRAY (bgids)->len; i++)
                        moat_gen_value (g, YAJL_GET_ARRAY (bgids)->values[i]);
                for (size_t i = 0; i < o->n_gids; i++)
                        yajl_gen_integer (g, o->gids[i]);
                yajl_gen_array_close (g);
        }
        yajl_gen_map_close (g);
}

/* The process JSON for the agent: the container's process with the
 * command line and options applied. */
static int
build_process (const char *root, const char *id, const struct moat_container_exec_opts *o, char **out, bool *terminal,
               moat_error_t *err)
{
        cleanup_free char *dir = moat_state_dir (root, id);
        cleanup_oci_config struct oci_config *cfg = NULL;
        static const char *const proc_path[] = {"process", NULL};
        static const char *const cap_sets[] = {"bounding", "effective", "permitted", "ambient"};
        yajl_val base;
        yajl_gen g;
        const unsigned char *buf;
        size_t len;
        long uid = -1, gid = -1;

        if (o->user && parse_user (o->user, &uid, &gid, err) < 0)
                return -1;
        if (oci_config_load (dir, &cfg, err) < 0)
                return moat_error_wrap (err, "the container's config");
        base = oci_tree_get (cfg->tree, (const char *const *)proc_path);
        g = yajl_gen_alloc (NULL);
        yajl_gen_map_open (g);
        for (size_t i = 0; base && YAJL_IS_OBJECT (base) && i < YAJL_GET_OBJECT (base)->len; i++) {
                const char *k = YAJL_GET_OBJECT (base)->keys[i];
                yajl_val v = YAJL_GET_OBJECT (base)->values[i];
                if (strcmp (k, "args") == 0 || strcmp (k, "terminal") == 0 || strcmp (k, "consoleSize") == 0 ||
                    strcmp (k, "env") == 0 || strcmp (k, "capabilities") == 0 || (strcmp (k, "cwd") == 0 && o->cwd) ||
                    (strcmp (k, "user") == 0 && (o->user || o->n_gids)) ||
                    (strcmp (k, "noNewPrivileges") == 0 && o->no_new_privs))
                        continue;
                moat_gen_str (g, k);
                moat_gen_value (g, v);
        }
        moat_gen_str (g, "args");
        gen_strv (g, NULL, o->args, strv_len (o->args));
        moat_gen_str (g, "terminal");
        yajl_gen_bool (g, o->tty);
        moat_gen_str (g, "env");
        {
                static const char *const p[] = {"env", NULL};
                gen_strv (g, base ? oci_tree_get (base, (const char *const *)p) : NULL, o->env, o->n_env);
        }
        {
                static const char *const p[] = {"capabilities", NULL};
                yajl_val caps = base ? oci_tree_get (base, (const char *const *)p) : NULL;
                if (caps || o->n_caps) {
                        moat_gen_str (g, "capabilities");
                        yajl_gen_map_open (g);
                        for (size_t i = 0; caps && YAJL_IS_OBJECT (caps) && i < YAJL_GET_OBJECT (caps)->len; i++) {
                                const char *k = YAJL_GET_OBJECT (caps)->keys[i];
                                bool extended = false;
                                for (size_t j = 0; j < ARRAY_SIZE (cap_sets); j++)
                                        extended |= strcmp (k, cap_sets[j]) == 0;
                                moat_gen_str (g, k);
                                if (extended)
                                        gen_strv (g, YAJL_GET_OBJECT (caps)->values[i], o->caps, o->n_caps);
                                else
                                        moat_gen_value (g, YAJL_GET_OBJECT (caps)->values[i]);
                        }
                        for (size_t j = 0; j < ARRAY_SIZE (cap_sets) && o->n_caps; j++) {
                                const char *const p2[] = {cap_sets[j], NULL};
                                if (caps && oci_tree_get (caps, p2))
                                        continue;
                                moat_gen_str (g, cap_sets[j]);
                                gen_strv (g, NULL, o->caps, o->n_caps);
                        }
                        yajl_gen_map_close (g);
                }
        }
        if (o->cwd) {
                moat_gen_str (g, "cwd");
                moat_gen_str (g, o->cwd);
        }
        if (o->user || o->n_gids)
                gen_user (g, base, o, uid, gid);
        if (o->no_new_privs) {
                moat_gen_str (g, "noNewPrivileges");
                yajl_gen_bool (g, 1);
        }
        yajl_gen_map_close (g);
        yajl_gen_get_buf (g, &buf, &len);
        *out = xstrndup ((const char *)buf, len);
        yajl_gen_free (g);
        *terminal = o->tty;
        return 0;
}

static char *
new_exec_id (void)
{
        unsigned char r[8];
        char hex[17];
        if (getrandom (r, sizeof r, 0) != sizeof r) {
                int64_t t = now_ms () ^ getpid ();
                memcpy (r, &t, sizeof r);
        }
        for (int i = 0; i < 8; i++)
                snprintf (hex + 2 * i, 3, "%02x", r[i]);
        return xasprintf_r ("exec-%s", hex);
}

/* Records the stand-in for `moat ps --format json`; a failure (the
 * container deleted meanwhile) only costs ps that pid. */
static void
record_standin (const struct moat_state *st, const char *eid, pid_t pid)
{
        cleanup_error moat_error_t e = NULL;
        if (moat_execrec_add (st->dir, eid, pid, &e) < 0)
                moat_debug ("exec %s in %s: record the stand-in: %s", eid, st->id, e->msg);
}

int
moat_container_exec (const struct moat_context *ctx, const char *id, const struct moat_container_exec_opts *o,
                     int *exit_code, moat_error_t *err)
{
        struct moat_state *st = NULL;
        struct moat_agent *a = NULL;
        cleanup_free char *process_json = NULL;
        cleanup_free char *eid = o->exec_id ? xstrdup (o->exec_id) : new_exec_id ();
        struct moat_stdio_spec stdio = {0};
        struct moat_standin s = {0};
        struct moat_exit ex = {0};
        int fds[3] = {-1, -1, -1};
        int master = -1, slave = -1, rc = -1, r;
        sigset_t old_mask;
        bool terminal = false, own_tty;
        const char *status;
        pid_t child;
        cleanup_free struct moat_preserved_fd *extra = NULL;
        size_t n_extra = o->preserve_fds;

        if (moat_preserved_fds_check (o->preserve_fds, &extra, err) < 0)
                return -1;
        if (moat_state_load (ctx->root, id, &st, err) < 0)
                return -1;
        status = moat_state_live_status (st);
        if (strcmp (status, "running") != 0 && strcmp (status, "created") != 0) {
                moat_make_error (err, 0, "cannot exec in a %s container", status);
                goto out;
        }
        if (o->process_json || o->process_file) {
                size_t len;
                struct oci_process *p = NULL;
                if (o->process_json)
                        process_json = xstrdup (o->process_json);
                else if (read_file (o->process_file, &process_json, &len, err) < 0)
                        goto out;
                if (oci_process_parse (process_json, o->process_file ? o->process_file : "process", &p, err) < 0)
                        goto out;
                terminal = p->terminal;
                oci_process_free (p);
        } else if (build_process (ctx->root, id, o, &process_json, &terminal, err) < 0)
                goto out;
        own_tty = terminal && o->console_socket == NULL;
        if (own_tty && o->detach) {
                moat_make_error (err, 0, "a terminal with --detach needs --console-socket");
                goto out;
        }
        if (!terminal && o->console_socket) {
                moat_make_error (err, 0, "--console-socket given but the process has no terminal (use -t)");
                goto out;
        }
        if (moat_agent_open (st->vsock_socket, 5000, &a, err) < 0) {
                moat_error_wrap (err, "connect to the agent");
                goto out;
        }
        stdio.terminal = terminal;
        stdio.in = stdio.out = stdio.err = !terminal;
        stdio.rows = 24;
        stdio.cols = 80;
        if (terminal && !own_tty) {
                if (moat_open_pty (&master, &slave, 24, 80, err) < 0)
                        goto out;
                if (moat_send_console (o->console_socket, master, "/dev/ptmx", err) < 0)
                        goto out;
                close (master);
                master = -1;
        }
        if (terminal) {
                struct winsize ws;
                int fd = own_tty ? STDIN_FILENO : slave;
                if (ioctl (fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) {
                        stdio.rows = ws.ws_row;
                        stdio.cols = ws.ws_col;
                }
        }
        if (open_streams (st->vsock_socket, id, eid, terminal, fds, err) < 0)
                goto out;
        if (moat_preserved_fds_open (st->vsock_socket, id, eid, extra, n_extra, STREAM_TIMEOUT_MS, err) < 0)
                goto out;
        stdio.extra_fds = n_extra;
        /* from the moment the process exists, the stand-in forwards every
         * signal (the detached one inherits the mask; we restore ours) */
        sigprocmask (SIG_SETMASK, NULL, &old_mask);
        moat_standin_block_signals ();
        if (moat_agent_exec_process (a, id, eid, process_json, &stdio, NULL, err) < 0)
                goto out;
        moat_agent_free (a);
        a = NULL;

        s = (struct moat_standin){
                .vsock_socket = st->vsock_socket,
                .id = id,
                .exec_id = eid,
                .terminal = terminal,
                .streams = {fds[0], fds[1], fds[2]},
                .in_fd = slave >= 0 ? slave : STDIN_FILENO,
                .out_fd = slave >= 0 ? slave : STDOUT_FILENO,
                .err_fd = terminal ? -1 : STDERR_FILENO,
                .winsize_fd = slave >= 0 ? slave : (own_tty && isatty (STDIN_FILENO) ? STDIN_FILENO : -1),
                .raw_in = own_tty,
                .go_fd = -1,
                .vmm_pid = st->vmm_pid,
                .vmm_start = st->vmm_start,
                .extra = extra,
                .n_extra = n_extra,
        };
        if (!o->detach) {
                /* we are the stand-in */
                if (o->pid_file && moat_write_pid_file (o->pid_file, getpid (), err) < 0)
                        goto out;
                record_standin (st, eid, getpid ());
                fds[0] = fds[1] = fds[2] = -1; /* moat_standin_run closes them */
                r = moat_standin_run (&s, &ex, err);
                moat_execrec_remove (st->dir, eid);
                if (r < 0)
                        goto out;
                *exit_code = ex.status;
                rc = 0;
                goto out;
        }
        child = fork ();
        if (child < 0) {
                moat_make_error (err, errno, "fork the stand-in");
                goto out;
        }
        if (child == 0) {
                cleanup_error moat_error_t e = NULL;
                char ns[64];
                int nfd;
                setsid ();
                if (slave >= 0)
                        ioctl (slave, TIOCSCTTY, 0);
                /* the host-side network namespace of the container */
                snprintf (ns, sizeof ns, "/proc/%d/ns/net", (int)st->pid);
                nfd = open (ns, O_RDONLY | O_CLOEXEC);
                if (nfd >= 0 && moat_pid_alive (st->pid, st->pid_start)) {
                        if (setns (nfd, CLONE_NEWNET) < 0)
                                moat_debug ("exec stand-in: join %s: %s", ns, strerror (errno));
                }
                if (nfd >= 0)
                        close (nfd);
                r = moat_standin_run (&s, &ex, &e);
                moat_execrec_remove (st->dir, eid);
                if (r < 0) {
                        moat_error_wrap (&e, "stand-in of exec %s in %s", eid, id);
                        moat_log (MOAT_LOG_ERROR, "%s", e->msg);
                        _exit (255);
                }
                moat_standin_exit (&ex);
        }
        sigprocmask (SIG_SETMASK, &old_mask, NULL);
        if (st->cgroup) {
                cleanup_error moat_error_t e = NULL;
                if (moat_hostcg_add (st->cgroup, child, &e) < 0)
                        moat_debug ("%s", e->msg);
        }
        /* before we return: a `ps` right after `exec -d` lists it (a
         * stand-in done before this is dropped by ps as dead) */
        record_standin (st, eid, child);
        if (o->pid_file && moat_write_pid_file (o->pid_file, child, err) < 0) {
                kill (child, SIGKILL);
                goto out;
        }
        *exit_code = 0;
        rc = 0;
out:
        for (int i = 0; i < 3; i++)
                if (fds[i] >= 0)
                        close (fds[i]);
        moat_preserved_fds_close_streams (extra, n_extra);
        if (master >= 0)
                close (master);
        if (slave >= 0)
                close (slave);
        moat_agent_free (a);
        moat_state_free (st);
        return rc;
}

/* ---- pause, resume, update, stats ---- */

static int
pause_resume (const char *root, const char *id, bool pause, moat_error_t *err)
{
        cleanup_close int lock_fd = -1;
        struct moat_state *st = NULL;
        struct moat_agent *a = NULL;
        const char *status, *want = pause ? "running" : "paused";
        int r = -1;

        if (moat_container_lock (root, id, LOCK_TIMEOUT_MS, &lock_fd, err) < 0)
                return -1;
        if (moat_state_load (root, id, &st, err) < 0)
                return -1;
        status = moat_state_live_status (st);
        if (strcmp (status, want) != 0) {
                if (pause && strcmp (status, "paused") == 0)
                        moat_make_error (err, 0, "container \"%s\" is already paused", id);
                else
                        moat_make_error (err, 0, "container \"%s\" is not %s (status: %s)", id,
                                         pause ? "running" : "paused", status);
                (*err)->errno_ = EINVAL;
                goto out;
        }
        if (connect_agent (st, CONNECT_TIMEOUT_MS, &a, err) < 0)
                goto out;
        if ((pause ? moat_agent_pause (a, id, err) : moat_agent_resume (a, id, err)) < 0)
                goto out;
        free (st->status);
        st->status = xstrdup (pause ? "paused" : "running");
        if (moat_state_save (root, st, err) < 0)
                goto out;
        r = 0;
out:
        moat_agent_free (a);
        moat_state_free (st);
        return r;
}

int
moat_container_pause (const struct moat_context *ctx, const char *id, moat_error_t *err)
{
        if (moat_container_expect_status (ctx, id, "running", "running", err) < 0)
                return -1;
        return pause_resume (ctx->root, id, true, err);
}

int
moat_container_resume (const struct moat_context *ctx, const char *id, moat_error_t *err)
{
        if (moat_container_expect_status (ctx, id, "paused", "paused", err) < 0)
                return -1;
        return pause_resume (ctx->root, id, false, err);
}

int
moat_container_update (const struct moat_context *ctx, const char *id, const char *resources_json, moat_error_t *err)
{
        cleanup_free char *sent = NULL;
        struct moat_state *st = NULL;
        struct moat_agent *a = NULL;
        int rc = -1;

        if (resources_json && moat_resources_drop_unchanged (resources_json, &sent, err) < 0)
                return -1;
        if (sent)
                moat_debug ("update %s: %s", id, sent);
        if (moat_container_expect_status (ctx, id, "created running paused", "running", err) < 0)
                return -1;
        if (sent == NULL)
                return 0;
        if (open_running (ctx->root, id, &st, &a, err) == 0 && moat_agent_update (a, id, sent, err) == 0)
                rc = 0;
        /* a new CPU quota applies to the sandbox's host cgroup too (its
         * memory stays sized by the guest's RAM, which does not change) */
        if (rc == 0 && st->cgroup) {
                struct moat_hostcg_limits lim;
                int q = moat_hostcg_limits_from_update (sent, &lim, err);
                if (q < 0 || (q > 0 && moat_hostcg_set_limits (st->cgroup, &lim, err) < 0))
                        rc = moat_error_wrap (err, "update %s: host cgroup", id);
        }
        moat_agent_free (a);
        moat_state_free (st);
        return rc;
}

int
moat_container_stats (const struct moat_context *ctx, const char *id, struct moat_stats *s, moat_error_t *err)
{
        struct moat_state *st = NULL;
        struct moat_agent *a = NULL;
        int rc = -1;

        if (open_running (ctx->root, id, &st, &a, err) == 0 && moat_agent_stats (a, id, s, err) == 0)
                rc = 0;
        moat_agent_free (a);
        moat_state_free (st);
        return rc;
}

static void
ku64 (yajl_gen g, const char *k, uint64_t v)
{
        char buf[32];
        int n = snprintf (buf, sizeof buf, "%llu", (unsigned long long)v);
        moat_gen_str (g, k);
        yajl_gen_number (g, buf, n);
}

char *
moat_stats_event_json (const char *id, const struct moat_stats *s)
{
        yajl_gen g = yajl_gen_alloc (NULL);
        const unsigned char *buf;
        size_t len;
        char *out;

        yajl_gen_map_open (g);
        moat_gen_str (g, "type");
        moat_gen_str (g, "stats");
        moat_gen_str (g, "id");
        moat_gen_str (g, id);
        moat_gen_str (g, "data");
        yajl_gen_map_open (g);

        /* cpu: nanoseconds, like runc */
        moat_gen_str (g, "cpu");
        yajl_gen_map_open (g);
        moat_gen_str (g, "usage");
        yajl_gen_map_open (g);
        ku64 (g, "total", s->cpu_usage_usec * 1000);
        ku64 (g, "kernel", s->cpu_system_usec * 1000);
        ku64 (g, "user", s->cpu_user_usec * 1000);
        yajl_gen_map_close (g);
        moat_gen_str (g, "throttling");
        yajl_gen_map_open (g);
        yajl_gen_map_close (g);
        yajl_gen_map_close (g);

        /* memory: no limit is reported as the largest value, as runc does on cgroup v2 */
        moat_gen_str (g, "memory");
        yajl_gen_map_open (g);
        moat_gen_str (g, "usage");
        yajl_gen_map_open (g);
        ku64 (g, "limit", s->memory_limit ? s->memory_limit : UINT64_MAX);
        ku64 (g, "usage", s->memory_usage);
        ku64 (g, "max", s->memory_max_usage);
        ku64 (g, "failcnt", 0);
        yajl_gen_map_close (g);
        yajl_gen_map_close (g);

        moat_gen_str (g, "pids");
        yajl_gen_map_open (g);
        ku64 (g, "current", s->pids_current);
        if (s->pids_limit)
                ku64 (g, "limit", s->pids_limit);
        yajl_gen_map_close (g);

        moat_gen_str (g, "blkio");
        yajl_gen_map_open (g);
        yajl_gen_map_close (g);
        moat_gen_str (g, "hugetlb");
        yajl_gen_map_open (g);
        yajl_gen_map_close (g);
        yajl_gen_map_close (g);
        yajl_gen_map_close (g);

        yajl_gen_get_buf (g, &buf, &len);
        out = xstrndup ((const char *)buf, len);
        yajl_gen_free (g);
        return out;
}

int
moat_parse_duration (const char *flag, const char *s, int64_t *ms, moat_error_t *err)
{
        static const struct {
                const char *unit;
                double ms;
        } units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"µs", 1e-3}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
        const char *p = s;
        double total = 0;

        if (s == NULL || *s == '\0')
                goto bad;
        if (strspn (s, "0123456789.") == strlen (s)) { /* bare number: seconds */
                char *end;
                total = strtod (s, &end) * 1000;
                if (*end != '\0')
                        goto bad;
                p = end;
        }
        while (*p) {
                char *end;
                double v;
                size_t best = 0, k, bestlen = 0;
                if (!((*p >= '0' && *p <= '9') || *p == '.'))
                        goto bad;
                v = strtod (p, &end);
                if (end == p)
                        goto bad;
                p = end;
                for (k = 0; k < ARRAY_SIZE (units); k++) {
                        size_t l = strlen (units[k].unit);
                        if (strncmp (p, units[k].unit, l) == 0 && l > bestlen) {
                                best = k;
                                bestlen = l;
                        }
                }
                if (bestlen == 0)
                        goto bad;
                total += v * units[best].ms;
                p += bestlen;
        }
        if (total < 1)
                return moat_make_error (err, 0, "%s: duration \"%s\" must be at least 1ms", flag, s);
        if (total > 1e12)
                goto bad;
        *ms = (int64_t)total;
        return 0;
bad:
        return moat_make_error (err, 0, "%s: invalid duration \"%s\" (expected e.g. 5s, 500ms, 1m)", flag, s);
}
