/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "moat/config.h"
#include "moat/hostcgroup.h"
#include "moat/hypervisor.h"
#include "moat/log.h"
#include "moat/net.h"
#include "moat/paths.h"
#include "moat/process.h"
#include "moat/sandbox.h"
#include "moat/template.h"
#include "moat/util.h"
#include "moat/vsock.h"

#define VSOCKD_READY_TIMEOUT_MS 10000
#define VM_POWEROFF_TIMEOUT_MS 5000
#define STANDIN_EXIT_TIMEOUT_MS 2000
#define AGENT_OPEN_TIMEOUT_MS 2000

/* Character devices the guest kernel itself provides: a linux.devices entry
 * naming one of these is created inside the guest (at whatever path the
 * config gives). Anything else would be a host device, which cannot cross
 * into the VM. minor -1: any minor. */
static const struct {
        int major, minor;
        const char *what;
} guest_devices[] = {
        {1, 3, "null"},    {1, 5, "zero"}, {1, 7, "full"},   {1, 8, "random"},  {1, 9, "urandom"}, {5, 0, "tty"},
        {5, 1, "console"}, {5, 2, "ptmx"}, {136, -1, "pts"}, {10, 229, "fuse"}, {10, 200, "tun"},
};

static bool
guest_backs_device (const struct oci_device *d)
{
        if (d->type == 'p')
                return true;
        if (d->type != 'c' && d->type != 'u')
                return false;
        for (size_t j = 0; j < ARRAY_SIZE (guest_devices); j++)
                if (d->major == guest_devices[j].major &&
                    (guest_devices[j].minor < 0 || d->minor == guest_devices[j].minor))
                        return true;
        return false;
}

int
moat_sandbox_check_config (const struct oci_config *cfg, moat_error_t *err)
{
        if (cfg->process == NULL)
                return moat_make_error (err, 0, "config.json: process: missing (nothing to run)");
        if (cfg->linux_ == NULL)
                return 0;
        for (size_t i = 0; i < cfg->linux_->n_devices; i++) {
                const struct oci_device *d = &cfg->linux_->devices[i];
                if (!guest_backs_device (d))
                        return moat_make_error (err, 0,
                                                "linux.devices: %s: %c %lld:%lld is a host device; host devices cannot "
                                                "be passed into the VM (the guest provides mem 1:3-9, tty 5:0-2, pts "
                                                "136:*, fuse 10:229, tun 10:200)",
                                                d->path, d->type, (long long)d->major, (long long)d->minor);
        }
        return 0;
}

int
moat_boot_timeout_ms (void)
{
        return (int)moat_config_num (MOAT_SET_BOOT_TIMEOUT);
}

static char *
fmt_seconds (int ms)
{
        if (ms % 1000 == 0)
                return xasprintf_r ("%ds", ms / 1000);
        return xasprintf_r ("%.1fs", ms / 1000.0);
}

char *
moat_sandbox_console_tail (struct moat_sandbox *sb, int lines)
{
        cleanup_free char *t = moat_file_tail (sb->console_log, lines);
        if (*t == '\0')
                return xstrdup ("console log: empty");
        return xasprintf_r ("console log:\n%s", t);
}

/* The path to give a helper whose cwd is sb->dir: absolute if it fits in
 * sun_path, else relative. */
static const char *
sock_arg (struct moat_sandbox *sb, const char *abs)
{
        struct sockaddr_un sun;
        if (strlen (abs) < sizeof sun.sun_path - MOAT_VSOCK_PORT_SUFFIX_MAX)
                return abs;
        return abs + strlen (sb->dir) + 1;
}

static int
start_vsockd (struct moat_sandbox *sb, const struct moat_sandbox_opts *so, moat_error_t *err)
{
        cleanup_free char *bin = NULL;
        cleanup_close int rd = -1;
        int p[2];
        char cid[16];
        const char *argv[16];
        int n = 0;
        struct moat_spawn_opts o = {.workdir = sb->dir, .log = sb->vsockd_log, .pass_fd_as = 3};
        struct pollfd pfd;
        char c;
        int r;

        if (moat_find_file (MOAT_FILE_VSOCKD, &bin, err) < 0)
                return -1;
        if (pipe2 (p, O_CLOEXEC) < 0)
                return moat_make_error (err, errno, "pipe");
        rd = p[0];
        snprintf (cid, sizeof cid, "%d", MOAT_GUEST_CID);
        argv[n++] = bin;
        argv[n++] = "--vhost-user";
        argv[n++] = sock_arg (sb, sb->vhost_socket);
        argv[n++] = "--socket";
        argv[n++] = sock_arg (sb, sb->vsock_socket);
        argv[n++] = "--guest-cid";
        argv[n++] = cid;
        argv[n++] = "--log";
        argv[n++] = sb->vsockd_log;
        argv[n++] = "--ready-fd";
        argv[n++] = "3";
        argv[n] = NULL;
        o.pass_fd = p[1];
        /* moat-vsock exits when QEMU disconnects; it lives as long as the VM. */
        o.die_with_parent = so->die_with_parent;
        r = moat_spawn ((char *const *)argv, &o, &sb->vsockd_pid, err);
        close (p[1]);
        if (r < 0)
                return moat_error_wrap (err, "start moat-vsock");
        pfd.fd = rd;
        pfd.events = POLLIN;
        do
                r = poll (&pfd, 1, VSOCKD_READY_TIMEOUT_MS);
        while (r < 0 && errno == EINTR);
        if (r == 0)
                return moat_make_error (err, ETIMEDOUT, "moat-vsock not ready after %ds",
                                        VSOCKD_READY_TIMEOUT_MS / 1000);
        if (read (rd, &c, 1) != 1) {
                cleanup_free char *t = moat_file_tail (sb->vsockd_log, 5);
                return moat_make_error (err, 0, "moat-vsock failed to start%s%s", *t ? ": " : "", t);
        }
        return 0;
}

bool
moat_sandbox_vm_exited (struct moat_sandbox *sb, int *status)
{
        if (sb->vmm_pid <= 0)
                return false;
        if (!sb->vmm_reaped) {
                pid_t r = waitpid (sb->vmm_pid, &sb->vmm_status, WNOHANG);
                if (r == sb->vmm_pid)
                        sb->vmm_reaped = true;
                else if (r < 0 && errno == ECHILD)
                        sb->vmm_reaped = kill (sb->vmm_pid, 0) < 0;
        }
        if (sb->vmm_reaped && status)
                *status = sb->vmm_status;
        return sb->vmm_reaped;
}

struct boot_wait {
        struct moat_sandbox *sb;
        const struct moat_sandbox_opts *o;
        bool user;
};

static bool
boot_interrupted (void *ctx)
{
        struct boot_wait *w = ctx;
        if (moat_sandbox_vm_exited (w->sb, NULL))
                return true;
        if (w->o->interrupted && w->o->interrupted (w->o->ictx)) {
                w->user = true;
                return true;
        }
        return false;
}

static char *
describe_status (int st)
{
        if (WIFEXITED (st))
                return xasprintf_r ("status %d", WEXITSTATUS (st));
        if (WIFSIGNALED (st))
                return xasprintf_r ("signal %d", WTERMSIG (st));
        return xstrdup ("unknown status");
}

/* A template for vc, built now if there is none: false (cold boot) when
 * that fails. A build that fails, or a template that fails to restore
 * right after it was built, says so once per key: its .failed marker keeps
 * later sandboxes from retrying (and warning) until the key changes or a
 * build (moat template build) clears it. *fresh: built here, now. */
static bool
pick_template (struct moat_sandbox *sb, const struct moat_hypervisor *hv, const struct moat_vm_config *vc,
               struct moat_template *tpl, bool *fresh)
{
        cleanup_error moat_error_t e = NULL;
        cleanup_free char *why = NULL;

        if (!moat_template_supported (hv, vc, &why) && !moat_template_forced ()) {
                moat_debug ("%s: no template: %s", sb->id, why);
                return false;
        }
        if (moat_template_lookup (hv, vc, tpl, &e) < 0) {
                moat_debug ("%s: no template: %s", sb->id, e->msg);
                return false;
        }
        if (moat_template_ready (tpl))
                return true;
        if (moat_template_failed (tpl)) {
                moat_debug ("%s: building a template failed before (%s.failed): cold boot", sb->id, tpl->dir);
                return false;
        }
        *fresh = true;
        if (moat_template_build (hv, vc, tpl, &e) < 0) {
                if (e->errno_ == EBUSY)
                        moat_debug ("%s: another sandbox is building the template: cold boot", sb->id);
                else
                        moat_warn ("%s: cannot build a VM template, booting cold: %s", sb->id, e->msg);
                return false;
        }
        return true;
}

/* Undoes a start_vm whose VM did not come up, so that another can start. */
static void
reset_vm (struct moat_sandbox *sb)
{
        if (sb->vmm_pid > 0 && !sb->vmm_reaped)
                moat_stop_pid (sb->vmm_pid, SIGKILL, 5000);
        sb->vmm_pid = 0;
        sb->vmm_reaped = false;
        if (sb->vsockd_pid > 0)
                moat_stop_pid (sb->vsockd_pid, SIGTERM, 2000);
        sb->vsockd_pid = 0;
        sb->state.vsockd_start = 0;
        free (sb->state.hypervisor);
        sb->state.hypervisor = NULL;
        free (sb->kernel_release);
        sb->kernel_release = NULL;
}

/* Starts the VM: from tpl's template when tpl is not NULL and one is
 * ready or can be built now (*restored says which), else a cold boot. */
static int
start_vm (struct moat_sandbox *sb, const struct moat_sandbox_opts *o, struct moat_template *tpl, bool *restored,
          bool *fresh, moat_error_t *err)
{
        const char *name = o->hypervisor ? o->hypervisor : moat_hypervisor_requested (sb->cfg);
        const struct moat_hypervisor *hv = moat_hypervisor_get (name, err);
        cleanup_free char *kernel = NULL;
        cleanup_free char *initrd = NULL;
        cleanup_free char *cmdline = moat_vm_cmdline (o->debug);
        struct moat_vm_config vc = {0};
        struct moat_host_info host;
        cleanup_close int tap_fd = -1;

        if (hv == NULL)
                return -1;
        if (moat_find_file (MOAT_FILE_KERNEL, &kernel, err) < 0 || moat_find_file (MOAT_FILE_INITRD, &initrd, err) < 0)
                return -1;
        vc.kernel = kernel;
        vc.initrd = initrd;
        vc.cmdline = cmdline;
        moat_vm_size (sb->cfg, &vc.mem_mib, &vc.vcpus);
        moat_host_probe (&host);
        vc.host = &host;
        *restored = false;
        if (tpl && hv->template_save && pick_template (sb, hv, &vc, tpl, fresh)) {
                vc.restore_state = tpl->state;
                vc.cmdline = tpl->cmdline;
                *restored = true;
        }
        if (hv->needs_vsockd) {
                if (start_vsockd (sb, o, err) < 0)
                        return -1;
                vc.vsock_socket = sock_arg (sb, sb->vhost_socket);
        } else {
                vc.hybrid_socket = sock_arg (sb, sb->vsock_socket);
        }
        vc.share_dir = sb->share.dir;
        vc.console_log = sb->console_log;
        vc.vmm_log = sb->vmm_log;
        vc.workdir = sb->dir;
        vc.die_with_parent = o->die_with_parent;
        vc.tap_fd = -1;
        vc.netns_fd = -1;
        if (o->net_tap) {
                /* the tap goes with the VMM: it holds the only fd */
                moat_net_tap_name (sb->id, sb->tap);
                vc.tap = sb->tap;
                vc.netns_fd = o->netns_fd;
                if (!hv->tap_by_name) {
                        tap_fd = moat_net_tap_open (o->netns_fd, sb->tap, err);
                        if (tap_fd < 0)
                                return -1;
                        vc.tap_fd = tap_fd;
                }
        }
        sb->t_launch = now_ms ();
        if (hv->start (&vc, &sb->vmm_pid, err) < 0)
                return -1;
        sb->state.pid = sb->vmm_pid; /* until a stand-in exists */
        sb->state.vmm_pid = sb->vmm_pid;
        sb->state.vmm_start = moat_pid_start_time (sb->vmm_pid);
        sb->state.hypervisor = xstrdup (hv->name);
        return 0;
}

static int
wait_agent (struct moat_sandbox *sb, const struct moat_sandbox_opts *o, int timeout, moat_error_t *err)
{
        struct boot_wait w = {.sb = sb, .o = o};
        cleanup_error moat_error_t e = NULL;
        int st;

        if (moat_agent_connect (sb->vsock_socket, sb->t_launch + timeout, boot_interrupted, &w, &sb->agent,
                                &sb->kernel_release, &e) == 0) {
                sb->t_ready = now_ms ();
                moat_debug ("guest %s answered %lld ms after launch", sb->kernel_release ? sb->kernel_release : "?",
                            (long long)(sb->t_ready - sb->t_launch));
                /* before any container exists: its processes must never
                 * see the guest's boot-time clock (the epoch under QEMU) */
                int64_t off = 0;
                if (moat_agent_sync_clock (sb->agent, true, &off, err) < 0)
                        return -1;
                moat_debug ("guest clock stepped by %lld ms", (long long)(off / 1000000));
                return 0;
        }
        if (w.user)
                return moat_make_error (err, 0, "interrupted while the VM was booting");
        if (moat_sandbox_vm_exited (sb, &st)) {
                cleanup_free char *how = describe_status (st);
                cleanup_free char *vmm = moat_file_tail (sb->vmm_log, 5);
                cleanup_free char *tail = moat_sandbox_console_tail (sb, 15);
                return moat_make_error (err, 0, "the VM exited during boot (%s)%s%s (%s)", how, *vmm ? ": " : "", vmm,
                                        tail);
        }
        cleanup_free char *secs = fmt_seconds (timeout);
        cleanup_free char *tail = moat_sandbox_console_tail (sb, 15);
        return moat_make_error (err, 0, "guest did not answer within %s (%s)", secs, tail);
}

/* The boot step: restore the template (templates on, the backend has
 * them), else or when that fails a cold boot; either way until the agent
 * answered and the guest's clock and RNG are the host's. A template that
 * fails to restore is removed (the next sandbox builds a new one) and this
 * sandbox boots cold, with one warning. */
static int
boot_vm (struct moat_sandbox *sb, const struct moat_sandbox_opts *o, moat_error_t *err)
{
        struct moat_template tpl = {0};
        cleanup_error moat_error_t e = NULL;
        bool restored = false, fresh = false;
        int boot = moat_boot_timeout_ms ();
        int rc = -1;

        if (start_vm (sb, o, moat_template_enabled () ? &tpl : NULL, &restored, &fresh, err) < 0)
                goto out;
        if (moat_sandbox_save_state (sb, err) < 0)
                goto out;
        if (!restored) {
                rc = wait_agent (sb, o, boot, err);
                goto out;
        }
        /* a restore answers in a fraction of a boot */
        if (wait_agent (sb, o, boot / 2 < 20000 ? (boot < 20000 ? boot : 20000) : boot / 2, &e) == 0) {
                moat_debug ("%s: VM restored from template %s", sb->id, tpl.dir);
                rc = 0;
                goto out;
        }
        if (o->interrupted && o->interrupted (o->ictx)) {
                *err = steal_pointer (&e);
                goto out;
        }
        /* a template this sandbox has just built that does not restore
         * will not restore for the next one either: no more tries */
        moat_warn ("%s: restoring the VM template %s failed, booting cold (%s): %s", sb->id, tpl.dir,
                   fresh ? "later sandboxes boot cold too until its key changes" : "the template will be rebuilt",
                   e->msg);
        moat_template_discard (&tpl);
        if (fresh)
                moat_template_mark_failed (&tpl, e->msg);
        moat_agent_free (sb->agent);
        sb->agent = NULL;
        reset_vm (sb);
        if (start_vm (sb, o, NULL, &restored, &fresh, err) < 0 || moat_sandbox_save_state (sb, err) < 0)
                goto out;
        rc = wait_agent (sb, o, boot, err);
out:
        moat_template_clear (&tpl);
        return rc;
}

int
moat_sandbox_save_state (struct moat_sandbox *sb, moat_error_t *err)
{
        sb->state.vsockd_pid = sb->vsockd_pid;
        if (sb->vsockd_pid > 0 && sb->state.vsockd_start == 0)
                sb->state.vsockd_start = moat_pid_start_time (sb->vsockd_pid);
        return moat_state_save (sb->root, &sb->state, err);
}

/* The state of a new container: the OCI fields from the config, status
 * "creating", the sockets sb points at. */
static void
init_state (struct moat_sandbox *sb)
{
        sb->state.id = xstrdup (sb->id);
        sb->state.bundle = xstrdup (sb->bundle);
        sb->state.rootfs = sb->cfg->root_path[0] == '/' ? xstrdup (sb->cfg->root_path)
                                                        : xasprintf_r ("%s/%s", sb->bundle, sb->cfg->root_path);
        sb->state.status = xstrdup ("creating");
        sb->state.created = moat_state_now ();
        sb->state.vsock_socket = xstrdup (sb->vsock_socket);
        sb->state.console_log = xstrdup (sb->console_log);
        sb->state.n_annotations = sb->cfg->n_annotations;
        sb->state.annotation_keys = xzalloc ((sb->cfg->n_annotations + 1) * sizeof (char *));
        sb->state.annotation_values = xzalloc ((sb->cfg->n_annotations + 1) * sizeof (char *));
        for (size_t i = 0; i < sb->cfg->n_annotations; i++) {
                sb->state.annotation_keys[i] = xstrdup (sb->cfg->annotation_keys[i]);
                sb->state.annotation_values[i] = xstrdup (sb->cfg->annotation_values[i]);
        }
}

/* What both ways to a new container check first: the id, the bundle
 * (made absolute in sb->bundle) and its config. */
static int
check_new (struct moat_sandbox *sb, const struct moat_sandbox_opts *o, moat_error_t *err)
{
        char bundle[PATH_MAX];
        struct stat st;

        if (moat_state_validate_id (o->id, err) < 0)
                return -1;
        if (realpath (o->bundle, bundle) == NULL)
                return moat_make_error (err, errno, "bundle %s", o->bundle);
        if (stat (bundle, &st) < 0 || !S_ISDIR (st.st_mode))
                return moat_make_error (err, ENOTDIR, "bundle %s", bundle);
        sb->bundle = xstrdup (bundle);
        if (sb->cfg == NULL && oci_config_load (bundle, &sb->cfg, err) < 0)
                return -1;
        return moat_sandbox_check_config (sb->cfg, err);
}

int
moat_sandbox_create (const struct moat_sandbox_opts *o, struct moat_sandbox **out, moat_error_t *err)
{
        struct moat_sandbox *sb = xzalloc (sizeof *sb);

        sb->lock_fd = -1;
        sb->root = xstrdup (o->root);
        sb->id = xstrdup (o->id);
        sb->cfg = o->cfg; /* ours now, whatever happens */

        /* 1. validate: nothing is created before this passes */
        if (check_new (sb, o, err) < 0)
                goto fail;

        /* 2. state */
        if (moat_state_create (o->root, o->id, &sb->lock_fd, err) < 0)
                goto fail;
        sb->state_created = true;
        sb->dir = moat_state_dir (o->root, o->id);
        sb->vhost_socket = xasprintf_r ("%s/vhost.sock", sb->dir);
        sb->vsock_socket = xasprintf_r ("%s/vsock.sock", sb->dir);
        sb->console_log = xasprintf_r ("%s/console.log", sb->dir);
        sb->vmm_log = xasprintf_r ("%s/vmm.log", sb->dir);
        sb->vsockd_log = xasprintf_r ("%s/vsock.log", sb->dir);
        init_state (sb);
        if (moat_sandbox_save_state (sb, err) < 0)
                goto fail;

        /* 3. share */
        if (moat_share_init (&sb->share, sb->dir, err) < 0)
                goto fail;
        if (moat_share_stage (&sb->share, o->id, sb->bundle, sb->cfg, &sb->guest_config, err) < 0)
                goto fail;

        /* 4. moat-vsock (for backends that need it), then the VM, until
         * the agent answers */
        if (boot_vm (sb, o, err) < 0)
                goto fail;
        *out = sb;
        return 0;

fail:
        moat_sandbox_destroy (sb, NULL);
        return -1;
}

/* The running sandbox a pod's container joins: its state, live, with a
 * VM of its own; *mntns_fd its VMM's mount namespace. */
static int
open_host_sandbox (const char *root, const char *sandbox_id, struct moat_state **out, int *mntns_fd, moat_error_t *err)
{
        struct moat_state *h = NULL;
        const char *status;
        char path[64];

        if (moat_state_validate_id (sandbox_id, err) < 0)
                return -1;
        if (moat_state_load (root, sandbox_id, &h, err) < 0)
                return moat_error_wrap (err, "sandbox");
        status = moat_state_live_status (h);
        if (h->sandbox)
                moat_make_error (err, EINVAL, "sandbox %s is itself a container of sandbox %s", sandbox_id, h->sandbox);
        else if (strcmp (status, "created") != 0 && strcmp (status, "running") != 0)
                moat_make_error (err, EINVAL, "sandbox %s is not running (status: %s)", sandbox_id, status);
        else if (h->vmm_pid <= 0 || h->vsock_socket == NULL)
                moat_make_error (err, EINVAL, "sandbox %s has no VM in its state", sandbox_id);
        else {
                snprintf (path, sizeof path, "/proc/%d/ns/mnt", (int)h->vmm_pid);
                *mntns_fd = open (path, O_RDONLY | O_CLOEXEC);
                if (*mntns_fd < 0)
                        moat_make_error (err, errno, "sandbox %s: open %s", sandbox_id, path);
                else if (!moat_pid_alive (h->vmm_pid, h->vmm_start)) {
                        /* the pid named another process by then */
                        close (*mntns_fd);
                        *mntns_fd = -1;
                        moat_make_error (err, ESRCH, "sandbox %s: its VM is gone", sandbox_id);
                } else {
                        *out = h;
                        return 0;
                }
        }
        moat_state_free (h);
        return -1;
}

int
moat_sandbox_join (const struct moat_sandbox_opts *o, const char *sandbox_id, struct moat_sandbox **out,
                   moat_error_t *err)
{
        struct moat_sandbox *sb = xzalloc (sizeof *sb);
        struct moat_state *h = NULL;
        cleanup_close int mntns = -1;
        cleanup_free char *share_dir = NULL;

        sb->lock_fd = -1;
        sb->root = xstrdup (o->root);
        sb->id = xstrdup (o->id);
        sb->cfg = o->cfg;

        /* 1. validate, and find the sandbox's VM */
        if (check_new (sb, o, err) < 0)
                goto fail;
        if (strcmp (o->id, sandbox_id) == 0) {
                moat_make_error (err, EINVAL, "container %s cannot join itself as its sandbox", o->id);
                goto fail;
        }
        if (open_host_sandbox (o->root, sandbox_id, &h, &mntns, err) < 0)
                goto fail;

        /* 2. state: the sandbox's VM, sockets and share */
        if (moat_state_create (o->root, o->id, &sb->lock_fd, err) < 0)
                goto fail;
        sb->state_created = true;
        /* first: from here on a failure's teardown is a pod container's,
         * which leaves the sandbox's VM alone */
        sb->state.sandbox = xstrdup (sandbox_id);
        sb->dir = moat_state_dir (o->root, o->id);
        sb->vsock_socket = xstrdup (h->vsock_socket);
        sb->console_log = h->console_log ? xstrdup (h->console_log) : xstrdup ("");
        sb->vmm_pid = h->vmm_pid;
        init_state (sb);
        sb->state.hypervisor = h->hypervisor ? xstrdup (h->hypervisor) : NULL;
        sb->state.vmm_pid = h->vmm_pid;
        sb->state.vmm_start = h->vmm_start;
        share_dir = xasprintf_r ("%s/shared", h->dir);
        sb->state.share_dir = xstrdup (share_dir);
        if (moat_sandbox_save_state (sb, err) < 0)
                goto fail;

        /* 3. its files, staged in the VMM's mount namespace (we stay there) */
        if (moat_share_join (&sb->share, share_dir, o->id, mntns, err) < 0 ||
            moat_share_stage (&sb->share, o->id, sb->bundle, sb->cfg, &sb->guest_config, err) < 0)
                goto fail;

        /* 4. the agent */
        if (moat_agent_open (sb->vsock_socket, AGENT_OPEN_TIMEOUT_MS, &sb->agent, err) < 0) {
                moat_error_wrap (err, "connect to the agent of sandbox %s", sandbox_id);
                goto fail;
        }
        moat_state_free (h);
        *out = sb;
        return 0;
fail:
        moat_state_free (h);
        moat_sandbox_destroy (sb, NULL);
        return -1;
}

static bool
wait_gone (pid_t pid, unsigned long long start, int timeout_ms)
{
        int64_t deadline = now_ms () + timeout_ms;
        for (;;) {
                int st;
                /* reap it if it happens to be ours (run --keep, tests) */
                waitpid (pid, &st, WNOHANG);
                if (!moat_pid_alive (pid, start))
                        return true;
                if (now_ms () >= deadline)
                        return false;
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep (&ts, NULL);
        }
}

static void
stop_process (pid_t pid, unsigned long long start, int sig, int timeout_ms)
{
        if (!moat_pid_alive (pid, start))
                return;
        if (kill (pid, sig) < 0)
                return;
        if (wait_gone (pid, start, timeout_ms))
                return;
        if (sig != SIGKILL && kill (pid, SIGKILL) < 0)
                return;
        wait_gone (pid, start, 5000);
}

/* The processes a sandbox runs on the host outside the state's pids: a
 * create killed between starting moat-vsock or the VMM and saving their
 * pids leaves them unrecorded. Both run in the state directory (their
 * working directory) and name files in it on their command line; a
 * process that does both is the sandbox's, whoever else has a shell there. */
static void
stop_strays (const char *dir)
{
        char real[PATH_MAX];
        struct stat want;
        DIR *d;
        struct dirent *de;

        if (realpath (dir, real) == NULL || stat (real, &want) < 0)
                return;
        d = opendir ("/proc");
        if (d == NULL)
                return;
        while ((de = readdir (d)) != NULL) {
                char path[64];
                cleanup_free char *cmd = NULL;
                cleanup_error moat_error_t e = NULL;
                struct stat cwd;
                size_t len = 0;
                bool named = false;
                pid_t pid = (pid_t)atoi (de->d_name);
                if (pid <= 0 || pid == getpid ())
                        continue;
                snprintf (path, sizeof path, "/proc/%d/cwd", (int)pid);
                if (stat (path, &cwd) < 0 || cwd.st_dev != want.st_dev || cwd.st_ino != want.st_ino)
                        continue;
                snprintf (path, sizeof path, "/proc/%d/cmdline", (int)pid);
                if (read_file (path, &cmd, &len, &e) < 0)
                        continue;
                for (size_t i = 0; i < len && !named; i += strlen (cmd + i) + 1)
                        named = strstr (cmd + i, real) != NULL || strstr (cmd + i, dir) != NULL;
                if (!named)
                        continue;
                moat_debug ("%s: stopping unrecorded process %d", dir, (int)pid);
                stop_process (pid, moat_pid_start_time (pid), SIGKILL, 5000);
        }
        closedir (d);
}

/* The host cgroup of a create killed before it saved the cgroup's path in
 * the state: the path its saved config names (create makes it only after
 * saving the config). Only an empty cgroup goes (rmdir). */
static void
remove_unrecorded_cgroup (const char *root, const char *dir, const struct moat_state *st)
{
        cleanup_oci_config struct oci_config *cfg = NULL;
        cleanup_error moat_error_t e = NULL;
        const char *cp;
        char *paths[2] = {NULL, NULL};

        if (st->cgroup || st->status == NULL || strcmp (st->status, "creating") != 0)
                return;
        if (oci_config_load (dir, &cfg, &e) < 0)
                return; /* create died before it saved the config: no cgroup yet */
        cp = cfg->linux_ ? cfg->linux_->cgroups_path : NULL;
        if (moat_hostcg_resolve (cp, root, st->id, false, &paths[0], &e) < 0)
                return; /* create refused it before making anything */
        /* no cgroupsPath: the default depends on --systemd-cgroup */
        if (cp == NULL || *cp == '\0')
                moat_hostcg_resolve (NULL, root, st->id, true, &paths[1], &e);
        for (int i = 0; i < 2; i++) {
                cleanup_error moat_error_t e2 = NULL;
                if (paths[i] && moat_hostcg_remove (paths[i], 200, &e2) < 0)
                        moat_debug ("%s: cgroup %s: %s", st->id, paths[i], e2->msg);
                free (paths[i]);
        }
}

/* A failed teardown step: create's cleanup warns and goes on (it
 * reports the error that made it clean up); delete returns the first. */
static void
step_failed (struct moat_sandbox *sb, moat_error_t *e, moat_error_t *first)
{
        if (sb->state_created || *first != NULL) {
                moat_warn ("%s: %s", sb->id, (*e)->msg);
                moat_error_release (e);
                return;
        }
        *first = *e;
        *e = NULL;
}

/* The VM: ask the guest to power off (through the connection create has,
 * else a new one), else kill the VMM. A loaded sandbox whose container
 * still runs gets it killed first, so that its stand-in reports 137
 * rather than a lost VM. */
static void
stop_vm (struct moat_sandbox *sb)
{
        cleanup_error moat_error_t e = NULL;
        bool asked = false;

        if (sb->state_created)
                moat_sandbox_vm_exited (sb, NULL); /* reaps our child if it is gone */
        if (sb->vmm_pid <= 0 || sb->vmm_reaped || !moat_pid_alive (sb->vmm_pid, sb->state.vmm_start))
                return;
        /* a guest that never answered create is killed at once */
        if (sb->agent == NULL && !sb->state_created && sb->vsock_socket &&
            moat_agent_open (sb->vsock_socket, AGENT_OPEN_TIMEOUT_MS, &sb->agent, &e) < 0) {
                moat_debug ("%s: agent: %s", sb->id, e->msg);
                moat_error_release (&e);
        }
        if (sb->agent) {
                const struct moat_state *st = &sb->state;
                if (!sb->state_created && strcmp (moat_state_live_status (st), "stopped") != 0) {
                        if (moat_agent_signal (sb->agent, st->id, NULL, SIGKILL, true, &e) < 0) {
                                moat_debug ("%s: SIGKILL: %s", st->id, e->msg);
                                moat_error_release (&e);
                        } else if (st->pid > 0 && st->pid != sb->vmm_pid && st->pid != getpid ()) {
                                wait_gone (st->pid, st->pid_start, STANDIN_EXIT_TIMEOUT_MS);
                        }
                }
                if (moat_agent_destroy_sandbox (sb->agent, &e) < 0) {
                        moat_debug ("%s: DestroySandbox: %s", sb->id, e->msg);
                        moat_error_release (&e);
                }
                asked = true;
                moat_agent_free (sb->agent);
                sb->agent = NULL;
        }
        if (!asked || !wait_gone (sb->vmm_pid, sb->state.vmm_start, VM_POWEROFF_TIMEOUT_MS))
                stop_process (sb->vmm_pid, sb->state.vmm_start, SIGKILL, 5000);
        sb->vmm_reaped = true;
}

/* A pod's container, in the sandbox's VM that stays: its processes are
 * killed (first, for a loaded one whose stand-in should report 137) and
 * the agent forgets it. */
static void
stop_member (struct moat_sandbox *sb)
{
        cleanup_error moat_error_t e = NULL;
        const struct moat_state *st = &sb->state;

        if (sb->vmm_pid <= 0 || !moat_pid_alive (sb->vmm_pid, st->vmm_start))
                return;
        if (sb->agent == NULL && (sb->vsock_socket == NULL ||
                                  moat_agent_open (sb->vsock_socket, AGENT_OPEN_TIMEOUT_MS, &sb->agent, &e) < 0)) {
                moat_debug ("%s: agent: %s", sb->id, e ? e->msg : "no socket");
                return;
        }
        if (!sb->state_created && strcmp (moat_state_live_status (st), "stopped") != 0) {
                if (moat_agent_signal (sb->agent, st->id, NULL, SIGKILL, true, &e) < 0) {
                        moat_debug ("%s: SIGKILL: %s", st->id, e->msg);
                        moat_error_release (&e);
                } else if (st->pid > 0 && st->pid != getpid ())
                        wait_gone (st->pid, st->pid_start, STANDIN_EXIT_TIMEOUT_MS);
        }
        if (moat_agent_remove_container (sb->agent, st->id, true, &e) < 0)
                moat_debug ("%s: RemoveContainer: %s", st->id, e->msg);
        moat_agent_free (sb->agent);
        sb->agent = NULL;
}

/* A pod's container's files in the sandbox's share: what this process
 * staged (it is in the VMM's mount namespace), else, for a loaded one,
 * from a child that joins that namespace while the VMM lives (once it is
 * gone, its mounts are gone with it and only the directory is left). */
static int
unstage_member (struct moat_sandbox *sb, moat_error_t *err)
{
        int p[2], status = 0;
        char msg[1024];
        ssize_t n;
        pid_t child;

        if (sb->share.dir)
                return moat_share_release (&sb->share, err);
        if (sb->state.share_dir == NULL)
                return 0;
        if (pipe2 (p, O_CLOEXEC) < 0)
                return moat_make_error (err, errno, "pipe");
        child = fork ();
        if (child < 0) {
                close (p[0]);
                close (p[1]);
                return moat_make_error (err, errno, "fork");
        }
        if (child == 0) {
                moat_error_t e = NULL;
                char path[64];
                int fd;
                close (p[0]);
                snprintf (path, sizeof path, "/proc/%d/ns/mnt", (int)sb->vmm_pid);
                fd = sb->vmm_pid > 0 ? open (path, O_RDONLY | O_CLOEXEC) : -1;
                if (fd >= 0 && moat_pid_alive (sb->vmm_pid, sb->state.vmm_start) && setns (fd, CLONE_NEWNS) < 0)
                        moat_make_error (&e, errno, "join the mount namespace of the sandbox's VMM");
                if (e == NULL)
                        moat_share_unstage (sb->state.share_dir, sb->id, &e);
                if (e && write (p[1], e->msg, strlen (e->msg)) < 0)
                        _exit (2);
                _exit (e ? 1 : 0);
        }
        close (p[1]);
        if (moat_wait_pid (child, 10000, &status) != 1) {
                kill (child, SIGKILL);
                waitpid (child, &status, 0);
                close (p[0]);
                return moat_make_error (err, ETIMEDOUT, "unstage %s from the sandbox's share: timed out", sb->id);
        }
        n = read (p[0], msg, sizeof msg - 1);
        close (p[0]);
        if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
                return 0;
        msg[n > 0 ? n : 0] = '\0';
        return moat_make_error (err, 0, "unstage %s from the sandbox's share: %s", sb->id, n > 0 ? msg : "failed");
}

int
moat_sandbox_load (const char *root, struct moat_state *st, struct moat_sandbox **out, moat_error_t *err)
{
        struct moat_sandbox *sb = xzalloc (sizeof *sb);
        cleanup_error moat_error_t e = NULL;

        sb->lock_fd = -1;
        sb->root = xstrdup (root);
        sb->id = xstrdup (st->id);
        sb->dir = moat_state_dir (root, st->id);
        sb->state = *st;
        free (st);
        if (sb->state.dir == NULL)
                sb->state.dir = xstrdup (sb->dir);
        sb->bundle = sb->state.bundle ? xstrdup (sb->state.bundle) : NULL;
        sb->vsock_socket = sb->state.vsock_socket ? xstrdup (sb->state.vsock_socket) : NULL;
        sb->console_log = sb->state.console_log ? xstrdup (sb->state.console_log) : NULL;
        sb->vmm_pid = sb->state.vmm_pid;
        sb->vsockd_pid = sb->state.vsockd_pid;
        /* the config as it was at create (poststop hooks): a create
         * killed early had not saved it yet */
        if (oci_config_load (sb->dir, &sb->cfg, &e) < 0) {
                if (strcmp (sb->state.status ? sb->state.status : "", "creating") == 0)
                        moat_debug ("%s: no poststop hooks: %s", sb->id, e->msg);
                else
                        moat_warn ("%s: poststop hooks skipped: %s", sb->id, e->msg);
        }
        *out = sb;
        return 0;
}

int
moat_sandbox_destroy (struct moat_sandbox *sb, moat_error_t *err)
{
        cleanup_error moat_error_t e = NULL;
        moat_error_t first = NULL;
        cleanup_free char *shared = NULL;
        int rc;

        if (sb == NULL)
                return 0;
        /* 1. the VM (a pod's container: its processes in the VM that stays) */
        if (sb->state.sandbox)
                stop_member (sb);
        else
                stop_vm (sb);
        /* 2. the stand-in (its process is gone with the VM: it exits on its
         * own once it has drained the output and taken its tc redirect
         * off the network interface; killed if it does not; create stops
         * the one it forked itself) and moat-vsock, then whatever of the
         * sandbox the state does not name */
        if (!sb->state_created && sb->state.pid > 0 && sb->state.pid != sb->vmm_pid && sb->state.pid != getpid () &&
            !wait_gone (sb->state.pid, sb->state.pid_start, STANDIN_EXIT_TIMEOUT_MS + 1000))
                stop_process (sb->state.pid, sb->state.pid_start, SIGKILL, 2000);
        if (sb->vsockd_pid > 0) {
                unsigned long long start = sb->state.vsockd_start;
                if (start == 0 && sb->state_created)
                        start = moat_pid_start_time (sb->vsockd_pid); /* our child, not reaped */
                stop_process (sb->vsockd_pid, start, SIGTERM, 2000);
                sb->vsockd_pid = 0;
        }
        if (sb->dir)
                stop_strays (sb->dir);
        /* 3. the share: the mounts create staged (in its own mount
         * namespace), else the one private mount with every staged bind
         * below it */
        if ((sb->state.sandbox ? unstage_member (sb, &e) : moat_share_release (&sb->share, &e)) < 0)
                step_failed (sb, &e, &first);
        if (sb->dir && sb->state.sandbox == NULL) {
                shared = xasprintf_r ("%s/shared", sb->dir);
                for (int i = 0; i < 64; i++)
                        if (umount2 (shared, MNT_DETACH) < 0) {
                                if (errno != EINVAL && errno != ENOENT) {
                                        moat_make_error (&e, errno, "unmount %s", shared);
                                        step_failed (sb, &e, &first);
                                }
                                break;
                        }
        }
        /* 4. the host cgroup */
        if (sb->dir)
                remove_unrecorded_cgroup (sb->root, sb->dir, &sb->state);
        if (sb->state.cgroup && moat_hostcg_remove (sb->state.cgroup, 2000, &e) < 0)
                step_failed (sb, &e, &first);
        /* 5. poststop hooks, then the state: kept when delete failed
         * (delete can retry) */
        if (first == NULL || sb->state_created) {
                if (sb->on_destroyed)
                        sb->on_destroyed (sb, sb->on_destroyed_ctx);
                if (sb->dir && moat_state_remove (sb->root, sb->id, &e) < 0)
                        step_failed (sb, &e, &first);
        }
        rc = first ? -1 : 0;
        if (err)
                *err = first;
        else
                moat_error_release (&first);
        moat_agent_free (sb->agent);
        if (sb->lock_fd >= 0)
                close (sb->lock_fd);
        oci_config_free (sb->cfg);
        free (sb->guest_config);
        moat_state_clear (&sb->state);
        free (sb->root);
        free (sb->id);
        free (sb->dir);
        free (sb->bundle);
        free (sb->vhost_socket);
        free (sb->vsock_socket);
        free (sb->console_log);
        free (sb->vmm_log);
        free (sb->vsockd_log);
        free (sb->kernel_release);
        free (sb);
        return rc;
}
