/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vmm: a KVM microVM monitor on linux/kvm.h. One struct vmm per VM;
 * vCPUs are threads, the main thread runs the event loop (stop requests,
 * ioeventfds of virtio queues, serial input). Devices live on two buses
 * (port I/O and MMIO) that are filled before the vCPUs start and are
 * read-only afterwards, so lookups need no lock; each device locks itself. */
#ifndef MOAT_VMM_H
#define MOAT_VMM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "moat/error.h"
#include "moat/virtqueue.h"

/* Exit status of moat-vmm (documented in docs and --help). */
enum {
        VMM_EXIT_POWEROFF = 0,     /* guest powered off (exit device wrote 0) */
        VMM_EXIT_USAGE = 1,        /* bad command line or config: the VM never ran */
        VMM_EXIT_REBOOT = 2,       /* guest reset: i8042 0xfe, triple fault */
        VMM_EXIT_ERROR = 3,        /* VMM or KVM failure while running (message on stderr) */
        VMM_EXIT_SIGNAL = 4,       /* stopped by SIGTERM/SIGINT/SIGHUP */
        VMM_EXIT_STATUS_BASE = 16, /* exit device wrote s in 1..111: exit 16+s */
        VMM_EXIT_STATUS_MAX = 127, /* s > 111 is reported as 127 */
};

/* Guest physical layout (x86). */
#define VMM_MMIO_GAP_START 0xc0000000ULL /* 3 GiB: 32-bit MMIO hole up to 4 GiB */
#define VMM_MMIO_GAP_END 0x100000000ULL
#define VMM_VIRTIO_MMIO_BASE 0xd0000000ULL /* virtio-mmio devices, one 4 KiB page each */
#define VMM_VIRTIO_MMIO_SIZE 0x1000ULL
#define VMM_VIRTIO_IRQ_BASE 5 /* first GSI handed to virtio devices */
#define VMM_TSS_ADDR 0xfffbd000ULL
#define VMM_IDENTITY_MAP_ADDR 0xfffbc000ULL
#define VMM_SERIAL_COM1 0x3f8
#define VMM_SERIAL_IRQ 4
#define VMM_EXIT_PORT 0x501 /* moat exit device: 1-byte write = status */
#define VMM_MAX_CPUS 64

/* ---- guest memory ---- */
/* Builds the RAM regions for mem_size bytes: below the 3 GiB hole, then the
 * rest from 4 GiB. host is one reservation of the full span, so the hole is
 * mapped PROT_NONE in between. */
int vmm_mem_layout (uint64_t mem_size, struct moat_guest_region *regions, size_t *nregions, moat_error_t *err);
int vmm_mem_alloc (struct moat_guest_mem *mem, uint64_t mem_size, moat_error_t *err);
/* The same layout backed by a memfd mapped MAP_SHARED (to hand guest RAM to
 * vhost-user backends): region i sits at file offset = the sizes of the
 * regions before it. *fd gets the memfd (close-on-exec). */
int vmm_mem_alloc_memfd (struct moat_guest_mem *mem, uint64_t mem_size, int *fd, moat_error_t *err);
void vmm_mem_free (struct moat_guest_mem *mem);
/* Bytes of RAM below 4 GiB. */
uint64_t vmm_mem_low_end (const struct moat_guest_mem *mem);

/* ---- buses ---- */
typedef void (*vmm_io_fn) (void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
struct vmm_io_range {
        uint64_t base, len;
        vmm_io_fn fn;
        void *opaque;
        const char *name;
};
struct vmm_io_bus {
        struct vmm_io_range *ranges;
        size_t n;
};
int vmm_bus_add (struct vmm_io_bus *bus, uint64_t base, uint64_t len, vmm_io_fn fn, void *opaque, const char *name,
                 moat_error_t *err);
/* false: nothing there (reads then see all ones). */
bool vmm_bus_access (struct vmm_io_bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);
void vmm_bus_free (struct vmm_io_bus *bus);

/* ---- CPUID ---- */
struct vmm_cpuid_mask {
        uint32_t leaf;
        int reg; /* 0 eax, 1 ebx, 2 ecx, 3 edx */
        uint32_t clear;
};
/* "LEAF:REG:BITS", e.g. "0x1:ecx:0x20" clears ECX bit 5 of leaf 1 (all subleaves). */
int vmm_cpuid_mask_parse (const char *s, struct vmm_cpuid_mask *out, moat_error_t *err);
struct kvm_cpuid2;
/* Applies masks and the per-vCPU fields (APIC ids, hypervisor bit) to a copy
 * of the supported table. */
void vmm_cpuid_fixup (struct kvm_cpuid2 *c, int cpu, int ncpus, const struct vmm_cpuid_mask *masks, size_t nmasks);

/* ---- the VM ---- */
struct vmm;
struct vmm_virtio_mmio;
struct vmm_vcpu {
        struct vmm *vmm;
        int id;
        int fd;
        struct kvm_run *run;
        pthread_t thread;
        bool started;
};

typedef void (*vmm_fd_fn) (void *opaque, int fd);
struct vmm_watch {
        int fd;
        vmm_fd_fn fn;
        void *opaque;
};

struct vmm {
        int kvm_fd, vm_fd;
        int run_size;
        struct moat_guest_mem mem;
        uint64_t mem_size;
        struct vmm_io_bus pio, mmio;
        int ncpus;
        struct vmm_vcpu *vcpus;
        struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID */
        struct vmm_cpuid_mask *masks;
        size_t nmasks;
        bool has_immediate_exit;
        int stop_fd; /* eventfd: someone asked the VM to stop */
        atomic_int stopping;
        int exit_code; /* under lock; first stop request wins */
        char *exit_msg;
        pthread_mutex_t lock;
        struct vmm_watch *watches; /* fds the event loop serves */
        size_t nwatches;
        int epoll_fd;
        uint32_t next_irq;
        uint64_t next_mmio;
        bool debug;
        struct vmm_virtio_mmio *virtio; /* list of virtio-mmio devices */
        bool use_memfd;                 /* set before vmm_open: guest RAM from a memfd */
        int helper_seccomp;             /* enum vmm_seccomp_mode for device worker processes */
        int mem_fd;                     /* that memfd, -1 without */
        /* Called by vmm_run once every thread exists and before any vCPU
         * enters the guest (seccomp). Failing stops the VM with an error. */
        int (*confine) (struct vmm *vm, moat_error_t *err);
        pthread_mutex_t go_lock; /* vCPUs wait for `go` before the first KVM_RUN */
        pthread_cond_t go_cond;
        bool go;
        int parked; /* vCPU threads waiting for `go` */
};

int vmm_open (struct vmm *vm, uint64_t mem_size, int ncpus, moat_error_t *err);
void vmm_close (struct vmm *vm);
/* Asks the VM to stop with `code` (first request wins), from any thread. */
void vmm_request_stop (struct vmm *vm, int code, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));
int vmm_irq_line (struct vmm *vm, uint32_t irq, int level);
/* Next free virtio-mmio slot. */
void vmm_alloc_mmio (struct vmm *vm, uint64_t *base, uint32_t *irq);
/* The event loop: registers an fd to call fn when readable. */
int vmm_watch_fd (struct vmm *vm, int fd, vmm_fd_fn fn, void *opaque, moat_error_t *err);

/* seccomp.c: the allowlist moat-vmm runs under once the guest runs. */
enum vmm_seccomp_mode {
        VMM_SECCOMP_KILL,  /* default: a syscall outside the list kills the process */
        VMM_SECCOMP_TRAP,  /* debugging: SIGSYS, the handler names the syscall on stderr, then exit 3 */
        VMM_SECCOMP_ERRNO, /* debugging: the syscall fails with EPERM */
        VMM_SECCOMP_OFF,
};
int vmm_seccomp_parse_mode (const char *s, enum vmm_seccomp_mode *out, moat_error_t *err);
/* PR_SET_NO_NEW_PRIVS and the filter on every thread of the process (TSYNC).
 * extra: NULL or a NULL-terminated list of syscall names the configured
 * devices need on top of the base list (e.g. vmm_virtio_9p_syscalls). */
int vmm_seccomp_install (enum vmm_seccomp_mode mode, const char *const *extra, moat_error_t *err);
/* Writes the allowed syscalls, one a line, then "N syscalls"; returns N or -1. */
int vmm_seccomp_print (FILE *out, const char *const *extra, moat_error_t *err);
/* The same for one of moat-vmm's filters: the VMM's, or the one the
 * virtio-9p worker process runs under (with vmm_virtio_9p_syscalls). */
enum vmm_seccomp_filter {
        VMM_FILTER_VMM,
        VMM_FILTER_9P_WORKER,
};
int vmm_seccomp_install_filter (enum vmm_seccomp_filter which, enum vmm_seccomp_mode mode, const char *const *extra,
                                moat_error_t *err);
int vmm_seccomp_print_filter (enum vmm_seccomp_filter which, FILE *out, const char *const *extra, moat_error_t *err);

/* vcpu.c */
int vmm_create_vcpus (struct vmm *vm, moat_error_t *err);
int vmm_set_boot_regs (struct vmm *vm, uint64_t rip, uint64_t rsi, moat_error_t *err);
/* Starts the vCPU threads, runs the event loop until a stop request, stops and
 * joins the vCPUs. Returns the exit code. */
int vmm_run (struct vmm *vm, moat_error_t *err);

#endif
