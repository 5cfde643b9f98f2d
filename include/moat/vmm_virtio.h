/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-mmio transport, version 2 (virtio 1.x, section 4.2.2), over the
 * split virtqueues of moat/virtqueue.h. The guest's QueueNotify writes reach
 * the event loop through KVM ioeventfds (one per queue, data-matched on the
 * queue index); used-buffer interrupts go out through a KVM irqfd. The
 * device is announced on the kernel command line as
 * virtio_mmio.device=4K@<base>:<irq>. The devices are put on the VM by the
 * registry (moat/vmm_devices.h), which picks <base> and <irq>. */
#ifndef MOAT_VMM_VIRTIO_H
#define MOAT_VMM_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "moat/error.h"
#include "moat/virtqueue.h"

#define VMM_VIRTIO_MAX_QUEUES 8

/* Register offsets. */
enum {
        VIRTIO_MMIO_MAGIC = 0x000,
        VIRTIO_MMIO_VERSION = 0x004,
        VIRTIO_MMIO_DEVICE_ID = 0x008,
        VIRTIO_MMIO_VENDOR_ID = 0x00c,
        VIRTIO_MMIO_DEVICE_FEATURES = 0x010,
        VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014,
        VIRTIO_MMIO_DRIVER_FEATURES = 0x020,
        VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024,
        VIRTIO_MMIO_QUEUE_SEL = 0x030,
        VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034,
        VIRTIO_MMIO_QUEUE_NUM = 0x038,
        VIRTIO_MMIO_QUEUE_READY = 0x044,
        VIRTIO_MMIO_QUEUE_NOTIFY = 0x050,
        VIRTIO_MMIO_INTERRUPT_STATUS = 0x060,
        VIRTIO_MMIO_INTERRUPT_ACK = 0x064,
        VIRTIO_MMIO_STATUS = 0x070,
        VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080,
        VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084,
        VIRTIO_MMIO_QUEUE_DRIVER_LOW = 0x090,
        VIRTIO_MMIO_QUEUE_DRIVER_HIGH = 0x094,
        VIRTIO_MMIO_QUEUE_DEVICE_LOW = 0x0a0,
        VIRTIO_MMIO_QUEUE_DEVICE_HIGH = 0x0a4,
        VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc,
        VIRTIO_MMIO_CONFIG = 0x100,
};
#define VIRTIO_MMIO_MAGIC_VALUE 0x74726976 /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x54414f4d      /* "MOAT" */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80
#define VIRTIO_INT_VRING 1
#define VIRTIO_INT_CONFIG 2
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_9P 9
#define VIRTIO_ID_VSOCK 19

struct vmm_virtio_mmio;
struct vmm_virtio_ops {
        const char *name;
        uint32_t device_id;
        uint64_t features; /* VERSION_1 is added by the transport */
        int nqueues;
        uint16_t queue_max;
        void (*config_read) (struct vmm_virtio_mmio *m, uint64_t off, uint8_t *data, uint32_t len);
        /* Called with m->lock held when the driver kicks queue q. */
        void (*queue_notify) (struct vmm_virtio_mmio *m, int q);
        void (*reset) (struct vmm_virtio_mmio *m);
        void (*free) (struct vmm_virtio_mmio *m);
        /* Optional, with m->lock held: queue q was started (on) or stopped. */
        void (*queue_ready) (struct vmm_virtio_mmio *m, int q, bool on);
};

struct vmm_virtio_queue {
        struct moat_virtq vq;
        uint32_t num;
        bool ready;
        int ioeventfd;
        struct vmm_virtio_mmio *owner;
        int index;
};

struct vmm_virtio_mmio {
        pthread_mutex_t lock;
        const struct vmm_virtio_ops *ops;
        void *dev; /* the device's own state */
        const struct moat_guest_mem *mem;
        uint64_t base;
        uint32_t irq;
        char cmdline_arg[64];
        uint64_t device_features, driver_features;
        uint32_t dev_feat_sel, drv_feat_sel, queue_sel, status, isr, config_generation;
        /* The interrupt status word: &isr, or a page shared with a device
         * process (virtio-9p worker) that raises interrupts itself. */
        uint32_t *isrp;
        /* The device reads the queue ioeventfds itself (a worker process):
         * the event loop does not watch them. Set before attach. */
        bool external_notify;
        struct vmm_virtio_queue q[VMM_VIRTIO_MAX_QUEUES];
        int irqfd;
        /* Raises the interrupt; default: write the irqfd. Tests replace it. */
        void (*raise_irq) (struct vmm_virtio_mmio *m);
        uint64_t interrupts; /* count, for tests and stats */
        struct vmm_virtio_mmio *next;
};

/* Transport without KVM (unit tests): registers only. */
void vmm_virtio_mmio_init (struct vmm_virtio_mmio *m, const struct vmm_virtio_ops *ops, void *dev,
                           const struct moat_guest_mem *mem, uint64_t base, uint32_t irq);
void vmm_virtio_mmio_io (void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
/* Sets the interrupt status bit and raises the interrupt. */
void vmm_virtio_mmio_signal (struct vmm_virtio_mmio *m, uint32_t why);

struct vmm;
/* Places the device on the VM's MMIO bus with an ioeventfd per queue and an irqfd. */
int vmm_virtio_mmio_attach (struct vmm *vm, struct vmm_virtio_mmio *m, moat_error_t *err);
void vmm_virtio_free_all (struct vmm *vm);

/* virtio-rng (entropy) fed from getrandom(): at most MAX_CHAIN bytes into
 * one chain, MAX_CHAINS chains per notification; the device kicks its own
 * queue ioeventfd when chains are left. */
#define VMM_VIRTIO_RNG_MAX_CHAIN (64 * 1024)
#define VMM_VIRTIO_RNG_MAX_CHAINS 16
extern const struct vmm_virtio_ops vmm_virtio_rng_ops;
struct vmm_virtio_mmio *vmm_virtio_rng_new (const struct moat_guest_mem *mem);

/* virtio-vsock: moat's vsock device (moat/vsock.h) with the hybrid-vsock
 * Unix socket uds_path as the host side, served from the event loop. */
extern const struct vmm_virtio_ops vmm_virtio_vsock_ops;

/* virtio-9p: moat's 9P2000.L server (moat/p9.h) confined to the host
 * directory `path`, announced with mount tag `tag`; requests are served by a
 * worker thread. */
#define VMM_VIRTIO_9P_TAG_MAX 64
extern const struct vmm_virtio_ops vmm_virtio_9p_ops;
/* System calls the 9p worker makes, NULL-terminated (for the seccomp allowlist). */
extern const char *const vmm_virtio_9p_syscalls[];
/* "TAG=PATH" (the --share argument). */
int vmm_virtio_9p_parse_share (const char *spec, char **tag, char **path, moat_error_t *err);
struct vmm_virtio_mmio *vmm_virtio_9p_new (const struct moat_guest_mem *mem, const char *tag, const char *path,
                                           uint64_t base, uint32_t irq, moat_error_t *err);
/* Fuzzers, no thread: the device serves its queue only when
 * vmm_virtio_9p_serve_pending is called (without m->lock), on the caller's
 * thread, if the driver kicked it since (at most queue_max requests a
 * call). Freed by ops->free. */
struct vmm_virtio_mmio *vmm_virtio_9p_new_sync (const struct moat_guest_mem *mem, const char *tag, const char *path,
                                                uint64_t base, uint32_t irq, moat_error_t *err);
void vmm_virtio_9p_serve_pending (struct vmm_virtio_mmio *m);
/* Requests answered so far. */
uint64_t vmm_virtio_9p_requests (struct vmm_virtio_mmio *m);
/* Unit tests, no KVM: the device with its worker
 * process, the queue kick and the interrupt being plain eventfds (guest
 * memory must be MAP_SHARED, as the worker sees it after fork). A control
 * call waits ctl_timeout_ms for the worker. Freed by
 * vmm_virtio_9p_free_worker. */
struct vmm_virtio_mmio *vmm_virtio_9p_new_worker (struct vmm *vm, const char *tag, const char *path, int ctl_timeout_ms,
                                                  moat_error_t *err);
pid_t vmm_virtio_9p_worker_pid (struct vmm_virtio_mmio *m);
void vmm_virtio_9p_free_worker (struct vmm_virtio_mmio *m);

/* virtio-net (device id 1) on a host tap opened with IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR and a 12-byte (virtio 1.x) header. Offers MAC only (no
 * checksum or segmentation offloads, no mergeable buffers): every frame
 * travels with a zeroed header. Queues are served by a thread of the device
 * fed by the queue ioeventfds and the tap fd; interrupts go out by irqfd. */
#define VMM_VIRTIO_NET_HDR_LEN 12
#define VMM_VIRTIO_NET_F_MAC 5
#define VMM_VIRTIO_NET_MAX_FRAME 65535 /* largest frame (without the header) moved either way */
struct vmm_virtio_net_stats {
        uint64_t rx_packets, rx_bytes, rx_dropped; /* host -> guest; dropped: did not fit, bad offload header */
        uint64_t tx_packets, tx_bytes, tx_dropped; /* guest -> host; dropped: too short/long, tap refused */
};
extern const struct vmm_virtio_ops vmm_virtio_net_ops;
/* "52:54:00:12:34:56": a unicast MAC. */
int vmm_net_parse_mac (const char *s, uint8_t mac[6], moat_error_t *err);
/* A random locally administered unicast MAC, 02:4d:54:xx:xx:xx. */
void vmm_net_random_mac (uint8_t mac[6]);
/* Opens (or creates) tap `name`: non-blocking, close-on-exec, vnet header of 12 bytes, offloads off. */
int vmm_tap_open (const char *name, moat_error_t *err);
/* The device without KVM or thread (unit tests): takes tap_fd (any
 * non-blocking packet fd: a tap or a SOCK_SEQPACKET socket). */
struct vmm_virtio_mmio *vmm_virtio_net_new (const struct moat_guest_mem *mem, int tap_fd, const uint8_t mac[6],
                                            uint64_t base, uint32_t irq);
/* Moves what can be moved now, both ways (takes m->lock). */
void vmm_virtio_net_poll (struct vmm_virtio_mmio *m);
void vmm_virtio_net_get_stats (struct vmm_virtio_mmio *m, struct vmm_virtio_net_stats *out);

/* virtio-console (device id 3), single port, output only: what the guest
 * writes on the transmit queue goes to out_fd (not closed by the device);
 * the receive queue is never filled. Served from the event loop. */
extern const struct vmm_virtio_ops vmm_virtio_console_ops;
struct vmm_virtio_mmio *vmm_virtio_console_new (const struct moat_guest_mem *mem, int out_fd, uint64_t base,
                                                uint32_t irq);
/* Bytes written to out_fd so far. */
uint64_t vmm_virtio_console_bytes (struct vmm_virtio_mmio *m);

#endif
