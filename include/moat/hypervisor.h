/* SPDX-License-Identifier: Apache-2.0 */
/* Hypervisor backends: start a microVM that boots the guest kernel and
 * initramfs with a vsock device (served by moat-vsock over vhost-user) and
 * the 9p share. Only QEMU for now; moat-vmm comes later. */
#ifndef MOAT_HYPERVISOR_H
#define MOAT_HYPERVISOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "moat/error.h"
#include "moat/oci.h"

#define MOAT_GUEST_CID 3
#define MOAT_VM_OVERHEAD_MIB 192
#define MOAT_VM_DEFAULT_MIB 512

struct moat_vm_config {
        const char *kernel, *initrd;
        const char *cmdline; /* the guest kernel command line */
        uint64_t mem_mib;
        unsigned vcpus;
        const char *vsock_socket; /* vhost-user socket (may be relative to workdir) */
        const char *share_dir;    /* exported as 9p tag "moatshare" */
        const char *console_log;  /* guest serial console output */
        const char *vmm_log;      /* the VMM's own stdout/stderr */
        const char *workdir;      /* the VMM's cwd */
        bool die_with_parent;     /* the VMM dies with the calling process (run) */
};

struct moat_hypervisor {
        const char *name;
        int (*start) (const struct moat_vm_config *c, pid_t *pid, moat_error_t *err);
};

/* "qemu" (also "auto" for now). */
const struct moat_hypervisor *moat_hypervisor_get (const char *name, moat_error_t *err);

/* Guest size from linux.resources: memory limit + MOAT_VM_OVERHEAD_MIB
 * (MOAT_VM_DEFAULT_MIB without a limit); vCPUs = ceil(quota/period),
 * at least 1, at most the host's CPUs. */
void moat_vm_size (const struct oci_config *cfg, uint64_t *mem_mib, unsigned *vcpus);

/* The guest kernel command line (malloc'd). */
char *moat_vm_cmdline (bool debug);

/* Whether hardware virtualisation is usable: vmx/svm in /proc/cpuinfo and
 * /dev/kvm opens. */
bool moat_kvm_usable (void);

extern const struct moat_hypervisor moat_qemu_hypervisor;

#endif
