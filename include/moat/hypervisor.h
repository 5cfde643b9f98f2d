/* SPDX-License-Identifier: Apache-2.0 */
/* Hypervisor backends: start a microVM that boots the guest kernel and
 * initramfs with a vsock device and the 9p share. QEMU's vsock device is
 * served by moat-vsock over vhost-user (needs_vsockd); moat-vmm serves the
 * hybrid-vsock socket itself. */
#ifndef MOAT_HYPERVISOR_H
#define MOAT_HYPERVISOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "moat/agent_proto.h"
#include "moat/error.h"
#include "moat/oci.h"

#define MOAT_VM_OVERHEAD_MIB 192
#define MOAT_VM_DEFAULT_MIB 512

struct moat_vm_config {
        const char *kernel, *initrd;
        const char *cmdline; /* the guest kernel command line */
        uint64_t mem_mib;
        unsigned vcpus;
        const char *vsock_socket;  /* vhost-user socket (may be relative to workdir), needs_vsockd backends */
        const char *hybrid_socket; /* hybrid-vsock socket the VMM serves itself (relative to workdir too) */
        const char *share_dir;     /* exported as 9p tag MOAT_SHARE_TAG */
        const char *console_log;   /* guest serial console output */
        const char *vmm_log;       /* the VMM's own stdout/stderr */
        const char *workdir;       /* the VMM's cwd */
        bool die_with_parent;      /* the VMM dies with the calling process (run) */
        /* Networking (include/moat/net.h): tap is NULL for none. A backend
         * with tap_by_name is spawned inside netns_fd and makes tap itself;
         * the others get tap_fd, an open tap in that namespace. */
        const char *tap;
        int tap_fd;
        int netns_fd;
};

struct moat_hypervisor {
        const char *name;
        bool needs_vsockd; /* the sandbox starts moat-vsock and passes its vhost-user socket */
        bool tap_by_name;  /* opens the tap itself, by name, in the namespace it runs in */
        int (*start) (const struct moat_vm_config *c, pid_t *pid, moat_error_t *err);
};

/* "qemu", "moat-vmm", or "auto"/NULL: moat_hypervisor_auto(). */
const struct moat_hypervisor *moat_hypervisor_get (const char *name, moat_error_t *err);

/* The backend `auto` picks here: "moat-vmm" where /dev/kvm is usable with
 * hardware virtualization (VMX/SVM), else "qemu". *why (if why) gets the
 * reason (malloc'd). */
const char *moat_hypervisor_auto (char **why);

/* The backend a container asks for: annotation MOAT_ANNOTATION_HYPERVISOR,
 * else env MOAT_HYPERVISOR, else NULL (auto). */
#define MOAT_ANNOTATION_HYPERVISOR "org.moat.hypervisor"
const char *moat_hypervisor_requested (const struct oci_config *cfg);

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
extern const struct moat_hypervisor moat_vmm_hypervisor; /* src/lib/vmm.c */

#endif
