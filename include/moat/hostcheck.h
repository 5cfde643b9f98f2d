/* SPDX-License-Identifier: Apache-2.0 */
/* What this host offers the hypervisor backends (moat check, the choice of
 * `auto`, moat-vmm's refusal to start where it cannot boot a guest). */
#ifndef MOAT_HOSTCHECK_H
#define MOAT_HOSTCHECK_H

#include <stdbool.h>

struct moat_host_info {
        bool kvm_present;    /* /dev/kvm exists */
        bool kvm_openable;   /* and opens read-write */
        int kvm_errno;       /* why not (0 if it opened) */
        int kvm_api_version; /* KVM_GET_API_VERSION, -1 if unknown */
        const char *hw_flag; /* "vmx", "svm", or NULL: no hardware virtualization */
        char kvm_module[32]; /* kvm_intel, kvm_amd, kvm_pvm..., "" if none is loaded */
        bool vhost_vsock;    /* /dev/vhost-vsock exists (moat does not need it) */
};

void moat_host_probe (struct moat_host_info *h);

/* NULL if moat-vmm can boot a Linux guest here, else why not (static). */
const char *moat_vmm_unusable_reason (const struct moat_host_info *h);

#endif
