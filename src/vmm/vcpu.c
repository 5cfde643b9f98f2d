/* SPDX-License-Identifier: Apache-2.0 */
/* vCPUs: one thread each running KVM_RUN and dispatching exits to the
 * buses. A stop request (any thread) writes the VM's eventfd; the main
 * thread then sets immediate_exit on every vCPU and kicks it out of KVM_RUN
 * with SIGUSR1, whose handler does nothing. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <time.h>
#include <linux/kvm.h>

#include "moat/log.h"
#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_boot.h"
#include "moat/vmm_jail.h"

#define KICK_SIGNAL SIGUSR1

/* Local APIC register offsets and LVT delivery modes. */
#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7

static void
set_lvt (struct kvm_lapic_state *l, int reg, uint32_t mode)
{
        uint32_t v;
        memcpy (&v, &l->regs[reg], 4);
        v = (v & ~0x700u) | (mode << 8);
        memcpy (&l->regs[reg], &v, 4);
}

static int
setup_vcpu (struct vmm *vm, struct vmm_vcpu *c, moat_error_t *err)
{
        c->fd = ioctl (vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)c->id);
        if (c->fd < 0)
                return moat_make_error (err, errno, "KVM_CREATE_VCPU %d", c->id);
        set_cloexec (c->fd, true);
        c->run = mmap (NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
        if (c->run == MAP_FAILED) {
                c->run = NULL;
                return moat_make_error (err, errno, "mmap kvm_run of vCPU %d", c->id);
        }
        size_t sz = sizeof (struct kvm_cpuid2) + vm->cpuid->nent * sizeof (struct kvm_cpuid_entry2);
        cleanup_free struct kvm_cpuid2 *cpuid = xmalloc (sz);
        memcpy (cpuid, vm->cpuid, sz);
        vmm_cpuid_fixup (cpuid, c->id, vm->ncpus, vm->masks, vm->nmasks);
        if (ioctl (c->fd, KVM_SET_CPUID2, cpuid) < 0)
                return moat_make_error (err, errno, "KVM_SET_CPUID2 on vCPU %d", c->id);

        /* Legacy interrupt wiring: LINT0 takes the PIC (ExtINT), LINT1 NMIs. */
        struct kvm_lapic_state lapic;
        if (ioctl (c->fd, KVM_GET_LAPIC, &lapic) < 0)
                return moat_make_error (err, errno, "KVM_GET_LAPIC on vCPU %d", c->id);
        set_lvt (&lapic, APIC_LVT0, APIC_MODE_EXTINT);
        set_lvt (&lapic, APIC_LVT1, APIC_MODE_NMI);
        if (ioctl (c->fd, KVM_SET_LAPIC, &lapic) < 0)
                return moat_make_error (err, errno, "KVM_SET_LAPIC on vCPU %d", c->id);

        struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
        if (ioctl (c->fd, KVM_SET_FPU, &fpu) < 0)
                return moat_make_error (err, errno, "KVM_SET_FPU on vCPU %d", c->id);
        return 0;
}

int
vmm_create_vcpus (struct vmm *vm, moat_error_t *err)
{
        vm->vcpus = xzalloc (vm->ncpus * sizeof *vm->vcpus);
        for (int i = 0; i < vm->ncpus; i++) {
                vm->vcpus[i].fd = -1;
                vm->vcpus[i].id = i;
                vm->vcpus[i].vmm = vm;
        }
        for (int i = 0; i < vm->ncpus; i++)
                if (setup_vcpu (vm, &vm->vcpus[i], err) < 0)
                        return -1;
        return 0;
}

int
vmm_set_boot_regs (struct vmm *vm, uint64_t rip, uint64_t rsi, moat_error_t *err)
{
        /* Only the boot CPU: the others wait for INIT/SIPI from the guest. */
        struct vmm_vcpu *c = &vm->vcpus[0];
        struct kvm_sregs sregs;
        if (ioctl (c->fd, KVM_GET_SREGS, &sregs) < 0)
                return moat_make_error (err, errno, "KVM_GET_SREGS");
        vmm_boot_sregs (&sregs);
        if (ioctl (c->fd, KVM_SET_SREGS, &sregs) < 0)
                return moat_make_error (err, errno, "KVM_SET_SREGS");
        struct kvm_regs regs;
        vmm_boot_regs (&regs, rip);
        regs.rsi = rsi;
        if (ioctl (c->fd, KVM_SET_REGS, &regs) < 0)
                return moat_make_error (err, errno, "KVM_SET_REGS");
        return 0;
}

static void
handle_io (struct vmm *vm, struct kvm_run *run)
{
        uint8_t *data = (uint8_t *)run + run->io.data_offset;
        bool write = run->io.direction == KVM_EXIT_IO_OUT;
        for (uint32_t i = 0; i < run->io.count; i++) {
                if (!vmm_bus_access (&vm->pio, run->io.port, data, run->io.size, write) && vm->debug)
                        moat_debug ("unhandled port %s 0x%x size %u", write ? "write" : "read", run->io.port,
                                    run->io.size);
                data += run->io.size;
        }
}

static const char *
exit_name (uint32_t r)
{
        switch (r) {
        case KVM_EXIT_FAIL_ENTRY:
                return "entry failure";
        case KVM_EXIT_INTERNAL_ERROR:
                return "internal error";
        case KVM_EXIT_EXCEPTION:
                return "exception";
        case KVM_EXIT_DEBUG:
                return "debug";
        default:
                return "unexpected exit";
        }
}

static void *
vcpu_thread (void *arg)
{
        struct vmm_vcpu *c = arg;
        struct vmm *vm = c->vmm;
        struct kvm_run *run = c->run;
        sigset_t set;
        sigemptyset (&set);
        sigaddset (&set, KICK_SIGNAL);
        pthread_sigmask (SIG_UNBLOCK, &set, NULL);

        /* Capabilities are per thread: each vCPU drops its own (the main
         * thread's confine drops the rest). */
        {
                cleanup_error moat_error_t e = NULL;
                if (vmm_caps_drop_all (&e) < 0)
                        vmm_request_stop (vm, VMM_EXIT_ERROR, "vCPU %d: %s", c->id, e->msg);
        }
        /* The guest runs only once the VMM is confined (vmm_run). */
        pthread_mutex_lock (&vm->go_lock);
        vm->parked++;
        pthread_cond_broadcast (&vm->go_cond);
        while (!vm->go)
                pthread_cond_wait (&vm->go_cond, &vm->go_lock);
        pthread_mutex_unlock (&vm->go_lock);

        while (!atomic_load (&vm->stopping)) {
                if (ioctl (c->fd, KVM_RUN, 0) < 0) {
                        if (errno == EINTR || errno == EAGAIN) {
                                run->immediate_exit = 0;
                                continue;
                        }
                        vmm_request_stop (vm, VMM_EXIT_ERROR, "vCPU %d: KVM_RUN: %s", c->id, strerror (errno));
                        break;
                }
                switch (run->exit_reason) {
                case KVM_EXIT_IO:
                        handle_io (vm, run);
                        break;
                case KVM_EXIT_MMIO:
                        if (!vmm_bus_access (&vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
                                             run->mmio.is_write) &&
                            vm->debug)
                                moat_debug ("unhandled MMIO %s 0x%llx", run->mmio.is_write ? "write" : "read",
                                            (unsigned long long)run->mmio.phys_addr);
                        break;
                case KVM_EXIT_HLT:
                        /* Without an in-kernel irqchip only; ours has one. Treat as poweroff. */
                        vmm_request_stop (vm, VMM_EXIT_POWEROFF, NULL);
                        break;
                case KVM_EXIT_SHUTDOWN:
                        vmm_request_stop (vm, VMM_EXIT_REBOOT, "vCPU %d: triple fault (reset)", c->id);
                        break;
                case KVM_EXIT_SYSTEM_EVENT:
                        if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
                                vmm_request_stop (vm, VMM_EXIT_POWEROFF, NULL);
                        else
                                vmm_request_stop (vm, VMM_EXIT_REBOOT, "vCPU %d: system reset", c->id);
                        break;
                case KVM_EXIT_INTR:
                        break;
                case KVM_EXIT_FAIL_ENTRY:
                        vmm_request_stop (vm, VMM_EXIT_ERROR, "vCPU %d: KVM entry failure, reason 0x%llx", c->id,
                                          (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
                        break;
                case KVM_EXIT_INTERNAL_ERROR:
                        vmm_request_stop (vm, VMM_EXIT_ERROR, "vCPU %d: KVM internal error, suberror %u", c->id,
                                          run->internal.suberror);
                        break;
                default:
                        vmm_request_stop (vm, VMM_EXIT_ERROR, "vCPU %d: %s (KVM exit reason %u)", c->id,
                                          exit_name (run->exit_reason), run->exit_reason);
                        break;
                }
        }
        return NULL;
}

static void
kick_handler (int sig)
{
        (void)sig;
}

static void
kick_all (struct vmm *vm)
{
        for (int i = 0; i < vm->ncpus; i++) {
                struct vmm_vcpu *c = &vm->vcpus[i];
                if (!c->started)
                        continue;
                c->run->immediate_exit = 1;
                pthread_kill (c->thread, KICK_SIGNAL);
        }
}

static void
join_all (struct vmm *vm)
{
        for (int i = 0; i < vm->ncpus; i++) {
                struct vmm_vcpu *c = &vm->vcpus[i];
                if (!c->started)
                        continue;
                /* Without immediate_exit a kick can land before KVM_RUN: repeat it. */
                for (;;) {
                        struct timespec ts;
                        clock_gettime (CLOCK_REALTIME, &ts);
                        ts.tv_nsec += 20 * 1000 * 1000;
                        if (ts.tv_nsec >= 1000000000) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000;
                        }
                        if (pthread_timedjoin_np (c->thread, NULL, &ts) == 0)
                                break;
                        c->run->immediate_exit = 1;
                        pthread_kill (c->thread, KICK_SIGNAL);
                }
                c->started = false;
        }
}

int
vmm_run (struct vmm *vm, moat_error_t *err)
{
        struct sigaction sa = {.sa_handler = kick_handler};
        sigemptyset (&sa.sa_mask);
        if (sigaction (KICK_SIGNAL, &sa, NULL) < 0)
                return moat_make_error (err, errno, "sigaction");

        /* Termination signals go to the event loop; the kick signal only to vCPUs. */
        sigset_t term, old;
        sigemptyset (&term);
        sigaddset (&term, SIGTERM);
        sigaddset (&term, SIGINT);
        sigaddset (&term, SIGHUP);
        sigaddset (&term, KICK_SIGNAL);
        pthread_sigmask (SIG_BLOCK, &term, &old);
        sigdelset (&term, KICK_SIGNAL);
        cleanup_close int sfd = signalfd (-1, &term, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0)
                return moat_make_error (err, errno, "signalfd");
        struct epoll_event sev = {.events = EPOLLIN, .data.u64 = UINT64_MAX - 1};
        if (epoll_ctl (vm->epoll_fd, EPOLL_CTL_ADD, sfd, &sev) < 0)
                return moat_make_error (err, errno, "epoll_ctl signalfd");

        int ret = 0;
        for (int i = 0; i < vm->ncpus; i++) {
                int r = pthread_create (&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]);
                if (r != 0) {
                        vmm_request_stop (vm, VMM_EXIT_ERROR, "create thread for vCPU %d: %s", i, strerror (r));
                        break;
                }
                vm->vcpus[i].started = true;
        }
        /* Every thread must have finished starting (glibc's rseq and robust
         * list setup) before the filter goes on. */
        int started = 0;
        for (int i = 0; i < vm->ncpus; i++)
                started += vm->vcpus[i].started;
        pthread_mutex_lock (&vm->go_lock);
        while (vm->parked < started)
                pthread_cond_wait (&vm->go_cond, &vm->go_lock);
        pthread_mutex_unlock (&vm->go_lock);
        if (vm->confine && !atomic_load (&vm->stopping)) {
                cleanup_error moat_error_t cerr = NULL;
                if (vm->confine (vm, &cerr) < 0)
                        vmm_request_stop (vm, VMM_EXIT_ERROR, "%s", cerr->msg);
        }
        pthread_mutex_lock (&vm->go_lock);
        vm->go = true;
        pthread_cond_broadcast (&vm->go_cond);
        pthread_mutex_unlock (&vm->go_lock);

        while (!atomic_load (&vm->stopping)) {
                struct epoll_event evs[16];
                int n = epoll_wait (vm->epoll_fd, evs, ARRAY_SIZE (evs), -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        vmm_request_stop (vm, VMM_EXIT_ERROR, "epoll_wait: %s", strerror (errno));
                        break;
                }
                for (int i = 0; i < n; i++) {
                        uint64_t k = evs[i].data.u64;
                        if (k == UINT64_MAX)
                                continue; /* stop_fd: the loop condition sees it */
                        if (k == UINT64_MAX - 1) {
                                struct signalfd_siginfo si;
                                if (read (sfd, &si, sizeof si) == sizeof si)
                                        vmm_request_stop (vm, VMM_EXIT_SIGNAL, "stopped by signal %u", si.ssi_signo);
                                continue;
                        }
                        if (k < vm->nwatches)
                                vm->watches[k].fn (vm->watches[k].opaque, vm->watches[k].fd);
                }
        }
        kick_all (vm);
        join_all (vm);
        pthread_sigmask (SIG_SETMASK, &old, NULL);
        pthread_mutex_lock (&vm->lock);
        ret = vm->exit_code;
        pthread_mutex_unlock (&vm->lock);
        return ret;
}
