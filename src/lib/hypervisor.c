/* SPDX-License-Identifier: Apache-2.0 */
/* The hypervisor registry (which backends exist, which one a container
 * gets) and the host probe behind it, `moat check` and the backends' own
 * refusals. The backends themselves are qemu.c and vmm.c. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/config.h"
#include "moat/hypervisor.h"
#include "moat/paths.h"
#include "moat/template.h"
#include "moat/util.h"

static const struct moat_hypervisor *const backends[] = {&moat_qemu_hypervisor, &moat_vmm_hypervisor};

void
moat_host_probe (struct moat_host_info *h)
{
        static const char *const modules[] = {"kvm_intel", "kvm_amd", "kvm_pvm"};
        cleanup_free char *cpuinfo = NULL;
        struct stat st;

        memset (h, 0, sizeof *h);
        h->kvm_api_version = -1;
        h->kvm_present = stat ("/dev/kvm", &st) == 0 && S_ISCHR (st.st_mode);
        if (h->kvm_present) {
                int fd = open ("/dev/kvm", O_RDWR | O_CLOEXEC);
                if (fd >= 0) {
                        h->kvm_openable = true;
                        h->kvm_api_version = ioctl (fd, KVM_GET_API_VERSION, 0);
                        close (fd);
                } else {
                        h->kvm_errno = errno;
                }
        } else {
                h->kvm_errno = ENOENT;
        }
        if (read_file ("/proc/cpuinfo", &cpuinfo, NULL, NULL) == 0) {
                char *save = NULL;
                for (char *line = strtok_r (cpuinfo, "\n", &save); line && !h->hw_flag;
                     line = strtok_r (NULL, "\n", &save)) {
                        char *colon = strchr (line, ':');
                        if (strncmp (line, "flags", 5) != 0 || colon == NULL)
                                continue;
                        char *s2 = NULL;
                        for (char *w = strtok_r (colon + 1, " \t", &s2); w; w = strtok_r (NULL, " \t", &s2))
                                if (strcmp (w, "vmx") == 0 || strcmp (w, "svm") == 0)
                                        h->hw_flag = w[0] == 'v' ? "vmx" : "svm";
                }
        }
        for (size_t i = 0; i < ARRAY_SIZE (modules); i++) {
                char p[64];
                snprintf (p, sizeof p, "/sys/module/%s", modules[i]);
                if (access (p, F_OK) == 0) {
                        snprintf (h->kvm_module, sizeof h->kvm_module, "%s", modules[i]);
                        break;
                }
        }
        h->vhost_vsock = stat ("/dev/vhost-vsock", &st) == 0;
}

bool
moat_kvm_usable (void)
{
        struct moat_host_info h;
        moat_host_probe (&h);
        return h.kvm_openable && h.hw_flag != NULL;
}

const char *
moat_hypervisor_auto (char **why)
{
        struct moat_host_info h;
        moat_host_probe (&h);
        const char *r = moat_vmm_unusable_reason (&h);
        if (r == NULL) {
                if (why)
                        *why = xasprintf_r ("/dev/kvm is usable with hardware virtualization (%s)", h.hw_flag);
                return moat_vmm_hypervisor.name;
        }
        if (why)
                *why = xasprintf_r ("%s, so moat-vmm cannot boot a Linux guest; QEMU runs it (%s)", r,
                                    h.kvm_openable && h.hw_flag ? "KVM" : "TCG, software emulation");
        return moat_qemu_hypervisor.name;
}

const char *
moat_hypervisor_requested (const struct oci_config *cfg)
{
        for (size_t i = 0; cfg && i < cfg->n_annotations; i++)
                if (strcmp (cfg->annotation_keys[i], MOAT_ANNOTATION_HYPERVISOR) == 0 && *cfg->annotation_values[i])
                        return cfg->annotation_values[i];
        const char *e = moat_config_str (MOAT_SET_HYPERVISOR);
        return strcmp (e, "auto") != 0 ? e : NULL;
}

const struct moat_hypervisor *
moat_hypervisor_get (const char *name, moat_error_t *err)
{
        if (name == NULL || strcmp (name, "auto") == 0)
                name = moat_hypervisor_auto (NULL);
        for (size_t i = 0; i < ARRAY_SIZE (backends); i++)
                if (strcmp (name, backends[i]->name) == 0)
                        return backends[i];
        moat_make_error (err, EINVAL, "unknown hypervisor \"%s\" (known: qemu, moat-vmm, auto)", name);
        return NULL;
}

static const char *
annotation (const struct oci_config *cfg, const char *key)
{
        for (size_t i = 0; cfg && i < cfg->n_annotations; i++)
                if (strcmp (cfg->annotation_keys[i], key) == 0)
                        return cfg->annotation_values[i];
        return NULL;
}

/* A positive decimal annotation, else 0 (absent or not a number). */
static uint64_t
annotation_u64 (const struct oci_config *cfg, const char *key)
{
        const char *v = annotation (cfg, key);
        char *end = NULL;
        unsigned long long n;
        if (v == NULL || *v < '0' || *v > '9')
                return 0;
        errno = 0;
        n = strtoull (v, &end, 10);
        return errno || end == v || *end ? 0 : (uint64_t)n;
}

void
moat_vm_size (const struct oci_config *cfg, uint64_t *mem_mib, unsigned *vcpus)
{
        const struct oci_resources *r = cfg && cfg->linux_ ? cfg->linux_->resources : NULL;
        long ncpu = sysconf (_SC_NPROCESSORS_ONLN);
        uint64_t memory = 0, quota = 0, period = 0;
        const char *type = annotation (cfg, MOAT_ANNOTATION_CRI_TYPE);

        if (r && r->has_memory_limit && r->memory_limit > 0)
                memory = r->memory_limit;
        if (r && r->has_cpu_quota && r->cpu_quota > 0) {
                quota = r->cpu_quota;
                period = r->has_cpu_period ? r->cpu_period : 0;
        }
        /* a pod's sandbox: the VM holds every container of the pod, sized
         * by what kubelet sums over them (CRI sandbox annotations) */
        if (type && strcmp (type, "sandbox") == 0) {
                if (annotation_u64 (cfg, MOAT_ANNOTATION_CRI_MEMORY) > 0)
                        memory = annotation_u64 (cfg, MOAT_ANNOTATION_CRI_MEMORY);
                if (annotation_u64 (cfg, MOAT_ANNOTATION_CRI_QUOTA) > 0) {
                        quota = annotation_u64 (cfg, MOAT_ANNOTATION_CRI_QUOTA);
                        period = annotation_u64 (cfg, MOAT_ANNOTATION_CRI_PERIOD);
                }
        }
        *mem_mib = moat_config_num (MOAT_SET_MEMORY_MIB);
        *vcpus = moat_config_num (MOAT_SET_VCPUS);
        if (memory > 0)
                *mem_mib = (memory + (1 << 20) - 1) / (1 << 20) + moat_config_num (MOAT_SET_OVERHEAD_MIB);
        if (quota > 0) {
                uint64_t n;
                if (period == 0)
                        period = 100000;
                n = (quota + period - 1) / period;
                *vcpus = n < 1 ? 1 : n;
        }
        if (ncpu > 0 && *vcpus > (unsigned)ncpu)
                *vcpus = ncpu;
}

const char moat_vmm_confinement[] =
        "seccomp allowlists (VMM; 9p worker process with the file syscalls alone), no_new_privs, no capabilities "
        "(9p worker: chown, dac_override, dac_read_search, fowner, fsetid), own mount namespace whose root is a "
        "read-only tmpfs with only the sandbox directory (read-only), inherited fds closed, no core dumps, "
        "RLIMIT_NOFILE fixed; runs as root (the 9p worker serves files with their owners)";
const char moat_qemu_confinement[] =
        "-sandbox " MOAT_QEMU_SANDBOX ", TCG translation cache bounded; no chroot (its 9p server needs /proc), "
        "runs as root (9p passthrough serves files with their owners)";

void
moat_vm_host_limits (const struct oci_config *cfg, const char *backend, struct moat_hostcg_limits *lim)
{
        const struct oci_resources *r = cfg && cfg->linux_ ? cfg->linux_->resources : NULL;
        bool qemu = backend == NULL || strcmp (backend, "moat-vmm") != 0;
        uint64_t mem_mib;
        unsigned vcpus;

        moat_vm_size (cfg, &mem_mib, &vcpus);
        memset (lim, 0, sizeof *lim);
        lim->memory_bytes = (mem_mib + (qemu ? MOAT_HOST_OVERHEAD_QEMU_MIB : MOAT_HOST_OVERHEAD_VMM_MIB)) << 20;
        lim->cpu_period_us = 100000;
        lim->cpu_quota_us = (uint64_t)vcpus * 100000;
        if (r && r->has_cpu_quota && r->cpu_quota > 0) {
                lim->cpu_period_us = r->has_cpu_period && r->cpu_period > 0 ? r->cpu_period : 100000;
                lim->cpu_quota_us = r->cpu_quota;
        }
        lim->pids = MOAT_HOST_PIDS_BASE + vcpus;
}

char *
moat_vm_cmdline (bool debug)
{
        const char *extra = moat_config_str (MOAT_SET_KERNEL_PARAMS);
        return xasprintf_r ("console=ttyS0 reboot=t panic=-1 quiet%s%s%s", debug ? " moat.debug=1" : "",
                            *extra ? " " : "", extra);
}

static void
find (struct moat_host_file *f, const char *label, enum moat_file which)
{
        cleanup_error moat_error_t err = NULL;
        f->label = label;
        if (moat_find_file (which, &f->path, &err) < 0)
                f->error = xstrdup (err->msg);
}

void
moat_host_report_probe (struct moat_host_report *r)
{
        moat_host_probe (&r->h);
        find (&r->kernel, "guest kernel", MOAT_FILE_KERNEL);
        find (&r->initrd, "initramfs", MOAT_FILE_INITRD);
        find (&r->vsockd, "moat-vsock", MOAT_FILE_VSOCKD);
        find (&r->vmm, "moat-vmm", MOAT_FILE_VMM);
        r->qemu_path = xstrdup (moat_qemu_binary ());
        r->qemu_version = moat_qemu_version (r->qemu_path, &r->qemu_error);

        bool guest = r->kernel.path && r->initrd.path;
        const char *why = moat_vmm_unusable_reason (&r->h);
        if (!guest)
                r->vmm_reason = xstrdup ("the guest kernel or initramfs is missing");
        else if (why)
                r->vmm_reason = xstrdup (why);
        else if (r->vmm.path == NULL)
                r->vmm_reason = xstrdup ("moat-vmm is not installed");
        else
                r->vmm_reason = xasprintf_r ("KVM with hardware virtualization (%s)", r->h.hw_flag);
        r->vmm_usable = guest && why == NULL && r->vmm.path;

        bool kvm = r->h.kvm_openable && r->h.hw_flag;
        if (!guest)
                r->qemu_reason = xstrdup ("the guest kernel or initramfs is missing");
        else if (r->qemu_version == NULL)
                r->qemu_reason = xasprintf_r ("QEMU does not run (%s)", r->qemu_error);
        else if (r->vsockd.path == NULL)
                r->qemu_reason = xstrdup ("moat-vsock is not installed");
        else
                r->qemu_reason = xstrdup (kvm ? "QEMU with KVM acceleration" : "QEMU with TCG (software emulation)");
        r->qemu_usable = guest && r->qemu_version && r->vsockd.path;
        r->auto_pick = moat_hypervisor_auto (&r->auto_why);
        r->template_status = moat_template_describe ();
}

void
moat_host_report_free (struct moat_host_report *r)
{
        struct moat_host_file *fs[] = {&r->kernel, &r->initrd, &r->vsockd, &r->vmm};
        for (size_t i = 0; i < ARRAY_SIZE (fs); i++) {
                free (fs[i]->path);
                free (fs[i]->error);
        }
        free (r->qemu_path);
        free (r->qemu_version);
        free (r->qemu_error);
        free (r->vmm_reason);
        free (r->qemu_reason);
        free (r->auto_why);
        free (r->template_status);
}
