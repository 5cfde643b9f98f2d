/* SPDX-License-Identifier: Apache-2.0 */
/* moat create [--bundle|-b DIR] [--pid-file F] [--console-socket S]
 *             [--preserve-fds N] [--no-pivot] [--no-new-keyring] ID
 *
 * Boots the sandbox VM (which outlives this command: its processes are in
 * their own session and get reparented to the caller's subreaper or init),
 * forks the stand-in (a direct child, so that it too is reparented to the
 * caller's subreaper, like runc's init process), runs the prestart and
 * createRuntime hooks, and asks the agent to create the container, held
 * before its process runs. Exits 0 leaving the stand-in behind.
 *
 * Decisions:
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
 *   (cgroupsPath in every hierarchy; with --systemd-cgroup or a
 *   slice:prefix:name value, its cgroupfs path: systemd is not called).
 * - Once the container's process exits, its stand-in powers the VM off
 *   (the memory is freed at once); state then says stopped and delete
 *   cleans the rest.
 * - --preserve-fds N: the caller's fds 3..3+N-1 stay with the stand-in,
 *   which relays each over a vsock stream of its own; the process gets a
 *   pipe (or, for a read-write fd, the stream) as the same fd number.
 *   create closes its own copies once the stand-in has them. A listening
 *   socket is refused before the VM boots. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "moat/agent_client.h"
#include "moat/hooks.h"
#include "moat/hostcgroup.h"
#include "moat/log.h"
#include "moat/net.h"
#include "moat/process.h"
#include "moat/sandbox.h"
#include "moat/standin.h"
#include "moat/util.h"

#define STREAM_TIMEOUT_MS 10000
#define STANDIN_READY_TIMEOUT_MS 10000

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

static int
open_streams (struct moat_sandbox *sb, const char *id, bool terminal, int fds[3], moat_error_t *err)
{
        static const char *const names[] = {"stdin", "stdout", "stderr"};
        if (terminal) {
                fds[0] = moat_agent_open_stream (sb->vsock_socket, id, NULL, "tty", STREAM_TIMEOUT_MS, err);
                return fds[0] < 0 ? -1 : 0;
        }
        for (int i = 0; i < 3; i++) {
                fds[i] = moat_agent_open_stream (sb->vsock_socket, id, NULL, names[i], STREAM_TIMEOUT_MS, err);
                if (fds[i] < 0)
                        return -1;
        }
        return 0;
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

int
moat_cli_create (struct moat_global *g, const struct moat_create_opts *o, moat_error_t *err)
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

        so.root = g->root;
        so.id = o->id;
        so.bundle = o->bundle;
        so.debug = g->debug;
        so.die_with_parent = o->foreground;
        so.interrupted = boot_interrupted;

        /* what can be checked without a VM is checked first (in
         * moat_sandbox_create too, but the terminal options need cfg) */
        {
                cleanup_oci_config struct oci_config *cfg = NULL;
                cleanup_free char *cg = NULL;
                if (oci_config_load (o->bundle, &cfg, err) == 0) {
                        bool t = cfg->process && cfg->process->terminal;
                        if (t && o->console_socket == NULL && !o->foreground)
                                return moat_make_error (
                                        err, 0,
                                        "process.terminal is true: --console-socket is needed to hand out the pty");
                        if (!t && o->console_socket)
                                return moat_make_error (err, 0, "--console-socket given but process.terminal is false");
                        if (moat_hostcg_resolve (cfg->linux_ ? cfg->linux_->cgroups_path : NULL, g->root, o->id,
                                                 g->systemd_cgroup, &cg, err) < 0)
                                return -1;
                        if (check_namespace_paths (cfg, err) < 0)
                                return -1;
                        /* the sandbox network namespace exists before the
                         * VM boots: its tap is made in it */
                        if (moat_net_sandbox_ns (cfg, &netns_fd, &net_tap, err) < 0)
                                return -1;
                } else
                        moat_error_release (err); /* moat_sandbox_create reports it with context */
        }

        /* The share's bind mounts live in a mount namespace of their own,
         * which the VMM, moat-vsock and the stand-in keep alive: the host
         * never sees them (the container's rootfs is not "mounted on the
         * host") and they vanish with the last of those processes, even
         * if nobody runs delete. Hooks run in the host's namespace. */
        host_mnt = open ("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        if (host_mnt < 0)
                return moat_make_error (err, errno, "open /proc/self/ns/mnt");
        if (unshare (CLONE_NEWNS) < 0)
                return moat_make_error (err, errno, "unshare the mount namespace");
        if (mount (NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0)
                return moat_make_error (err, errno, "make / a slave mount");
        hns.mnt_fd = host_mnt;
        a.close_fd = host_mnt;

        so.net_tap = net_tap;
        so.netns_fd = netns_fd;
        if (moat_sandbox_create (&so, &sb, err) < 0)
                return -1;
        terminal = sb->cfg->process->terminal;
        own_tty = terminal && o->console_socket == NULL; /* foreground run on our terminal */
        if (save_config (sb, err) < 0)
                goto fail;

        /* host cgroup: VMM and moat-vsock now, the stand-in below */
        if (moat_hostcg_resolve (sb->cfg->linux_ ? sb->cfg->linux_->cgroups_path : NULL, g->root, o->id,
                                 g->systemd_cgroup, &cgpath, err) < 0)
                goto fail;
        sb->state.cgroup = xstrdup (cgpath);
        /* recorded before it exists: a create killed from here on leaves
         * a cgroup that delete knows */
        if (moat_sandbox_save_state (sb, err) < 0)
                goto fail;
        {
                pid_t pids[3] = {sb->vmm_pid, sb->vsockd_pid, 0};
                if (sb->vsockd_pid <= 0)
                        pids[1] = 0;
                if (moat_hostcg_enter (cgpath, pids, err) < 0)
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
        if (open_streams (sb, o->id, terminal, fds, err) < 0)
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
                .power_off = true,
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
        if (moat_agent_create_container_net (sb->agent, o->id, sb->guest_config, sb->bundle, &stdio, ifs, n_ifs, NULL,
                                             err) < 0)
                goto fail;
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

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat create [options] ID\n\n"
                    "Create a container in a new VM. Its process is held until `moat start ID`.\n"
                    "A stand-in process stays on the host: its pid is in --pid-file and the state.\n\n"
                    "Options:\n"
                    "  -b, --bundle DIR          bundle directory (default: the current directory)\n"
                    "      --pid-file FILE       write the stand-in's pid to FILE\n"
                    "      --console-socket SOCK send the pty master to the Unix socket SOCK\n"
                    "                            (needed when process.terminal is true)\n"
                    "      --preserve-fds N      pass fds 3..3+N-1 to the process (relayed into the VM\n"
                    "                            as byte streams; see docs/limits.md)\n"
                    "      --no-pivot            accepted (the guest always uses pivot_root)\n"
                    "      --no-new-keyring      accepted (the guest kernel has its own keyrings)\n"
                    "  -h, --help                this help\n");
}

int
moat_parse_create_opts (const char *verb, int argc, char **argv, struct moat_create_opts *o, bool *detach, bool *keep)
{
        static const struct option opts[] = {
                {"bundle", required_argument, NULL, 'b'},
                {"pid-file", required_argument, NULL, 'p'},
                {"console-socket", required_argument, NULL, 'c'},
                {"preserve-fds", required_argument, NULL, 'F'},
                {"no-pivot", no_argument, NULL, 'P'},
                {"no-new-keyring", no_argument, NULL, 'K'},
                {"detach", no_argument, NULL, 'd'},
                {"keep", no_argument, NULL, 'k'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        bool is_run = strcmp (verb, "run") == 0;
        int c;

        o->bundle = ".";
        optind = 1;
        opterr = 0;
        while ((c = getopt_long (argc, argv, is_run ? "+b:dh" : "+b:h", opts, NULL)) != -1) {
                switch (c) {
                case 'b':
                        o->bundle = optarg;
                        break;
                case 'p':
                        o->pid_file = optarg;
                        break;
                case 'c':
                        o->console_socket = optarg;
                        break;
                case 'F': {
                        char *end;
                        long v = strtol (optarg, &end, 10);
                        if (*end || v < 0 || v > 65536) {
                                fprintf (stderr, "moat: %s: --preserve-fds: expected a number, got \"%s\"\n", verb,
                                         optarg);
                                return 1;
                        }
                        o->preserve_fds = v;
                        break;
                }
                case 'P':
                case 'K':
                        break;
                case 'd':
                case 'k':
                        if (!is_run)
                                goto unknown;
                        if (c == 'd')
                                *detach = true;
                        else
                                *keep = true;
                        break;
                case 'h':
                        return 2;
                default:
                unknown:
                        if (optopt && c == '?')
                                fprintf (stderr, "moat: %s: option needs a value or is unknown: %s\n", verb,
                                         argv[optind - 1]);
                        else
                                fprintf (stderr, "moat: %s: unknown option %s\n", verb, argv[optind - 1]);
                        return 1;
                }
        }
        if (optind + 1 != argc) {
                fprintf (stderr, "moat: %s: expected exactly one container ID (see moat %s --help)\n", verb, verb);
                return 1;
        }
        o->id = argv[optind];
        return 0;
}

int
moat_cmd_create (struct moat_global *g, int argc, char **argv)
{
        struct moat_create_opts o = {0};
        cleanup_error moat_error_t err = NULL;
        int r = moat_parse_create_opts ("create", argc, argv, &o, NULL, NULL);
        if (r == 2) {
                usage (stdout);
                return 0;
        }
        if (r)
                return 1;
        if (moat_cli_create (g, &o, &err) < 0) {
                moat_error_wrap (&err, "create %s", o.id);
                moat_error_print (&err, "moat");
                return 1;
        }
        return 0;
}
