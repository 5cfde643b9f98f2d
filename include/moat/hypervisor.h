/* SPDX-License-Identifier: Apache-2.0 */
/* Hypervisor backends and their registry (src/lib/hypervisor.c): a backend
 * starts a microVM that boots the guest kernel and initramfs with a vsock
 * device and the 9p share. QEMU's vsock device (qemu.c) is served by
 * moat-vsock over vhost-user (needs_vsockd); moat-vmm (vmm.c) serves the
 * hybrid-vsock socket itself. The host probe says what this host offers
 * them (moat check, the choice of `auto`, moat-vmm's refusal to start where
 * it cannot boot a guest). */
#ifndef MOAT_HYPERVISOR_H
#define MOAT_HYPERVISOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "moat/agent_proto.h"
#include "moat/error.h"
#include "moat/hostcgroup.h"
#include "moat/oci.h"
#include "moat/paths.h"

#define MOAT_VM_OVERHEAD_MIB 192
#define MOAT_VM_DEFAULT_MIB 512

/* --- the host probe --- */
struct moat_host_info {
        bool kvm_present;    /* /dev/kvm exists */
        bool kvm_openable;   /* and opens read-write */
        int kvm_errno;       /* why not (0 if it opened) */
        int kvm_api_version; /* KVM_GET_API_VERSION, -1 if unknown */
        const char *hw_flag; /* "vmx", "svm", or NULL: no hardware virtualization */
        char kvm_module[32]; /* kvm_intel, kvm_amd, kvm_pvm..., "" if none is loaded */
        bool vhost_vsock;    /* /dev/vhost-vsock exists (moat does not need it) */
};

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
        const struct moat_host_info *host; /* what the host offers (moat_host_probe) */
        /* Templates (template.c): restore_state is a saved template to
         * restore instead of booting (cmdline is then the template's). */
        const char *restore_state;
};

struct moat_hypervisor {
        const char *name;
        bool needs_vsockd; /* the sandbox starts moat-vsock and passes its vhost-user socket */
        bool tap_by_name;  /* opens the tap itself, by name, in the namespace it runs in */
        int (*start) (const struct moat_vm_config *c, pid_t *pid, moat_error_t *err);
        /* Templates (template.c), NULL where the backend has none:
         * template_cmdline is what a template's kernel command line gets
         * besides MOAT_TEMPLATE_CMDLINE (the device slots a restore fills);
         * template_save boots c (no devices: its sockets, share and tap are
         * ignored) in dir until the agent is idle and saves it there as
         * dir/MOAT_TEMPLATE_STATE. */
        const char *template_cmdline;
        int (*template_save) (const struct moat_vm_config *c, const char *dir, moat_error_t *err);
        /* Whether this host's backend can restore what template_save
         * saves, tried in dir (its scratch directory): 0 yes, -1 with the
         * reason. template.c caches the answer per backend binary. */
        int (*template_probe) (const struct moat_vm_config *c, const char *dir, moat_error_t *err);
};
#define MOAT_TEMPLATE_STATE "state"

/* "qemu", "moat-vmm", or "auto"/NULL: moat_hypervisor_auto(). */
const struct moat_hypervisor *moat_hypervisor_get (const char *name, moat_error_t *err);

/* The backend `auto` picks here: "moat-vmm" where /dev/kvm is usable with
 * hardware virtualization (VMX/SVM), else "qemu". *why (if why) gets the
 * reason (malloc'd). */
const char *moat_hypervisor_auto (char **why);

/* The backend a container asks for: annotation MOAT_ANNOTATION_HYPERVISOR,
 * else the runtime.hypervisor setting (MOAT_HYPERVISOR, moat.conf), NULL
 * when that is auto. */
#define MOAT_ANNOTATION_HYPERVISOR "org.moat.hypervisor"
const char *moat_hypervisor_requested (const struct oci_config *cfg);

/* The CRI's annotations on a pod's sandbox container: its type, and the
 * pod's resources summed over its containers (kubelet 1.23+). */
#define MOAT_ANNOTATION_CRI_TYPE "io.kubernetes.cri.container-type"
#define MOAT_ANNOTATION_CRI_MEMORY "io.kubernetes.cri.sandbox-memory"
#define MOAT_ANNOTATION_CRI_QUOTA "io.kubernetes.cri.sandbox-cpu-quota"
#define MOAT_ANNOTATION_CRI_PERIOD "io.kubernetes.cri.sandbox-cpu-period"

/* Guest size from linux.resources, or for a pod's sandbox container from
 * the CRI sandbox annotations above when they are set: memory limit +
 * guest.overhead_mib (guest.memory_mib without a limit); vCPUs =
 * ceil(quota/period) (guest.vcpus without a quota), at least 1, at most
 * the host's CPUs. MOAT_VM_*_MIB are the built-in defaults of those
 * settings. */
void moat_vm_size (const struct oci_config *cfg, uint64_t *mem_mib, unsigned *vcpus);

/* What a sandbox may take of the host beyond its guest's RAM: the VMM's
 * own memory (code, heap, device buffers, QEMU's TCG translation cache),
 * moat-vsock, the stand-ins and the page tables, measured (docs/limits.md,
 * "Host-side limits"):
 * - QEMU 7.2 with TCG, 448 MiB guest, all guest RAM touched: QEMU's
 *   anonymous memory was 66 MiB beyond the guest's memfd, of it most the
 *   translation cache, which moat bounds with tb-size=MOAT_QEMU_TB_MIB;
 *   moat-vsock 2.5 MiB, a stand-in about 1 MiB. The cgroup's peak with a
 *   guest that filled its RAM stayed 5x below the margin below.
 * - moat-vmm: 34 MiB RSS with an idle container in the nested bed, guest
 *   pages included (docs/testing.md); its 9p worker a few MiB more. */
#define MOAT_QEMU_TB_MIB 128
#define MOAT_HOST_OVERHEAD_QEMU_MIB (MOAT_QEMU_TB_MIB + 128)
#define MOAT_HOST_OVERHEAD_VMM_MIB 96
/* Room for the VMM's threads (QEMU: main loop, RCU, vCPUs and a worker
 * pool of up to 64 for 9p I/O), moat-vsock's, and the stand-ins (one per
 * running exec): a fork bomb of a compromised VMM stops there. */
#define MOAT_HOST_PIDS_BASE 256

/* The sandbox's host-side limits (its cgroup) for a config and backend:
 * memory = guest RAM (moat_vm_size) + the backend's overhead above; CPU
 * quota = linux.resources.cpu quota/period, else the vCPUs' worth
 * (vcpus x 100 ms per 100 ms); pids = MOAT_HOST_PIDS_BASE + vCPUs. */
void moat_vm_host_limits (const struct oci_config *cfg, const char *backend, struct moat_hostcg_limits *lim);

/* How each backend is confined on the host (moat check says it; the
 * backends apply it: qemu.c passes MOAT_QEMU_SANDBOX to -sandbox, vmm.c
 * runs moat-vmm with --jail, src/vmm/jail.c). */
#define MOAT_QEMU_SANDBOX "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
/* ... for the VM a template is saved from (it runs no container code) */
#define MOAT_QEMU_SANDBOX_TEMPLATE "on,obsolete=deny,elevateprivileges=deny,resourcecontrol=deny"
extern const char moat_vmm_confinement[];
extern const char moat_qemu_confinement[];

/* The guest kernel command line (malloc'd), guest.kernel_params last. */
char *moat_vm_cmdline (bool debug);

void moat_host_probe (struct moat_host_info *h);

/* NULL if moat-vmm can boot a Linux guest here, else why not (static;
 * src/lib/vmm.c). */
const char *moat_vmm_unusable_reason (const struct moat_host_info *h);

/* Whether hardware virtualisation is usable: vmx/svm in /proc/cpuinfo and
 * /dev/kvm opens. */
bool moat_kvm_usable (void);

/* Everything `moat check` reports: the probe, the companion files, QEMU,
 * whether each backend can run a container here and why, what `auto`
 * picks. */
struct moat_host_file {
        const char *label;
        char *path;  /* NULL if not found */
        char *error; /* why not */
};
struct moat_host_report {
        struct moat_host_info h;
        struct moat_host_file kernel, initrd, vsockd, vmm;
        char *qemu_path;
        char *qemu_version; /* first line of --version; NULL if it did not run */
        char *qemu_error;
        bool vmm_usable, qemu_usable;
        char *vmm_reason, *qemu_reason;
        const char *auto_pick;
        char *auto_why;
        char *template_status; /* moat_template_describe() */
};
void moat_host_report_probe (struct moat_host_report *r);
void moat_host_report_free (struct moat_host_report *r);

/* --- the backends --- */
extern const struct moat_hypervisor moat_qemu_hypervisor; /* src/lib/qemu.c */
extern const struct moat_hypervisor moat_vmm_hypervisor;  /* src/lib/vmm.c */

/* QEMU's binary (env MOAT_QEMU, else /usr/bin/qemu-system-x86_64), and the
 * first line of `bin --version` (NULL with *error if it does not run). */
const char *moat_qemu_binary (void);
char *moat_qemu_version (const char *bin, char **error);

#endif
