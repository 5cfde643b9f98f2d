/* SPDX-License-Identifier: Apache-2.0 */
/* The QEMU backend: qemu-system-x86_64 -M microvm with direct kernel boot,
 * vhost-user-vsock-device (moat-vsock) and virtio-9p-device. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "moat/config.h"
#include "moat/hypervisor.h"
#include "moat/log.h"
#include "moat/process.h"
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

static int
qemu_start (const struct moat_vm_config *c, pid_t *pid, moat_error_t *err)
{
        bool kvm = c->host->kvm_openable && c->host->hw_flag != NULL;
        cleanup_free char *machine = NULL;
        cleanup_free char *memobj = NULL;
        cleanup_free char *mem = NULL;
        cleanup_free char *smp = NULL;
        cleanup_free char *serial = NULL;
        cleanup_free char *chardev = NULL;
        cleanup_free char *fsdev = NULL;
        cleanup_free char *accel = NULL;
        struct moat_spawn_opts o = {
                .workdir = c->workdir, .log = c->vmm_log, .pass_fd = -1, .die_with_parent = c->die_with_parent};
        const char *argv[64];
        int n = 0;

        accel = xasprintf_r ("tcg,tb-size=%d", MOAT_QEMU_TB_MIB);
        machine = xasprintf_r ("microvm,acpi=off,x-option-roms=off,rtc=off,isa-serial=on,memory-backend=mem");
        memobj = xasprintf_r ("memory-backend-memfd,id=mem,size=%luM,share=on", (unsigned long)c->mem_mib);
        mem = xasprintf_r ("%luM", (unsigned long)c->mem_mib);
        smp = xasprintf_r ("%u", c->vcpus);
        cleanup_free char *e_console = qemu_escape (c->console_log);
        cleanup_free char *e_sock = qemu_escape (c->vsock_socket);
        cleanup_free char *e_share = qemu_escape (c->share_dir);
        serial = xasprintf_r ("file:%s", e_console);
        chardev = xasprintf_r ("socket,id=vsock,path=%s", e_sock);
        fsdev = xasprintf_r ("local,id=share,path=%s,security_model=passthrough,multidevs=remap", e_share);

        argv[n++] = moat_qemu_binary ();
        argv[n++] = "-name";
        argv[n++] = "moat";
        argv[n++] = "-M";
        argv[n++] = machine;
        argv[n++] = "-accel";
        /* TCG's translation cache bounded (QEMU's default here is 1 GiB,
         * which a guest could fill): part of the host-side memory margin */
        argv[n++] = kvm ? "kvm" : accel;
        argv[n++] = "-cpu";
        argv[n++] = kvm ? "host" : "max";
        argv[n++] = "-object";
        argv[n++] = memobj;
        argv[n++] = "-m";
        argv[n++] = mem;
        argv[n++] = "-smp";
        argv[n++] = smp;
        /* QEMU's own confinement (docs/architecture.md, Confinement):
         * its seccomp filter without obsolete, privilege-raising,
         * process-spawning or scheduling/resource syscalls. No -chroot:
         * QEMU 7.2's 9p backend changes modes through /proc/self/fd,
         * which an empty chroot lacks (mkdir over 9p fails with ENOENT) */
        argv[n++] = "-sandbox";
        argv[n++] = MOAT_QEMU_SANDBOX;
        argv[n++] = "-nodefaults";
        argv[n++] = "-no-user-config";
        argv[n++] = "-nographic";
        argv[n++] = "-no-reboot";
        argv[n++] = "-kernel";
        argv[n++] = c->kernel;
        argv[n++] = "-initrd";
        argv[n++] = c->initrd;
        argv[n++] = "-append";
        argv[n++] = c->cmdline;
        argv[n++] = "-serial";
        argv[n++] = serial;
        argv[n++] = "-chardev";
        argv[n++] = chardev;
        argv[n++] = "-device";
        argv[n++] = "vhost-user-vsock-device,chardev=vsock";
        argv[n++] = "-fsdev";
        argv[n++] = fsdev;
        argv[n++] = "-device";
        argv[n++] = "virtio-9p-device,fsdev=share,mount_tag=" MOAT_SHARE_TAG;
        if (c->tap && c->tap_fd >= 0) {
                /* the tap (made in the sandbox network namespace) as fd 3 */
                o.pass_fd = c->tap_fd;
                o.pass_fd_as = 3;
                argv[n++] = "-netdev";
                argv[n++] = "tap,id=net0,fd=3";
                argv[n++] = "-device";
                argv[n++] = "virtio-net-device,netdev=net0";
        }
        argv[n] = NULL;

        moat_debug ("qemu: accel %s, %lu MiB, %u vCPU", kvm ? "kvm" : "tcg", (unsigned long)c->mem_mib, c->vcpus);
        if (moat_spawn ((char *const *)argv, &o, pid, err) < 0)
                return moat_error_wrap (err, "start qemu");
        return 0;
}

const struct moat_hypervisor moat_qemu_hypervisor = {
        .name = "qemu",
        .needs_vsockd = true,
        .start = qemu_start,
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
