/* SPDX-License-Identifier: Apache-2.0 */
/* The QEMU backend: qemu-system-x86_64 -M microvm with direct kernel boot,
 * vhost-user-vsock-device (moat-vsock) and virtio-9p-device. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "moat/hypervisor.h"
#include "moat/log.h"
#include "moat/process.h"
#include "moat/util.h"

bool
moat_kvm_usable (void)
{
        cleanup_free char *cpuinfo = NULL;
        int fd;

        if (read_file ("/proc/cpuinfo", &cpuinfo, NULL, NULL) < 0)
                return false;
        if (strstr (cpuinfo, " vmx") == NULL && strstr (cpuinfo, " svm") == NULL)
                return false;
        fd = open ("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return false;
        close (fd);
        return true;
}

void
moat_vm_size (const struct oci_config *cfg, uint64_t *mem_mib, unsigned *vcpus)
{
        const struct oci_resources *r = cfg && cfg->linux_ ? cfg->linux_->resources : NULL;
        long ncpu = sysconf (_SC_NPROCESSORS_ONLN);

        *mem_mib = MOAT_VM_DEFAULT_MIB;
        *vcpus = 1;
        if (r && r->has_memory_limit && r->memory_limit > 0)
                *mem_mib = ((uint64_t)r->memory_limit + (1 << 20) - 1) / (1 << 20) + MOAT_VM_OVERHEAD_MIB;
        if (r && r->has_cpu_quota && r->cpu_quota > 0) {
                uint64_t period = r->has_cpu_period && r->cpu_period > 0 ? r->cpu_period : 100000;
                uint64_t n = ((uint64_t)r->cpu_quota + period - 1) / period;
                *vcpus = n < 1 ? 1 : n;
        }
        if (ncpu > 0 && *vcpus > (unsigned)ncpu)
                *vcpus = ncpu;
}

char *
moat_vm_cmdline (bool debug)
{
        return xasprintf_r ("console=ttyS0 reboot=t panic=-1 quiet%s", debug ? " moat.debug=1" : "");
}

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

static const char *
qemu_binary (void)
{
        const char *q = getenv ("MOAT_QEMU");
        return q && *q ? q : "/usr/bin/qemu-system-x86_64";
}

static int
qemu_start (const struct moat_vm_config *c, pid_t *pid, moat_error_t *err)
{
        bool kvm = moat_kvm_usable ();
        cleanup_free char *machine = NULL;
        cleanup_free char *memobj = NULL;
        cleanup_free char *mem = NULL;
        cleanup_free char *smp = NULL;
        cleanup_free char *serial = NULL;
        cleanup_free char *chardev = NULL;
        cleanup_free char *fsdev = NULL;
        struct moat_spawn_opts o = {
                .workdir = c->workdir, .log = c->vmm_log, .pass_fd = -1, .die_with_parent = c->die_with_parent};
        const char *argv[64];
        int n = 0;

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

        argv[n++] = qemu_binary ();
        argv[n++] = "-name";
        argv[n++] = "moat";
        argv[n++] = "-M";
        argv[n++] = machine;
        argv[n++] = "-accel";
        argv[n++] = kvm ? "kvm" : "tcg";
        argv[n++] = "-cpu";
        argv[n++] = kvm ? "host" : "max";
        argv[n++] = "-object";
        argv[n++] = memobj;
        argv[n++] = "-m";
        argv[n++] = mem;
        argv[n++] = "-smp";
        argv[n++] = smp;
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

const struct moat_hypervisor *
moat_hypervisor_get (const char *name, moat_error_t *err)
{
        if (name == NULL || strcmp (name, "auto") == 0)
                name = moat_hypervisor_auto (NULL);
        if (strcmp (name, "qemu") == 0)
                return &moat_qemu_hypervisor;
        if (strcmp (name, "moat-vmm") == 0)
                return &moat_vmm_hypervisor;
        moat_make_error (err, EINVAL, "unknown hypervisor \"%s\" (known: qemu, moat-vmm, auto)", name);
        return NULL;
}
