/* SPDX-License-Identifier: Apache-2.0 */
/* The QEMU backend: qemu-system-x86_64 -M microvm with direct kernel boot,
 * vhost-user-vsock-device (moat-vsock) and virtio-9p-device. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "moat/config.h"
#include "moat/hypervisor.h"
#include "moat/log.h"
#include "moat/process.h"
#include "moat/qmp.h"
#include "moat/sandbox.h"
#include "moat/util.h"

/* QEMU option values double their commas. */
static char *
qemu_escape (const char *s)
{
        char *out = xmalloc (strlen (s) * 2 + 1), *w = out;
        for (; *s; s++) {
                *w++ = *s;
                if (*s == ',')
                        *w++ = ',';
        }
        *w = '\0';
        return out;
}

const char *
moat_qemu_binary (void)
{
        return moat_config_str (MOAT_SET_QEMU);
}

/* A QEMU command line and the strings it owns. */
struct qemu_args {
        const char *argv[64];
        int n;
        char *own[16];
        int nown;
};

static const char *
own (struct qemu_args *a, char *s)
{
        a->own[a->nown++] = s;
        return s;
}

static void
qemu_args_free (struct qemu_args *a)
{
        for (int i = 0; i < a->nown; i++)
                free (a->own[i]);
}

/* The machine, shared by a cold boot, a template and its restores: a
 * restore must see the same machine the template was saved from. */
static void
machine_args (const struct moat_vm_config *c, const char *sandbox, struct qemu_args *a)
{
        bool kvm = c->host->kvm_openable && c->host->hw_flag != NULL;
        cleanup_free char *e_console = qemu_escape (c->console_log);

        a->argv[a->n++] = moat_qemu_binary ();
        a->argv[a->n++] = "-name";
        a->argv[a->n++] = "moat";
        a->argv[a->n++] = "-M";
        a->argv[a->n++] = "microvm,acpi=off,x-option-roms=off,rtc=off,isa-serial=on,memory-backend=mem";
        a->argv[a->n++] = "-accel";
        /* TCG's translation cache bounded (QEMU's default here is 1 GiB,
         * which a guest could fill): part of the host-side memory margin */
        a->argv[a->n++] = kvm ? "kvm" : own (a, xasprintf_r ("tcg,tb-size=%d", MOAT_QEMU_TB_MIB));
        a->argv[a->n++] = "-cpu";
        a->argv[a->n++] = kvm ? "host" : "max";
        a->argv[a->n++] = "-object";
        a->argv[a->n++] =
                own (a, xasprintf_r ("memory-backend-memfd,id=mem,size=%luM,share=on", (unsigned long)c->mem_mib));
        a->argv[a->n++] = "-m";
        a->argv[a->n++] = own (a, xasprintf_r ("%luM", (unsigned long)c->mem_mib));
        a->argv[a->n++] = "-smp";
        a->argv[a->n++] = own (a, xasprintf_r ("%u", c->vcpus));
        /* QEMU's own confinement (docs/architecture.md, Confinement):
         * its seccomp filter without obsolete, privilege-raising,
         * process-spawning or scheduling/resource syscalls. No -chroot:
         * QEMU 7.2's 9p backend changes modes through /proc/self/fd,
         * which an empty chroot lacks (mkdir over 9p fails with ENOENT) */
        a->argv[a->n++] = "-sandbox";
        a->argv[a->n++] = sandbox;
        a->argv[a->n++] = "-nodefaults";
        a->argv[a->n++] = "-no-user-config";
        a->argv[a->n++] = "-nographic";
        a->argv[a->n++] = "-no-reboot";
        a->argv[a->n++] = "-kernel";
        a->argv[a->n++] = c->kernel;
        a->argv[a->n++] = "-initrd";
        a->argv[a->n++] = c->initrd;
        a->argv[a->n++] = "-append";
        a->argv[a->n++] = c->cmdline;
        a->argv[a->n++] = "-serial";
        a->argv[a->n++] = own (a, xasprintf_r ("file:%s", e_console));
}

/* The sandbox's devices, in this order: microvm gives them the virtio-mmio
 * slots from the top down, which template_cmdline declares for templates. */
static void
device_args (const struct moat_vm_config *c, struct qemu_args *a, struct moat_spawn_opts *o)
{
        cleanup_free char *e_sock = qemu_escape (c->vsock_socket);
        cleanup_free char *e_share = qemu_escape (c->share_dir);

        a->argv[a->n++] = "-chardev";
        a->argv[a->n++] = own (a, xasprintf_r ("socket,id=vsock,path=%s", e_sock));
        a->argv[a->n++] = "-device";
        a->argv[a->n++] = "vhost-user-vsock-device,chardev=vsock";
        a->argv[a->n++] = "-fsdev";
        a->argv[a->n++] =
                own (a, xasprintf_r ("local,id=share,path=%s,security_model=passthrough,multidevs=remap", e_share));
        a->argv[a->n++] = "-device";
        a->argv[a->n++] = "virtio-9p-device,fsdev=share,mount_tag=" MOAT_SHARE_TAG;
        if (c->tap && c->tap_fd >= 0) {
                /* the tap (made in the sandbox network namespace) as fd 3 */
                o->pass_fd = c->tap_fd;
                o->pass_fd_as = 3;
                a->argv[a->n++] = "-netdev";
                a->argv[a->n++] = "tap,id=net0,fd=3";
                a->argv[a->n++] = "-device";
                a->argv[a->n++] = "virtio-net-device,netdev=net0";
        }
}

/* "exec:cat '<path>'" (QEMU runs it with /bin/sh -c) */
static char *
incoming_uri (const char *path)
{
        size_t n = strlen (path);
        char *out = xmalloc (n * 4 + 16), *w = out;
        w += sprintf (w, "exec:cat '");
        for (const char *p = path; *p; p++) {
                if (*p == '\'') {
                        memcpy (w, "'\\''", 4);
                        w += 4;
                } else
                        *w++ = *p;
        }
        strcpy (w, "'");
        return out;
}

static int
qemu_start (const struct moat_vm_config *c, pid_t *pid, moat_error_t *err)
{
        bool kvm = c->host->kvm_openable && c->host->hw_flag != NULL;
        struct moat_spawn_opts o = {
                .workdir = c->workdir, .log = c->vmm_log, .pass_fd = -1, .die_with_parent = c->die_with_parent};
        struct qemu_args a = {.n = 0};
        int r;

        machine_args (c, MOAT_QEMU_SANDBOX, &a);
        device_args (c, &a, &o);
        if (c->restore_state) {
                a.argv[a.n++] = "-incoming";
                a.argv[a.n++] = own (&a, incoming_uri (c->restore_state));
        }
        a.argv[a.n] = NULL;

        moat_debug ("qemu: accel %s, %lu MiB, %u vCPU%s", kvm ? "kvm" : "tcg", (unsigned long)c->mem_mib, c->vcpus,
                    c->restore_state ? ", from a template" : "");
        r = moat_spawn ((char *const *)a.argv, &o, pid, err);
        qemu_args_free (&a);
        if (r < 0)
                return moat_error_wrap (err, "start qemu");
        return 0;
}

/* How many idle lines the console log holds, and whether the last of the
 * agent's template lines is an idle one (-1: the log is unreadable). */
static int
count_idle (const char *console, bool *last_idle)
{
        cleanup_free char *log = NULL;
        cleanup_error moat_error_t e = NULL;
        const char *p, *last_i = NULL, *last_p = NULL;
        int n = 0;

        *last_idle = false;
        if (read_file (console, &log, NULL, &e) < 0)
                return -1;
        for (p = log; (p = strstr (p, MOAT_TEMPLATE_IDLE)) != NULL; p++, n++)
                last_i = p;
        for (p = log; (p = strstr (p, MOAT_TEMPLATE_PROBING)) != NULL; p++)
                last_p = p;
        *last_idle = last_i && (last_p == NULL || last_i > last_p);
        return n;
}

/* Waits for an idle line beyond the first `after` (QEMU exits or the
 * deadline passes: error); returns the count. */
static int
wait_idle (const char *console, pid_t pid, int after, int64_t deadline, moat_error_t *err)
{
        for (;;) {
                bool last_idle;
                int st, n = count_idle (console, &last_idle);
                if (n > after && last_idle)
                        return n;
                if (moat_wait_pid (pid, 0, &st) == 1)
                        return moat_make_error (err, 0, "the template VM exited during boot");
                if (now_ms () >= deadline)
                        return moat_make_error (err, ETIMEDOUT, "the template VM's agent was not idle in time");
                struct timespec ts = {0, 5 * 1000 * 1000};
                nanosleep (&ts, NULL);
        }
}

static int
qemu_template_save (const struct moat_vm_config *c, const char *dir, moat_error_t *err)
{
        struct moat_vm_config tc = *c;
        struct moat_spawn_opts o = {.workdir = dir, .log = "qemu.log", .pass_fd = -1, .die_with_parent = true};
        struct qemu_args a = {.n = 0};
        cleanup_close int q = -1;
        int64_t deadline = now_ms () + moat_boot_timeout_ms ();
        pid_t pid = -1;
        int r;

        /* relative to dir, QEMU's cwd */
        tc.console_log = "console.log";
        /* the template VM runs no container and saves itself through
         * "exec:cat": it may spawn (the sandboxes restored from it may not) */
        machine_args (&tc, MOAT_QEMU_SANDBOX_TEMPLATE, &a);
        a.argv[a.n++] = "-qmp";
        a.argv[a.n++] = "unix:qmp.sock,server=on,wait=off";
        a.argv[a.n++] = "-global";
        a.argv[a.n++] = "migration.store-global-state=off";
        a.argv[a.n] = NULL;
        r = moat_spawn ((char *const *)a.argv, &o, &pid, err);
        qemu_args_free (&a);
        if (r < 0)
                return moat_error_wrap (err, "start qemu for the template");
        cleanup_free char *console = xasprintf_r ("%s/console.log", dir);
        cleanup_free char *qmp = xasprintf_r ("%s/qmp.sock", dir);
        int seen = wait_idle (console, pid, 0, deadline, err);
        if (seen < 0)
                goto fail;
        q = moat_qmp_open (qmp, now_ms () + 10000, err);
        if (q < 0)
                goto fail;
        /* stop it in a sleep of the agent's (agent/template.c): right
         * after a fresh idle line, and only if no probing line followed */
        for (;;) {
                bool last_idle;
                seen = wait_idle (console, pid, seen, deadline, err);
                if (seen < 0)
                        goto fail;
                if (moat_qmp_cmd (q, "{\"execute\":\"stop\"}", now_ms () + 10000, NULL, err) < 0)
                        goto fail;
                if (count_idle (console, &last_idle) == seen && last_idle)
                        break;
                seen = count_idle (console, &last_idle);
                if (moat_qmp_cmd (q, "{\"execute\":\"cont\"}", now_ms () + 10000, NULL, err) < 0)
                        goto fail;
        }
        /* the VM is stopped; -global migration.store-global-state=off
         * keeps "paused" out of the state, so a restore runs at once */
        if (moat_qmp_cmd (q, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > " MOAT_TEMPLATE_STATE "\"}}",
                          now_ms () + 10000, NULL, err) < 0)
                goto fail;
        for (int64_t until = now_ms () + 60000;;) {
                cleanup_free char *reply = NULL;
                if (moat_qmp_cmd (q, "{\"execute\":\"query-migrate\"}", now_ms () + 10000, &reply, err) < 0)
                        goto fail;
                if (strstr (reply, "\"status\": \"completed\""))
                        break;
                if (strstr (reply, "\"status\": \"failed\"") || strstr (reply, "\"status\": \"cancelled\"")) {
                        moat_make_error (err, 0, "saving the template failed: %.200s", reply);
                        goto fail;
                }
                if (now_ms () >= until) {
                        moat_make_error (err, ETIMEDOUT, "saving the template took over 60s");
                        goto fail;
                }
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep (&ts, NULL);
        }
        moat_qmp_cmd (q, "{\"execute\":\"quit\"}", now_ms () + 5000, NULL, NULL);
        moat_stop_pid (pid, SIGTERM, 5000);
        return 0;
fail:
        moat_stop_pid (pid, SIGKILL, 5000);
        {
                cleanup_free char *t = moat_file_tail (console, 5);
                cleanup_free char *l = xasprintf_r ("%s/qemu.log", dir);
                cleanup_free char *ql = moat_file_tail (l, 3);
                if (*t || *ql)
                        moat_debug ("template VM: console: %s; qemu: %s", t, ql);
        }
        return -1;
}

/* Restoring needs every device of a sandbox to accept an incoming
 * migration. QEMU refuses to load any state into a machine with an
 * unmigratable device (QEMU 7.2 marks vhost-user-vsock-device so), before
 * it reads the stream: a machine with the vsock device and an empty
 * stream (one newline: QEMU waits for a first byte) tells which error this QEMU gives. */
static int
qemu_template_probe (const struct moat_vm_config *c, const char *dir, moat_error_t *err)
{
        cleanup_free char *bin = NULL;
        cleanup_free char *vh = xasprintf_r ("%s/vh.sock", dir);
        cleanup_free char *log = xasprintf_r ("%s/qemu.log", dir);
        cleanup_free char *out = NULL;
        cleanup_error moat_error_t e = NULL;
        struct moat_spawn_opts vo = {.workdir = dir, .log = "vsock.log", .pass_fd = -1, .die_with_parent = true};
        struct moat_spawn_opts qo = {.workdir = dir, .log = "qemu.log", .pass_fd = -1, .die_with_parent = true};
        const char *vargv[] = {NULL, "--vhost-user", "vh.sock", "--socket", "vs.sock", NULL};
        const char *qargv[] = {moat_qemu_binary (),
                               "-M",
                               "microvm,acpi=off,x-option-roms=off,rtc=off,memory-backend=mem",
                               "-accel",
                               "tcg",
                               "-object",
                               "memory-backend-memfd,id=mem,size=64M,share=on",
                               "-m",
                               "64M",
                               "-nodefaults",
                               "-no-user-config",
                               "-display",
                               "none",
                               "-chardev",
                               "socket,id=vsock,path=vh.sock",
                               "-device",
                               "vhost-user-vsock-device,chardev=vsock",
                               "-incoming",
                               "exec:echo",
                               NULL};
        pid_t vpid = -1, qpid = -1;
        int st, rc = -1;

        if (moat_find_file (MOAT_FILE_VSOCKD, &bin, err) < 0)
                return -1;
        vargv[0] = bin;
        if (moat_spawn ((char *const *)vargv, &vo, &vpid, err) < 0)
                return moat_error_wrap (err, "template probe: start moat-vsock");
        for (int i = 0; i < 500 && access (vh, F_OK) < 0; i++) {
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep (&ts, NULL);
        }
        if (moat_spawn ((char *const *)qargv, &qo, &qpid, err) < 0) {
                moat_error_wrap (err, "template probe: start qemu");
                goto out;
        }
        if (moat_wait_pid (qpid, 20000, &st) != 1) {
                moat_make_error (err, ETIMEDOUT, "template probe: QEMU did not give up an empty stream in 20s");
                goto out;
        }
        qpid = -1;
        if (read_file (log, &out, NULL, &e) < 0) {
                moat_make_error (err, 0, "template probe: %s", e->msg);
                goto out;
        }
        char *blocked = strstr (out, "non-migratable device");
        if (blocked) {
                char *line = blocked;
                while (line > out && line[-1] != '\n')
                        line--;
                line[strcspn (line, "\n")] = '\0';
                moat_make_error (err, 0, "%s cannot restore a VM with vhost-user-vsock-device (\"%s\")",
                                 moat_qemu_binary (), line);
                goto out;
        }
        /* yes only when QEMU got as far as reading the stream */
        if (strstr (out, "migration stream") == NULL && strstr (out, "load of migration failed") == NULL) {
                moat_make_error (err, 0, "template probe: inconclusive, QEMU said: %.200s", out);
                goto out;
        }
        rc = 0;
out:
        if (qpid > 0)
                moat_stop_pid (qpid, SIGKILL, 5000);
        if (vpid > 0)
                moat_stop_pid (vpid, SIGTERM, 2000);
        return rc;
}

/* The slots device_args fills, in its order (vsock, 9p, net). */
#define QEMU_TEMPLATE_SLOTS                                                                                            \
        "virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11 "                                   \
        "virtio_mmio.device=512@0xfeb00a00:10"

const struct moat_hypervisor moat_qemu_hypervisor = {
        .name = "qemu",
        .needs_vsockd = true,
        .start = qemu_start,
        .template_cmdline = QEMU_TEMPLATE_SLOTS,
        .template_save = qemu_template_save,
        .template_probe = qemu_template_probe,
};

/* Runs `bin --version`; returns its first output line or NULL (*error set). */
char *
moat_qemu_version (const char *bin, char **error)
{
        int p[2];
        if (access (bin, X_OK) < 0) {
                *error = xasprintf_r ("%s: %s", bin, strerror (errno));
                return NULL;
        }
        if (pipe2 (p, O_CLOEXEC) < 0) {
                *error = xasprintf_r ("pipe: %s", strerror (errno));
                return NULL;
        }
        pid_t pid = fork ();
        if (pid < 0) {
                *error = xasprintf_r ("fork: %s", strerror (errno));
                close (p[0]);
                close (p[1]);
                return NULL;
        }
        if (pid == 0) {
                int null = open ("/dev/null", O_RDWR);
                dup2 (null, 0);
                dup2 (p[1], 1);
                dup2 (null, 2);
                execl (bin, bin, "--version", (char *)NULL);
                _exit (127);
        }
        close (p[1]);
        char buf[512];
        size_t n = 0;
        ssize_t r;
        while (n < sizeof buf - 1 && ((r = read (p[0], buf + n, sizeof buf - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
                if (r > 0)
                        n += r;
        buf[n] = '\0';
        close (p[0]);
        int st;
        while (waitpid (pid, &st, 0) < 0 && errno == EINTR)
                ;
        if (!WIFEXITED (st) || WEXITSTATUS (st) != 0 || n == 0) {
                *error = xasprintf_r ("%s --version failed", bin);
                return NULL;
        }
        buf[strcspn (buf, "\n")] = '\0';
        return xstrdup (buf);
}
