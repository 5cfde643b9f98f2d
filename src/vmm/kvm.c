/* SPDX-License-Identifier: Apache-2.0 */
/* The VM: /dev/kvm, API and capability checks, guest RAM slots, in-kernel
 * irqchip and PIT, TSS and identity-map pages, stop requests. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "moat/log.h"
#include "moat/util.h"
#include "moat/vmm.h"

static const struct {
        int cap;
        const char *name;
} needed_caps[] = {
        {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
        {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
        {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
        {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
        {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
        {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
        {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
        {KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR"},
};

static int
get_supported_cpuid (struct vmm *vm, moat_error_t *err)
{
        for (int n = 128; n <= 4096; n *= 2) {
                struct kvm_cpuid2 *c = xzalloc (sizeof *c + n * sizeof (struct kvm_cpuid_entry2));
                c->nent = n;
                if (ioctl (vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
                        vm->cpuid = c;
                        return 0;
                }
                int e = errno;
                free (c);
                if (e != E2BIG)
                        return moat_make_error (err, e, "KVM_GET_SUPPORTED_CPUID");
        }
        return moat_make_error (err, E2BIG, "KVM_GET_SUPPORTED_CPUID");
}

int
vmm_open (struct vmm *vm, uint64_t mem_size, int ncpus, moat_error_t *err)
{
        vm->kvm_fd = vm->vm_fd = vm->stop_fd = vm->epoll_fd = vm->mem_fd = -1;
        pthread_mutex_init (&vm->lock, NULL);
        pthread_mutex_init (&vm->go_lock, NULL);
        pthread_cond_init (&vm->go_cond, NULL);
        vm->next_irq = VMM_VIRTIO_IRQ_BASE;
        vm->next_mmio = VMM_VIRTIO_MMIO_BASE;
        if (ncpus < 1 || ncpus > VMM_MAX_CPUS)
                return moat_make_error (err, 0, "%d vCPUs: must be 1 to %d", ncpus, VMM_MAX_CPUS);
        vm->ncpus = ncpus;
        vm->mem_size = mem_size;

        vm->kvm_fd = open ("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (vm->kvm_fd < 0)
                return moat_make_error (err, errno, "open /dev/kvm");
        int api = ioctl (vm->kvm_fd, KVM_GET_API_VERSION, 0);
        if (api != KVM_API_VERSION)
                return moat_make_error (err, 0, "/dev/kvm: API version %d, need %d", api, KVM_API_VERSION);
        for (size_t i = 0; i < ARRAY_SIZE (needed_caps); i++)
                if (ioctl (vm->kvm_fd, KVM_CHECK_EXTENSION, needed_caps[i].cap) <= 0)
                        return moat_make_error (err, 0, "/dev/kvm lacks %s", needed_caps[i].name);
        vm->has_immediate_exit = ioctl (vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT) > 0;
        int max_vcpus = ioctl (vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
        if (max_vcpus > 0 && ncpus > max_vcpus)
                return moat_make_error (err, 0, "%d vCPUs: KVM allows at most %d", ncpus, max_vcpus);
        vm->run_size = ioctl (vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
        if (vm->run_size < (int)sizeof (struct kvm_run))
                return moat_make_error (err, errno, "KVM_GET_VCPU_MMAP_SIZE");
        if (get_supported_cpuid (vm, err) < 0)
                return -1;

        vm->vm_fd = ioctl (vm->kvm_fd, KVM_CREATE_VM, 0);
        if (vm->vm_fd < 0)
                return moat_make_error (err, errno, "KVM_CREATE_VM");
        set_cloexec (vm->vm_fd, true);
        if (ioctl (vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)VMM_TSS_ADDR) < 0)
                return moat_make_error (err, errno, "KVM_SET_TSS_ADDR");
        uint64_t idmap = VMM_IDENTITY_MAP_ADDR;
        if (ioctl (vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
                return moat_make_error (err, errno, "KVM_SET_IDENTITY_MAP_ADDR");
        if (ioctl (vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
                return moat_make_error (err, errno, "KVM_CREATE_IRQCHIP");
        struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
        if (ioctl (vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
                return moat_make_error (err, errno, "KVM_CREATE_PIT2");

        if ((vm->use_memfd ? vmm_mem_alloc_memfd (&vm->mem, mem_size, &vm->mem_fd, err)
                           : vmm_mem_alloc (&vm->mem, mem_size, err)) < 0)
                return moat_error_wrap (err, "guest memory");
        for (size_t i = 0; i < vm->mem.nregions; i++) {
                struct moat_guest_region *r = &vm->mem.regions[i];
                struct kvm_userspace_memory_region slot = {
                        .slot = i,
                        .guest_phys_addr = r->gpa,
                        .memory_size = r->size,
                        .userspace_addr = (uint64_t)(uintptr_t)r->host,
                };
                if (ioctl (vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
                        return moat_make_error (err, errno, "KVM_SET_USER_MEMORY_REGION slot %zu at 0x%llx", i,
                                                (unsigned long long)r->gpa);
        }

        vm->stop_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (vm->stop_fd < 0)
                return moat_make_error (err, errno, "eventfd");
        vm->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
        if (vm->epoll_fd < 0)
                return moat_make_error (err, errno, "epoll_create1");
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
        if (epoll_ctl (vm->epoll_fd, EPOLL_CTL_ADD, vm->stop_fd, &ev) < 0)
                return moat_make_error (err, errno, "epoll_ctl");
        return 0;
}

void
vmm_close (struct vmm *vm)
{
        for (int i = 0; vm->vcpus && i < vm->ncpus; i++) {
                if (vm->vcpus[i].run)
                        munmap (vm->vcpus[i].run, vm->run_size);
                if (vm->vcpus[i].fd >= 0)
                        close (vm->vcpus[i].fd);
        }
        free (vm->vcpus);
        vm->vcpus = NULL;
        vmm_mem_free (&vm->mem);
        vmm_bus_free (&vm->pio);
        vmm_bus_free (&vm->mmio);
        free (vm->cpuid);
        vm->cpuid = NULL;
        free (vm->watches);
        vm->watches = NULL;
        free (vm->exit_msg);
        vm->exit_msg = NULL;
        moat_cleanup_closep (&vm->mem_fd);
        moat_cleanup_closep (&vm->epoll_fd);
        moat_cleanup_closep (&vm->stop_fd);
        moat_cleanup_closep (&vm->vm_fd);
        moat_cleanup_closep (&vm->kvm_fd);
}

void
vmm_request_stop (struct vmm *vm, int code, const char *fmt, ...)
{
        pthread_mutex_lock (&vm->lock);
        if (!atomic_load (&vm->stopping)) {
                vm->exit_code = code;
                if (fmt) {
                        va_list ap;
                        va_start (ap, fmt);
                        if (vasprintf (&vm->exit_msg, fmt, ap) < 0)
                                vm->exit_msg = NULL;
                        va_end (ap);
                }
                atomic_store (&vm->stopping, 1);
        }
        pthread_mutex_unlock (&vm->lock);
        uint64_t one = 1;
        if (write (vm->stop_fd, &one, sizeof one) < 0 && errno != EAGAIN)
                moat_warn ("stop request: write eventfd: %s", strerror (errno));
}

int
vmm_irq_line (struct vmm *vm, uint32_t irq, int level)
{
        struct kvm_irq_level l = {.irq = irq, .level = level};
        return ioctl (vm->vm_fd, KVM_IRQ_LINE, &l);
}

void
vmm_alloc_mmio (struct vmm *vm, uint64_t *base, uint32_t *irq)
{
        *base = vm->next_mmio;
        *irq = vm->next_irq;
        vm->next_mmio += VMM_VIRTIO_MMIO_SIZE;
        vm->next_irq++;
}

int
vmm_watch_fd (struct vmm *vm, int fd, vmm_fd_fn fn, void *opaque, moat_error_t *err)
{
        vm->watches = xrealloc (vm->watches, (vm->nwatches + 1) * sizeof *vm->watches);
        vm->watches[vm->nwatches] = (struct vmm_watch){fd, fn, opaque};
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = vm->nwatches};
        if (epoll_ctl (vm->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
                return moat_make_error (err, errno, "epoll_ctl add fd %d", fd);
        vm->nwatches++;
        return 0;
}
