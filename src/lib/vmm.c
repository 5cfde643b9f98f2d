/* SPDX-License-Identifier: Apache-2.0 */
/* The builtin backend: moat's own KVM VMM (moat-vmm, src/vmm) with its
 * in-process virtio-vsock (the hybrid-vsock socket is moat-vmm's own, so no
 * moat-vsock helper) and virtio-9p (served by moat-vmm's confined worker
 * process). */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moat/config.h"
#include "moat/hypervisor.h"
#include "moat/log.h"
#include "moat/paths.h"
#include "moat/process.h"
#include "moat/util.h"

const char *
moat_vmm_unusable_reason (const struct moat_host_info *h)
{
        if (!h->kvm_present)
                return "there is no /dev/kvm";
        if (!h->kvm_openable)
                return "/dev/kvm cannot be opened";
        if (h->kvm_api_version != KVM_API_VERSION)
                return "/dev/kvm speaks an unexpected KVM API version";
        if (h->hw_flag == NULL)
                return "this host has no hardware virtualization (VMX/SVM)";
        return NULL;
}

static int
vmm_start (const struct moat_vm_config *c, pid_t *pid, moat_error_t *err)
{
        const struct moat_host_info *h = c->host;
        const char *why = moat_vmm_unusable_reason (h);
        if (why && !moat_config_num (MOAT_SET_VMM_FORCE)) {
                if (h->kvm_present && h->kvm_openable && h->hw_flag == NULL)
                        return moat_make_error (err, 0,
                                                "moat-vmm needs hardware virtualization (VMX/SVM), this host has "
                                                "none; use hypervisor=qemu (MOAT_VMM_FORCE=1 or hypervisor.vmm_force = "
                                                "true tries anyway)");
                return moat_make_error (err, h->kvm_errno, "moat-vmm cannot run here: %s; use hypervisor=qemu", why);
        }

        cleanup_free char *bin = NULL;
        if (moat_find_file (MOAT_FILE_VMM, &bin, err) < 0)
                return -1;
        if (c->hybrid_socket == NULL)
                return moat_make_error (err, EINVAL, "moat-vmm: no hybrid vsock socket configured");
        char mem[32], cpus[16], cid[16];
        snprintf (mem, sizeof mem, "%lu", (unsigned long)c->mem_mib);
        snprintf (cpus, sizeof cpus, "%u", c->vcpus);
        snprintf (cid, sizeof cid, "%d", MOAT_GUEST_CID);
        cleanup_free char *share = xasprintf_r ("%s=%s", MOAT_SHARE_TAG, c->share_dir);
        const char *argv[32];
        int n = 0;
        argv[n++] = bin;
        argv[n++] = "--kernel";
        argv[n++] = c->kernel;
        argv[n++] = "--initrd";
        argv[n++] = c->initrd;
        argv[n++] = "--cmdline";
        argv[n++] = c->cmdline;
        argv[n++] = "--memory";
        argv[n++] = mem;
        argv[n++] = "--cpus";
        argv[n++] = cpus;
        argv[n++] = "--memfd";
        argv[n++] = "--serial-log";
        argv[n++] = c->console_log;
        argv[n++] = "--vsock-socket";
        argv[n++] = c->hybrid_socket;
        argv[n++] = "--guest-cid";
        argv[n++] = cid;
        argv[n++] = "--share";
        argv[n++] = share;
        /* its own mount namespace, whose root is only the sandbox
         * directory once the guest runs (src/vmm/jail.c) */
        argv[n++] = "--jail";
        if (c->tap) {
                argv[n++] = "--tap";
                argv[n++] = c->tap;
        }
        argv[n] = NULL;

        struct moat_spawn_opts o = {
                .workdir = c->workdir, .log = c->vmm_log, .pass_fd = -1, .die_with_parent = c->die_with_parent};
        cleanup_close int cur = -1;
        int r;
        moat_debug ("moat-vmm: %lu MiB, %u vCPU", (unsigned long)c->mem_mib, c->vcpus);
        /* with a network device, moat-vmm runs in the sandbox's network
         * namespace and makes its tap there (as Kata's hypervisor does) */
        if (c->tap && c->netns_fd >= 0) {
                cur = open ("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
                if (cur < 0)
                        return moat_make_error (err, errno, "open /proc/thread-self/ns/net");
                if (setns (c->netns_fd, CLONE_NEWNET) < 0)
                        return moat_make_error (err, errno, "start moat-vmm: enter the sandbox network namespace");
        }
        r = moat_spawn ((char *const *)argv, &o, pid, err);
        if (cur >= 0 && setns (cur, CLONE_NEWNET) < 0) {
                moat_log (MOAT_LOG_ERROR, "return to our network namespace: %s", strerror (errno));
                abort ();
        }
        if (r < 0)
                return moat_error_wrap (err, "start moat-vmm");
        return 0;
}

const struct moat_hypervisor moat_vmm_hypervisor = {
        .name = "moat-vmm",
        .needs_vsockd = false,
        .tap_by_name = true,
        .start = vmm_start,
};
